"""The invited person's page (issue 15): the invite email links to
/dashboard/invite/?code=…, whose form registers through the API's own
registration (the tenant and the role are the invite's, never the form's)
and signs the new member in: a tenant admin lands on the dashboard, anyone
else on a page that says to sign in from the CODITECT application. A code
that is used, withdrawn, expired or nobody's shows a page saying so, with no
form, and never the tenant's name."""

from __future__ import annotations

import random
import re
from datetime import timedelta

import pytest
from django.core import mail
from django.test import Client
from django.utils import timezone

from accounts.models import Invite, User
from accounts.tests.factories import InviteFactory
from audit.models import AuditLog
from coditect.personas import api_client, tenant_admin
from tenants.scope import operator_scope, tenant_scope
from tenants.tests.factories import TenantFactory

pytestmark = pytest.mark.embedded

PAGE = "/dashboard/invite/"
DONE = "/dashboard/invite/registered/"
PASSWORD = "a-fresh-long-passphrase-7"
ACCEPT_LINK = re.compile(r"Accept the invite: https?://\S+?(/dashboard/invite/\?code=\S+)")


@pytest.fixture(autouse=True)
def quick_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def acme(committed_db, eager_tasks):
    mail.outbox = []
    return TenantFactory(name="Acme", slug="acme")


@pytest.fixture
def globex(acme):
    return TenantFactory(name="Globex", slug="globex")


@pytest.fixture
def admin(acme):
    return tenant_admin(acme)


def text(response) -> str:
    return response.content.decode()


def invite(admin, **body) -> tuple[str, str]:
    """An invite made as its admin makes one (the API); its id and code."""
    made = admin.client.post("/api/v1/invites", body, format="json")
    assert made.status_code == 201, made.content
    return made.json()["id"], made.json()["code"]


def opened(code: str) -> Client:
    """A browser that opened the invite's link (CSRF checked as a browser's)."""
    browser = Client(enforce_csrf_checks=True)
    assert browser.get(PAGE, {"code": code})["Location"] == PAGE
    return browser


def submit(browser, **fields):
    page = browser.get(PAGE)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', text(page)).group(1)
    form = {"full_name": "", "password": PASSWORD, "password_again": PASSWORD, **fields}
    return browser.post(PAGE, {"csrfmiddlewaretoken": token, **form})


def invite_status(admin, invite_id) -> str:
    return admin.client.get(f"/api/v1/invites/{invite_id}").json()["status"]


def members(tenant) -> list[str]:
    with tenant_scope(tenant.id):
        return sorted(User.objects.values_list("email", flat=True))


def audit(tenant, action):
    with tenant_scope(tenant.id):
        return list(AuditLog.objects.filter(action=action))


def test_the_emailed_link_registers_a_tenant_admin_who_lands_signed_in_on_the_dashboard(acme, admin):
    invite_id, code = invite(admin, email="new.admin@people.test", role="admin")
    [message] = mail.outbox
    [path] = ACCEPT_LINK.findall(message.body)
    [(html, _)] = message.alternatives
    assert path in html and code in message.body and code in html  # the code stays, for the API
    browser = Client(enforce_csrf_checks=True)

    redirected = browser.get(path)

    assert redirected.status_code == 302 and redirected["Location"] == PAGE
    page = browser.get(PAGE)
    assert page.status_code == 200 and code not in text(page)
    assert 'data-testid="invite-tenant">Acme<' in text(page) and "Tenant admin" in text(page)
    assert re.search(r'name="email" value="new.admin@people.test"[^>]*readonly', text(page))

    done = submit(browser, email="new.admin@people.test", full_name="Nora New")

    assert done.status_code == 302 and done["Location"] == "/dashboard/"
    overview = browser.get("/dashboard/")
    assert overview.status_code == 200 and "new.admin@people.test" in text(overview)
    assert "you are registered and signed in" in text(overview)
    assert invite_status(admin, invite_id) == "used"
    with tenant_scope(acme.id):
        user = User.objects.get(email="new.admin@people.test")
    assert (user.role, user.full_name, str(user.tenant_id)) == ("admin", "Nora New", str(acme.id))
    assert [r.details["method"] for r in audit(acme, "auth.login")] == ["invite"]
    assert len(audit(acme, "invite.redeemed")) == 1
    # The same link again, in another browser: used, said plainly, no form.
    again = Client()
    again.get(path)
    used = again.get(PAGE)
    assert used.status_code == 410 and "has been used already" in text(used)
    assert 'name="password"' not in text(used) and "Acme" not in text(used)


