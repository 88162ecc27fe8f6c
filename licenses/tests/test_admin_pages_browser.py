"""The support pages in a real browser (Playwright, Debian's Chromium, the
real server of test_admin_browser.py): the license list, a license page, the
tenant page and the audit list, each screenshot to test-artifacts/admin/ and
checked to show the fields a support call asks for, for seeded data."""

from __future__ import annotations

import re

import pytest
from django.conf import settings as django_settings
from django.db import transaction

from accounts.models import User
from accounts.tests.factories import TEST_PASSWORD
from licenses.tests import test_admin_browser
from licenses.tests.test_admin_browser import OPERATOR_EMAIL, shot, sign_in
from licenses.tests.test_admin_pages import support_scene
from tenants.scope import operator_scope

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

console_server = test_admin_browser.console_server
server = test_admin_browser.server
browser = test_admin_browser.browser

UTC_DATE = re.compile(r"20\d\d-\d\d-\d\d \d\d:\d\d(:\d\d)? UTC")


@pytest.fixture
def seeded(server, settings):
    # Seats taken here are the server's: its ledger, under its own key prefix.
    settings.SEAT_LEDGER = "redis"
    settings.REDIS_KEY_PREFIX = server.redis_key_prefix
    with operator_scope(), transaction.atomic(using=django_settings.OPERATOR_DATABASE):
        operator = User.objects.create_user(OPERATOR_EMAIL, TEST_PASSWORD, is_staff=True, is_superuser=True)
    return server, support_scene(operator)


@pytest.fixture
def page(seeded, browser):
    # Seeded before Chromium starts: Django refuses queries in Playwright's thread.
    server, _ = seeded
    page = browser.new_page()
    sign_in(page, server.url)
    return page


def row_text(page, selector: str, name: str) -> str:
    return page.locator(selector, has_text=name).first.inner_text()


def test_the_support_pages_show_what_a_support_call_asks(seeded, page):
    server, scene = seeded
    url = server.url

    page.goto(f"{url}/admin/licenses/license/")
    shot(page, "7-license-list")
    headers = page.locator("#result_list thead").inner_text().lower()
    for column in ("Seats in use", "State", "Expires", "Last use"):
        assert column.lower() in headers
    pro = row_text(page, "#result_list tbody tr", "Acme Pro")
    assert "2 / 2" in pro and "active" in pro and UTC_DATE.search(pro)
    assert "expiring soon" in row_text(page, "#result_list tbody tr", "Acme Soon")
    assert "suspended" in row_text(page, "#result_list tbody tr", "Acme Held")
    assert "expired" in row_text(page, "#result_list tbody tr", "Acme Gone")
    assert page.locator("#result_list img[src*='icon-no']").count() == 0
    assert "by tenant" in page.locator("#changelist-filter").inner_text().lower()

    page.goto(f"{url}/admin/licenses/license/{scene['pro'].pk}/change/")
    shot(page, "8-license-page")
    leases = page.locator("#live-leases").inner_text()
    for expected in ("alice@acme.test", "bob@acme.test", "alice-laptop", "v4.2.1", "198.51.100.7"):
        assert expected in leases
    assert "last heartbeat" in leases.lower() and len(UTC_DATE.findall(leases)) >= 6
    assert "fp-alice-laptop-0001" in page.locator("#license-actions").inner_text()
    assert page.locator("#usage-acquired").inner_text() == "2"
    assert page.locator("#usage-denied").inner_text() == "1"
    page.click("#license-audit-link")
    page.wait_for_url(re.compile(rf"target_id={scene['pro'].pk}"))
    listed = page.locator("#result_list").inner_text()
    assert "lease.acquired" in listed and "license.suspended" not in listed

    page.goto(f"{url}/admin/licenses/license/{scene['held'].pk}/change/")
    state = page.locator("#license-state").inner_text()
    assert "suspended" in state and OPERATOR_EMAIL in state and "invoice 4411 unpaid" in state
    assert UTC_DATE.search(state)
    shot(page, "9-suspended-license-page")

    page.goto(f"{url}/admin/tenants/tenant/{scene['acme'].pk}/change/")
    shot(page, "10-tenant-page")
    licenses = page.locator("#tenant-licenses").inner_text()
    assert "licenses (4)" in licenses.lower() and "2 of 5" in licenses and "Acme Pro" in licenses
    users = page.locator("#tenant-users").inner_text()
    assert "alice@acme.test" in users and "bob@acme.test" in users
    assert "license.suspended" in page.locator("#tenant-audit").inner_text()

    page.goto(f"{url}/admin/audit/auditlog/")
    shot(page, "11-audit-list")
    filters = page.locator("#changelist-filter").inner_text().lower()
    for title in ("By tenant", "By action", "By created at"):
        assert title.lower() in filters
    listed = page.locator("#result_list").inner_text()
    assert "License Acme Pro" in listed and "reason: invoice 4411 unpaid" in listed
    assert UTC_DATE.search(listed)
    # Nothing overflows: the page is no wider than the window.
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
