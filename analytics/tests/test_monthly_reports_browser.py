"""The monthly reports page in a real browser (Playwright, Debian's Chromium,
the real server): a tenant admin follows the "Reports" link, finds last
month's report and downloads its CSV, the same text the email attached; at
phone width the table scrolls inside its box. Screenshots go to
test-artifacts/dashboard/reports-*."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.core import mail
from django.utils import timezone

from accounts.models import Role
from accounts.tests.factories import TEST_PASSWORD, UserFactory
from analytics.models import MonthlyReport
from analytics.report_services import month_add, month_bounds, month_first, monthly_report_run
from analytics.tests.conftest import EventScript
from coditect.personas import tenant_admin
from coditect.testing import chromium_context
from licenses.models import License
from licenses.tests.factories import LicenseFactory
from tenants.scope import operator_scope, tenant_scope
from tenants.tests.factories import TenantFactory

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

ARTIFACTS = Path(settings.BASE_DIR) / "test-artifacts" / "dashboard"
MONTH = month_add(month_first(timezone.now()), -1)
START, END = month_bounds(MONTH)


@pytest.fixture
def scene(live_server_e2e, eager_tasks):
    """Last month's report of Acme's license, made and emailed (in this
    process, before the browser starts), and one of Globex's."""
    mail.outbox = []
    acme, globex = TenantFactory(name="Acme", slug="acme"), TenantFactory(name="Globex", slug="globex")
    tenant_admin(acme)
    user = UserFactory(tenant=acme, role=Role.USER, email="designer@acme.test")
    license = LicenseFactory(tenant=acme, name="Acme Pro", max_seats=3)
    foreign = LicenseFactory(tenant=globex, name="Globex CAD", max_seats=2)
    with operator_scope():
        License.objects.filter(id__in=[license.id, foreign.id]).update(created_at=START - timedelta(days=5))
    script = EventScript(license)
    for day in (2, 9, 16):
        begin = START + timedelta(days=day, hours=9)
        script.acquire(begin, f"S{day}", user, "machine-1")
        script.deny(begin + timedelta(minutes=5), "no_seats_available", user, "machine-2")
        script.end(begin + timedelta(hours=2), "lease.released", f"S{day}", user, "machine-1", begin)
    for lic in (license, foreign):
        monthly_report_run(license_id=lic.id, tenant_id=lic.tenant_id, month=MONTH)
    with tenant_scope(acme.id):
        report = MonthlyReport.objects.get()
    with tenant_scope(globex.id):
        foreign_report = MonthlyReport.objects.get()
    (message,) = [m for m in mail.outbox if m.to == ["admin@acme.test"]]
    return live_server_e2e.url, report, foreign_report, message


@pytest.fixture
def page(tmp_path):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with chromium_context(tmp_path / "chromium-profile", accept_downloads=True) as context:
        yield context.new_page()


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"reports-{name}.png"), full_page=True)


def test_a_tenant_admin_downloads_last_months_report_as_it_was_emailed(scene, page, tmp_path):
    url, report, foreign_report, message = scene
    page.goto(f"{url}/dashboard/login/")
    page.fill("input[name=email]", "admin@acme.test")
    page.fill("input[name=password]", TEST_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/dashboard/")

    page.click("nav >> text=Reports")
    page.wait_for_url(f"{url}/dashboard/reports/")
    row = page.locator(f'[data-testid=reports] tr[data-report-id="{report.id}"]')
    assert row.count() == 1
    assert "Acme Pro" in row.inner_text() and f"{MONTH:%Y-%m}" in row.inner_text()
    assert "3 of 3" not in row.inner_text() and "1 of 3" in row.inner_text()
    assert page.locator(f'tr[data-report-id="{foreign_report.id}"]').count() == 0
    assert "Globex CAD" not in page.content()
    shot(page, "list-desktop")

    with page.expect_download() as download_info:
        row.get_by_role("link", name="Download CSV").click()
    download = download_info.value
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    ((filename, attached, _),) = message.attachments
    assert download.suggested_filename == filename
    assert saved.read_bytes().decode("utf-8") == attached

    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    # The table scrolls inside its box, which is no wider than the phone.
    box = page.locator(".reports-table")
    assert box.evaluate("el => el.getBoundingClientRect().right") <= 390
    assert box.evaluate("el => el.scrollWidth > el.clientWidth")
    shot(page, "list-phone")

    response = page.goto(f"{url}/dashboard/reports/{foreign_report.id}.csv")
    assert response.status == 404