def test_with_admin_mfa_required_an_invited_admin_is_registered_but_not_signed_in(acme, admin, settings):
    settings.DASHBOARD_ADMIN_MFA_REQUIRED = True
    _, code = invite(admin, email="new.admin@people.test", role="admin")
    browser = opened(code)

    done = submit(browser, email="new.admin@people.test")

    assert done.status_code == 302 and done["Location"] == "/dashboard/login/"
    assert "second factor" in text(browser.get("/dashboard/login/"))
    assert browser.get("/dashboard/").status_code == 302  # no session: registering proves no second factor
    assert "new.admin@people.test" in members(acme)
    assert audit(acme, "auth.login") == []


def test_a_plain_user_is_registered_signed_in_and_sent_to_the_application(acme, admin):
    _id, code = invite(admin, role="user")
    browser = opened(code)
    page = browser.get(PAGE)
    assert re.search(r'<input type="email" name="email" value=""', text(page))  # asked, not fixed

    done = submit(browser, email="Pat@People.test")

    assert done.status_code == 302 and done["Location"] == DONE
    landed = browser.get(DONE)
    assert landed.status_code == 200 and "You are registered" in text(landed)
    assert "sign in from the CODITECT application" in text(landed).replace("Sign in", "sign in")
    assert "pat@people.test" in text(landed) and "Acme" in text(landed)
    with tenant_scope(acme.id):
        user = User.objects.get(email="pat@people.test")
    assert user.role == "user" and browser.session["_auth_user_id"] == str(user.pk)
    assert browser.get("/dashboard/").status_code == 403  # the tenant admin's pages are not theirs
    assert browser.get("/dashboard/me/").status_code == 200  # their own page is
    login = api_client().post(
        "/api/v1/auth/login", {"email": "pat@people.test", "password": PASSWORD}, format="json"
    )
    assert login.status_code == 200


def test_the_role_and_the_tenant_come_from_the_invite_not_from_the_form(acme, globex, admin):
    _id, code = invite(admin, role="readonly")

    done = submit(
        opened(code),
        email="reader@people.test",
        role="admin",
        tenant="globex",
        tenant_id=str(globex.id),
        tenant_name="Globex",
    )

    assert done.status_code == 302 and done["Location"] == DONE
    with tenant_scope(acme.id):
        assert User.objects.get(email="reader@people.test").role == "readonly"
    assert members(globex) == []


def test_an_acme_invite_cannot_make_a_user_in_globex_and_says_nothing_of_either(acme, globex, admin):
    _id, code = invite(admin, role="admin")
    # The code's first part names its tenant; pointed at another tenant it is nobody's.
    forged = f"{globex.id}.{code.partition('.')[2]}"
    browser = opened(forged)

    shown = browser.get(PAGE)
    posted = browser.post(PAGE, {"email": "x@people.test", "password": PASSWORD, "password_again": PASSWORD})

    assert shown.status_code == 404 and "not valid" in text(shown)
    assert "Globex" not in text(shown) and "Acme" not in text(shown) and 'name="password"' not in text(shown)
    assert posted.status_code in (403, 404)  # no CSRF token, or no invite: nothing either way
    csrf_free = Client()
    csrf_free.get(PAGE, {"code": forged})
    assert csrf_free.post(PAGE, {"email": "x@people.test", "password": PASSWORD}).status_code == 404
    assert members(globex) == [] and "x@people.test" not in members(acme)


@pytest.mark.parametrize("code", ["", "not-a-code", "00000000-0000-0000-0000-000000000000." + "a" * 43])
def test_a_code_that_is_no_invites_is_404_with_no_form(acme, code):
    browser = Client()
    browser.get(PAGE, {"code": code})
    page = browser.get(PAGE)
    assert page.status_code == 404 and 'name="password"' not in text(page)
    assert Client().get(PAGE).status_code == 404  # no link at all


def test_a_tampered_email_for_an_email_bound_invite_is_refused_and_makes_nothing(acme, admin):
    invite_id, code = invite(admin, email="bound@people.test", role="admin")

    refused = submit(opened(code), email="someone.else@people.test")

    assert refused.status_code == 400 and "This invite is for bound@people.test only" in text(refused)
    assert members(acme) == ["admin@acme.test"] and invite_status(admin, invite_id) == "pending"


@pytest.mark.parametrize(
    ("state", "said"),
    [
        ({"used_at": timezone.now}, "has been used already"),
        ({"revoked_at": timezone.now}, "was withdrawn"),
        ({"expires_at": lambda: timezone.now() - timedelta(minutes=1)}, "has expired"),
    ],
)
def test_a_used_withdrawn_or_expired_invite_shows_a_page_saying_so_with_no_form(acme, state, said):
    with tenant_scope(acme.id):
        made = InviteFactory(tenant=acme, **{field: value() for field, value in state.items()})
    browser = Client()
    browser.get(PAGE, {"code": made.code})

    shown = browser.get(PAGE)
    posted = browser.post(
        PAGE, {"email": "late@people.test", "password": PASSWORD, "password_again": PASSWORD}
    )

    for page in (shown, posted):
        assert page.status_code == 410 and said in text(page)
        assert 'name="password"' not in text(page) and "Acme" not in text(page)
    assert "late@people.test" not in members(acme)


