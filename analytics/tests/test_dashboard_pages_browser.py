"""Every dashboard page in a real browser, at desktop and phone widths
(issue 16, must-show 7): a screenshot of each into test-artifacts/dashboard/
(make test keeps them), axe-core's accessibility check run in the page with no
serious or critical violation, and no sideways scrolling at 390 px.

The walk reads analytics/urls.py, so a page added there is checked without
this file changing; a route whose address it cannot fill fails the test until
it is taught. Routes that answer GET with 405 are actions (POST only)."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse

from accounts.tests.factories import TEST_PASSWORD, InviteFactory
from analytics import urls as dashboard_urls
from analytics.tests.factories import DailyUsageFactory, HourlyUsageFactory, MonthlyReportFactory
from coditect.personas import tenant_admin, tenant_member
from coditect.testing import axe_install, axe_serious_violations, chromium_context
from licenses.ledger.redis import RedisSeatLedger
from licenses.tests.factories import LicenseFactory
from tenants.tests.factories import TenantFactory

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

ARTIFACTS = Path(settings.BASE_DIR) / "test-artifacts" / "dashboard" / "pages"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
# Pages for whoever is not signed in; the rest are walked as a tenant admin,
# and the member's own pages as a plain member too.
PUBLIC = {"login", "password-reset", "password-reset-confirm", "invite", "invite-done"}
MEMBER = {"me", "me-seat-release", "me-password", "me-sign-out-everywhere"}


@pytest.fixture
def scene(live_server_e2e):
    from datetime import timedelta

    from django.utils import timezone

    acme = TenantFactory(name="Acme", slug="acme")
    tenant_admin(acme)
    member = tenant_member(acme).user
    license = LicenseFactory(
        tenant=acme, name="Acme Pro", max_seats=3, hardware_fingerprints=["machine-0001"]
    )
    now = timezone.now()
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    for days_ago in range(30):
        DailyUsageFactory(
            tenant=acme,
            license=license,
            period_start=today - timedelta(days=days_ago),
            peak_seats=1 + days_ago % 3,
        )
    for hours_ago in range(48):
        HourlyUsageFactory(
            tenant=acme,
            license=license,
            period_start=now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours_ago),
            peak_seats=hours_ago % 4,
        )
    ledger = RedisSeatLedger.from_url(
        settings.REDIS_URL, socket_timeout=2.0, key_prefix=live_server_e2e.redis_key_prefix
    )
    sessions = {}
    for machine, user in (("machine-0001", member), ("machine-0002", None)):
        sessions[machine] = ledger.acquire(
            license_id=license.id,
            tenant_id=acme.id,
            max_seats=3,
            fingerprint=machine,
            user_id=str(user.pk) if user else None,
            ttl=600,
        ).lease.session_id
    invite = InviteFactory(tenant=acme, role="user", email="new@acme.test")
    report = MonthlyReportFactory(tenant=acme, license=license)
    ids = {
        "license_id": license.id,
        "user_id": member.pk,
        "invite_id": invite.pk,
        "report_id": report.pk,
        # The one-time page of a rotated key, with a token this browser was never given.
        "token": "not-a-token-of-this-session",
    }
    # Confirmation pages that a GET shows, for a seat the walker may release.
    queries = {"me-seat-release": {"member": f"?session_id={sessions['machine-0001']}"}}
    return live_server_e2e.url, ids, invite, queries


def routes():
    for pattern in dashboard_urls.urlpatterns:
        yield pattern.name, sorted(pattern.pattern.converters)


def address(name: str, params: list[str], ids: dict) -> str:
    missing = [p for p in params if p not in ids]
    assert not missing, f"the page walk cannot fill {missing} of dashboard:{name}: teach it (scene's ids)"
    return reverse(f"dashboard:{name}", kwargs={p: ids[p] for p in params})


def sign_in(page, url: str, email: str) -> None:
    page.goto(f"{url}/dashboard/login/")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", TEST_PASSWORD)
    page.click("form[action='/dashboard/login/'] button[type=submit]")
    page.wait_for_load_state()


# The outermost elements that reach past the window's right edge.
WIDEST = """() => {
  const clipped = e => {
    for (let a = e.parentElement; a && a !== document.body; a = a.parentElement) {
      if (['auto', 'scroll', 'hidden'].includes(getComputedStyle(a).overflowX)) return true;
    }
    return false;
  };
  const wide = [...document.body.querySelectorAll('*')].filter(
    e => e.getBoundingClientRect().right > window.innerWidth + 1 && !clipped(e));
  return wide.filter(e => !wide.includes(e.parentElement)).slice(0, 3)
    .map(e => e.tagName.toLowerCase() + (e.className ? '.' + e.className : '')
         + (e.dataset.testid ? '[' + e.dataset.testid + ']' : ''));
}"""


def check(page, name: str, who: str) -> list[str]:
    """Screenshots at both widths; what is wrong with the page."""
    problems = []
    for width, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        page.set_viewport_size(viewport)
        page.screenshot(path=str(ARTIFACTS / f"{name}-{who}-{width}.png"), full_page=True)
        problems += [f"{name} as {who} ({width}): {v}" for v in axe_serious_violations(page)]
        if width == "phone":
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            if overflow > 1:
                culprits = page.evaluate(WIDEST)
                problems.append(f"{name} as {who}: {overflow} px wider than a phone, at {culprits}")
    page.set_viewport_size(DESKTOP)
    return problems


@pytest.fixture
def page(tmp_path, scene):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with chromium_context(tmp_path / "chromium-profile") as context:
        axe_install(context)
        yield context.new_page()


def test_every_dashboard_page_is_accessible_at_desktop_and_phone_widths(scene, page):
    url, ids, invite, queries = scene
    walk = {"anonymous": [], "admin": [], "member": []}
    for name, params in routes():
        path = address(name, params, ids)
        if name == "invite":
            path += f"?code={invite.code}"
        for who in ["anonymous"] if name in PUBLIC else ["admin", "member"] if name in MEMBER else ["admin"]:
            walk[who].append((name, path + queries.get(name, {}).get(who, "")))
    problems, pages, actions = [], [], []
    for who, email in (("anonymous", None), ("admin", "admin@acme.test"), ("member", "member@acme.test")):
        page.context.clear_cookies()
        if email:
            sign_in(page, url, email)
        for name, path in walk[who]:
            # An action answers GET with an empty 405 (the browser would show its own
            # error page), a download with a file: neither is a page.
            probe = page.request.get(f"{url}{path}", max_redirects=0)
            if probe.status == 405:
                actions.append(name)
                continue
            if probe.ok and not probe.headers.get("content-type", "").startswith("text/html"):
                actions.append(name)
                continue
            response = page.goto(f"{url}{path}")
            assert response.status < 500, f"{name} as {who}: {response.status}"
            if response.status == 404:  # an address that needs more than the walk gives: Django's own page
                continue
            pages.append(f"{name} ({who})")
            problems += check(page, name, who)
    assert pages and not problems, "\n".join(problems)
    print("walked:", ", ".join(pages), "| not pages:", ", ".join(actions))
    walked = {p.split(" ")[0] for p in pages}
    assert {"overview", "login", "audit", "license", "people", "usage", "reports", "me"} <= walked
    assert {"license-usage", "license-notifications", "invite"} <= walked
