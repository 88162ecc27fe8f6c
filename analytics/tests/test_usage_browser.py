"""The usage pages in a real browser (issue 16, must-show 3's export and 4):
Playwright driving Debian's Chromium against the real server. The admin opens
Usage, sees a refused seat with its user, machine and time, downloads the
usage CSV through the page's own link, and its figures equal the usage
API's for the same range; the license's charts and notices pages are shown.
Screenshots at desktop and phone widths go to test-artifacts/dashboard/."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from accounts.tests.factories import TEST_PASSWORD
from analytics.services import usage_rollup_license
from analytics.tests.conftest import EventScript
from coditect.personas import api_client, tenant_admin, tenant_member
from coditect.testing import chromium_context
from licenses.tests.factories import LicenseFactory
from tenants.tests.factories import TenantFactory

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

ARTIFACTS = Path(settings.BASE_DIR) / "test-artifacts" / "dashboard"
# The elements that stick out at phone width (for the failure's message).
WIDEST = """() => [...document.querySelectorAll('main *')]
  .filter((el) => el.getBoundingClientRect().right > 391 && !el.closest('.table-wrap'))
  .slice(0, 8).map((el) => `${el.tagName}.${el.className}#${el.id}`)"""
FIGURES = ("peak_seats", "acquisitions", "denials", "distinct_users", "sessions_ended", "session_seconds")


@pytest.fixture
def scene(live_server_e2e):
    """Acme's two licenses with two days of sessions and refusals, rolled up,
    and the usage API's answer for the last 30 days (read before the browser
    starts: the Playwright loop makes the test's thread look async to Django)."""
    acme, globex = TenantFactory(name="Acme", slug="acme"), TenantFactory(name="Globex", slug="globex")
    admin = tenant_admin(acme)
    member = tenant_member(acme).user
    tenant_admin(globex)
    license = LicenseFactory(tenant=acme, name="Acme Pro", max_seats=2)
    second = LicenseFactory(tenant=acme, name="Acme Lite", max_seats=5)
    LicenseFactory(tenant=globex, name="Globex CAD", max_seats=2)
    now = timezone.now()
    base = (now - timedelta(days=1)).replace(hour=9, minute=0, second=0, microsecond=0)
    script = EventScript(license)
    for index in range(3):
        began = base + timedelta(hours=index * 3)
        script.acquire(began, f"s{index}", member, f"machine-{index}")
        script.end(
            began + timedelta(minutes=50), "lease.released", f"s{index}", member, f"machine-{index}", began
        )
    script.deny(now - timedelta(seconds=20), "no_seats_available", member, "machine-refused")
    for lic in (license, second):
        usage_rollup_license(license_id=lic.id, tenant_id=acme.id, start=base - timedelta(days=1), end=now)
    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start, end = today - timedelta(days=29), today + timedelta(days=1)
    body = (
        api_client(admin.user)
        .get(
            "/api/v1/analytics/usage",
            {"granularity": "day", "from": start.isoformat(), "to": end.isoformat()},
        )
        .json()
    )
    return live_server_e2e.url, license, body


@pytest.fixture
def page(tmp_path):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with chromium_context(tmp_path / "chromium-profile", accept_downloads=True) as context:
        yield context.new_page()


def shots(page, name: str) -> None:
    """The page at desktop and at phone width; nothing may stick out sideways at 390 px."""
    page.set_viewport_size({"width": 1280, "height": 900})
    page.screenshot(path=str(ARTIFACTS / f"usage-{name}-desktop.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    wide = page.evaluate("document.querySelector('main').scrollWidth")
    assert wide <= 390, f"{name}: the page is {wide} px wide at phone width: {page.evaluate(WIDEST)}"
    page.screenshot(path=str(ARTIFACTS / f"usage-{name}-phone.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})


def api_rows(body) -> list[tuple]:
    return [
        (
            item["license_id"],
            period["period_start"].replace("+00:00", "Z"),
            *(str(period[f]) for f in FIGURES),
        )
        for item in body["licenses"]
        for period in item["periods"]
    ]


def test_an_admin_sees_a_refusal_and_exports_usage_that_equals_the_api(scene, page):
    url, license, api_body = scene

    page.goto(f"{url}/dashboard/login/")
    page.fill("input[name=email]", "admin@acme.test")
    page.fill("input[name=password]", TEST_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/dashboard/")
    page.click("nav >> text=Usage")
    page.wait_for_url(f"{url}/dashboard/usage/")

    row = page.locator("[data-testid=denials] tbody tr[data-denial-id]")
    assert row.count() == 1
    cells = [cell.inner_text().strip() for cell in row.first.locator("td").all()]
    assert cells[1:4] == ["member@acme.test", "machine-refused", "no_seats_available"]
    shown = datetime.fromisoformat(row.first.locator("time").get_attribute("datetime"))
    assert abs((shown - timezone.now()).total_seconds()) < 120
    assert page.locator("[data-testid=top-users] tbody tr[data-user-id]").count() == 1
    assert "Globex" not in page.content()
    shots(page, "overview")

    with page.expect_download() as download_info:
        page.click("[data-testid=usage-csv-link]")
    download = download_info.value
    assert download.suggested_filename.startswith("usage-acme-day-") and download.suggested_filename.endswith(
        ".csv"
    )
    rows = list(csv.DictReader(io.StringIO(Path(download.path()).read_text(encoding="utf-8"))))
    from_csv = [(row["license_id"], row["period_start"], *(row[f] for f in FIGURES)) for row in rows]
    assert from_csv == api_rows(api_body)
    assert len(from_csv) == 60 and sum(int(row["acquisitions"]) for row in rows) == 3

    page.click(f'a[href="/dashboard/licenses/{license.id}/usage/"]')
    assert page.locator("[data-testid=hourly-chart] [data-testid=seat-limit]").count() == 1
    assert page.locator("[data-testid=daily-chart] rect.bar-peak").count() >= 1
    assert page.locator("[data-testid=usage-as-of]").get_attribute("data-as-of")
    shots(page, "license")

    page.click("text=Change the notices")
    page.uncheck("#notify-webhook")
    page.fill("#notify-seats-percent", "80")
    shots(page, "notices")
    page.click("button:has-text('Save the notices')")
    page.wait_for_selector("text=The notices of this license are saved.")
    assert page.input_value("#notify-seats-percent") == "80"
    assert not page.is_checked("#notify-webhook")
    # Out of range: the browser itself holds the form back (the server's 400 is
    # test_usage_dashboard's); nothing is saved.
    page.fill("#notify-seats-percent", "250")
    page.click("button:has-text('Save the notices')")
    assert page.evaluate("document.querySelector('#notify-seats-percent').validity.rangeOverflow")
    page.goto(page.url)
    assert page.input_value("#notify-seats-percent") == "80"
