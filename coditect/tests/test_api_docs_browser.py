"""/api/docs/ and /api/redoc/ work with no network: Swagger UI and ReDoc in
Debian's Chromium (driven by Playwright, no downloaded browser) against the
real server, with every request that is not to the server refused, twice
over: the page's requests are routed (anything to another origin is aborted
and recorded) and the browser resolves no host name but the server's
address. Each page must list the API's operations from its own files alone;
ReDoc's search (a web worker its page's policy lets start) must find one."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.conf import settings

from coditect.testing import chromium_context

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

ARTIFACTS = Path(settings.BASE_DIR) / "test-artifacts" / "api-docs"
# No name resolves: a CDN's host could not be reached even if routed.
OFFLINE = ["--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]


@pytest.fixture
def offline_page(tmp_path, live_server_e2e):
    server = urlsplit(live_server_e2e.url)
    refused: list[str] = []
    errors: list[str] = []
    blocked: list[str] = []  # what the page's content security policy refused

    def only_the_server(route, request):
        target = urlsplit(request.url)
        if (target.scheme, target.netloc) == (server.scheme, server.netloc):
            route.continue_()
        else:
            refused.append(request.url)
            route.abort("internetdisconnected")

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with chromium_context(tmp_path / "chromium-profile", args=OFFLINE, service_workers="block") as context:
        context.route("**/*", only_the_server)
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on(
            "console",
            lambda message: "Content Security Policy" in message.text and blocked.append(message.text),
        )
        yield live_server_e2e.url, page, refused, errors, blocked


def _schema(client) -> tuple[dict, int]:
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    methods = {"get", "post", "put", "patch", "delete"}
    operations = sum(1 for item in schema["paths"].values() for method in item if method in methods)
    assert operations > 10
    return schema, operations


def test_swagger_ui_lists_the_operations_with_the_network_cut_off(offline_page, client):
    url, page, refused, errors, _ = offline_page
    _, operations = _schema(client)

    page.goto(f"{url}/api/docs/")
    acquire = page.locator('.opblock-summary-path[data-path="/api/v1/licenses/acquire"]')
    acquire.wait_for(timeout=30_000)
    assert page.locator(".opblock").count() == operations
    assert page.locator(".info .title").inner_text().startswith(settings.SPECTACULAR_SETTINGS["TITLE"])

    # The acquire operation opens, with its answers, from the same schema.
    acquire.click()
    responses = page.locator(".opblock.is-open .responses-table").first
    responses.wait_for(timeout=10_000)
    assert "409" in responses.inner_text()
    page.screenshot(path=str(ARTIFACTS / "swagger-offline.png"), full_page=True)

    assert refused == [], f"the docs page reached for other hosts: {refused}"
    assert errors == []


# ReDoc's sidebar shows "API docs by Redocly" with a logo from Redocly's CDN,
# written into its bundle: the page's img-src refuses it (no request leaves).
REDOCLY_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


def test_redoc_lists_the_operations_and_searches_them_with_the_network_cut_off(offline_page, client):
    url, page, refused, errors, blocked = offline_page
    schema, operations = _schema(client)
    acquire_summary = schema["paths"]["/api/v1/licenses/acquire"]["post"]["summary"]

    answer = page.goto(f"{url}/api/redoc/")
    policy = answer.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "worker-src 'self' blob:" in policy
    acquire = page.locator('[id="tag/licenses/operation/licenses_acquire"]')
    acquire.wait_for(timeout=30_000)
    # Each operation once under its tag (ReDoc also keeps a bare `operation/…` anchor).
    assert page.locator('[id^="tag/"][id*="/operation/"]').count() == operations
    assert page.locator("h1").first.inner_text().startswith(settings.SPECTACULAR_SETTINGS["TITLE"])
    assert acquire_summary in acquire.inner_text()
    assert "409" in acquire.inner_text()

    # Search runs in the worker: refused, it finds nothing at all.
    page.get_by_placeholder("Search...").fill("acquire")
    results = page.locator('[data-role="search:results"]')
    results.wait_for(timeout=10_000)
    assert acquire_summary in results.inner_text()
    page.screenshot(path=str(ARTIFACTS / "redoc-offline.png"))

    assert refused == [], f"the docs page reached for other hosts: {refused}"
    assert errors == []
    assert all(REDOCLY_LOGO in message for message in blocked), blocked
