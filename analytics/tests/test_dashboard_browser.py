"""The dashboard in a real browser: Playwright driving Debian's Chromium
(headless, no downloaded browser) against the real server (gunicorn,
PostgreSQL as the app role, the Redis seat ledger). Screenshots of each page
go to test-artifacts/dashboard/."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from accounts.tests.factories import TEST_PASSWORD
from analytics.tests.factories import DailyUsageFactory
from coditect.personas import tenant_admin
from coditect.testing import chromium_context
from licenses.ledger.redis import RedisSeatLedger
from licenses.tests.factories import LicenseFactory
from tenants.tests.factories import TenantFactory

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

ARTIFACTS = Path(settings.BASE_DIR) / "test-artifacts" / "dashboard"


@pytest.fixture
def scene(live_server_e2e):
    """What the server will show: Acme's license with 30 days of usage and
    two live seats (in the server's own ledger), and Globex's license."""
    acme, globex = TenantFactory(name="Acme", slug="acme"), TenantFactory(name="Globex", slug="globex")
    tenant_admin(acme)  # admin@acme.test signs in with TEST_PASSWORD
    license = LicenseFactory(tenant=acme, name="Acme Pro", max_seats=3)
    foreign = LicenseFactory(tenant=globex, name="Globex CAD", max_seats=2)
    today = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    for days_ago in range(30):
        DailyUsageFactory(
            tenant=acme,
            license=license,
            period_start=today - timedelta(days=days_ago),
            peak_seats=1 + days_ago % 3,
            denials=2 if days_ago % 7 == 0 else 0,
            denials_by_code={"no_seats_available": 2} if days_ago % 7 == 0 else {},
        )
    ledger = RedisSeatLedger.from_url(
        settings.REDIS_URL, socket_timeout=2.0, key_prefix=live_server_e2e.redis_key_prefix
    )
    for machine in ("machine-0001", "machine-0002"):
        ledger.acquire(
            license_id=license.id,
            tenant_id=acme.id,
            max_seats=3,
            fingerprint=machine,
            user_id=None,
            ttl=600,
        )
    return live_server_e2e.url, license, foreign, ledger


@pytest.fixture
def page(tmp_path):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with chromium_context(tmp_path / "chromium-profile") as context:
        yield context.new_page()


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_a_tenant_admin_watches_seats_releases_one_and_cannot_see_another_tenant(scene, page):
    url, license, foreign, ledger = scene

    page.goto(f"{url}/dashboard/")
    assert "/dashboard/login/" in page.url
    shot(page, "1-sign-in")
    page.fill("input[name=email]", "admin@acme.test")
    page.fill("input[name=password]", TEST_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/dashboard/")

    gauge = page.locator(f'[data-license-id="{license.id}"] [data-testid=seat-gauge]')
    assert (gauge.get_attribute("data-used"), gauge.get_attribute("data-max")) == ("2", "3")
    assert "2 / 3" in gauge.inner_text()
    chart = page.locator(f'[data-license-id="{license.id}"] [data-testid=usage-chart]')
    assert chart.locator("rect.bar-peak").count() == 30
    assert chart.locator("rect.bar-denials").count() == 5
    assert "Globex CAD" not in page.content()
    shot(page, "2-overview")

    page.click(f'a[href="/dashboard/licenses/{license.id}/"]')
    rows = page.locator("[data-testid=live-leases] tbody tr[data-session-id]")
    assert rows.count() == 2
    shot(page, "3-license")

    released = rows.first.get_attribute("data-session-id")
    rows.first.locator("button", has_text="Release").click()
    page.click("[data-testid=confirm-yes]")  # the license page asks first (issue 16)
    page.wait_for_selector("text=The lease was released")
    assert page.locator("[data-testid=seat-gauge]").get_attribute("data-used") == "1"
    assert page.locator("[data-testid=live-leases] tbody tr[data-session-id]").count() == 1
    assert released not in [lease.session_id for lease in ledger.live_leases(license_id=license.id)]
    shot(page, "4-released")

    page.click("text=Audit log")
    audit_rows = page.locator("[data-testid=audit-log] tr[data-action='lease.force_released']")
    assert audit_rows.count() == 1 and "admin@acme.test" in audit_rows.inner_text()
    shot(page, "5-audit-log")

    response = page.goto(f"{url}/dashboard/licenses/{foreign.id}/")
    assert response.status == 404
    assert "Globex CAD" not in page.content()
    shot(page, "6-other-tenant-refused")


@pytest.fixture
def invited(live_server_e2e):
    """An invite of Acme's for an admin (made before the browser starts: the
    Playwright loop makes the test's thread look async to Django)."""
    from accounts.tests.factories import InviteFactory

    acme = TenantFactory(name="Acme", slug="acme")
    return live_server_e2e.url, InviteFactory(tenant=acme, role="admin", email="invited@people.test")


def test_an_invited_admin_registers_in_the_browser_and_lands_on_the_dashboard(invited, page):
    url, invite = invited

    page.goto(f"{url}/dashboard/invite/?code={invite.code}")
    assert page.url == f"{url}/dashboard/invite/"  # the code left the address
    assert page.locator("[data-testid=invite-tenant]").inner_text() == "Acme"
    page.fill("input[name=password]", "password123")
    page.fill("input[name=password_again]", "password123")
    page.click("button[type=submit]")
    assert "too common" in page.locator("[data-testid=error-password]").inner_text()
    shot(page, "7-invite-refused-password")

    page.fill("input[name=full_name]", "Ivy Invited")
    page.fill("input[name=password]", "a-fresh-long-passphrase-7")
    page.fill("input[name=password_again]", "a-fresh-long-passphrase-7")
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/dashboard/")
    assert "invited@people.test" in page.content()
    shot(page, "8-invite-accepted")

    response = page.goto(f"{url}/dashboard/invite/?code={invite.code}")
    assert response.status == 410 and page.locator("input[name=password]").count() == 0
