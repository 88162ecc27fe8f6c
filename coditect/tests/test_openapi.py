"""The OpenAPI schema: complete, valid, and in step with the code."""

import pytest
from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.validation import validate_schema

PUBLIC = {"jwks", "jwks_v1"}


@pytest.fixture(scope="module")
def schema():
    GENERATOR_STATS.reset()
    generated = SchemaGenerator().get_schema(request=None, public=True)
    generated["warnings"] = dict(GENERATOR_STATS._warn_cache)
    generated["errors"] = dict(GENERATOR_STATS._error_cache)
    return generated


def operations(schema):
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            yield path, method, operation


def test_the_schema_is_valid_and_generates_without_warnings(schema):
    warnings, errors = schema.pop("warnings"), schema.pop("errors")
    validate_schema(schema)
    assert not errors
    assert not warnings


def test_every_api_operation_documents_its_error_bodies(schema):
    for path, method, operation in operations(schema):
        if operation["operationId"] in PUBLIC:
            continue
        errors = {code: body for code, body in operation["responses"].items() if code.startswith(("4", "5"))}
        assert errors, f"{method.upper()} {path} documents no error response"
        for code, body in errors.items():
            ref = body["content"]["application/json"]["schema"].get("$ref", "")
            assert ref.endswith(("/Error", "/ErrorResponse", "/ErrorBody")) or "Error" in ref, (
                path,
                code,
                ref,
            )


def test_the_license_endpoints_are_all_there(schema):
    paths = set(schema["paths"])
    for path in ("acquire", "heartbeat", "release", "borrow", "status"):
        assert f"/api/v1/licenses/{path}" in paths


def test_schema_and_docs_are_served(client):
    assert client.get("/api/schema/").status_code == 200
    assert client.get("/api/docs/").status_code == 200


def test_the_docs_page_loads_its_scripts_from_this_server_not_a_cdn(client):
    import re

    page = client.get("/api/docs/").content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert any(asset.endswith("swagger-ui-bundle.js") for asset in assets)
    assert [asset for asset in assets if "//" in asset] == []
