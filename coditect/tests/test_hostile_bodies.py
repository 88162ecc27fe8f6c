"""What a hostile client can send to any endpoint that takes a body: JSON
nested 100,000 deep, a 20 MB body, 100,000 keys, a very long string, a Host
header the server does not serve. Each gets a 4xx in the error shape, never a
500, on every such endpoint, whoever sends it (nobody, a signed-in user, a
seat's license token).

The endpoints are read from the URL resolver: every DRF view that takes
POST, PUT, PATCH or DELETE, so that an endpoint added later is covered
without being listed here.
"""

from __future__ import annotations

import re
import uuid

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.views import APIView

from coditect.personas import bearer
from licenses.tests.factories import LicenseFactory

pytestmark = pytest.mark.embedded

BODY_METHODS = ("post", "put", "patch", "delete")
_CONVERTER = re.compile(r"<(?:(?P<kind>\w+):)?(?P<name>\w+)>")


def _concrete(route: str) -> str:
    """A path that matches `route`: each converter given a value of its kind."""
    return _CONVERTER.sub(lambda m: "1" if m["kind"] == "int" else str(uuid.UUID(int=1)), route)


def _walk(patterns, prefix: str = ""):
    for pattern in patterns:
        route = str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, prefix + route)
        elif isinstance(pattern, URLPattern):
            yield prefix + route, pattern.callback


def body_endpoints() -> list[tuple[str, str]]:
    """(method, path) of every API view that takes a body."""
    found = set()
    for route, callback in _walk(get_resolver().url_patterns):
        view = getattr(callback, "cls", None)
        if not (isinstance(view, type) and issubclass(view, APIView)) or route.startswith("^"):
            continue
        actions = getattr(callback, "actions", None)  # a viewset's method-to-action map
        methods = actions.keys() if actions else [m for m in BODY_METHODS if hasattr(view, m)]
        for method in methods:
            if method in BODY_METHODS:
                found.add((method.upper(), "/" + _concrete(route)))
    return sorted(found)


ENDPOINTS = body_endpoints()


def test_the_endpoints_are_read_from_the_resolver_and_include_the_contracts():
    paths = {path for _, path in ENDPOINTS}
    for path in (
        "/api/v1/auth/register",
        "/api/v1/auth/login",
        "/api/v1/auth/refresh",
        "/api/v1/licenses/acquire",
        "/api/v1/licenses/heartbeat",
        "/api/v1/licenses/release",
        "/api/v1/licenses/borrow",
    ):
        assert path in paths, sorted(paths)


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def many_keys(count: int) -> bytes:
    return b"{" + b",".join(b'"k%d":0' % n for n in range(count)) + b"}"


def long_string(length: int) -> bytes:
    return b'{"password": "' + b"x" * length + b'"}'


TWENTY_MB = b'{"pad": "' + b"x" * (20 * 1024 * 1024) + b'"}'

HOSTILE = {
    "nested 100,000 deep": nested(100_000),
    "20 MB": TWENTY_MB,
    "100,000 keys": many_keys(100_000),
    "a 1,000,000-character string": long_string(1_000_000),
}


@pytest.fixture
def callers(admin):
    """The ways in: nobody, a tenant admin's access token, a seat's license token."""
    license = LicenseFactory(tenant=admin.tenant, max_seats=2)
    seat = admin.client.post(
        "/api/v1/licenses/acquire",
        {"license_key": license.key, "hardware_fingerprint": "hostile-fp"},
        format="json",
    )
    assert seat.status_code == 201, seat.content
    return {
        "anonymous": {},
        "user token": bearer(admin.user),
        "license token": {"Authorization": f"Bearer {seat.json()['token']}"},
    }


def send(method: str, path: str, body: bytes, headers: dict, **extra):
    return Client().generic(
        method, path, data=body, content_type="application/json", headers=headers, **extra
    )


def assert_refused_in_the_error_shape(response, codes: set[str], what: str) -> dict:
    assert 400 <= response.status_code < 500, (what, response.status_code, response.content[:300])
    assert response["Content-Type"].startswith("application/json"), what
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}, (what, body)
    assert body["error"]["code"] in codes, (what, body)
    return body["error"]


@pytest.mark.parametrize("method, path", ENDPOINTS, ids=[f"{m} {p}" for m, p in ENDPOINTS])
def test_every_body_endpoint_refuses_hostile_bodies_with_a_4xx_in_the_error_shape(callers, method, path):
    for caller, headers in callers.items():
        for name, body in HOSTILE.items():
            what = f"{method} {path} as {caller} with {name}"
            error = assert_refused_in_the_error_shape(
                send(method, path, body, headers), {"request_too_large", "invalid_request"}, what
            )
            assert b"xxxx" not in str(error).encode(), what  # nothing of the input is echoed


