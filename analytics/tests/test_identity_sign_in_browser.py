"""Dashboard sign-in with Google and GitHub through Identity Platform, in a
real browser (Playwright, Debian's Chromium, headless), with password sign-in
turned off (issue 16, must-show 1).

The page runs the vendored Firebase Auth web SDK unchanged; the browser's calls
to Google are answered by a local stand-in (identity_stand_in.py), which signs
ID tokens with a key made here. The server is the real one (gunicorn,
PostgreSQL, Redis) in its own process, where Google's certificate and lookup
endpoints answer from the same key (accounts/tests/google_edge_site): the ID
token is verified by firebase-admin's own code."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.conf import settings

from accounts.tests.google_edge import GoogleEdge
from analytics.tests.identity_stand_in import IdentityPlatformStandIn
from coditect.personas import tenant_admin, tenant_member
from coditect.testing import LiveServer, axe_install, axe_serious_violations, chromium_context
from licenses.tests.factories import LicenseFactory
from tenants.tests.factories import TenantFactory

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

ARTIFACTS = Path(settings.BASE_DIR) / "test-artifacts" / "dashboard"
PROJECT = "coditect-browser-test"
AUTH_DOMAIN = f"{PROJECT}.firebaseapp.com"
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def identity_server(django_db_setup, tmp_path_factory):
    """The real server with password sign-in off and Identity Platform on."""
    workdir = tmp_path_factory.mktemp("identity-server")
    edge = GoogleEdge(PROJECT)
    server = LiveServer(workdir)
    server.env.update(
        PASSWORD_LOGIN_ENABLED="false",
        IDENTITY_PLATFORM_PROJECT_ID=PROJECT,
        IDENTITY_PLATFORM_API_KEY="AIza-stand-in-web-api-key",
        IDENTITY_PLATFORM_AUTH_DOMAIN=AUTH_DOMAIN,
        IDENTITY_PLATFORM_CREDENTIALS_FILE=edge.service_account_file(workdir),
        PYTHONPATH=os.pathsep.join(
            [
                str(Path(settings.BASE_DIR) / "accounts" / "tests" / "google_edge_site"),
                os.environ.get("PYTHONPATH", ""),
            ]
        ),
        CODITECT_TEST_GOOGLE_EDGE=edge.save(workdir / "google-edge.json"),
        CODITECT_TEST_BASE_DIR=str(settings.BASE_DIR),
    )
    server.start()
    try:
        yield server, edge
    finally:
        server.stop()
        server.forget_redis_keys()


@pytest.fixture
def scene(identity_server, committed_db):
    """Acme's admin (no password sign-in: their Google account has their
    email), a plain member, and Acme's license. Made before the browser starts."""
    server, edge = identity_server
    acme = TenantFactory(name="Acme", slug="acme")
    admin = tenant_admin(acme).user
    member = tenant_member(acme).user
    LicenseFactory(tenant=acme, name="Acme Pro", max_seats=3)
    return server.url, edge, admin, member


@pytest.fixture
def browser(tmp_path, scene):
    """A browser context whose calls to Google reach the stand-in, and the
    console errors its pages log (a refused script or policy shows there)."""
    _, edge, _, _ = scene
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with chromium_context(tmp_path / "chromium-profile") as context:
        stand_in = IdentityPlatformStandIn(edge, auth_domain=AUTH_DOMAIN).install(context)
        axe_install(context)
        errors: list[str] = []
        context.on(
            "console", lambda message: errors.append(message.text) if message.type == "error" else None
        )
        yield context, stand_in, errors


def shots(page, name: str) -> None:
    """Screenshots at desktop and phone widths, and axe-core's check at both."""
    page.screenshot(path=str(ARTIFACTS / f"{name}-desktop.png"), full_page=True)
    assert axe_serious_violations(page) == []
    desktop = page.viewport_size
    page.set_viewport_size(PHONE)
    page.screenshot(path=str(ARTIFACTS / f"{name}-phone.png"), full_page=True)
    assert axe_serious_violations(page) == []
    page.set_viewport_size(desktop)


