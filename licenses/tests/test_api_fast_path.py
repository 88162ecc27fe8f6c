"""The heartbeat and release fast path (licenses/fast.py behind
core.middleware.LeanPathMiddleware) answers every request as the DRF views
behind the whole middleware chain answer it: the same status, the same body
(but for the times a heartbeat moves), the same headers that matter to a
client. Each case runs twice on fresh leases: on the server as configured,
and on a reference URLconf that routes the two paths to the DRF views with
LeanPathMiddleware taken out."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import override_settings
from django.urls import include, path
from prometheus_client import REGISTRY

from coditect.personas import access_token, api_client
from licenses import apis
from licenses.tests.conftest import acquire, live_sessions

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]

# The reference: the two paths on their DRF views, the rest as configured.
urlpatterns = [
    path("api/v1/licenses/heartbeat", apis.LicenseHeartbeatApi.as_view(), name="licenses-heartbeat"),
    path("api/v1/licenses/release", apis.LicenseReleaseApi.as_view(), name="licenses-release"),
    path("", include(settings.ROOT_URLCONF)),
]
handler400, handler404, handler500 = (
    "core.errors.handler400",
    "core.errors.handler404",
    "core.errors.handler500",
)
FULL_CHAIN = [name for name in settings.MIDDLEWARE if name != "core.middleware.LeanPathMiddleware"]

HEARTBEAT, RELEASE = "/api/v1/licenses/heartbeat", "/api/v1/licenses/release"
# (name, method, path, body, content type, the credentials: "seat", "released", "user", a token, None)
CASES = [
    ("heartbeat", "post", HEARTBEAT, b"", None, "seat"),
    (
        "heartbeat, the SDK's idle report",
        "post",
        HEARTBEAT,
        b'{"idle_seconds": 5}',
        "application/json",
        "seat",
    ),
    (
        "heartbeat, idle past the timeout",
        "post",
        HEARTBEAT,
        b'{"idle_seconds": 100000}',
        "application/json",
        "seat",
    ),
    ("heartbeat, idle as a string", "post", HEARTBEAT, b'{"idle_seconds": "5"}', "application/json", "seat"),
    ("heartbeat, idle negative", "post", HEARTBEAT, b'{"idle_seconds": -1}', "application/json", "seat"),
    (
        "heartbeat, another key too",
        "post",
        HEARTBEAT,
        b'{"idle_seconds": 5, "x": 1}',
        "application/json",
        "seat",
    ),
    (
        "heartbeat, JSON with a charset",
        "post",
        HEARTBEAT,
        b'{"idle_seconds": 5}',
        "application/json; charset=utf-8",
        "seat",
    ),
    ("heartbeat, malformed JSON", "post", HEARTBEAT, b"{not json", "application/json", "seat"),
    ("heartbeat, a text body", "post", HEARTBEAT, b"hello", "text/plain", "seat"),
    ("heartbeat, a JSON list", "post", HEARTBEAT, b"[5]", "application/json", "seat"),
    ("heartbeat, released session", "post", HEARTBEAT, b"", None, "released"),
    ("heartbeat, a user token", "post", HEARTBEAT, b"", None, "user"),
    ("heartbeat, a bad token", "post", HEARTBEAT, b"", None, "garbage"),
    ("heartbeat, a token of three parts", "post", HEARTBEAT, b"", None, "a.b.c"),
    ("heartbeat, no credentials", "post", HEARTBEAT, b"", None, None),
    ("heartbeat, GET", "get", HEARTBEAT, b"", None, "seat"),
    ("heartbeat, OPTIONS", "options", HEARTBEAT, b"", None, "seat"),
    ("release", "delete", RELEASE, b"", None, "seat"),
    ("release, released session", "delete", RELEASE, b"", None, "released"),
    ("release, a bad token", "delete", RELEASE, b"", None, "garbage"),
    ("release, no credentials", "delete", RELEASE, b"", None, None),
    ("release, POST", "post", RELEASE, b"", None, "seat"),
    # What the client says it takes: the SDK's, and those DRF negotiates otherwise.
    ("heartbeat, Accept: JSON", "post", HEARTBEAT, b"", None, "seat", {"HTTP_ACCEPT": "application/json"}),
    ("heartbeat, Accept: anything", "post", HEARTBEAT, b"", None, "seat", {"HTTP_ACCEPT": "*/*"}),
    ("heartbeat, Accept: text/json", "post", HEARTBEAT, b"", None, "seat", {"HTTP_ACCEPT": "text/json"}),
    (
        "heartbeat, Accept: problem+json",
        "post",
        HEARTBEAT,
        b"",
        None,
        "seat",
        {"HTTP_ACCEPT": "application/problem+json"},
    ),
    (
        "heartbeat, Accept: JSON indented",
        "post",
        HEARTBEAT,
        b"",
        None,
        "seat",
        {"HTTP_ACCEPT": "application/json; indent=4"},
    ),
    ("release, Accept: text/html", "delete", RELEASE, b"", None, "seat", {"HTTP_ACCEPT": "text/html"}),
    # A host not in ALLOWED_HOSTS, with DEBUG off.
    ("heartbeat, a foreign Host", "post", HEARTBEAT, b"", None, "seat", {"HTTP_HOST": "evil.example.com"}),
    ("release, a foreign Host", "delete", RELEASE, b"", None, "seat", {"HTTP_HOST": "evil.example.com"}),
]
# What a client reads of an answer, beside its status and body.
HEADERS = ("Content-Type", "Allow", "WWW-Authenticate", "Retry-After")


def _answer(member, license, case, *, lean: bool, index: int):
    _, method, url, body, content_type, credentials, *headers = case
    headers = headers[0] if headers else {}
    fingerprint = f"fast-{index:03d}-{'lean' if lean else 'full'}"
    token = None
    if credentials in ("seat", "released"):
        token = acquire(member, license, fingerprint).json()["token"]
        if credentials == "released":
            api_client(token=token).delete(RELEASE)
    elif credentials == "user":
        token = access_token(member.user)
    elif credentials is not None:
        token = credentials
    overrides = (
        {"DEBUG": False} if lean else {"ROOT_URLCONF": __name__, "MIDDLEWARE": FULL_CHAIN, "DEBUG": False}
    )
    with override_settings(**overrides):
        client = api_client(token=token)
        kwargs = {"content_type": content_type} if content_type else {}
        response = (
            getattr(client, method)(url, body, **kwargs, **headers)
            if body
            else getattr(client, method)(url, **headers)
        )
    try:
        payload = response.json()
    except ValueError:
        payload = response.content
    if isinstance(payload, dict):
        # The one thing two heartbeats a moment apart may not share.
        payload.pop("expires_at", None)
        payload.pop("session_id", None)
    return response.status_code, payload, {name: response.get(name) for name in HEADERS}


@pytest.mark.parametrize("index", range(len(CASES)), ids=[case[0] for case in CASES])
def test_the_fast_path_answers_as_the_drf_view_behind_every_middleware(ledger, member, acme, index):
    from licenses.tests.factories import LicenseFactory

    license = LicenseFactory(tenant=acme, max_seats=10, idle_timeout=3600)
    case = CASES[index]
    lean = _answer(member, license, case, lean=True, index=index)
    full = _answer(member, license, case, lean=False, index=index)
    assert lean == full
    assert lean[0] < 500


def test_a_heartbeat_skips_the_page_middleware_and_keeps_its_seat(ledger, member, license):
    seat = api_client(token=acquire(member, license).json()["token"])
    response = seat.post(HEARTBEAT)
    assert response.status_code == 200
    # No session was opened or read, no framing header set: those middlewares did not run.
    assert "Cookie" not in response.get("Vary", "") and "X-Frame-Options" not in response
    # What runs for every request still did.
    assert response["X-Request-ID"] and response["X-Content-Type-Options"] == "nosniff"
    # A keep-alive client reads the body by its length (CommonMiddleware still runs).
    assert response["Content-Length"] == str(len(response.content))
    assert len(live_sessions(ledger, license)) == 1
    # A page-bound API call still has them.
    status = member.client.get("/api/v1/licenses/status", HTTP_X_LICENSE_KEY=license.key)
    assert status["X-Frame-Options"] == "DENY"


def test_the_request_metrics_count_the_fast_path_as_any_other_view(ledger, member, license):
    def count(view: str, method: str) -> float:
        labels = {"view": view, "transport": "http", "method": method}
        return (
            REGISTRY.get_sample_value("django_http_requests_total_by_view_transport_method_total", labels)
            or 0
        )

    def latencies(view: str, method: str) -> float:
        labels = {"view": view, "method": method}
        return (
            REGISTRY.get_sample_value("django_http_requests_latency_seconds_by_view_method_count", labels)
            or 0
        )

    seat = api_client(token=acquire(member, license).json()["token"])
    before = count("v1:licenses-heartbeat", "POST"), latencies("v1:licenses-heartbeat", "POST")
    released = count("v1:licenses-release", "DELETE")
    assert seat.post(HEARTBEAT).status_code == 200
    assert seat.delete(RELEASE).status_code == 200
    assert (count("v1:licenses-heartbeat", "POST"), latencies("v1:licenses-heartbeat", "POST")) == (
        before[0] + 1,
        before[1] + 1,
    )
    assert count("v1:licenses-release", "DELETE") == released + 1


def test_the_schema_still_documents_both_endpoints_from_their_drf_views(client):
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    heartbeat = schema["paths"]["/api/v1/licenses/heartbeat"]["post"]
    release = schema["paths"]["/api/v1/licenses/release"]["delete"]
    assert heartbeat["operationId"] == "licenses_heartbeat" and release["operationId"] == "licenses_release"
    assert {"200", "401", "403", "404", "503"} <= set(heartbeat["responses"])
    assert {"200", "401", "404", "503"} <= set(release["responses"])
