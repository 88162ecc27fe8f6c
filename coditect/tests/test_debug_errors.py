"""Under DEBUG, as `make run` serves, the API and the probes still answer in
the error shape: an unknown route is 404 not_found, a bad Host 400
invalid_request, never Django's HTML debug page (which would also list the
URL patterns). Pages outside the API keep Django's behaviour."""

from __future__ import annotations

import logging

import pytest

pytestmark = pytest.mark.embedded

UNKNOWN_API_ROUTES = [
    "/api/nope",
    "/api/v1/nope/",
    "/api/v1/licenses/nope",
    "/api/v1/licenses/acquire/extra",
    "/api/v1/auth/nope",
    "/api/docs/nope",
    "/.well-known/nope",
]


@pytest.fixture
def debug(settings):
    settings.DEBUG = True
    return settings


def assert_error_shape(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code
    assert b"<html" not in response.content.lower() and b"urlpatterns" not in response.content.lower()
    return body["error"]


@pytest.mark.parametrize("path", UNKNOWN_API_ROUTES)
@pytest.mark.parametrize("method", ["get", "post", "delete"])
def test_an_unknown_api_route_under_debug_is_404_in_the_error_shape(client, db, debug, path, method):
    response = getattr(client, method)(path, HTTP_ACCEPT="text/html")
    assert_error_shape(response, 404, "not_found")


def test_an_unknown_page_outside_the_api_keeps_djangos_debug_page(client, db, debug):
    response = client.get("/no-such-page/", HTTP_ACCEPT="text/html")
    assert response.status_code == 404 and response["Content-Type"].startswith("text/html")


@pytest.mark.parametrize(
    "path", ["/api/v1/licenses/", "/api/v1/licenses/acquire", "/health", "/.well-known/jwks.json"]
)
def test_a_bad_host_under_debug_is_400_in_the_error_shape_and_logged(client, db, debug, path, caplog):
    with caplog.at_level(logging.ERROR, logger="django.security.DisallowedHost"):
        response = client.get(path, HTTP_HOST="evil.example", HTTP_ACCEPT="text/html")
    error = assert_error_shape(response, 400, "invalid_request")
    assert "evil.example" not in error["message"]
    assert any(record.name == "django.security.DisallowedHost" for record in caplog.records)


def test_a_served_host_under_debug_passes(client, db, debug):
    assert client.get("/health", HTTP_HOST="localhost").status_code == 200


def test_a_bad_host_with_debug_off_is_still_the_error_shape(client, db, settings):
    settings.DEBUG = False
    assert_error_shape(client.get("/api/v1/licenses/", HTTP_HOST="evil.example"), 400, "invalid_request")
