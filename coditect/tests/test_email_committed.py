"""Email (issue 15) where the server reads across tenants (operator scope:
the password reset's lookups, the expiry notices' fan-out, create_license):
with real commits, so the operator connection sees the rows."""

from __future__ import annotations

import io
import json
import re
from datetime import timedelta

import pytest
from django.core import mail
from django.core.management import call_command
from django.utils import timezone

from accounts.tests.factories import TEST_PASSWORD
from audit.models import AuditLog
from coditect.personas import api_client, tenant_admin, tenant_member
from licenses.models import License, LicenseNotice
from licenses.tests.factories import LicenseFactory
from tenants.scope import operator_scope, tenant_scope
from tenants.tests.factories import TenantFactory

pytestmark = pytest.mark.embedded


@pytest.fixture
def acme(committed_db, eager_tasks):
    mail.outbox = []
    return TenantFactory(name="Acme", slug="acme")


@pytest.fixture
def globex(acme):
    return TenantFactory(name="Globex", slug="globex")


@pytest.fixture
def api():
    return api_client()


@pytest.fixture
def member(acme):
    return tenant_member(acme)


@pytest.fixture
def admin(acme):
    return tenant_admin(acme)


@pytest.fixture
def on_commit():
    """Commits are real here: hooks run by themselves."""
    import contextlib

    return contextlib.nullcontext


def audit_actions(tenant, action):
    with tenant_scope(tenant.id):
        return list(AuditLog.objects.filter(action=action))


def test_create_license_with_email_sends_the_link_and_prints_no_key(acme):
    out = io.StringIO()
    if True:
        call_command(
            "create_license",
            "--tenant",
            "acme",
            "--seats",
            "4",
            "--name",
            "CLI",
            "--email",
            "c@x.test",
            stdout=out,
        )
    printed = json.loads(out.getvalue())
    assert "license_key" not in printed and printed["claim"]["email"] == "c@x.test"
    [message] = mail.outbox
    assert message.to == ["c@x.test"] and "CLI" in message.body
    with pytest.raises(Exception, match="not an email address"):
        call_command(
            "create_license", "--tenant", "acme", "--seats", "4", "--email", "nope", stdout=io.StringIO()
        )


# --- 3. password reset -----------------------------------------------------------------------


def _reset_fields(message) -> tuple[str, str]:
    """The uid and token of the emailed link (the dashboard's page; the API's
    confirm takes the same two)."""
    from urllib.parse import parse_qs, urlsplit

    [link] = re.findall(r"https?://\S+/dashboard/password/reset/confirm/\?\S+", message.body)
    query = parse_qs(urlsplit(link).query)
    return query["uid"][0], query["token"][0]


def test_a_password_reset_is_emailed_to_the_member_and_ends_their_sign_ins(acme, globex, on_commit, api):
    member = tenant_member(acme)
    tenant_member(globex)
    # Signed in on another device (before the reset: a sign-in after it voids the token).
    signed_in = api.post(
        "/api/v1/auth/login", {"email": member.user.email, "password": TEST_PASSWORD}, format="json"
    ).json()
    elsewhere = api_client(token=signed_in["access_token"])
    assert elsewhere.get("/api/v1/auth/me").status_code == 200
    with on_commit():
        response = api.post("/api/v1/auth/password/reset", {"email": member.user.email}, format="json")
    assert response.status_code == 202
    [message] = mail.outbox
    assert message.to == [member.user.email] and "Acme" in message.body and "Globex" not in message.body
    uid, token = _reset_fields(message)
    new = "a-brand-new-passphrase-42"
    response = api.post(
        "/api/v1/auth/password/reset/confirm",
        {"uid": uid, "token": token, "new_password": new},
        format="json",
    )
    assert response.status_code == 204
    assert elsewhere.get("/api/v1/auth/me").status_code == 401  # the other sign-ins ended
    refreshed = api.post("/api/v1/auth/refresh", {"refresh_token": signed_in["refresh_token"]}, format="json")
    assert refreshed.status_code == 401
    login = api.post("/api/v1/auth/login", {"email": member.user.email, "password": new}, format="json")
    assert login.status_code == 200
    # Used once: the same token again is refused.
    again = api.post(
        "/api/v1/auth/password/reset/confirm",
        {"uid": uid, "token": token, "new_password": "yet-another-passphrase-9"},
        format="json",
    )
    assert again.status_code == 401 and again.json()["error"]["code"] == "not_authenticated"
    assert len(audit_actions(acme, "auth.password_reset")) == 1


def test_a_reset_request_never_says_whether_the_email_exists(admin, on_commit, api):
    answers = []
    for address in (admin.user.email, "nobody@nowhere.test"):
        with on_commit():
            response = api.post("/api/v1/auth/password/reset", {"email": address}, format="json")
        answers.append((response.status_code, response.content))
    assert answers[0] == answers[1] == (202, b"")
    assert [m.to for m in mail.outbox] == [[admin.user.email]]


