"""The People page in a real browser (issue 16, must-show 2): Playwright
driving Debian's Chromium against the real server (gunicorn, PostgreSQL as
the app role, the Redis seat ledger).

A tenant admin invites a user by email; the test reads the email the server
sent and follows its link; the user registers with a password and signs in
over the API, as the CODITECT application does, and takes a seat with their
access token. The admin changes the user's role, then deactivates them (after
the confirmation page), and the user's next heartbeat is refused with the
contract's `user_inactive` (403), the seat freed.

The server is this module's own: its email goes to files (Django's file
backend) that the test reads, its Celery tasks run in the request (no
worker), and holder standing is cached for one second rather than five, so
the "next heartbeat" need not wait. Screenshots at desktop and phone widths
go to test-artifacts/dashboard/people-*.png.
"""

from __future__ import annotations

import email
import re
import time
from email import policy
from pathlib import Path

import pytest
import requests
from django.conf import settings

from accounts.models import User
from accounts.tests.factories import TEST_PASSWORD
from audit.models import AuditLog
from coditect.personas import tenant_admin
from coditect.testing import LiveServer, chromium_context
from licenses.ledger.redis import RedisSeatLedger
from licenses.tests.factories import LicenseFactory
from tenants.scope import tenant_scope
from tenants.tests.factories import TenantFactory

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

ARTIFACTS = Path(settings.BASE_DIR) / "test-artifacts" / "dashboard"
INVITEE = "ivy.invited@people.test"
INVITEE_PASSWORD = "a-fresh-long-passphrase-7"
ACCEPT_LINK = re.compile(r"Accept the invite: (https?://\S+/dashboard/invite/\?code=\S+)")
CACHE_SECONDS = 1