def sign_in_with(page, provider: str, email: str):
    button = page.get_by_role("button", name=f"Sign in with {provider}")
    page.wait_for_selector(f"button[data-provider]:not([disabled]) >> text=Sign in with {provider}")
    with page.expect_popup() as chooser:
        button.click()
    popup = chooser.value
    # Choosing the account closes the pop-up, which can land while Playwright still
    # finishes the click; a pop-up that closed has done what the click was for.
    from playwright.sync_api import Error as PlaywrightError

    try:
        popup.get_by_role("button", name=email).click(no_wait_after=True)
    except PlaywrightError:
        if not popup.is_closed():
            raise


def test_with_passwords_off_an_admin_signs_in_with_google_and_lands_on_the_dashboard(scene, browser):
    url, _, admin, _ = scene
    context, stand_in, errors = browser
    stand_in.add_account(admin.email)
    page = context.new_page()

    page.goto(f"{url}/dashboard/")
    assert "/dashboard/login/" in page.url
    assert page.locator("input[name=password]").count() == 0  # passwords are off
    assert page.get_by_role("button", name="Sign in with GitHub").count() == 1
    shots(page, "signin-identity")

    sign_in_with(page, "Google", admin.email)
    page.wait_for_url(f"{url}/dashboard/")
    assert page.locator("[data-testid=tenant-name]").inner_text() == "Acme"
    assert admin.email in page.locator("header.top").inner_text()
    assert "Acme Pro" in page.content()

    # The SDK went through Identity Platform's flow, all of it to the stand-in.
    assert "GET identitytoolkit/v1/projects" in stand_in.calls
    assert "POST identitytoolkit/v1/accounts:signInWithIdp" in stand_in.calls
    assert f"GET {AUTH_DOMAIN}/__/auth/handler" in stand_in.calls
    # Every script came from our origin or the stand-in, and the page's policy let them run.
    assert not [e for e in errors if "Content Security Policy" in e or "Failed to load" in e], errors

    page.click("text=Sign out")
    page.wait_for_url(f"{url}/dashboard/login/")
    assert page.goto(f"{url}/dashboard/").url.startswith(f"{url}/dashboard/login/")


def test_an_account_no_user_is_linked_to_is_refused_and_a_member_lands_on_their_page(scene, browser):
    url, _, _, member = scene
    context, stand_in, _ = browser
    stand_in.add_account("stranger@elsewhere.test", provider="github.com")
    stand_in.add_account(member.email, provider="github.com")
    page = context.new_page()

    page.goto(f"{url}/dashboard/login/")
    sign_in_with(page, "GitHub", "stranger@elsewhere.test")
    page.wait_for_selector("[role=alert]")
    assert "No account is linked to this sign-in" in page.locator("[role=alert]").inner_text()
    assert "/dashboard/login/identity/" in page.url
    shots(page, "signin-identity-refused")

    page.goto(f"{url}/dashboard/login/")
    sign_in_with(page, "GitHub", member.email)
    page.wait_for_url(f"{url}/dashboard/me/")
    assert page.goto(f"{url}/dashboard/").status == 403


def test_an_admin_with_an_authenticator_app_gives_its_code_after_the_pop_up(scene, browser):
    url, _, admin, _ = scene
    context, stand_in, _ = browser
    stand_in.add_account(admin.email, totp_code="314159")
    page = context.new_page()

    page.goto(f"{url}/dashboard/login/")
    sign_in_with(page, "Google", admin.email)
    code = page.get_by_label("Code")
    code.wait_for()
    shots(page, "signin-second-factor")
    code.fill("000000")
    page.get_by_role("button", name="Continue").click()
    page.wait_for_selector("text=That code is not right")
    assert "/dashboard/login/" in page.url

    code.fill("314159")
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url(f"{url}/dashboard/")
    assert "POST identitytoolkit/v2/accounts/mfaSignIn:finalize" in stand_in.calls
