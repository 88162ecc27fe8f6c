"""The license page in a real browser (issue 16, "Licenses"; must-show 3's
first two parts): Playwright driving Debian's Chromium (headless) against the
real server (gunicorn, PostgreSQL as the app role, the Redis seat ledger). A
tenant admin rotates the key (shown once; a reload rotates nothing; the API
refuses the old key and takes the new one), unbinds machines up to the
license's monthly cap and is then refused, blocks a user and lifts it; another
tenant's admin finds none of these pages. Screenshots go to
test-artifacts/dashboard/licenses-*-{desktop,phone}.png."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests
from django.conf import settings

from accounts.tests.factories import TEST_PASSWORD
from coditect.personas import tenant_admin, tenant_member
from coditect.testing import chromium_context
from licenses.models import Policy, Product
from licenses.tests.factories import LicenseFactory
from tenants.tests.factories import TenantFactory

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

ARTIFACTS = Path(settings.BASE_DIR) / "test-artifacts" / "dashboard"
MACHINES = ["machine-aaaa-0001", "machine-bbbb-0002", "machine-cccc-0003"]
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}


@pytest.fixture
def scene(live_server_e2e):
    """Acme's node-locked license (three machines, two unbinds a month) and
    Globex's license; the rows exist before the browser starts (the
    Playwright loop makes the test's thread look async to Django)."""
    acme, globex = TenantFactory(name="Acme", slug="acme"), TenantFactory(name="Globex", slug="globex")
    tenant_admin(acme)  # admin@acme.test
    member = tenant_member(acme).user
    tenant_admin(globex)  # admin@globex.test
    product = Product.objects.create(name="CODITECT Studio", slug="studio")
    policy = Policy.objects.create(
        product=product,
        name="Studio Pro",
        slug="studio-pro",
        expiry_grace_days=7,
        max_unbinds_per_month=2,
        entitlements={"render": "GPU rendering", "export": "Export to PDF"},
    )
    license = LicenseFactory(
        tenant=acme, name="Acme Studio", policy=policy, max_seats=3, hardware_fingerprints=list(MACHINES)
    )
    foreign = LicenseFactory(tenant=globex, name="Globex CAD", max_seats=2)
    url = live_server_e2e.url
    login = requests.post(
        f"{url}/api/v1/auth/login", json={"email": member.email, "password": TEST_PASSWORD}, timeout=10
    )
    assert login.status_code == 200, login.text
    return url, license, foreign, member, login.json()["access_token"]


@pytest.fixture
def page(tmp_path):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with chromium_context(tmp_path / "chromium-profile") as context:
        yield context.new_page()


def shots(page, name: str) -> None:
    """The page at desktop and at phone width (then back to desktop)."""
    for width, size in (("desktop", DESKTOP), ("phone", PHONE)):
        page.set_viewport_size(size)
        page.screenshot(path=str(ARTIFACTS / f"licenses-{name}-{width}.png"), full_page=True)
    page.set_viewport_size(DESKTOP)


# Elements of the page's main part that reach past the viewport's right edge,
# leaving out what sits in a box that scrolls by itself (a table's wrapper).
OVERFLOWING = """() => {
  const width = document.documentElement.clientWidth;
  return [...document.querySelectorAll("main *")]
    .filter((el) => !el.closest(".lic-scroll") && el.getBoundingClientRect().right > width + 1)
    .map((el) => el.tagName + "." + el.className);
}"""


def fits_a_phone(page) -> list[str]:
    page.set_viewport_size(PHONE)
    try:
        return page.evaluate(OVERFLOWING)
    finally:
        page.set_viewport_size(DESKTOP)


def acquire(url: str, access_token: str, key: str, machine: str) -> requests.Response:
    return requests.post(
        f"{url}/api/v1/licenses/acquire",
        json={"license_key": key, "hardware_fingerprint": machine},
        headers={"Authorization": f"Bearer {access_token}"},
        timeout=10,
    )


def sign_in(page, url: str, email: str) -> None:
    page.goto(f"{url}/dashboard/login/")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", TEST_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/dashboard/")