@pytest.mark.parametrize("method, path", ENDPOINTS, ids=[f"{m} {p}" for m, p in ENDPOINTS])
def test_every_body_endpoint_holds_each_json_limit_by_itself(callers, settings, method, path):
    # With the size limit out of the way, depth, keys and string length each hold alone.
    settings.API_MAX_BODY_BYTES = 64 * 1024 * 1024
    cases = {
        "json_depth": nested(100_000),
        "json_keys": many_keys(100_000),
        "json_string_length": long_string(1_000_000),
    }
    for caller, headers in callers.items():
        for limit, body in cases.items():
            what = f"{method} {path} as {caller}, {limit}"
            error = assert_refused_in_the_error_shape(
                send(method, path, body, headers), {"invalid_request"}, what
            )
            assert error["details"]["limit"] == limit, what


@pytest.mark.parametrize("method, path", [*ENDPOINTS, ("GET", "/api/v1/licenses/status"), ("GET", "/health")])
def test_a_host_the_server_does_not_serve_is_a_400_in_the_error_shape(callers, method, path):
    for caller, headers in callers.items():
        response = send(method, path, b"{}", headers, HTTP_HOST="evil.example")
        error = assert_refused_in_the_error_shape(
            response, {"invalid_request"}, f"{method} {path} as {caller}"
        )
        assert "evil.example" not in error["message"]


def test_a_body_just_within_the_limits_is_served(admin, settings):
    settings.API_MAX_JSON_DEPTH = 4
    license = LicenseFactory(tenant=admin.tenant, max_seats=2)
    body = {
        "license_key": license.key,
        "hardware_fingerprint": "within-limits",
        "note": [[["beta"]]],  # depth 4 with the body itself (unknown fields are ignored)
    }
    assert admin.client.post("/api/v1/licenses/acquire", body, format="json").status_code == 201
    body["note"] = [[[["too deep"]]]]
    response = admin.client.post("/api/v1/licenses/acquire", body, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["details"] == {
        "limit": "json_depth",
        "max": 4,
        "setting": "API_MAX_JSON_DEPTH",
    }


def test_a_chunked_body_without_a_content_length_is_a_400_that_says_so(client, db):
    # Django reads a body by its Content-Length: a chunked one would be read as no body.
    response = client.generic(
        "POST",
        "/api/v1/auth/login",
        data=b"",
        content_type="application/json",
        HTTP_TRANSFER_ENCODING="chunked",
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_request" and error["details"] == {"header": "Transfer-Encoding"}


def test_a_content_length_that_lies_is_no_way_around_the_size_limit(client, db, settings):
    settings.API_MAX_BODY_BYTES = 1024
    response = client.generic(
        "POST", "/api/v1/auth/login", data=b"{}", content_type="application/json", CONTENT_LENGTH="10485760"
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"
    response = client.generic(
        "POST", "/api/v1/auth/login", data=b"{}", content_type="application/json", CONTENT_LENGTH="ten"
    )
    assert response.status_code == 400


def test_a_nested_pagination_cursor_is_a_400_not_a_500(admin):
    import base64

    license = LicenseFactory(tenant=admin.tenant, max_seats=2)
    cursor = base64.urlsafe_b64encode(nested(5000)).decode().rstrip("=")
    response = admin.client.get("/api/v1/licenses/status", {"license_key": license.key, "cursor": cursor})
    assert response.status_code == 400, response.content[:300]
    assert response.json()["error"]["code"] == "invalid_request"


def test_an_oversized_dashboard_form_is_a_400_not_a_500(client, db, settings):
    # The dashboard takes forms, not JSON: Django's own limits hold there, with its page.
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    response = client.post("/dashboard/login/", {"email": "a@example.com", "password": "x" * 4096})
    assert response.status_code == 400


@pytest.mark.parametrize(
    "query", ["cursor=%00", "limit=1%00", "license_key=CDT%00", "x=%00%00", "%00=1"], ids=str
)
def test_a_nul_in_the_query_string_is_a_400_in_the_error_shape(admin, query):
    response = admin.client.get(f"/api/v1/licenses/status?{query}")
    assert response.status_code == 400, response.content[:300]
    assert response.json()["error"]["code"] == "invalid_request"
    assert "NUL" in response.json()["error"]["message"]


def test_a_nul_in_a_page_query_string_is_a_plain_400(client, db):
    response = client.get("/dashboard/?q=%00")
    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/html")
