"""Must-show 5 in the browser (Playwright, Debian's Chromium, the real server):
a plain user signs in, lands on their own page, sees only their own seats,
releases one after saying yes, and is refused the tenant admin's pages. And
the audit log as a tenant admin reads it: compact, in words, in the browser's
time zone. Screenshots at desktop (1280) and phone (390) widths go to
test-artifacts/dashboard/auditme-*.png."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings

from accounts.models import Role
from accounts.tests.factories import TEST_PASSWORD, UserFactory
from audit.events import Event
from audit.services import audit_record
from coditect.personas import tenant_admin, tenant_member
from coditect.testing import chromium_context
from licenses.ledger.redis import RedisSeatLedger
from licenses.tests.factories import LicenseFactory
from tenants.scope import tenant_scope
from tenants.tests.factories import TenantFactory

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

ARTIFACTS = Path(settings.BASE_DIR) / "test-artifacts" / "dashboard"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}


@pytest.fixture
def scene(live_server_e2e):
    """Acme Pro with three live seats in the server's own ledger: two of the
    member's, one of another user's; and some history in the audit log.
    Made before the browser starts (Playwright makes the thread look async)."""
    acme = TenantFactory(name="Acme", slug="acme")
    tenant_admin(acme)
    member = tenant_member(acme).user
    other = UserFactory(tenant=acme, role=Role.USER, email="other@acme.test")
    license = LicenseFactory(tenant=acme, name="Acme Pro", max_seats=5)
    ledger = RedisSeatLedger.from_url(
        settings.REDIS_URL, socket_timeout=2.0, key_prefix=live_server_e2e.redis_key_prefix
    )
    sessions = {}
    for user, machine in ((member, "member-laptop"), (member, "member-desktop"), (other, "other-pc")):
        sessions[machine] = ledger.acquire(
            license_id=license.id,
            tenant_id=acme.id,
            max_seats=5,
            fingerprint=machine,
            user_id=str(user.pk),
            ttl=600,
        ).lease.session_id
        with tenant_scope(acme.id):
            audit_record(
                action=Event.LEASE_ACQUIRED,
                tenant_id=acme.id,
                user=user,
                target=license,
                details={"session_id": sessions[machine], "fingerprint": machine, "created": True},
            )
    with tenant_scope(acme.id):
        for n in range(55):
            audit_record(
                action=Event.LEASE_DENIED,
                tenant_id=acme.id,
                user=other if n % 2 else member,
                target=license,
                details={"code": "no_seats_available", "fingerprint": f"machine-{n:04d}"},
            )
    return live_server_e2e.url, license, ledger, sessions


@pytest.fixture
def page(tmp_path):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with chromium_context(tmp_path / "chromium-profile", timezone_id="Europe/Berlin") as context:
        yield context.new_page()


def shots(page, name: str) -> None:
    """The page at desktop and at phone width (then back to desktop)."""
    page.set_viewport_size(DESKTOP)
    page.screenshot(path=str(ARTIFACTS / f"auditme-{name}-desktop.png"), full_page=True)
    page.set_viewport_size(PHONE)
    page.screenshot(path=str(ARTIFACTS / f"auditme-{name}-phone.png"), full_page=True)
    # Nothing wider than the phone's screen but what scrolls inside its wrapper.
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    wide = page.evaluate(
        "[...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > "
        "document.documentElement.clientWidth + 1 && !e.closest('.table-scroll'))"
        ".map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right))"
    )
    assert overflow <= 0, f"{name}: the page is {overflow}px wider than a phone: {wide}"
    page.set_viewport_size(DESKTOP)


def sign_in(page, url: str, email: str) -> None:
    page.goto(f"{url}/dashboard/login/")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", TEST_PASSWORD)
    page.click("button[type=submit]")


def test_a_plain_user_sees_only_their_own_seats_and_releases_one(scene, page):
    url, license, ledger, sessions = scene

    sign_in(page, url, "member@acme.test")
    page.wait_for_url(f"{url}/dashboard/me/")
    page.wait_for_selector("text=Times in Europe/Berlin")  # the zone script's cookie, read by the server
    rows = page.locator("[data-testid=my-seats] tbody tr[data-session-id]")
    shown = sorted(rows.nth(i).get_attribute("data-session-id") for i in range(rows.count()))
    assert shown == sorted([sessions["member-laptop"], sessions["member-desktop"]])
    assert "other-pc" not in page.content() and "other@acme.test" not in page.content()
    assert page.locator("nav >> text=Audit log").count() == 0
    shots(page, "me")

    laptop = page.locator(f'tr[data-session-id="{sessions["member-laptop"]}"]')
    laptop.locator("a", has_text="Release").click()
    page.wait_for_selector("[data-testid=release-confirm]")
    assert "Are you sure" in page.content() and "member-laptop" in page.content()
    assert sessions["member-laptop"] in [
        lease.session_id for lease in ledger.live_leases(license_id=license.id)
    ]
    shots(page, "me-release-confirm")

    page.click("button:has-text('Yes, release it')")
    page.wait_for_url(f"{url}/dashboard/me/")
    page.wait_for_selector("text=is released")
    assert page.locator("[data-testid=my-seats] tbody tr[data-session-id]").count() == 1
    live = [lease.session_id for lease in ledger.live_leases(license_id=license.id)]
    assert sessions["member-laptop"] not in live
    assert sessions["member-desktop"] in live and sessions["other-pc"] in live
    shots(page, "me-released")

    response = page.goto(f"{url}/dashboard/")
    assert response.status == 403 and "for tenant admins" in page.content()
    shots(page, "forbidden")
    response = page.goto(f"{url}/dashboard/audit/")
    assert response.status == 403


def test_the_audit_log_is_compact_readable_and_in_the_browsers_zone(scene, page):
    url, license, _ledger, _sessions = scene

    sign_in(page, url, "admin@acme.test")
    page.wait_for_url(f"{url}/dashboard/")
    page.goto(f"{url}/dashboard/audit/")
    page.wait_for_selector("text=Times in Europe/Berlin")
    table = page.locator("[data-testid=audit-log]")
    assert table.locator("tbody tr[data-action]").count() == 50
    first = table.locator("tbody tr[data-action]").first
    when = first.locator("td").first.inner_text()
    assert when.endswith((" CET", " CEST")), when
    assert "Seat refused" in table.inner_text() and "lease.denied" not in table.inner_text()
    assert str(license.id) not in table.inner_text() and "License Acme Pro" in table.inner_text()
    height = page.evaluate("document.documentElement.scrollHeight")
    assert height < 3000, f"50 rows take {height}px"
    shots(page, "audit")
    page.set_viewport_size(PHONE)
    height = page.evaluate("document.documentElement.scrollHeight")
    assert height < 4000, f"50 rows take {height}px at phone width"
    page.set_viewport_size(DESKTOP)

    page.select_option("select[name=action]", "lease.acquired")
    page.fill("input[name=user]", "member@acme.test")
    page.click("button:has-text('Filter')")
    page.wait_for_selector("text=Clear")
    rows = table.locator("tbody tr[data-action]")
    assert rows.count() == 2
    assert all(rows.nth(i).get_attribute("data-action") == "lease.acquired" for i in range(rows.count()))
    shots(page, "audit-filtered")
