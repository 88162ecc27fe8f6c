"""The member's own page, /dashboard/me/, through Django's test client: their
own seats and machines and nothing of the tenant's, releasing one of their
own seats (confirmed first; another's is a 404), the password change and
"sign out everywhere". (The browser test is test_me_browser.py.)"""

from __future__ import annotations

import re

import pytest
from django.test import Client

from accounts.models import RefreshToken, User
from accounts.services import auth_login_password
from accounts.tests.factories import TEST_PASSWORD
from analytics.tests.member_world import build_world, live, signed_in
from audit.models import AuditLog
from core.errors import ServiceUnavailable
from tenants.scope import tenant_scope

pytestmark = [pytest.mark.embedded]

NEW_PASSWORD = "a-brand-new-passphrase-42"


@pytest.fixture(autouse=True)
def quick_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def world(committed_db):
    return build_world()


def text(response) -> str:
    return response.content.decode()


def csrf_of(page: str) -> str:
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)


def release_url(license) -> str:
    return f"/dashboard/me/licenses/{license.id}/release/"


@pytest.mark.parametrize("email", ["member@acme.test", "viewer@acme.test", "admin@acme.test"])
def test_every_member_has_their_own_page(world, email):
    response = signed_in(email).get("/dashboard/me/")

    assert response.status_code == 200
    assert "My seats" in text(response) and email in text(response)


def test_the_page_shows_their_own_seats_and_machines_and_nothing_of_the_tenants(world):
    page = text(signed_in("member@acme.test").get("/dashboard/me/"))

    seats = re.findall(r'<tr data-session-id="([^"]+)"', page)
    assert sorted(seats) == sorted([world["seats"]["member-laptop"], world["seats"]["member-desktop"]])
    assert "member-laptop" in page and "member-desktop" in page
    assert "member-old-tower" in page  # a machine of theirs with no seat now
    # Nobody else's seat, machine or license, and no tenant-wide figure.
    for foreign in ("other-pc", "other-cad", "globex-pc", "Acme CAD", "Globex", "other@acme.test"):
        assert foreign not in page
    assert "seat-gauge" not in page and "Audit log" not in page


def test_releasing_their_own_seat_asks_first_then_frees_it(world):
    client = signed_in("member@acme.test", enforce_csrf_checks=True)
    pro, session_id = world["pro"], world["seats"]["member-laptop"]

    confirm = client.get(f"{release_url(pro)}?session_id={session_id}")
    assert confirm.status_code == 200 and "Are you sure" in text(confirm)
    assert session_id in live(pro)  # asking changes nothing

    forged = client.post(release_url(pro), {"session_id": session_id})
    assert forged.status_code == 403 and session_id in live(pro)

    done = client.post(
        release_url(pro), {"session_id": session_id, "csrfmiddlewaretoken": csrf_of(text(confirm))}
    )

    assert done.status_code == 302 and done["Location"] == "/dashboard/me/"
    assert session_id not in live(pro) and world["seats"]["member-desktop"] in live(pro)
    with tenant_scope(world["acme"].id):
        row = AuditLog.objects.get(action="lease.force_released")
    assert (row.actor, row.details["session_id"]) == ("member@acme.test", session_id)
    after = text(client.get("/dashboard/me/"))
    assert "is released" in after and f'data-session-id="{session_id}"' not in after


@pytest.mark.parametrize("method", ["get", "post"])
@pytest.mark.parametrize(
    "license_key,seat_key",
    [("pro", "other-pc"), ("cad", "other-cad"), ("foreign", "globex-pc"), ("pro", "no-such-session")],
    ids=["another-users-seat", "another-users-seat-on-another-license", "another-tenants-seat", "unknown"],
)
def test_a_seat_that_is_not_theirs_is_a_404_and_stays(world, method, license_key, seat_key):
    client = signed_in("member@acme.test")
    license = world[license_key]
    session_id = world["seats"].get(seat_key, seat_key)
    before = live(license)

    if method == "get":
        response = client.get(f"{release_url(license)}?session_id={session_id}")
    else:
        response = client.post(release_url(license), {"session_id": session_id})

    assert response.status_code == 404
    assert live(license) == before


def test_their_own_seat_named_under_another_license_is_a_404(world):
    client = signed_in("member@acme.test")

    response = client.post(release_url(world["cad"]), {"session_id": world["seats"]["member-laptop"]})

    assert response.status_code == 404 and world["seats"]["member-laptop"] in live(world["pro"])


@pytest.mark.parametrize("session_id", ["", "x" * 201, "bad\x00id"])
def test_an_unusable_session_id_is_a_404(world, session_id):
    response = signed_in("member@acme.test").post(release_url(world["pro"]), {"session_id": session_id})

    assert response.status_code == 404


def test_a_ledger_that_does_not_answer_is_said_not_a_500(world, monkeypatch):
    client = signed_in("member@acme.test")

    def down(*args, **kwargs):
        raise ServiceUnavailable("The seat ledger is unavailable.")

    monkeypatch.setattr("licenses.ledger.gateway.SeatLedgerGateway.live_leases_page", down)
    page = client.get("/dashboard/me/")
    assert page.status_code == 200 and "seat ledger does not answer" in text(page)
    assert "member-old-tower" in text(page)  # the machines come from the audit log
    release = client.post(release_url(world["pro"]), {"session_id": world["seats"]["member-laptop"]})
    assert release.status_code == 302


