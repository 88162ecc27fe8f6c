"""The served OpenAPI schema tells the truth: it is valid OpenAPI 3 for a
standard validator, and schemathesis, run with every check against the real
server, finds no server error and no answer the schema does not describe.

The schemathesis run drives the production-like live server (gunicorn,
PostgreSQL, the Redis ledger; coditect/testing.LiveServer) with a seeded
tenant admin's access token and a license token from a real acquire, so the
authenticated operations are exercised past their authentication. Its
examples are bounded and its seed fixed, so a run is repeatable and takes
about a minute.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from django.conf import settings
from openapi_spec_validator import validate

# Test cases per operation and phase; with the coverage phase's own cases this
# keeps the whole run near a minute on two busy cores.
MAX_EXAMPLES = 25
SEED = 20261013
BORROW_LIMIT_HOURS = 24
HOOKS = "coditect.tests.schemathesis_hooks"


@pytest.mark.embedded
def test_the_served_schema_is_valid_openapi_3(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = json.loads(response.content)
    assert schema["openapi"].startswith("3.")
    validate(schema)  # raises on the first violation of the OpenAPI 3 specification


@pytest.mark.embedded
def test_every_operation_declares_the_errors_of_the_layers_it_crosses(client):
    schema = json.loads(client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").content)
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            declared = set(operation["responses"])
            assert {"400", "429", "503"} <= declared, (method, path)
            if operation.get("security"):
                assert "401" in declared, (method, path)
            if "{" in path:
                assert "404" in declared, (method, path)
            for status, response in operation["responses"].items():
                if status >= "400":
                    assert response["content"]["application/json"]["schema"]["$ref"].endswith("/Error")


@pytest.mark.django_db
@pytest.mark.embedded
@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/auth/logout", {"refresh_token": 42}, "refresh_token"),
        ("/api/v1/auth/login", {"email": "a@b.test", "password": ["x"]}, "password"),
        ("/api/v1/invites", {"expires_in_hours": "5"}, "expires_in_hours"),
        ("/api/v1/invites", {"email": "a\x00@b.test"}, "email"),
    ],
)
def test_a_body_value_of_another_json_type_is_refused_and_changes_nothing(admin, path, body, field):
    from accounts.models import Invite

    before = Invite.objects.count()
    response = admin.client.post(path, body, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"
    assert field in response.json()["error"]["details"]["fields"]
    assert Invite.objects.count() == before


@pytest.mark.django_db
@pytest.mark.embedded
@pytest.mark.parametrize("query", ["to=", "from=", "license_id=", "cursor=", "cursor=not%20base64"])
def test_a_query_parameter_named_without_a_value_is_refused(admin, query):
    response = admin.client.get(f"/api/v1/analytics/usage?{query}")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"


@pytest.mark.django_db
@pytest.mark.embedded
def test_a_withdrawn_invite_is_gone_from_its_address_and_listed_as_revoked(admin):
    created = admin.client.post("/api/v1/invites", {}, format="json").json()
    assert created["used_at"] is None and created["revoked_at"] is None and created["email"] == ""
    assert admin.client.delete(f"/api/v1/invites/{created['id']}").status_code == 204
    assert admin.client.get(f"/api/v1/invites/{created['id']}").status_code == 404
    assert admin.client.delete(f"/api/v1/invites/{created['id']}").status_code == 404
    listed = {row["id"]: row for row in admin.client.get("/api/v1/invites").json()["results"]}
    assert listed[created["id"]]["status"] == "revoked"
    assert listed[created["id"]]["revoked_at"] is not None


@pytest.mark.embedded
def test_a_delete_to_an_unknown_api_path_is_a_404_in_the_error_shape_not_a_csrf_page():
    from django.test import Client

    response = Client(enforce_csrf_checks=True).delete("/api/v1/invites/null,null")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.django_db
@pytest.mark.embedded
@pytest.mark.parametrize(
    ("password", "email"),
    [
        ("0123456789", "new@example.test"),
        ("abcdefghijk", "0" * 65 + "@example.test"),
        ("abcdefghijk", "a@b.c"),
    ],
)
def test_register_refuses_what_its_schema_refuses(api, password, email):
    response = api.post(
        "/api/v1/auth/register",
        {"email": email, "password": password, "tenant_name": "Initech"},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"


CONFIG = """\
[auth.openapi.bearerAuth]
bearer = "${CONFORMANCE_ACCESS_TOKEN}"

[auth.openapi.licenseToken]
bearer = "${CONFORMANCE_LICENSE_TOKEN}"
"""


@pytest.fixture
def seeded(live_server_e2e):
    """A tenant admin who signed in over HTTP, and a live lease of theirs."""
    from accounts.tests.factories import TEST_PASSWORD, TenantAdminFactory
    from licenses.services import license_create
    from tenants.tests.factories import TenantFactory

    tenant = TenantFactory()
    admin = TenantAdminFactory(tenant=tenant)
    _, key = license_create(
        tenant=tenant,
        max_seats=1000,
        borrow_limit_hours=BORROW_LIMIT_HOURS,
    )
    url = live_server_e2e.url
    login = requests.post(
        f"{url}/api/v1/auth/login", json={"email": admin.email, "password": TEST_PASSWORD}, timeout=10
    )
    assert login.status_code == 200, login.text
    access_token = login.json()["access_token"]
    acquire = requests.post(
        f"{url}/api/v1/licenses/acquire",
        json={"license_key": key, "hardware_fingerprint": "conformance-machine-0001"},
        headers={"Authorization": f"Bearer {access_token}"},
        timeout=10,
    )
    assert acquire.status_code == 201, acquire.text
    return live_server_e2e, access_token, acquire.json()["token"], key


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.redis
def test_schemathesis_with_every_check_finds_no_failure(seeded, tmp_path):
    server, access_token, license_token, license_key = seeded
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    report = tmp_path / "report"
    argv = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file",
        str(config),
        "--no-color",
        "run",
        f"{server.url}/api/schema/",
        "--checks",
        "all",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        str(SEED),
        "--workers",
        "1",
        "--generation-database",
        "none",
        "--request-timeout",
        "10",
        "--report",
        "ndjson",
        "--report-dir",
        str(report),
    ]
    env = {
        **os.environ,
        "CONFORMANCE_ACCESS_TOKEN": access_token,
        "CONFORMANCE_LICENSE_TOKEN": license_token,
        "CONFORMANCE_LICENSE_KEY": license_key,
        "CONFORMANCE_STRIPE_WEBHOOK_SECRET": server.env["STRIPE_WEBHOOK_SECRET"],
        "CONFORMANCE_BORROW_LIMIT_HOURS": str(BORROW_LIMIT_HOURS),
        "SCHEMATHESIS_HOOKS": HOOKS,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(settings.BASE_DIR), os.environ.get("PYTHONPATH")])),
    }
    run = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    (tmp_path / "schemathesis.txt").write_text(run.stdout + run.stderr)
    assert run.returncode == 0, (
        f"(whole output: {tmp_path / 'schemathesis.txt'})\n{run.stdout[-20000:]}\n{run.stderr[-4000:]}\nserver log:\n{server.log_tail()}"
    )
