"""The operator console in a real browser: Playwright driving Debian's
Chromium (headless, as the dashboard's browser test) against the real server
(gunicorn, PostgreSQL as the app and operator roles, the Redis seat ledger),
started here with gunicorn's access log on, so every request has a line in
its server.log. Screenshots go to test-artifacts/admin/.

- A regenerated key is shown once: two reloads show "already shown", and
  there is one `license.key_regenerated` row.
- A license added, then its key page reloaded: one license.
- Double clicks on "Regenerate key…" and on its "Yes": one
  `license.key_regenerated` row, the key shown once; its form sent twice
  at once regenerates once too.
- The expiry controls ask first; "Recent actions" shows a console action.
- A key pasted in "Find by license key" opens the license by id; the key is
  in no address the browser asks for, no Referer it sends, no page it gets
  back and no line of the server's log.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connections, transaction

from accounts.models import User
from accounts.tests.factories import TEST_PASSWORD
from audit.models import AuditLog
from coditect.testing import LiveServer, chromium_context
from licenses.models import License
from licenses.tests.factories import LicenseFactory
from tenants.scope import operator_scope, tenant_scope
from tenants.tests.factories import TenantFactory

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

ARTIFACTS = Path(settings.BASE_DIR) / "test-artifacts" / "admin"
OPERATOR_EMAIL = "support@coditect.test"


@pytest.fixture(scope="module")
def console_server(django_db_setup, tmp_path_factory):
    """A server of this module's own, with gunicorn's access log (in the
    format production would use if it turned it on) written to server.log."""
    server = LiveServer(tmp_path_factory.mktemp("console-server"))
    server.env["GUNICORN_ACCESSLOG"] = "-"
    try:
        server.start()
        yield server
    finally:
        server.stop()
        server.forget_redis_keys()


@pytest.fixture
def server(console_server, committed_db):
    if not console_server.running:
        console_server.start()
    return console_server


@pytest.fixture
def scene(server):
    acme = TenantFactory(name="Acme", slug="acme")
    license = LicenseFactory(tenant=acme, name="Acme Pro", max_seats=3)
    with operator_scope(), transaction.atomic(using=settings.OPERATOR_DATABASE):
        # The real password hasher: the server checks it as it would in production.
        User.objects.create_user(OPERATOR_EMAIL, TEST_PASSWORD, is_staff=True, is_superuser=True)
    return server, acme, license


@pytest.fixture
def browser(tmp_path):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with chromium_context(tmp_path / "chromium-profile") as context:
        yield context


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def sign_in(page, url: str) -> None:
    page.goto(f"{url}/admin/login/")
    page.fill("input[name=username]", OPERATOR_EMAIL)
    page.fill("input[name=password]", TEST_PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{url}/admin/")


def server_log_lines(server: LiveServer, start: int) -> list[str]:
    with open(server.log_path, "rb") as log:
        log.seek(start)
        return log.read().decode(errors="replace").splitlines()


def in_a_thread(function):
    """Run a database read outside Playwright's event loop (Django refuses
    queries in a thread that runs one), on a connection closed afterwards."""

    def run():
        try:
            return function()
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run).result()


def audit_rows(license, action: str) -> int:
    def count():
        with tenant_scope(license.tenant_id):
            return AuditLog.objects.filter(action=action, target_id=str(license.id)).count()

    return in_a_thread(count)


def licenses_named(tenant, name: str) -> list[License]:
    def find():
        with tenant_scope(tenant.id):
            return list(License.objects.filter(name=name))

    return in_a_thread(find)


def test_a_regenerated_key_is_shown_once_and_two_reloads_regenerate_nothing(scene, browser):
    server, _, license = scene
    url = server.url
    page = browser.new_page()
    browser.grant_permissions(["clipboard-read", "clipboard-write"], origin=url)
    sign_in(page, url)

    page.goto(f"{url}/admin/licenses/license/{license.pk}/change/")
    page.click("text=Regenerate key…")
    page.click("input[value='Yes, regenerate the key']")
    page.wait_for_selector("#license-key")
    key = page.locator("#license-key").inner_text().strip()
    assert key.startswith("CDT-") and key != license.key
    assert key not in page.url
    assert page.locator("h1", has_text="New license key").count() == 1
    # Big enough to read out on a call, and on one line at 1280 px.
    shown = page.locator("#license-key")
    assert float(shown.evaluate("key => parseFloat(getComputedStyle(key).fontSize)")) >= 24
    assert shown.bounding_box()["height"] < 60
    page.click("#copy-license-key")
    page.wait_for_selector("#copy-license-key:has-text('Copied')")
    assert page.evaluate("navigator.clipboard.readText()") == key
    shot(page, "1-key-shown-once")

    for _reload in range(2):
        response = page.reload()
        assert response.status == 410
        assert page.locator("#license-key").count() == 0
        assert "already shown" in page.content() and key not in page.content()
    shot(page, "2-key-already-shown")

    assert audit_rows(license, "license.key_regenerated") == 1
    (stored,) = licenses_named(license.tenant, "Acme Pro")
    assert key.startswith(stored.key_prefix)


def test_a_license_added_then_reloaded_is_one_license(scene, browser):
    server, acme, _ = scene
    url = server.url
    page = browser.new_page()
    sign_in(page, url)

    page.goto(f"{url}/admin/licenses/license/add/")
    page.select_option("select[name=tenant]", str(acme.id))
    page.fill("input[name=name]", "Acme CAD")
    page.fill("input[name=max_seats]", "4")
    page.click("input[name=_save]")
    page.wait_for_selector("#license-key")
    assert page.locator("h1", has_text="License created").count() == 1
    key = page.locator("#license-key").inner_text().strip()
    shot(page, "3-license-created")

    response = page.reload()

    assert response.status == 410 and key not in page.content()
    created = licenses_named(acme, "Acme CAD")
    assert len(created) == 1
    assert audit_rows(created[0], "license.created") == 1


def test_a_pasted_key_opens_its_license_and_is_in_no_address_referer_page_or_log_line(scene, browser):
    server, _, license = scene
    url = server.url
    page = browser.new_page()
    sent: list[tuple[str, str]] = []
    page.on("request", lambda request: sent.append((request.url, request.headers.get("referer", ""))))
    sign_in(page, url)
    page.goto(f"{url}/admin/licenses/license/")
    log_start = server.log_path.stat().st_size

    page.fill("#find-by-key-input", license.key)
    page.click("#find-by-key input[type=submit]")
    page.wait_for_url(f"{url}/admin/licenses/license/{license.pk}/change/")

    assert "Found by its key" in page.content()
    assert license.key not in page.content()
    shot(page, "4-found-by-key")
    assert any("/find-by-key/" in address for address, _ in sent)
    for address, referer in sent:
        assert license.key not in address and license.key not in referer
    history = page.evaluate("[location.href, document.referrer]")
    assert all(license.key not in entry for entry in history)
    lines = server_log_lines(server, log_start)
    assert any("POST /admin/licenses/license/find-by-key/" in line for line in lines), lines
    assert [line for line in lines if license.key in line] == []


def test_the_expiry_controls_in_the_browser(scene, browser):
    server, _, license = scene
    url = server.url
    page = browser.new_page()
    sign_in(page, url)
    page.goto(f"{url}/admin/licenses/license/{license.pk}/change/")
    expires = page.locator("#expires-at")
    assert expires.inner_text() == "never (perpetual)"

    page.fill("#expiry-controls input[name=days]", "30")
    page.click("#expiry-controls input[value='Extend…']")
    page.wait_for_selector("text=stays perpetual")
    assert expires.inner_text() == "never (perpetual)"
    shot(page, "5-extend-perpetual")

    page.fill("#expiry-controls input[name=expires_at]", "2031-05-04 12:00")
    page.click("#expiry-controls input[value='Set expiry…']")
    page.wait_for_selector("text=Expiry moves from never (perpetual) to 2031-05-04 12:00 UTC.")
    shot(page, "6-set-expiry-asks")
    page.click("input[value='Yes, set the expiry']")
    page.wait_for_selector("text=now expires 2031-05-04 12:00 UTC")
    assert expires.inner_text() == "2031-05-04 12:00 UTC"

    page.fill("#expiry-controls input[name=days]", "10")
    page.click("#expiry-controls input[value='Extend…']")
    page.wait_for_selector("text=Expiry moves from 2031-05-04 12:00 UTC to 2031-05-14 12:00 UTC.")
    page.click("input[value='Yes, extend']")
    page.wait_for_selector("text=Extended by 10 days")
    assert expires.inner_text() == "2031-05-14 12:00 UTC"

    page.click("#expiry-controls input[value='Make perpetual…']")
    page.click("text=No, go back")  # cancel: nothing changes
    assert expires.inner_text() == "2031-05-14 12:00 UTC"
    page.click("#expiry-controls input[value='Make perpetual…']")
    page.click("input[value='Yes, make it perpetual']")
    page.wait_for_selector("text=now perpetual")
    assert expires.inner_text() == "never (perpetual)"
    shot(page, "7-made-perpetual")
    assert audit_rows(license, "license.extended") == 3


def test_double_clicks_on_regenerate_and_on_its_confirm_button_regenerate_once(scene, browser):
    server, _, license = scene
    url = server.url
    page = browser.new_page()
    sign_in(page, url)
    page.goto(f"{url}/admin/licenses/license/{license.pk}/change/")

    page.dblclick("text=Regenerate key…")
    page.wait_for_selector("input[value='Yes, regenerate the key']")
    page.dblclick("input[value='Yes, regenerate the key']")
    page.wait_for_selector("#license-key")
    page.wait_for_load_state("networkidle")
    shot(page, "8-double-click-regenerate")

    key = page.locator("#license-key").inner_text().strip()
    assert key.startswith("CDT-")
    assert audit_rows(license, "license.key_regenerated") == 1
    (stored,) = licenses_named(license.tenant, "Acme Pro")
    assert key.startswith(stored.key_prefix)  # the key shown is the one that works
    assert page.reload().status == 410 and key not in page.content()

    # The button is disabled once pressed, but the server is what guarantees
    # it: the confirmation's form sent twice at once from the browser (what
    # a double click does without script) regenerates once, and both land
    # on the same page of the key, which shows it once.
    page.goto(f"{url}/admin/licenses/license/{license.pk}/regenerate-key/")
    answers = page.evaluate(
        """async () => {
            const form = document.getElementById("regenerate-form");
            const send = () => fetch(form.action, {method: "POST", body: new FormData(form)});
            const answers = await Promise.all([send(), send()]);
            return answers.map((answer) => [answer.url, answer.status]);
        }"""
    )
    assert answers[0][0] == answers[1][0] and "/key/" in answers[0][0]
    assert sorted(status for _, status in answers) == [200, 410]
    assert audit_rows(license, "license.key_regenerated") == 2


def test_recent_actions_shows_a_console_action(scene, browser):
    server, _, license = scene
    url = server.url
    page = browser.new_page()
    sign_in(page, url)
    page.goto(f"{url}/admin/licenses/license/{license.pk}/change/")
    page.fill("#license-actions input[name=reason]", "browser check")
    page.click("input[value='Suspend license…']")
    page.click("input[value='Yes, suspend the license']")
    page.wait_for_selector("text=License suspended")

    page.goto(f"{url}/admin/")
    recent = page.locator("#recent-actions-module")
    assert "Acme Pro" in recent.inner_text()
    # What was done and when, not only on what.
    assert "Suspended (reason: browser check)." in recent.inner_text()
    assert re.search(r"20\d\d-\d\d-\d\d \d\d:\d\d UTC", recent.inner_text())
    assert page.title() == "CODITECT console"
    assert "Groups" not in page.locator("#content-main").inner_text()
    shot(page, "13-index")
