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


# The lines of text each matching cell takes (the distinct tops of its text's
# boxes): a cell whose words break mid-letter takes several.
CELL_LINES = """(selector) => [...document.querySelectorAll(selector)].map((cell) => {
  const range = document.createRange();
  range.selectNodeContents(cell);
  const tops = new Set([...range.getClientRects()].map((box) => Math.round(box.top)));
  return [cell.textContent.trim(), tops.size];
})"""

# The list's table against its box, and how far right its last column reaches.
LIST_FIT = """() => {
  const box = document.querySelector("#changelist .results");
  const table = document.querySelector("#result_list");
  const last = document.querySelector("#result_list thead th:last-child");
  return {
    table: table.offsetWidth,
    box: box.clientWidth,
    scrolls: box.scrollWidth > box.clientWidth,
    lastRight: last.getBoundingClientRect().right,
    window: window.innerWidth,
    page: document.documentElement.scrollWidth,
  };
}"""


def assert_list_fits(page) -> None:
    fit = page.evaluate(LIST_FIT)
    assert fit["table"] <= fit["box"] and not fit["scrolls"], fit
    assert fit["lastRight"] <= fit["window"] and fit["page"] <= fit["window"], fit


def assert_one_line(page, selector: str) -> None:
    cells = page.evaluate(CELL_LINES, selector)
    assert cells and all(lines == 1 for _, lines in cells), cells


def test_the_support_pages_show_what_a_support_call_asks(seeded, page):
    server, scene = seeded
    url = server.url

    page.goto(f"{url}/admin/licenses/license/")
    shot(page, "7-license-list")
    # The sidebar is open, as a new operator has it.
    assert page.locator("#main.shifted #nav-sidebar").is_visible()
    assert page.title() == "Licenses | CODITECT console"
    assert page.locator("#content h1").inner_text() == "Licenses"
    assert page.locator("#site-name").inner_text() == "CODITECT console"
    assert_list_fits(page)
    assert_one_line(page, "#result_list td.field-last_activity_column, #result_list td.field-seats_column")
    assert_one_line(page, "#result_list .license-state")
    badge = page.locator("#result_list .license-state").first.bounding_box()
    assert badge["height"] <= 20
    headers = page.locator("#result_list thead").inner_text().lower()
    for column in ("Seats in use", "State", "Expires", "Last use"):
        assert column.lower() in headers
    pro = row_text(page, "#result_list tbody tr", "Acme Pro")
    assert "2 / 2" in pro and "active" in pro and "in use now" in pro  # last use: seats held now
    assert "expiring soon" in row_text(page, "#result_list tbody tr", "Acme Soon")
    assert "suspended" in row_text(page, "#result_list tbody tr", "Acme Held")
    assert "expired" in row_text(page, "#result_list tbody tr", "Acme Gone")
    assert page.locator("#result_list img[src*='icon-no']").count() == 0
    assert "by tenant" in page.locator("#changelist-filter").inner_text().lower()

    for width in (1440, 1024):
        page.set_viewport_size({"width": width, "height": 900})
        page.reload()
        shot(page, f"7-license-list-{width}")
        assert_list_fits(page)
    page.set_viewport_size({"width": 1280, "height": 900})

    page.goto(f"{url}/admin/licenses/license/{scene['pro'].pk}/change/")
    shot(page, "8-license-page")
    assert page.locator("#content h1").inner_text() == str(scene["pro"])
    assert page.title() == f"{scene['pro']} | License | CODITECT console"
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
    assert_one_line(page, "#tenant-audit td.when, #tenant-audit td.who, #tenant-audit td.target")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")

    page.goto(f"{url}/admin/audit/auditlog/")
    shot(page, "11-audit-list")
    assert page.locator("#content h1").inner_text() == "Audit logs"
    # One line a row: no word broken mid-letter in Tenant, Who or Target ...
    assert_one_line(
        page,
        "#result_list td.field-when, #result_list td.field-tenant, #result_list td.field-action,"
        " #result_list td.field-who, #result_list td.field-target",
    )
    # ... only the details wrap, two lines at most; a short page for a few rows.
    line = page.evaluate("parseFloat(getComputedStyle(document.querySelector('#result_list td')).lineHeight)")
    heights = [row.bounding_box()["height"] for row in page.locator("#result_list tbody tr").all()]
    assert heights and max(heights) <= 2 * line + 16, (heights, line)
    assert_list_fits(page)
    for width in (1440, 1024):
        page.set_viewport_size({"width": width, "height": 900})
        page.reload()
        shot(page, f"11-audit-list-{width}")
        assert_one_line(
            page, "#result_list td.field-tenant, #result_list td.field-who, #result_list td.field-target"
        )
        assert_list_fits(page)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.reload()
    filters = page.locator("#changelist-filter").inner_text().lower()
    for title in ("By tenant", "By action", "By created at"):
        assert title.lower() in filters
    listed = page.locator("#result_list").inner_text()
    assert "License Acme Pro" in listed and "reason: invoice 4411 unpaid" in listed
    assert UTC_DATE.search(listed)
    # Nothing overflows: the page is no wider than the window.
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
