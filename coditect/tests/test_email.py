"""Email (issue 15, "It must show" 4): each of the five messages is sent
through Django's test outbox, rendered with the right tenant's data; a claim
link shows the key once, then refuses; a failed send retries and never fails
the request; the SendGrid path runs anymail's own payload code, only the HTTP
edge replaced."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
import requests
from anymail.exceptions import AnymailAPIError
from django.core import mail
from django.utils import timezone

from audit.models import AuditLog
from coditect.personas import tenant_admin, tenant_member
from licenses import delivery, mailing, notices
from licenses.keys import license_key_digest
from licenses.models import License, LicenseClaim
from licenses.tests.conftest import acquire
from licenses.tests.factories import LicenseFactory
from tenants.scope import tenant_scope

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]

CLAIM_LINK = re.compile(r"https?://\S+/claim\?t=([\w.-]+)")


@pytest.fixture
def on_commit(django_capture_on_commit_callbacks):
    """Run the on-commit hooks (the enqueued email tasks) of the block."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


@pytest.fixture(autouse=True)
def _fresh_seat_markers(eager_tasks):
    notices._enqueued.clear()
    yield
    notices._enqueued.clear()


def html_of(message) -> str:
    [(html, kind)] = message.alternatives
    assert kind == "text/html"
    return html


def audit_actions(tenant, action):
    with tenant_scope(tenant.id):
        return list(AuditLog.objects.filter(action=action))


# --- 1. invites ------------------------------------------------------------------------------


def test_an_invite_is_emailed_to_its_address_with_its_own_tenants_name_and_code(acme, globex, on_commit, api):
    sent = {}
    for tenant, address in ((acme, "new@people.test"), (globex, "other@people.test")):
        admin = tenant_admin(tenant)
        with on_commit():
            response = admin.client.post("/api/v1/invites", {"email": address, "role": "user"}, format="json")
        assert response.status_code == 201
        sent[tenant.slug] = (address, response.json()["code"])
    assert len(mail.outbox) == 2
    for message, (slug, (address, code)), name, other in zip(
        mail.outbox, sent.items(), ("Acme", "Globex"), ("Globex", "Acme"), strict=True
    ):
        assert message.to == [address]
        assert name in message.subject and name in message.body and name in html_of(message)
        assert other not in message.body + html_of(message)
        assert code in message.body and code in html_of(message)
    # The emailed code is the one that registers.
    address, code = sent["globex"]
    response = api.post(
        "/api/v1/auth/register",
        {"email": address, "password": "a-long-fresh-passphrase-7", "invite_code": code},
        format="json",
    )
    assert response.status_code == 201, response.content


def test_an_invite_without_an_address_is_not_emailed(admin, on_commit):
    with on_commit():
        assert admin.client.post("/api/v1/invites", {"role": "user"}, format="json").status_code == 201
    assert mail.outbox == []


def test_a_send_that_fails_is_retried_with_backoff_and_never_fails_the_request(
    admin, on_commit, monkeypatch, caplog
):
    from django.core.mail import EmailMultiAlternatives

    from accounts.tasks import invite_email_task

    def down(self, *args, **kwargs):
        raise AnymailAPIError("SendGrid is away")

    retries = []
    real_retry = invite_email_task.retry

    def retry(*args, **kwargs):
        retries.append(kwargs)
        return real_retry(*args, **kwargs)

    monkeypatch.setattr(EmailMultiAlternatives, "send", down)
    monkeypatch.setattr(invite_email_task, "retry", retry)
    with on_commit():
        response = admin.client.post("/api/v1/invites", {"email": "x@people.test"}, format="json")
    assert response.status_code == 201  # the request never waits on, nor fails with, the send
    # A worker gets the task back after a backoff (eagerly, as here without a
    # broker, the retry is logged and the message dropped).
    [retried] = retries
    assert isinstance(retried["exc"], AnymailAPIError) and retried["countdown"] >= 0
    assert invite_email_task.max_retries >= 1 and invite_email_task.retry_backoff
    [failure] = [r for r in caplog.records if r.message == "background task failed"]
    assert failure.task == "accounts.invite_email"
    # Its arguments carry the code sealed, never in the clear.
    code = response.json()["code"]
    assert code not in json.dumps(failure.task_args)


# --- 2. license delivery: a one-time claim link ------------------------------------------------


def _claim_token(message) -> str:
    [token] = set(CLAIM_LINK.findall(message.body))
    assert token in html_of(message)
    return token