@pytest.fixture(scope="module")
def people_server(django_db_setup, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("people-server")
    server = LiveServer(workdir)
    server.env.update(
        {
            "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
            "EMAIL_FILE_PATH": str(workdir / "mail"),
            "CELERY_TASK_ALWAYS_EAGER": "1",
            "EMAIL_LINK_BASE_URL": server.url,
            "LICENSE_CACHE_SECONDS": str(CACHE_SECONDS),
            "CALLER_CACHE_SECONDS": str(CACHE_SECONDS),
        }
    )
    try:
        server.start()
        yield server
    finally:
        server.stop()
        server.forget_redis_keys()


@pytest.fixture
def scene(people_server, committed_db):
    """Acme with its admin (signs in with TEST_PASSWORD) and a license; made
    before the browser starts (the Playwright loop makes the test's thread
    look async to Django)."""
    if not people_server.running:
        people_server.start()
    acme = TenantFactory(name="Acme", slug="acme")
    tenant_admin(acme)
    license = LicenseFactory(tenant=acme, name="Acme Pro", max_seats=3)
    return people_server, license


def shot(page, name: str) -> None:
    """The page at desktop width, then at phone width (390 px), then back."""
    page.set_viewport_size({"width": 1280, "height": 900})
    page.screenshot(path=str(ARTIFACTS / f"people-{name}-desktop.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=str(ARTIFACTS / f"people-{name}-phone.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})


def sent_mail(server, to: str, *, timeout: float = 10) -> list[str]:
    """The plain-text bodies of the emails the server wrote for `to`."""
    folder = Path(server.env["EMAIL_FILE_PATH"])
    deadline = time.monotonic() + timeout
    while True:
        bodies = []
        for path in sorted(folder.glob("*.log")) if folder.exists() else []:
            # The file backend writes each message, then a line of dashes.
            for raw in path.read_bytes().split(b"\n" + b"-" * 79 + b"\n"):
                if not raw.strip():
                    continue
                message = email.message_from_bytes(raw.lstrip(), policy=policy.default)
                if to in str(message["To"]):
                    bodies.append(message.get_body(preferencelist=("plain",)).get_content())
        if bodies or time.monotonic() > deadline:
            return bodies
        time.sleep(0.2)


def sign_in(page, url: str, email_address: str, password: str) -> None:
    page.goto(f"{url}/dashboard/login/")
    page.fill("input[name=email]", email_address)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/dashboard/")


def person_row(page, email_address: str):
    return page.locator(f'[data-testid=people] tr[data-email="{email_address}"]')


def test_an_admin_invites_by_email_and_a_deactivated_users_seat_ends_at_its_next_heartbeat(scene, tmp_path):
    server, license = scene
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with chromium_context(tmp_path / "chromium-profile") as context:
        seat_session = browse(server, license, context.new_page())

    # Out of the browser's loop, the database and the ledger can be asked.
    ledger = RedisSeatLedger.from_url(
        settings.REDIS_URL, socket_timeout=2.0, key_prefix=server.redis_key_prefix
    )
    assert seat_session not in [lease.session_id for lease in ledger.live_leases(license_id=license.id)]
    with tenant_scope(license.tenant_id):
        ivy = User.objects.get(email=INVITEE)
        rows = {row.action: row for row in AuditLog.objects.filter(target_id=str(ivy.pk))}
    assert (ivy.role, ivy.is_active) == ("readonly", False)
    assert rows["user.role_changed"].details == {"role": {"from": "user", "to": "readonly"}}
    assert {"user.registered", "user.role_changed", "user.deactivated", "auth.sign_ins_ended"} <= set(rows)
    assert rows["user.deactivated"].actor == "admin@acme.test"


def browse(server, license, page) -> str:
    """The browser's part of the story; the session id of the invitee's seat."""
    url = server.url

    # The admin invites someone by email.
    sign_in(page, url, "admin@acme.test", TEST_PASSWORD)
    page.click("nav >> text=People")
    page.wait_for_url(f"{url}/dashboard/people/")
    shot(page, "list")
    page.fill("#invite-email", INVITEE)
    page.select_option("#invite-role", "user")
    page.click("[data-testid=invite-form] button[type=submit]")
    page.wait_for_selector(f"text=The invite is on its way to {INVITEE}")
    assert page.locator(f'[data-testid=pending-invites] tr[data-email="{INVITEE}"]').count() == 1
    shot(page, "invited")
    page.click("form.signout button")

    # The invitee opens the emailed link and registers with a password.
    [body] = sent_mail(server, INVITEE)
    [link] = ACCEPT_LINK.findall(body)
    page.goto(link)
    assert page.url == f"{url}/dashboard/invite/"
    page.fill("input[name=full_name]", "Ivy Invited")
    page.fill("input[name=password]", INVITEE_PASSWORD)
    page.fill("input[name=password_again]", INVITEE_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/dashboard/invite/registered/")

    # They sign in as the application does, and take a seat with their access token.
    api = requests.Session()
    login = api.post(f"{url}/api/v1/auth/login", json={"email": INVITEE, "password": INVITEE_PASSWORD})
    assert login.status_code == 200, login.text
    access = {"Authorization": f"Bearer {login.json()['access_token']}"}
    acquired = api.post(
        f"{url}/api/v1/licenses/acquire",
        json={"license_key": license.key, "hardware_fingerprint": "ivy-laptop-fp-0001"},
        headers=access,
    )
    assert acquired.status_code == 201, acquired.text
    seat = {"Authorization": f"Bearer {acquired.json()['token']}"}
    assert api.post(f"{url}/api/v1/licenses/heartbeat", headers=seat).status_code == 200

    # The admin sees them, with their seat, and changes their role.
    sign_in(page, url, "admin@acme.test", TEST_PASSWORD)
    page.goto(f"{url}/dashboard/people/")
    row = person_row(page, INVITEE)
    assert row.locator("[data-testid=seats]").inner_text() == "1"
    assert row.locator("[data-testid=role]").inner_text() == "User"
    assert "Password" in row.inner_text() and "Ivy Invited" in row.inner_text()
    assert page.locator(f'[data-testid=pending-invites] tr[data-email="{INVITEE}"]').count() == 0
    row.locator("select[name=role]").select_option("readonly")
    row.locator("button", has_text="Change role").click()
    page.wait_for_selector(f"text={INVITEE} is now Read-only")
    assert person_row(page, INVITEE).locator("[data-testid=role]").inner_text() == "Read-only"
    assert api.post(f"{url}/api/v1/licenses/heartbeat", headers=seat).status_code == 200

    # The admin deactivates them: a confirmation first, then it is done.
    person_row(page, INVITEE).locator("a", has_text="Deactivate").click()
    page.wait_for_selector("[data-testid=people-confirm]")
    assert f"Deactivate {INVITEE}?" in page.locator("h1").inner_text()
    shot(page, "deactivate-confirm")
    page.click("[data-testid=people-confirm] button[type=submit]")
    page.wait_for_selector(f"text={INVITEE} is deactivated")
    assert "deactivated" in person_row(page, INVITEE).locator("[data-testid=status]").inner_text()
    shot(page, "deactivated")

    # The seat's next heartbeat is refused as the contract says, and the seat is free.
    time.sleep(CACHE_SECONDS + 0.2)  # every worker's cached standing and caller have run out
    refused = api.post(f"{url}/api/v1/licenses/heartbeat", headers=seat)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "user_inactive"
    again = api.post(f"{url}/api/v1/licenses/heartbeat", headers=seat)
    assert again.status_code == 404 and again.json()["error"]["code"] == "session_not_found"
    # Their sign-in ended too: the access token and a new password sign-in are refused.
    status = api.get(f"{url}/api/v1/licenses/status", headers=access)
    assert status.status_code == 401
    relogin = api.post(f"{url}/api/v1/auth/login", json={"email": INVITEE, "password": INVITEE_PASSWORD})
    assert relogin.status_code == 401
    page.goto(f"{url}/dashboard/people/")
    assert person_row(page, INVITEE).locator("[data-testid=seats]").inner_text() == "0"
    return acquired.json()["session_id"]
