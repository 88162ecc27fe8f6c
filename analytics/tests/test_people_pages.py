"""The dashboard's People page (issue 16) through Django's test client: the
tenant's users and pending invites, inviting by email (the email is sent),
sending again (a new code; the old one stops), withdrawing, changing a role,
deactivating (sign-ins end, the seat ends at its next heartbeat) and
reactivating; the last active admin kept; bad input 400 changing nothing;
another tenant's admin 404 on everything of this tenant's; every change
audited. (The browser test is test_people_browser.py.) Sign-in finds the
user's tenant on the operator path, so these tests commit their rows."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core import mail
from django.test import Client
from django.utils import timezone

from accounts.models import Invite, RefreshToken, Role, User
from accounts.selectors import invite_get_by_code
from accounts.tests.factories import TEST_PASSWORD, InviteFactory, RefreshTokenFactory, UserFactory
from analytics.dashboard import SESSION_TENANT_KEY
from analytics.tests.member_world import signed_in
from audit.models import AuditLog
from audit.readable import ACTION_WORDS, action_text, details_text
from coditect.personas import api_client, tenant_admin, tenant_member
from licenses.ledger import get_seat_ledger
from licenses.tests.factories import LicenseFactory
from tenants.scope import tenant_scope
from tenants.tests.factories import TenantFactory

pytestmark = pytest.mark.embedded

PAGE = "/dashboard/people/"
ACCEPT_LINK = re.compile(r"Accept the invite: https?://\S+?(/dashboard/invite/\?code=(\S+))")


@pytest.fixture(autouse=True)
def quick_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def world(committed_db, eager_tasks, license_signing_key):
    mail.outbox = []
    acme, globex = TenantFactory(name="Acme", slug="acme"), TenantFactory(name="Globex", slug="globex")
    admin = tenant_admin(acme)
    member = tenant_member(acme)
    outsider = tenant_admin(globex)
    license = LicenseFactory(tenant=acme, name="Acme Pro", max_seats=3)
    with tenant_scope(acme.id):
        invite = InviteFactory(tenant=acme, email="pending@people.test", created_by=admin.user)
    return {
        "acme": acme,
        "globex": globex,
        "admin": admin,
        "member": member,
        "outsider": outsider,
        "license": license,
        "invite": invite,
    }


def text(response) -> str:
    return response.content.decode()


def audit(tenant, action) -> list[AuditLog]:
    with tenant_scope(tenant.id):
        return list(AuditLog.objects.filter(action=action).order_by("id"))


def user(tenant, email) -> User:
    with tenant_scope(tenant.id):
        return User.objects.get(email=email)


def invites(tenant) -> list[tuple[str, str]]:
    with tenant_scope(tenant.id):
        return sorted((i.email, i.status()) for i in Invite.objects.all())


def acquire(persona, license, fingerprint="machine-0001"):
    body = {"license_key": license.key, "hardware_fingerprint": fingerprint}
    answer = persona.client.post("/api/v1/licenses/acquire", body, format="json")
    assert answer.status_code == 201, answer.content
    return answer.json()


def test_the_page_lists_the_tenants_users_with_role_sign_in_status_last_seen_and_seats(world):
    acquire(world["member"], world["license"])
    acme = world["acme"]
    with tenant_scope(acme.id):
        gina = UserFactory(
            tenant=acme, email="gina@acme.test", oauth_provider="github.com", oauth_subject="g1"
        )
        gina.set_unusable_password()
        gina.save(update_fields=["password"])
        UserFactory(tenant=acme, email="nora@acme.test", full_name="Nora Never")
        RefreshTokenFactory(tenant=acme, user=gina, expires_at=timezone.now() + timedelta(days=1))

    page = signed_in().get(PAGE)

    assert page.status_code == 200
    body = text(page)
    rows = dict(re.findall(r'<tr data-user-id="[^"]+" data-email="([^"]+)">(.*?)</tr>', body, re.S))
    assert set(rows) == {"admin@acme.test", "member@acme.test", "gina@acme.test", "nora@acme.test"}
    assert "admin@globex.test" not in body
    assert "Tenant admin" in rows["admin@acme.test"] and "(you)" in rows["admin@acme.test"]
    assert "<td>GitHub</td>" in rows["gina@acme.test"]  # no password of hers
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d", rows["gina@acme.test"])  # her refresh token
    assert "Nora Never" in rows["nora@acme.test"] and ">never<" in rows["nora@acme.test"]
    assert re.search(r'data-testid="seats">1<', rows["member@acme.test"])
    assert "using a seat now" in rows["member@acme.test"]
    assert re.search(r'data-testid="seats">0<', rows["admin@acme.test"])
    assert "Password" in rows["admin@acme.test"]
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d", rows["admin@acme.test"])  # signed in just now
    pending = re.search(r'<table data-testid="pending-invites">.*?</table>', body, re.S).group(0)
    assert "pending@people.test" in pending and "admin@acme.test" in pending and "User" in pending
    assert 'href="/dashboard/people/"' in body  # the nav link


def test_members_are_paged(world):
    acme = world["acme"]
    with tenant_scope(acme.id):
        for n in range(55):
            UserFactory(tenant=acme, email=f"p{n:02d}@acme.test")
    client = signed_in()

    first = text(client.get(PAGE))
    cursor = re.search(r'href="\?cursor=([^"]+)" rel="next"', first).group(1)
    second = text(client.get(PAGE, {"cursor": cursor}))

    shown = re.findall(r'data-email="([^"]+@acme\.test)">', first + second)
    assert len(first.split("<tr data-user-id=")) - 1 == 50
    assert len(set(shown)) == len(shown) == 57
    assert client.get(PAGE, {"cursor": "not-a-cursor"}).status_code == 200  # the first page


def test_a_plain_user_is_refused(world):
    member = world["member"].user
    client = Client()
    with tenant_scope(member.tenant_id):
        client.force_login(member)
    session = client.session
    session[SESSION_TENANT_KEY] = str(member.tenant_id)
    session.save()

    assert client.get(PAGE).status_code == 403
    assert client.post(f"{PAGE}{member.pk}/role/", {"role": "admin"}).status_code == 403
    assert user(world["acme"], "member@acme.test").role == Role.USER


def test_an_invite_is_emailed_with_its_link_and_audited(world):
    client = signed_in()

    sent = client.post(PAGE + "invite/", {"email": " New.Person@People.test ", "role": "readonly"})

    assert sent.status_code == 302 and sent["Location"] == PAGE
    [message] = mail.outbox
    assert message.to == ["new.person@people.test"]
    [(path, code)] = ACCEPT_LINK.findall(message.body)
    found = invite_get_by_code(code=code)
    assert found is not None and found.status == "pending" and found.role == "readonly"
    assert Client().get(path)["Location"] == "/dashboard/invite/"  # the invite page takes it
    [row] = audit(world["acme"], "invite.created")
    assert row.details["email"] == "new.person@people.test" and row.user_id == world["admin"].user.pk
    assert "on its way to new.person@people.test" in text(client.get(PAGE))


@pytest.mark.parametrize(
    ("form", "said"),
    [
        ({"email": "not-an-address", "role": "user"}, "Give the person&#x27;s email address"),
        ({"email": "", "role": "user"}, "Give the person&#x27;s email address"),
        ({"email": "x\x00@people.test", "role": "user"}, "Give the person&#x27;s email address"),
        ({"email": "ok@people.test", "role": "owner"}, "Choose a role"),
        ({"email": "member@acme.test", "role": "user"}, "already a member of this tenant"),
        ({"email": "pending@people.test", "role": "user"}, "is pending already"),
    ],
)
def test_a_bad_invite_is_400_with_the_reason_and_makes_nothing(world, form, said):
    before = invites(world["acme"])

    refused = signed_in().post(PAGE + "invite/", form)

    assert refused.status_code == 400 and said in text(refused)
    assert invites(world["acme"]) == before and mail.outbox == []
    assert audit(world["acme"], "invite.created") == []


@pytest.fixture
def broker_down():
    """Tasks go through a broker that does not answer (a closed port)."""
    from coditect.celery import app as celery_app
    from coditect.testing import free_port

    saved = celery_app.conf.task_always_eager, celery_app.conf.broker_url
    celery_app.conf.task_always_eager = False
    celery_app.conf.broker_url = f"redis://127.0.0.1:{free_port()}/0"
    celery_app._pool = None
    yield
    celery_app.conf.task_always_eager, celery_app.conf.broker_url = saved
    celery_app._pool = None


def test_an_invite_or_a_resend_while_the_email_cannot_be_queued_is_503_and_changes_nothing(
    world, settings, broker_down
):
    """The old code stops working only when the new one can be sent; the page
    never says "sent" for an email that will not go."""
    settings.INVITE_RESEND_INTERVAL = 60
    invite = world["invite"]
    before = invites(world["acme"])
    client = signed_in()

    resend = client.post(f"{PAGE}invites/{invite.pk}/resend/")
    made = client.post(PAGE + "invite/", {"email": "new.person@people.test", "role": "user"})

    for refused in (resend, made):
        assert refused.status_code == 503 and refused["Retry-After"] == "5"
        assert "cannot send the invite email right now; nothing was changed" in text(refused)
    assert invite_get_by_code(code=invite.code).status == "pending"  # the old link still works
    assert invites(world["acme"]) == before and mail.outbox == []
    assert audit(world["acme"], "invite.resent") == audit(world["acme"], "invite.created") == []


def test_sending_again_gives_a_new_code_the_old_one_stops_and_a_second_at_once_is_429(world, settings):
    settings.INVITE_RESEND_INTERVAL = 60
    invite = world["invite"]
    client = signed_in()

    again = client.post(f"{PAGE}invites/{invite.pk}/resend/")

    assert again.status_code == 302
    [message] = mail.outbox
    [(_path, code)] = ACCEPT_LINK.findall(message.body)
    assert code != invite.code
    assert invite_get_by_code(code=invite.code) is None  # the old code is nobody's now
    assert invite_get_by_code(code=code).status == "pending"
    [row] = audit(world["acme"], "invite.resent")
    assert row.target_id == str(invite.pk) and row.details["email"] == "pending@people.test"

    too_soon = client.post(f"{PAGE}invites/{invite.pk}/resend/")

    assert too_soon.status_code == 429 and too_soon["Retry-After"] == "60"
    assert "sent again moments ago" in text(too_soon)
    assert len(mail.outbox) == 1 and invite_get_by_code(code=code).status == "pending"


def test_withdrawing_asks_first_then_the_link_stops(world):
    invite = world["invite"]
    client = signed_in()

    asked = client.get(f"{PAGE}invites/{invite.pk}/revoke/")

    assert asked.status_code == 200 and "Withdraw the invite for pending@people.test?" in text(asked)
    assert invites(world["acme"]) == [("pending@people.test", "pending")]

    done = client.post(f"{PAGE}invites/{invite.pk}/revoke/")

    assert done.status_code == 302
    assert invites(world["acme"]) == [("pending@people.test", "revoked")]
    assert invite_get_by_code(code=invite.code).status == "revoked"
    assert len(audit(world["acme"], "invite.revoked")) == 1
    assert "pending@people.test" not in re.search(
        r'<table data-testid="pending-invites">.*?</table>', text(client.get(PAGE)), re.S
    ).group(0)
    resend = client.post(f"{PAGE}invites/{invite.pk}/resend/")
    assert resend.status_code == 400 and "no longer pending" in text(resend)


def test_a_role_change_is_audited_from_and_to(world):
    member = world["member"].user
    client = signed_in()

    changed = client.post(f"{PAGE}{member.pk}/role/", {"role": "readonly"})

    assert changed.status_code == 302
    assert user(world["acme"], "member@acme.test").role == Role.READ_ONLY
    [row] = audit(world["acme"], "user.role_changed")
    assert row.details == {"role": {"from": "user", "to": "readonly"}} and row.target_id == str(member.pk)
    assert row.user_id == world["admin"].user.pk


@pytest.mark.parametrize("role", ["", "owner", "ADMIN", "admin\x00"])
def test_a_bad_role_is_400_and_changes_nothing(world, role):
    member = world["member"].user

    refused = signed_in().post(f"{PAGE}{member.pk}/role/", {"role": role})

    assert refused.status_code == 400 and "Choose a role" in text(refused)
    assert user(world["acme"], "member@acme.test").role == Role.USER
    assert audit(world["acme"], "user.role_changed") == []


def test_changes_are_posts_a_get_changes_nothing(world):
    member, invite = world["member"].user, world["invite"]
    client = signed_in()

    assert client.get(f"{PAGE}{member.pk}/role/", {"role": "admin"}).status_code == 405
    assert client.get(f"{PAGE}invites/{invite.pk}/resend/").status_code == 405
    assert client.get(PAGE + "invite/", {"email": "a@people.test", "role": "user"}).status_code == 405
    assert client.get(f"{PAGE}{member.pk}/deactivate/").status_code == 200  # asks only
    assert user(world["acme"], "member@acme.test").is_active
    assert user(world["acme"], "member@acme.test").role == Role.USER
    assert mail.outbox == []


def test_the_changes_need_the_csrf_token(world):
    member = world["member"].user
    client = Client(enforce_csrf_checks=True)
    token = client.get("/dashboard/login/").cookies["csrftoken"].value
    signing_in = {"email": "admin@acme.test", "password": TEST_PASSWORD, "csrfmiddlewaretoken": token}
    assert client.post("/dashboard/login/", signing_in).status_code == 302

    forged = client.post(f"{PAGE}{member.pk}/role/", {"role": "admin"})

    assert forged.status_code == 403
    assert user(world["acme"], "member@acme.test").role == Role.USER


def test_the_last_active_admin_can_be_neither_demoted_nor_deactivated(world):
    me = world["admin"].user
    client = signed_in()

    demoted = client.post(f"{PAGE}{me.pk}/role/", {"role": "user"})
    deactivated = client.post(f"{PAGE}{me.pk}/deactivate/")

    for refused in (demoted, deactivated):
        assert refused.status_code == 400 and "last active admin" in text(refused)
    again = user(world["acme"], "admin@acme.test")
    assert (again.role, again.is_active) == (Role.TENANT_ADMIN, True)
    assert audit(world["acme"], "user.role_changed") == audit(world["acme"], "user.deactivated") == []

    # With a second active admin, the first may step down.
    assert client.post(f"{PAGE}{world['member'].user.pk}/role/", {"role": "admin"}).status_code == 302
    stepped_down = client.post(f"{PAGE}{me.pk}/role/", {"role": "user"})
    assert stepped_down.status_code == 302 and stepped_down["Location"] == "/dashboard/login/"
    assert user(world["acme"], "admin@acme.test").role == Role.USER
    assert client.get(PAGE).status_code == 302  # no longer a tenant admin


def test_a_deactivated_admin_does_not_count_as_the_other_admin(world):
    acme = world["acme"]
    with tenant_scope(acme.id):
        UserFactory(tenant=acme, email="gone@acme.test", role=Role.TENANT_ADMIN, is_active=False)

    refused = signed_in().post(f"{PAGE}{world['admin'].user.pk}/deactivate/")

    assert refused.status_code == 400 and "last active admin" in text(refused)


def test_deactivation_asks_first_ends_sign_ins_and_the_seat_at_its_next_heartbeat(world):
    member_persona, license = world["member"], world["license"]
    member = member_persona.user
    checkout = acquire(member_persona, license)
    seat = api_client(token=checkout["token"])
    assert seat.post("/api/v1/licenses/heartbeat").status_code == 200
    login = api_client().post(
        "/api/v1/auth/login", {"email": "member@acme.test", "password": TEST_PASSWORD}, format="json"
    )
    assert login.status_code == 200
    app = api_client(token=login.json()["access_token"])
    assert app.get("/api/v1/licenses/status").status_code == 200
    client = signed_in()

    asked = client.get(f"{PAGE}{member.pk}/deactivate/")
    assert asked.status_code == 200 and "Deactivate member@acme.test?" in text(asked)
    assert user(world["acme"], "member@acme.test").is_active

    done = client.post(f"{PAGE}{member.pk}/deactivate/")

    assert done.status_code == 302
    assert not user(world["acme"], "member@acme.test").is_active
    refused = seat.post("/api/v1/licenses/heartbeat")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "user_inactive"
    with tenant_scope(license.tenant_id):
        assert get_seat_ledger().live_leases(license_id=license.id) == []
        assert not RefreshToken.objects.filter(user_id=member.pk, revoked_at__isnull=True).exists()
    assert app.get("/api/v1/licenses/status").status_code == 401
    [row] = audit(world["acme"], "user.deactivated")
    assert row.target_id == str(member.pk) and row.user_id == world["admin"].user.pk
    assert [r.details["reason"] for r in audit(world["acme"], "auth.sign_ins_ended")] == ["user_deactivated"]
    listed = text(client.get(PAGE))
    assert re.search(r'data-email="member@acme.test">.*?deactivated.*?Reactivate', listed, re.S)

    assert client.get(f"{PAGE}{member.pk}/reactivate/").status_code == 200  # asks
    assert client.post(f"{PAGE}{member.pk}/reactivate/").status_code == 302
    assert user(world["acme"], "member@acme.test").is_active
    assert len(audit(world["acme"], "user.reactivated")) == 1
    assert acquire(member_persona, license, "machine-0002")["session_id"]


def test_another_tenants_admin_gets_404_for_this_tenants_people_and_invites(world):
    member, invite = world["member"].user, world["invite"]
    client = signed_in("admin@globex.test")

    listed = text(client.get(PAGE))
    answers = [
        client.post(f"{PAGE}{member.pk}/role/", {"role": "readonly"}),
        client.get(f"{PAGE}{member.pk}/deactivate/"),
        client.post(f"{PAGE}{member.pk}/deactivate/"),
        client.get(f"{PAGE}{member.pk}/reactivate/"),
        client.post(f"{PAGE}{member.pk}/reactivate/"),
        client.post(f"{PAGE}invites/{invite.pk}/resend/"),
        client.get(f"{PAGE}invites/{invite.pk}/revoke/"),
        client.post(f"{PAGE}invites/{invite.pk}/revoke/"),
    ]

    assert "member@acme.test" not in listed and "pending@people.test" not in listed
    assert [answer.status_code for answer in answers] == [404] * len(answers)
    again = user(world["acme"], "member@acme.test")
    assert (again.role, again.is_active) == (Role.USER, True)
    assert invites(world["acme"]) == [("pending@people.test", "pending")] and mail.outbox == []


def test_the_new_events_have_words():
    for event in ("invite.resent", "user.role_changed", "user.deactivated", "user.reactivated"):
        assert ACTION_WORDS[event]


@pytest.mark.redis
def test_a_seat_ledger_that_does_not_answer_is_a_notice_not_an_error_page(world, redis_ledger_cut):
    client = signed_in()
    redis_ledger_cut()
    page = client.get(PAGE)

    assert page.status_code == 200
    assert 'data-testid="ledger-down"' in text(page) and "member@acme.test" in text(page)


def test_a_deactivated_admins_dashboard_session_ends_at_its_next_request(world):
    acme = world["acme"]
    with tenant_scope(acme.id):
        UserFactory(tenant=acme, email="second@acme.test", role=Role.TENANT_ADMIN)
    theirs = signed_in("second@acme.test")
    assert theirs.get(PAGE).status_code == 200

    done = signed_in().post(f"{PAGE}{user(acme, 'second@acme.test').pk}/deactivate/")

    assert done.status_code == 302
    assert theirs.get(PAGE).status_code == 302  # to sign-in
    refused = Client().post("/dashboard/login/", {"email": "second@acme.test", "password": TEST_PASSWORD})
    assert refused.status_code == 401


def test_a_role_change_reads_as_words_in_the_audit_log(world):
    signed_in().post(f"{PAGE}{world['member'].user.pk}/role/", {"role": "readonly"})

    [row] = audit(world["acme"], "user.role_changed")
    assert action_text(row.action) == "Role changed"
    assert "user → readonly" in details_text(row.details)