def test_a_claim_link_shows_the_key_once_then_refuses(acme, globex, on_commit, client):
    license = LicenseFactory(tenant=acme, name="Acme Studio", max_seats=3)
    LicenseFactory(tenant=globex, name="Globex Suite")
    with on_commit():
        claim = mailing.license_delivery_send(
            license=license, email="Buyer@Example.test", requested_by="test"
        )
    [message] = mail.outbox
    assert message.to == ["buyer@example.test"]
    assert "Acme" in message.subject and "Acme Studio" in message.body and "Globex" not in message.body
    token = _claim_token(message)
    # No key in the email, and the table keeps only the token's digest.
    assert not re.search(r"CDT-[0-9A-Z]{5}-", message.body + html_of(message))
    with tenant_scope(acme.id):
        stored = LicenseClaim.objects.get(id=claim.id)
    assert token not in stored.token_digest and stored.token_digest == delivery.claim_token_digest(token)

    page = client.get("/claim", {"t": token})
    assert page.status_code == 200 and b"Show my license key" in page.content and b"CDT-" not in page.content
    shown = client.post("/claim", {"t": token})
    assert shown.status_code == 200
    assert "no-store" in shown["Cache-Control"]
    [key] = re.findall(r'data-testid="license-key">([^<]+)<', shown.content.decode())
    with tenant_scope(acme.id):
        fresh = License.objects.get(id=license.id)
    assert fresh.key_digest == license_key_digest(key)
    assert fresh.key_digest != license_key_digest(license.key)  # the previous key stopped working

    # Second visit: refused, and nothing changes.
    assert client.post("/claim", {"t": token}).status_code == 404
    assert client.get("/claim", {"t": token}).status_code == 404
    with tenant_scope(acme.id):
        assert License.objects.get(id=license.id).key_digest == license_key_digest(key)
    assert [e.details["claim_id"] for e in audit_actions(acme, "license.claimed")] == [str(claim.id)]
    assert len(audit_actions(acme, "license.delivery_sent")) == 1


def test_an_expired_or_forged_claim_link_refuses_and_changes_nothing(acme, globex, on_commit, client):
    license = LicenseFactory(tenant=acme)
    with on_commit():
        claim = mailing.license_delivery_send(license=license, email="b@example.test")
    token = _claim_token(mail.outbox[0])
    # The same secret under another tenant's id: that tenant has no such claim.
    forged = f"{globex.id}.{token.partition('.')[2]}"
    for bad in (forged, "not-a-token", token + "x", ""):
        assert client.post("/claim", {"t": bad}).status_code == 404
        assert client.get("/claim", {"t": bad}).status_code == 404
    with tenant_scope(acme.id):
        LicenseClaim.objects.filter(id=claim.id).update(expires_at=timezone.now() - timedelta(seconds=1))
    page = client.post("/claim", {"t": token})
    assert page.status_code == 404 and b"not valid" in page.content
    with tenant_scope(acme.id):
        assert License.objects.get(id=license.id).key_digest == license_key_digest(license.key)
    assert audit_actions(acme, "license.claimed") == []


# --- 5. seats near the limit -----------------------------------------------------------------


def test_seats_near_the_limit_tell_the_tenants_admins_once_a_day(acme, globex, settings, on_commit):
    settings.EMAIL_SEATS_NEAR_LIMIT_SHARE = 0.6
    acme_admin = tenant_admin(acme)
    tenant_admin(globex)
    member = tenant_member(acme)
    license = LicenseFactory(tenant=acme, name="Acme Floating", max_seats=3)
    with on_commit():
        assert acquire(member, license, "machine-1").status_code == 201
    assert mail.outbox == []  # 1 of 3: below the share
    with on_commit():
        assert acquire(member, license, "machine-2").status_code == 201
    [message] = mail.outbox
    assert message.to == [acme_admin.user.email]
    assert "2 of 3" in message.subject and "Acme Floating" in message.body and "Globex" not in message.body
    # The marker forgotten (another process): the task's own once-a-day record holds.
    notices._enqueued.clear()
    with on_commit():
        assert acquire(member, license, "machine-3").status_code == 201
    assert len(mail.outbox) == 1
    assert len(audit_actions(acme, "license.seats_near_limit")) == 1


# --- the SendGrid path: anymail's payload, only HTTP replaced --------------------------------


def test_the_sendgrid_backend_builds_its_payload_with_a_timeout(admin, settings, monkeypatch, on_commit):
    settings.EMAIL_BACKEND = "anymail.backends.sendgrid.EmailBackend"
    settings.ANYMAIL = {"SENDGRID_API_KEY": "SG.test-only", "REQUESTS_TIMEOUT": 7.5}
    settings.DEFAULT_FROM_EMAIL = "Licenses <licenses@vendor.test>"
    seen = []

    def fake_request(self, method, url, **kwargs):
        seen.append((method, url, kwargs))
        response = requests.Response()
        response.status_code = 202
        response._content = b""
        response.url = url
        return response

    monkeypatch.setattr(requests.Session, "request", fake_request)
    with on_commit():
        response = admin.client.post("/api/v1/invites", {"email": "sg@people.test"}, format="json")
    assert response.status_code == 201
    [(method, url, kwargs)] = seen
    assert method == "POST" and url == "https://api.sendgrid.com/v3/mail/send"
    assert kwargs["timeout"] == 7.5
    assert kwargs["headers"]["Authorization"] == "Bearer SG.test-only"
    payload = json.loads(kwargs["data"])
    assert payload["from"] == {"email": "licenses@vendor.test", "name": "Licenses"}
    assert [p["to"] for p in payload["personalizations"]] == [[{"email": "sg@people.test"}]]
    assert "Acme" in payload["subject"]
    assert [c["type"] for c in payload["content"]] == ["text/plain", "text/html"]
    assert response.json()["code"] in payload["content"][0]["value"]
    assert payload["categories"] == ["invite"]


def test_the_laptop_backend_writes_to_standard_error_not_a_commands_json(capsys):
    """`create_license --email` prints one JSON object on standard output; the
    console backend `make run` uses writes each message to standard error."""
    from django.core.mail import get_connection, send_mail

    connection = get_connection("core.email.ConsoleToStderrBackend")
    send_mail("A subject", "A body", "from@example.test", ["to@example.test"], connection=connection)

    printed = capsys.readouterr()
    assert printed.out == "" and "A subject" in printed.err
