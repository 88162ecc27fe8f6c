"""The claim page of a license delivery email in a real browser (Playwright,
Debian's Chromium, the real server of test_admin_browser.py): the link's GET
shows what is waiting and a button, no key; pressing it shows the key once;
reloading that page, or opening the link again, refuses and shows no key.
Screenshots go to test-artifacts/claim/."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.core import mail

from licenses import mailing
from licenses.keys import license_key_digest
from licenses.models import License
from licenses.tests import test_admin_browser
from licenses.tests.factories import LicenseFactory
from licenses.tests.test_admin_browser import audit_rows, in_a_thread
from tenants.scope import tenant_scope
from tenants.tests.factories import TenantFactory

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

console_server = test_admin_browser.console_server
server = test_admin_browser.server

ARTIFACTS = Path(settings.BASE_DIR) / "test-artifacts" / "claim"
CLAIM_LINK = re.compile(r"https?://\S+/claim\?t=([\w.-]+)")
A_KEY = re.compile(r"CDT-[0-9A-Z]{5}-[0-9A-Z-]+")


@pytest.fixture
def emailed(server, eager_tasks):
    """A license emailed to a buyer (seeded before Chromium starts: Django
    refuses queries in Playwright's thread): the server, the license, the
    link's token."""
    mail.outbox = []
    acme = TenantFactory(name="Acme", slug="acme")
    license = LicenseFactory(tenant=acme, name="Acme Studio", max_seats=2)
    mailing.license_delivery_send(license=license, email="buyer@example.test", requested_by="test")
    [message] = mail.outbox
    [token] = set(CLAIM_LINK.findall(message.body))
    return server, license, token


@pytest.fixture
def browser(tmp_path):
    from coditect.testing import chromium_context

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with chromium_context(tmp_path / "chromium-profile") as context:
        yield context


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def key_digest_now(license) -> str:
    def read():
        with tenant_scope(license.tenant_id):
            return License.objects.get(pk=license.pk).key_digest

    return in_a_thread(read)


def test_the_claim_link_shows_a_button_then_the_key_once_and_a_reload_refuses(emailed, browser):
    server, license, token = emailed
    link = f"{server.url}/claim?t={token}"
    page = browser.new_page()

    answer = page.goto(link)
    assert answer.status == 200
    shot(page, "1-claim-link")
    button = page.get_by_test_id("claim-button")
    assert button.is_visible() and button.inner_text() == "Show my license key"
    body = page.inner_text("body")
    assert "Acme" in body and "buyer@example.test" in body and not A_KEY.search(body)
    # Opening the link claims nothing: the key is the one it was.
    assert key_digest_now(license) == license_key_digest(license.key)

    with page.expect_navigation():
        button.click()
    shot(page, "2-key-shown")
    key = page.get_by_test_id("license-key").inner_text().strip()
    assert A_KEY.fullmatch(key) and key != license.key
    assert "shown only this once" in page.inner_text("body")
    assert key_digest_now(license) == license_key_digest(key)
    assert token not in page.url  # the token went in the form's body, not the address

    # A reload sends the form again: refused, no key, the key unchanged.
    answer = page.reload()
    assert answer is not None and answer.status == 404
    shot(page, "3-reload-refused")
    assert page.get_by_test_id("claim-refused").is_visible()
    assert not A_KEY.search(page.inner_text("body"))
    # The link itself opened again: refused too.
    answer = page.goto(link)
    assert answer.status == 404 and page.get_by_test_id("claim-refused").is_visible()
    assert page.get_by_test_id("claim-button").count() == 0
    assert key_digest_now(license) == license_key_digest(key)
    assert audit_rows(license, "license.claimed") == 1
