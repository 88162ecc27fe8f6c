"""An audit row's page in a real browser (Playwright, Debian's Chromium, the
real server of licenses/tests/test_admin_browser.py), screenshot to
test-artifacts/admin/12-audit-row.png: the texts a support person reads, no
button that saves or deletes, nothing wider than the window."""

from __future__ import annotations

import re

import pytest
from django.conf import settings as django_settings
from django.db import transaction

from accounts.models import User
from accounts.tests.factories import TEST_PASSWORD
from audit.tests.test_audit_admin import rows_of
from licenses.tests import test_admin_browser
from licenses.tests.test_admin_browser import OPERATOR_EMAIL, shot, sign_in
from tenants.scope import operator_scope

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

console_server = test_admin_browser.console_server
server = test_admin_browser.server
browser = test_admin_browser.browser

WITH_SECONDS = re.compile(r"20\d\d-\d\d-\d\d \d\d:\d\d:\d\d UTC")


@pytest.fixture
def seeded(server):
    with operator_scope(), transaction.atomic(using=django_settings.OPERATOR_DATABASE):
        operator = User.objects.create_user(OPERATOR_EMAIL, TEST_PASSWORD, is_staff=True, is_superuser=True)
    return server, rows_of(operator)


@pytest.fixture
def page(seeded, browser):
    # Seeded before Chromium starts: Django refuses queries in Playwright's thread.
    server, _ = seeded
    page = browser.new_page()
    sign_in(page, server.url)
    return page


def test_an_audit_row_reads_as_text_in_the_browser(seeded, page):
    server, scene = seeded
    rows = scene["rows"]

    page.goto(f"{server.url}/admin/audit/auditlog/{rows['lease.lost'].pk}/change/")
    shot(page, "12-audit-row")
    what = page.locator("#audit-row").inner_text()
    details = page.locator("#audit-details").inner_text()
    assert "Seat lost with the seat ledger's state" in what and "system" in what
    assert "Acme (acme-east)" in what and "License Acme Pro" in what
    assert "alice@acme.test" in details and WITH_SECONDS.search(details)
    assert "None" not in details and str(scene["alice"].pk) not in details
    assert page.locator("input[type=submit]").count() == 0
    assert page.locator(".deletelink").count() == 0
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")

    page.goto(f"{server.url}/admin/audit/auditlog/{rows['license.suspended'].pk}/change/")
    assert "invoice 4411 unpaid" in page.locator("#audit-details").inner_text()
    page.click("#audit-row a[href*='/admin/licenses/license/']")
    page.wait_for_url(re.compile(rf"/admin/licenses/license/{scene['pro'].pk}/change/"))