def test_a_tenant_admin_rotates_the_key_unbinds_to_the_cap_and_blocks(scene, page):
    url, license, foreign, member, access = scene
    old_key = license.key
    license_url = f"{url}/dashboard/licenses/{license.id}/"
    assert acquire(url, access, old_key, MACHINES[0]).status_code == 201

    sign_in(page, url, "admin@acme.test")
    page.goto(license_url)
    assert page.locator("[data-testid=policy]").inner_text() == "Studio Pro"
    assert page.locator("[data-testid=product]").inner_text() == "CODITECT Studio"
    assert "GPU rendering" in page.locator("[data-testid=entitlements]").inner_text()
    assert page.locator("[data-testid=seat-gauge]").get_attribute("data-used") == "1"
    assert page.locator("[data-testid=bound-machines] tbody tr[data-fingerprint]").count() == 3
    shots(page, "license")
    assert fits_a_phone(page) == []

    # Rotate: asked first, shown once, the old key refused and the new one taken.
    page.click("[data-testid=rotate-key]")
    assert "Are you sure?" in page.locator("[data-testid=confirm-question]").inner_text()
    shots(page, "rotate-confirm")
    page.click("[data-testid=confirm-yes]")
    page.wait_for_selector("[data-testid=new-key]")
    new_key = page.locator("[data-testid=new-key]").input_value()
    assert new_key and new_key != old_key
    key_url = page.url
    shots(page, "key-shown")
    reloaded = page.reload()
    assert reloaded.status == 410
    assert page.locator("[data-testid=new-key]").count() == 0
    assert new_key not in page.content()
    shots(page, "key-already-shown")
    assert page.goto(key_url).status == 410  # and again: no second rotation, no key
    # The server's other worker may have read the key before: it stops there
    # within LICENSE_CACHE_SECONDS (the contract's guarantee 6; default 5).
    time.sleep(settings.LICENSE_CACHE_SECONDS + 0.2)  # the server reads the same environment
    refused = acquire(url, access, old_key, MACHINES[1])
    assert refused.status_code == 404 and refused.json()["error"]["code"] == "license_not_found"
    assert acquire(url, access, new_key, MACHINES[1]).status_code == 201
    page.goto(license_url)
    assert new_key.startswith(page.locator("[data-testid=key-prefix]").inner_text().rstrip("…"))

    # Unbind: two a month, then refused.
    for done, machine in enumerate(MACHINES[:2], start=1):
        page.locator(f"tr[data-fingerprint='{machine}'] button", has_text="Unbind").click()
        assert machine in page.locator("[data-testid=confirm-question]").inner_text()
        if done == 1:
            shots(page, "unbind-confirm")
        page.click("[data-testid=confirm-yes]")
        page.wait_for_selector(f"text=Machine {machine} is unbound")
        assert f"{done} of 2 unbinds used this month" in page.locator("[data-testid=unbind-cap]").inner_text()
        assert page.locator(f"tr[data-fingerprint='{machine}']").count() == 0
    response_status = []
    page.on("response", lambda response: response_status.append(response.status))
    # The third: refused at once (before "Are you sure?"), the machine still bound.
    page.locator(f"tr[data-fingerprint='{MACHINES[2]}'] button", has_text="Unbind").click()
    page.wait_for_selector("[data-testid=license-error]")
    assert 409 in response_status and page.locator("[data-testid=confirm-question]").count() == 0
    assert "unbinds of the month are used" in page.locator("[data-testid=license-error]").inner_text()
    assert page.locator(f"tr[data-fingerprint='{MACHINES[2]}']").count() == 1
    shots(page, "unbind-refused")

    # Block a user of the tenant (asked first), see it listed, lift it.
    page.goto(license_url)
    page.select_option("#block-kind", "user")
    page.fill("#block-value", member.email)
    page.fill("#block-reason", "left the team")
    page.click("[data-testid=block-form] button[type=submit]")
    assert member.email in page.locator("[data-testid=confirm-question]").inner_text()
    shots(page, "block-confirm")
    page.click("[data-testid=confirm-yes]")
    page.wait_for_selector("text=is blocked on this license")
    row = page.locator(f"[data-testid=blocks] tr[data-block-value='{member.pk}']")
    assert member.email in row.inner_text() and "left the team" in row.inner_text()
    blocked = acquire(url, access, new_key, MACHINES[2])
    assert blocked.status_code == 403 and blocked.json()["error"]["code"] == "user_blocked"
    shots(page, "blocked")
    assert fits_a_phone(page) == []
    row.locator("button", has_text="Unblock").click()
    page.wait_for_selector("text=is unblocked")
    assert page.locator(f"[data-testid=blocks] tr[data-block-value='{member.pk}']").count() == 0

    # Keyboard: the rotate button is reachable and works from the keyboard.
    page.goto(license_url)
    page.focus("[data-testid=rotate-key]")
    page.keyboard.press("Enter")
    page.wait_for_selector("[data-testid=confirm-question]")

    # Another tenant's admin finds none of it.
    page.goto(f"{url}/dashboard/")
    page.click("text=Sign out")
    sign_in(page, url, "admin@globex.test")
    assert foreign.name in page.content() and "Acme Studio" not in page.content()
    token = key_url.rstrip("/").rsplit("/", 1)[1]
    for tail in ("", "key/rotate/", f"key/{token}/"):
        response = page.goto(f"{license_url}{tail}")
        assert response.status == 404, tail
        assert "Acme Studio" not in page.content()
    shots(page, "other-tenant-refused")
