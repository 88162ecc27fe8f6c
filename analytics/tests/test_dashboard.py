"""The tenant dashboard through Django's test client: sign-in, tenant scope,
CSRF, releasing a lease, the audit log's pages. (The browser test is
test_dashboard_browser.py.) Sign-in finds the user's tenant on the operator
path, so these tests commit their rows."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from accounts.tests.factories import TEST_PASSWORD
from analytics.tests.member_world import signed_in
from audit.models import AuditLog
from audit.services import audit_record
from coditect.personas import tenant_admin, tenant_member
from licenses.ledger import get_seat_ledger
from licenses.tests.factories import LicenseFactory
from tenants.scope import operator_scope, tenant_scope
from tenants.tests.factories import TenantFactory

pytestmark = [pytest.mark.embedded, pytest.mark.usefixtures("test_events")]


@pytest.fixture(autouse=True)
def quick_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def world(committed_db):
    acme, globex = TenantFactory(name="Acme", slug="acme"), TenantFactory(name="Globex", slug="globex")
    admin = tenant_admin(acme).user
    member = tenant_member(acme).user
    tenant_admin(globex)
    license = LicenseFactory(tenant=acme, name="Acme Pro", max_seats=3)
    foreign = LicenseFactory(tenant=globex, name="Globex CAD", max_seats=2)
    seats = {}
    for lic, user in ((license, member), (foreign, None)):
        with tenant_scope(lic.tenant_id):
            seats[lic.id] = (
                get_seat_ledger()
                .acquire(
                    license_id=lic.id,
                    tenant_id=lic.tenant_id,
                    max_seats=lic.max_seats,
                    fingerprint="machine-0001",
                    user_id=str(user.pk) if user else None,
                    ttl=600,
                )
                .lease.session_id
            )
    return {"acme": acme, "admin": admin, "license": license, "foreign": foreign, "seats": seats}


def live(license) -> list[str]:
    with tenant_scope(license.tenant_id):
        return [lease.session_id for lease in get_seat_ledger().live_leases(license_id=license.id)]


def test_a_tenant_admin_signs_in_and_sees_each_license_with_gauge_and_chart(world):
    client = signed_in()

    page = client.get("/dashboard/").content.decode()

    assert 'data-testid="seat-gauge" data-used="1" data-max="3"' in page
    assert 'data-testid="usage-chart"' in page
    assert "Acme Pro" in page and "Globex CAD" not in page
    with tenant_scope(world["acme"].id):
        assert AuditLog.objects.filter(action="auth.login", details__method="dashboard").count() == 1


@pytest.mark.parametrize(
    "email,password,message",
    [
        ("admin@acme.test", "wrong-password-123", "Wrong email or password"),
        ("nobody@acme.test", TEST_PASSWORD, "Wrong email or password"),
    ],
    ids=["wrong-password", "unknown-email"],
)
def test_only_members_with_the_right_password_get_in(world, email, password, message):
    client = Client()
    response = client.post("/dashboard/login/", {"email": email, "password": password})

    assert response.status_code == 401
    assert message in response.content.decode()
    assert client.get("/dashboard/").status_code == 302


def test_a_plain_member_signs_in_to_their_own_page_and_is_refused_the_admins_pages(world):
    client = Client()
    response = client.post("/dashboard/login/", {"email": "member@acme.test", "password": TEST_PASSWORD})

    assert response.status_code == 302 and response["Location"] == "/dashboard/me/"
    assert client.get("/dashboard/me/").status_code == 200
    refused = client.get("/dashboard/")
    assert refused.status_code == 403 and "for tenant admins" in refused.content.decode()


def test_pages_need_a_signed_in_admin(world):
    response = Client().get(f"/dashboard/licenses/{world['license'].id}/")

    assert response.status_code == 302
    assert response["Location"].startswith("/dashboard/login/?next=")


def test_another_tenants_license_is_not_there(world):
    client = signed_in()
    foreign = world["foreign"]

    assert client.get(f"/dashboard/licenses/{foreign.id}/").status_code == 404
    release = client.post(
        f"/dashboard/licenses/{foreign.id}/release/", {"session_id": world["seats"][foreign.id]}
    )
    assert release.status_code == 404
    assert live(foreign) == [world["seats"][foreign.id]]


def test_releasing_a_lease_needs_the_csrf_token_and_frees_the_seat(world):
    client = signed_in(enforce_csrf_checks=True)
    license, session_id = world["license"], world["seats"][world["license"].id]
    page = client.get(f"/dashboard/licenses/{license.id}/").content.decode()
    assert "member@acme.test" in page and f'data-session-id="{session_id}"' in page

    forged = client.post(f"/dashboard/licenses/{license.id}/release/", {"session_id": session_id})
    assert forged.status_code == 403
    assert live(license) == [session_id]

    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    response = client.post(
        f"/dashboard/licenses/{license.id}/release/", {"session_id": session_id, "csrfmiddlewaretoken": token}
    )
    assert response.status_code == 302
    assert live(license) == []
    with tenant_scope(license.tenant_id):
        event = AuditLog.objects.get(action="lease.force_released")
    assert (event.actor, event.details["session_id"]) == ("admin@acme.test", session_id)
    after = client.get(f"/dashboard/licenses/{license.id}/").content.decode()
    assert 'data-used="0"' in after and "The lease was released" in after


def test_the_audit_log_pages_newest_first(world):
    acme = world["acme"]
    client = signed_in()
    with tenant_scope(acme.id):
        for n in range(60):
            audit_record(action="test.event", tenant_id=acme.id, details={"n": n})

    first = client.get("/dashboard/audit/").content.decode()
    older = re.search(r'href="\?before=(\d+)"', first)
    assert first.count('data-action="test.event"') == 50 and "N: 59<" in first and older
    second = client.get(f"/dashboard/audit/?before={older.group(1)}").content.decode()
    assert "N: 9<" in second and "N: 10<" not in second and 'href="?after=' in second
    assert 'data-action="auth.login"' in second  # the sign-in itself is in the log, oldest last


@pytest.mark.parametrize("cursor", ["before=²", "after=²", "before=٣", "after=9" + "9" * 40, "before=-1"])
def test_an_unusable_audit_log_cursor_shows_the_newest_page(world, cursor):
    acme = world["acme"]
    client = signed_in()
    with tenant_scope(acme.id):
        audit_record(action="test.event", tenant_id=acme.id, details={"n": 1})

    response = client.get(f"/dashboard/audit/?{cursor}")

    assert response.status_code == 200
    assert "N: 1<" in response.content.decode()


def test_a_nul_character_in_the_sign_in_email_is_wrong_credentials_not_an_error(world):
    client = Client()

    response = client.post("/dashboard/login/", {"email": "admin@acme.test\x00", "password": TEST_PASSWORD})

    assert response.status_code == 401
    page = response.content.decode()
    assert "Wrong email or password" in page and "\x00" not in page
    assert client.get("/dashboard/").status_code == 302
    with operator_scope():
        (event,) = AuditLog.objects.filter(action="auth.login_failed")
    assert (event.actor, event.details["reason"]) == ("admin@acme.test", "malformed_email")


@pytest.fixture
def database_ledger(settings):
    # The database ledger hands a session id to the database (PostgreSQL refuses NUL).
    settings.SEAT_LEDGER = "database"


@pytest.mark.parametrize("session_id", ["{live}\x00", "x" * 5000], ids=["nul", "too-long"])
def test_releasing_an_unusable_session_id_is_a_notice_and_frees_nothing(database_ledger, world, session_id):
    license = world["license"]
    client = signed_in()
    before = live(license)

    response = client.post(
        f"/dashboard/licenses/{license.id}/release/",
        {"session_id": session_id.format(live=world["seats"][license.id])},
        follow=True,
    )

    assert response.status_code == 200
    assert "No such session" in response.content.decode()
    assert live(license) == before


def test_with_password_sign_in_turned_off_the_dashboard_refuses_passwords(world, settings):
    settings.PASSWORD_LOGIN_ENABLED = False

    response = Client().post("/dashboard/login/", {"email": "admin@acme.test", "password": TEST_PASSWORD})

    assert response.status_code == 401
    assert "turned off" in response.content.decode()


@pytest.mark.redis
def test_a_seat_ledger_that_does_not_answer_is_a_notice_not_an_error_page(world, redis_ledger_cut):
    client = signed_in()
    redis_ledger_cut()
    overview = client.get("/dashboard/")
    detail = client.get(f"/dashboard/licenses/{world['license'].id}/")

    assert overview.status_code == detail.status_code == 200
    assert "seat ledger does not answer" in overview.content.decode()
    assert 'data-testid="seat-gauge-unavailable"' in detail.content.decode()


@pytest.mark.redis
def test_a_ledger_that_does_not_answer_is_asked_once_per_overview_not_once_per_license(
    world, redis_ledger_cut, monkeypatch
):
    """A hung Redis costs each call a whole socket timeout: the overview stops
    asking after the first, so the page waits one, however many licenses."""
    from licenses.ledger.gateway import SeatLedgerGateway

    for number in range(5):
        LicenseFactory(tenant=world["acme"], name=f"Acme extra {number}", max_seats=1)
    asked = []
    real = SeatLedgerGateway.live_leases
    monkeypatch.setattr(
        SeatLedgerGateway, "live_leases", lambda self, **kw: asked.append(kw) or real(self, **kw)
    )
    client = signed_in()
    redis_ledger_cut()

    overview = client.get("/dashboard/")
    assert overview.status_code == 200
    assert overview.content.decode().count('data-testid="seat-gauge-unavailable"') >= 6
    assert len(asked) == 1


def test_a_license_in_its_grace_period_says_so_on_the_dashboard(world):
    from datetime import timedelta

    from django.utils import timezone

    from licenses.models import Policy, Product

    product = Product.objects.create(name="CODITECT", slug="coditect-dash")
    policy = Policy.objects.create(product=product, name="Graced", slug="graced", expiry_grace_days=5)
    expired = timezone.now() - timedelta(days=1)
    graced = LicenseFactory(
        tenant=world["acme"], name="Acme Graced", max_seats=1, policy=policy, expires_at=expired
    )
    client = signed_in()

    for page in (client.get("/dashboard/"), client.get(f"/dashboard/licenses/{graced.id}/")):
        text = page.content.decode()
        assert page.status_code == 200
        assert '<span class="state state-grace">grace</span>' in text
        until = (expired + timedelta(days=5)).astimezone(timezone.get_current_timezone())
        assert f"in its grace period until {until:%Y-%m-%d %H:%M} UTC" in text


def test_no_signed_in_page_is_kept_by_a_cache_or_the_back_button(world):
    client = signed_in()
    for path in ("/dashboard/", f"/dashboard/licenses/{world['license'].id}/key/rotate/", "/dashboard/me/"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert "no-store" in response["Cache-Control"] and "private" in response["Cache-Control"], path