def test_a_withdrawn_invite_between_the_page_and_the_submit_is_410(acme, admin):
    invite_id, code = invite(admin, role="user")
    browser = opened(code)
    page = browser.get(PAGE)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', text(page)).group(1)
    assert admin.client.delete(f"/api/v1/invites/{invite_id}").status_code == 204

    late = browser.post(
        PAGE,
        {
            "csrfmiddlewaretoken": token,
            "email": "late@people.test",
            "password": PASSWORD,
            "password_again": PASSWORD,
        },
    )

    assert late.status_code == 410 and "was withdrawn" in text(late)
    assert "late@people.test" not in members(acme)


def test_a_refused_password_is_said_beside_its_field_and_the_invite_stays_pending(acme, admin):
    invite_id, code = invite(admin, role="user")
    browser = opened(code)

    common = submit(browser, email="pw@people.test", password="password123", password_again="password123")
    differ = submit(browser, email="pw@people.test", password_again=PASSWORD + "x")
    like_email = submit(
        browser, email="pwtester@people.test", password="pwtester@people", password_again="pwtester@people"
    )

    assert common.status_code == 400 and re.search(
        r'data-testid="error-password">[^<]*too common', text(common)
    )
    assert 'value="pw@people.test"' in text(common) and "password123" not in text(common)
    assert differ.status_code == 400 and 'data-testid="error-password_again"' in text(differ)
    assert like_email.status_code == 400 and "too similar" in text(like_email)
    assert invite_status(admin, invite_id) == "pending" and members(acme) == ["admin@acme.test"]
    assert submit(browser, email="pw@people.test").status_code == 302


def test_an_email_that_has_an_account_is_said_beside_the_email(acme, globex, admin):
    tenant_admin(globex)  # admin@globex.test
    invite_id, code = invite(admin, role="user")

    taken = submit(opened(code), email="admin@globex.test")

    assert taken.status_code == 400
    assert re.search(r'data-testid="error-email">An account with this email already exists', text(taken))
    assert invite_status(admin, invite_id) == "pending"


def test_the_submit_needs_the_csrf_token(acme, admin):
    invite_id, code = invite(admin, role="admin")
    browser = opened(code)
    browser.get(PAGE)

    forged = browser.post(
        PAGE, {"email": "csrf@people.test", "password": PASSWORD, "password_again": PASSWORD}
    )

    assert forged.status_code == 403 and invite_status(admin, invite_id) == "pending"


def test_wrong_codes_are_counted_per_address_as_the_sign_in_form_is(acme, settings):
    settings.RATE_LIMIT_BACKEND = "database"
    settings.RATE_LIMIT_PER_IP = 4
    address = f"10.{random.randint(0, 255)}.{random.randint(0, 255)}.{random.randint(1, 254)}"
    browser = Client(REMOTE_ADDR=address)
    answers = []
    for n in range(4):
        browser.get(PAGE, {"code": f"{acme.id}.{'x' * 40}{n}"})
        answers.append(browser.post(PAGE, {"email": "guess@people.test", "password": PASSWORD}))

    assert [a.status_code for a in answers[:2]] == [404, 404]
    assert answers[-1].status_code == 429 and "Retry-After" in answers[-1]
    # The sign-in form shares the address's count.
    assert browser.post("/dashboard/login/", {"email": "a@b.test", "password": "x"}).status_code == 429


def test_with_password_sign_in_off_the_page_says_how_to_register_and_takes_no_password(acme, admin, settings):
    invite_id, code = invite(admin, role="user")
    settings.PASSWORD_LOGIN_ENABLED = False
    browser = Client()
    browser.get(PAGE, {"code": code})

    shown = browser.get(PAGE)
    posted = browser.post(PAGE, {"email": "g@people.test", "password": PASSWORD, "password_again": PASSWORD})

    assert shown.status_code == 200 and "Google or GitHub" in text(shown) and "Acme" in text(shown)
    assert 'name="password"' not in text(shown)
    assert posted.status_code == 403 and 'name="password"' not in text(posted)
    assert invite_status(admin, invite_id) == "pending" and "g@people.test" not in members(acme)


def test_the_registered_page_without_a_registration_sends_to_sign_in(acme):
    assert Client().get(DONE)["Location"] == "/dashboard/login/"


def test_a_stripe_buyers_first_admin_gets_the_same_link(acme):
    from accounts.services import invite_create

    with tenant_scope(acme.id):
        invite_create(created_by=None, tenant=acme, role="admin", email="buyer@shop.test")
    [message] = mail.outbox
    [path] = ACCEPT_LINK.findall(message.body)
    browser = Client()
    browser.get(path)
    assert "Acme" in text(browser.get(PAGE))
    with operator_scope():
        assert Invite.objects.filter(email="buyer@shop.test").count() == 1