def test_one_reset_email_per_account_per_interval_and_a_failed_send_does_not_hold_it(
    admin, on_commit, api, settings, monkeypatch
):
    """The request API is limited per IP only; whoever asks, an account gets
    one reset email per PASSWORD_RESET_EMAIL_INTERVAL. A send that fails
    gives its turn back, so the task's retry can send."""
    from accounts import emails

    settings.PASSWORD_RESET_EMAIL_INTERVAL = 300

    def ask():
        with on_commit():
            return api.post("/api/v1/auth/password/reset", {"email": admin.user.email}, format="json")

    real_send = emails.email_send
    monkeypatch.setattr(
        emails, "email_send", lambda **kw: (_ for _ in ()).throw(ConnectionError("SendGrid away"))
    )
    assert ask().status_code == 202  # the failed send is logged (core.tasks), not answered
    monkeypatch.setattr(emails, "email_send", real_send)
    assert [ask().status_code for _ in range(3)] == [202, 202, 202]
    assert [m.to for m in mail.outbox] == [[admin.user.email]]
    assert len(audit_actions(admin.tenant, "auth.password_reset_requested")) == 1


def test_a_bad_reset_token_counts_as_a_failed_sign_in_and_is_throttled(member, api, settings):
    settings.LOGIN_FAILURES_BEFORE_THROTTLE = 2
    body = {"uid": str(member.user.pk), "token": "abc-def", "new_password": "a-long-fresh-passphrase-7"}
    codes = [api.post("/api/v1/auth/password/reset/confirm", body, format="json") for _ in range(3)]
    assert [r.status_code for r in codes] == [401, 401, 429]
    assert codes[2].json()["error"]["code"] == "login_throttled"
    assert (
        api.post(
            "/api/v1/auth/login", {"email": member.user.email, "password": TEST_PASSWORD}, format="json"
        ).status_code
        == 429
    )
    unknown = {**body, "uid": "00000000-0000-0000-0000-000000000000"}
    assert api.post("/api/v1/auth/password/reset/confirm", unknown, format="json").status_code == 401


def test_without_a_valid_token_the_password_validators_say_nothing(member, api):
    """The validators ("too similar to the email") answer only behind a valid
    token: one who holds none learns nothing of the account from them."""
    weak = {"uid": str(member.user.pk), "token": "abc-def", "new_password": member.user.email}
    answer = api.post("/api/v1/auth/password/reset/confirm", weak, format="json")
    assert (answer.status_code, answer.json()["error"]["code"]) == (401, "not_authenticated")


# --- 4. license expiring soon ----------------------------------------------------------------


def test_expiry_notices_go_once_to_each_tenants_admins(acme, globex, settings, on_commit):
    settings.EMAIL_EXPIRY_NOTICE_DAYS = [3, 14]
    from licenses.tasks import license_expiry_notices_task

    now = timezone.now()
    acme_admin, globex_admin = tenant_admin(acme), tenant_admin(globex)
    tenant_member(acme)  # not an admin: no notice
    soon = LicenseFactory(tenant=acme, name="Acme Soon", expires_at=now + timedelta(days=10))
    LicenseFactory(tenant=acme, name="Acme Later", expires_at=now + timedelta(days=40))
    LicenseFactory(tenant=acme, name="Acme Forever")
    LicenseFactory(tenant=globex, name="Globex Close", expires_at=now + timedelta(days=2))

    with on_commit():
        assert license_expiry_notices_task.delay().get() == 2
    by_to = {tuple(m.to): m for m in mail.outbox}
    assert set(by_to) == {(acme_admin.user.email,), (globex_admin.user.email,)}
    acme_mail, globex_mail = by_to[(acme_admin.user.email,)], by_to[(globex_admin.user.email,)]
    assert (
        "Acme Soon" in acme_mail.subject and "14 days" in acme_mail.subject and "Globex" not in acme_mail.body
    )
    assert (
        "Globex Close" in globex_mail.subject
        and "3 days" in globex_mail.subject
        and "Acme" not in globex_mail.body
    )

    mail.outbox.clear()
    with on_commit():
        assert license_expiry_notices_task.delay().get() == 0  # once per license per notice
    assert mail.outbox == []
    # Three days out, the 3-day notice of the same license comes, once.
    with tenant_scope(acme.id):
        License.objects.filter(id=soon.id).update(expires_at=soon.expires_at - timedelta(days=8))
    with on_commit():
        license_expiry_notices_task.delay().get()
    assert [("3 days" in m.subject, m.to) for m in mail.outbox] == [(True, [acme_admin.user.email])]
    with operator_scope():
        # Each notice of each expiry date once; a 14-day one skipped is recorded as sent.
        assert LicenseNotice.objects.filter(kind="expiring").count() == 5
    assert len(audit_actions(globex, "license.expiring_soon")) == 1