def test_changing_the_password_keeps_this_session_and_ends_the_others(world):
    here, elsewhere = signed_in("member@acme.test"), signed_in("member@acme.test")
    app = auth_login_password(email="member@acme.test", password=TEST_PASSWORD)

    response = here.post(
        "/dashboard/me/password/",
        {"current_password": TEST_PASSWORD, "new_password": NEW_PASSWORD, "new_password_again": NEW_PASSWORD},
    )

    assert response.status_code == 302 and response["Location"] == "/dashboard/me/"
    assert "password is changed" in text(here.get("/dashboard/me/"))
    assert elsewhere.get("/dashboard/me/").status_code == 302  # sent to sign in
    with tenant_scope(world["acme"].id):
        assert RefreshToken.objects.get(family_id=_family(app)).revoked_at is not None
        user = User.objects.get(email="member@acme.test")
        assert user.check_password(NEW_PASSWORD)
        assert AuditLog.objects.filter(action="auth.password_changed", user_id=user.pk).count() == 1
    assert (
        Client()
        .post("/dashboard/login/", {"email": "member@acme.test", "password": TEST_PASSWORD})
        .status_code
        == 401
    )


def _family(pair) -> str:
    from accounts.tokens import access_token_verify

    return access_token_verify(pair.access_token).family_id


@pytest.mark.parametrize(
    "form,field,message",
    [
        (
            {"current_password": "wrong-password-9", "new_password": NEW_PASSWORD},
            "current_password",
            "not correct",
        ),
        ({"current_password": TEST_PASSWORD, "new_password": "short"}, "new_password", "too short"),
        (
            {"current_password": TEST_PASSWORD, "new_password": NEW_PASSWORD, "new_password_again": "other"},
            "new_password_again",
            "differ",
        ),
        ({"current_password": "", "new_password": NEW_PASSWORD}, "current_password", "current password"),
    ],
    ids=["wrong-current", "weak-new", "mismatch", "no-current"],
)
def test_a_refused_password_change_is_a_400_that_says_why_and_changes_nothing(world, form, field, message):
    form = {"new_password_again": form.get("new_password", ""), **form}
    response = signed_in("member@acme.test").post("/dashboard/me/password/", form)

    assert response.status_code == 400
    assert re.search(rf'data-testid="error-{field}">[^<]*{message}', text(response)), text(response)
    with tenant_scope(world["acme"].id):
        assert User.objects.get(email="member@acme.test").check_password(TEST_PASSWORD)


def test_with_password_sign_in_off_there_is_no_password_form(world, settings):
    client = signed_in("member@acme.test")
    settings.PASSWORD_LOGIN_ENABLED = False

    page = client.get("/dashboard/me/")
    assert 'name="current_password"' not in text(page) and "Passwords are not used" in text(page)
    refused = client.post(
        "/dashboard/me/password/",
        {"current_password": TEST_PASSWORD, "new_password": NEW_PASSWORD, "new_password_again": NEW_PASSWORD},
    )
    assert refused.status_code == 403


def test_signing_out_everywhere_ends_the_applications_and_every_dashboards_sign_in(world):
    here, elsewhere, admin = (
        signed_in("member@acme.test"),
        signed_in("member@acme.test"),
        signed_in("admin@acme.test"),
    )
    app = auth_login_password(email="member@acme.test", password=TEST_PASSWORD)

    response = here.post("/dashboard/me/sign-out-everywhere/")

    assert response.status_code == 302 and response["Location"] == "/dashboard/login/"
    assert "signed out everywhere" in text(here.get("/dashboard/login/"))
    assert here.get("/dashboard/me/").status_code == 302
    assert elsewhere.get("/dashboard/me/").status_code == 302
    assert admin.get("/dashboard/me/").status_code == 200  # another user's sign-in is not touched
    with tenant_scope(world["acme"].id):
        assert RefreshToken.objects.get(family_id=_family(app)).revoked_at is not None
        row = AuditLog.objects.get(action="auth.sign_ins_ended")
    assert (row.actor, row.details) == ("member@acme.test", {"reason": "signed_out_everywhere", "revoked": 1})
    # Signing in again works, and that new session is not ended by the old row.
    again = signed_in("member@acme.test")
    assert again.get("/dashboard/me/").status_code == 200


def test_the_page_needs_a_signed_in_member(world):
    response = Client().get("/dashboard/me/")

    assert response.status_code == 302 and response["Location"].startswith("/dashboard/login/?next=")


def test_a_deactivated_member_is_signed_out(world):
    client = signed_in("member@acme.test")
    with tenant_scope(world["acme"].id):
        user = User.objects.get(email="member@acme.test")
        user.is_active = False
        user.save()

    assert client.get("/dashboard/me/").status_code == 302


def test_a_session_begun_by_another_door_still_works_and_still_ends(world):
    # A door that logs in without dashboard_session_start (it keeps no start
    # time) is taken to have begun at the user's last sign-in.
    client = signed_in("member@acme.test")
    session = client.session
    del session["dashboard_signed_in_at"]
    session.save()
    assert client.get("/dashboard/me/").status_code == 200

    signed_in("member@acme.test").post("/dashboard/me/sign-out-everywhere/")

    assert client.get("/dashboard/me/").status_code == 302
