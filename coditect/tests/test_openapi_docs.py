"""The API docs: every operation of /api/schema/ sits under its area's tag and
says what it does in words of its own; acquire lists what each refusal means."""

import re

import pytest
from django.conf import settings

from core.errors import ERROR_STATUS

pytestmark = pytest.mark.embedded

AREAS = {"auth", "invites", "licenses", "analytics", "keys", "provisioning", "webhooks", "integrations"}


@pytest.fixture(scope="module")
def served_schema(django_db_blocker):
    from django.test import Client

    with django_db_blocker.unblock():
        response = Client().get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return response.json()


def operations(schema):
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            yield path, method, operation


def test_the_declared_tags_are_the_areas():
    assert {tag["name"] for tag in settings.SPECTACULAR_SETTINGS["TAGS"]} == AREAS
    assert all(tag["description"] for tag in settings.SPECTACULAR_SETTINGS["TAGS"])


def test_every_operation_has_an_area_tag_a_summary_and_a_description(served_schema):
    assert {tag["name"] for tag in served_schema["tags"]} == AREAS
    seen = 0
    for path, method, operation in operations(served_schema):
        seen += 1
        where = f"{method.upper()} {path}"
        assert operation.get("tags"), where
        assert set(operation["tags"]) <= AREAS and "api" not in operation["tags"], (where, operation["tags"])
        assert operation.get("summary", "").strip(), f"{where} has no summary"
        assert operation.get("description", "").strip(), f"{where} has no description"
    assert seen >= 20


@pytest.mark.parametrize(
    "prefix, tag",
    [
        ("/api/v1/auth/", "auth"),
        ("/api/v1/invites", "invites"),
        ("/api/v1/licenses/", "licenses"),
        ("/api/v1/analytics/", "analytics"),
        ("/api/v1/provisioning/", "provisioning"),
        ("/api/v1/webhooks/", "webhooks"),
        ("/api/v1/integrations/", "integrations"),
        ("/.well-known/", "keys"),
        ("/api/v1/.well-known/", "keys"),
    ],
)
def test_each_area_holds_its_paths(served_schema, prefix, tag):
    matched = [op for path, _, op in operations(served_schema) if path.startswith(prefix)]
    assert matched
    assert all(op["tags"] == [tag] for op in matched)


def test_no_description_is_shared_by_two_operations(served_schema):
    """A docstring of a shared base class once described several operations.
    The key set served under /api/v1 too is one operation in two places."""
    by_description = {}
    for path, method, operation in operations(served_schema):
        same = (method, path.removeprefix("/api/v1"))
        by_description.setdefault(operation["description"], set()).add(same)
    shared = {text[:60]: where for text, where in by_description.items() if len(where) > 1}
    assert not shared


def test_no_docstring_of_a_view_class_is_taken_for_a_description(served_schema):
    from accounts.views import InviteDetailApi, InvitesApi, PasswordChangeApi
    from licenses.apis import LicenseTokenAPIView
    from tenants.views import PublicAPIView

    docstrings = [
        " ".join(cls.__doc__.split())
        for cls in (PublicAPIView, LicenseTokenAPIView, InvitesApi, InviteDetailApi, PasswordChangeApi)
        if cls.__doc__
    ]
    for path, method, operation in operations(served_schema):
        assert " ".join(operation["description"].split()) not in docstrings, f"{method.upper()} {path}"


def test_acquire_lists_each_of_its_error_codes_and_what_to_do(served_schema):
    acquire = served_schema["paths"]["/api/v1/licenses/acquire"]["post"]
    codes = set()
    for http_status, response in acquire["responses"].items():
        if http_status.startswith(("4", "5")):
            codes.update(re.findall(r"[a-z_]+", response["description"].removeprefix("Error codes: ")))
    assert {"license_not_found", "no_seats_available", "machine_blocked", "service_unavailable"} <= codes
    rows = {
        match.group(2): (match.group(1), match.group(3).strip())
        for match in re.finditer(r"^\| (\d{3}) \| `([a-z_]+)` \| (.+) \|$", acquire["description"], re.M)
    }
    assert set(rows) == codes
    for code, (http_status, advice) in rows.items():
        assert http_status in acquire["responses"], code
        assert ERROR_STATUS[code] == int(http_status), code
        assert advice, code


# --- the ReDoc page (/api/redoc/; tests in a browser: test_api_docs_browser.py) -----------


@pytest.mark.django_db
def test_redoc_is_served_from_this_server_alone_to_anyone(client):
    page = client.get("/api/redoc/", headers={"Authorization": "Bearer eyJhbGciOiJub25lIn0.e30."})
    assert page.status_code == 200
    assert page["Content-Type"].startswith("text/html")
    text = page.content.decode()
    assets = re.findall(r'(?:src|href|spec-url)="([^"]+)"', text)
    assert any(asset.endswith("redoc/bundles/redoc.standalone.js") for asset in assets)
    assert "/api/schema/" in assets
    assert [asset for asset in assets if "//" in asset] == []  # no Google Fonts, no CDN
    assert "<script>" not in text  # no inline script: the site's script-src 'self' holds


@pytest.mark.django_db
def test_redocs_policy_is_the_sites_with_its_search_worker(client, settings):
    settings.CONTENT_SECURITY_POLICY = "default-src 'self'; script-src 'self'"
    settings.CONTENT_SECURITY_POLICY_REPORT_ONLY = False
    policy = client.get("/api/redoc/")["Content-Security-Policy"]
    assert policy == "default-src 'self'; script-src 'self'; worker-src 'self' blob:"
    # Every other page keeps the site's policy unwidened.
    login = client.get(f"/{settings.ADMIN_URL}login/")
    assert login["Content-Security-Policy"] == "default-src 'self'; script-src 'self'"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "overrides, header, expected",
    [
        ({"CONTENT_SECURITY_POLICY_REPORT_ONLY": True}, "Content-Security-Policy-Report-Only", "added"),
        (
            {"CONTENT_SECURITY_POLICY": "default-src 'self'; worker-src 'none'"},
            "Content-Security-Policy",
            "kept",
        ),
        ({"CONTENT_SECURITY_POLICY": ""}, "Content-Security-Policy", None),
        (
            {"CONTENT_SECURITY_POLICY_EXEMPT": [r"^api/docs/", r"^api/redoc/"]},
            "Content-Security-Policy",
            None,
        ),
    ],
)
def test_redocs_policy_follows_the_sites_settings(client, settings, overrides, header, expected):
    settings.CONTENT_SECURITY_POLICY = "default-src 'self'"
    settings.CONTENT_SECURITY_POLICY_REPORT_ONLY = False
    settings.CONTENT_SECURITY_POLICY_EXEMPT = [r"^api/docs/"]
    for name, value in overrides.items():
        setattr(settings, name, value)
    response = client.get("/api/redoc/")
    assert response.status_code == 200
    if expected is None:
        assert header not in response
    elif expected == "kept":
        assert response[header] == settings.CONTENT_SECURITY_POLICY
    else:
        assert response[header] == "default-src 'self'; worker-src 'self' blob:"
        assert "Content-Security-Policy" not in response
