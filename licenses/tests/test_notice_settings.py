"""The notices to a tenant's admins obey each license's own settings (issue
16, set on the dashboard): near the limit at the license's percent, before
expiry at its days, either off, and by email and/or webhook. A license never
set behaves as before (the server's settings, both channels)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from audit.models import AuditLog
from coditect.personas import tenant_admin, tenant_member
from licenses import delivery, notices
from licenses.models import License
from licenses.services import license_notifications_set
from licenses.tests.conftest import acquire
from licenses.tests.factories import LicenseFactory
from tenants.scope import operator_scope, tenant_scope
from webhooks.models import Message
from webhooks.outbox import subscriptions_forget
from webhooks.tests.factories import EndpointFactory

pytestmark = [pytest.mark.embedded]

NOTICE_EVENTS = ["license.seats_near_limit", "license.expiring_soon"]


@pytest.fixture(autouse=True)
def _fresh(eager_tasks, settings):
    settings.EMAIL_SEATS_NEAR_LIMIT_SHARE = 0.9
    settings.EMAIL_EXPIRY_NOTICE_DAYS = [3, 14]
    notices._enqueued.clear()
    subscriptions_forget()
    yield
    notices._enqueued.clear()
    subscriptions_forget()


@pytest.fixture
def on_commit(django_capture_on_commit_callbacks):
    return lambda: django_capture_on_commit_callbacks(execute=True)


@pytest.fixture
def people(acme):
    return tenant_admin(acme), tenant_member(acme)


@pytest.fixture
def committed(committed_db):
    """Acme with its admin and a member, committed: the expiry notices and the
    webhooks' messages are read on the operator path, which sees only commits."""
    from tenants.tests.factories import TenantFactory

    acme = TenantFactory(name="Acme", slug="acme")
    return acme, tenant_admin(acme), tenant_member(acme)


@pytest.fixture
def committed_on_commit():
    """Commits are real here: on-commit work runs as it would in a request."""
    import contextlib

    return contextlib.nullcontext


def set_notices(license, **changes) -> License:
    values = {
        name: getattr(license, name)
        for name in (
            "notify_seats",
            "notify_seats_percent",
            "notify_expiry",
            "notify_expiry_days",
            "notify_email",
            "notify_webhook",
        )
    }
    with tenant_scope(license.tenant_id):
        updated = license_notifications_set(license=license, **{**values, **changes})
    updated.key = license.key  # the factory's plaintext, for acquire
    return updated


def notice_rows(tenant, action):
    with tenant_scope(tenant.id):
        return list(AuditLog.objects.filter(action=action))


def messages_of(event_type):
    with operator_scope():
        return list(Message.objects.filter(event_type=event_type))


def take_seats(member, license, count, on_commit, first=0):
    for index in range(first, first + count):
        with on_commit():
            assert acquire(member, license, f"machine-{index}").status_code == 201


@pytest.mark.django_db
def test_near_the_limit_at_the_licenses_own_percent(acme, people, on_commit):
    admin, member = people
    license = set_notices(LicenseFactory(tenant=acme, max_seats=4), notify_seats_percent=50)

    take_seats(member, license, 1, on_commit)
    assert mail.outbox == []  # 1 of 4: under 50%
    take_seats(member, license, 1, on_commit, first=1)  # 2 of 4

    [message] = mail.outbox
    assert message.to == [admin.user.email] and "2 of 4" in message.subject
    [row] = notice_rows(acme, "license.seats_near_limit")
    assert row.details["channels"] == ["email", "webhook"] and row.details["recipients"] == 1


@pytest.mark.django_db
def test_a_license_never_set_is_told_at_the_servers_share(acme, people, on_commit):
    _, member = people
    license = LicenseFactory(tenant=acme, max_seats=2)
    assert (license.notify_seats, license.notify_seats_percent, license.notify_email) == (True, None, True)

    take_seats(member, license, 1, on_commit)
    assert mail.outbox == []  # 1 of 2 is under 90%
    with on_commit():
        assert acquire(member, license, "machine-9").status_code == 201
    assert len(mail.outbox) == 1


def test_near_the_limit_turned_off_tells_no_one(committed, committed_on_commit):
    acme, _, member = committed
    on_commit = committed_on_commit
    license = set_notices(LicenseFactory(tenant=acme, max_seats=1), notify_seats=False)
    EndpointFactory(tenant=acme, event_types=NOTICE_EVENTS)

    take_seats(member, license, 1, on_commit)

    assert mail.outbox == [] and notice_rows(acme, "license.seats_near_limit") == []
    assert messages_of("license.seats_near_limit") == []


def test_webhook_only_sends_no_email_and_email_only_sends_no_webhook(
    committed, committed_on_commit, monkeypatch
):
    acme, _, member = committed
    on_commit = committed_on_commit
    monkeypatch.setattr("webhooks.outbox.message_enqueue", lambda message, using: None)  # kept, not sent
    EndpointFactory(tenant=acme, event_types=NOTICE_EVENTS)
    hooks_only = set_notices(LicenseFactory(tenant=acme, max_seats=1, name="Hooks"), notify_email=False)
    email_only = set_notices(LicenseFactory(tenant=acme, max_seats=1, name="Mail"), notify_webhook=False)

    take_seats(member, hooks_only, 1, on_commit)
    take_seats(member, email_only, 1, on_commit)

    [message] = mail.outbox
    assert "Mail" in message.body
    rows = {row.target_id: row for row in notice_rows(acme, "license.seats_near_limit")}
    assert rows[str(hooks_only.id)].details["channels"] == ["webhook"]
    assert rows[str(hooks_only.id)].details["recipients"] == 0
    assert rows[str(email_only.id)].details["channels"] == ["email"]
    [sent] = messages_of("license.seats_near_limit")
    assert sent.payload["data"]["target_id"] == str(hooks_only.id)


def test_expiry_is_told_at_the_licenses_own_days_or_not_at_all(committed, committed_on_commit):
    acme, admin, _ = committed
    on_commit = committed_on_commit
    now = timezone.now()
    own_days = set_notices(
        LicenseFactory(tenant=acme, name="Thirty", expires_at=now + timedelta(days=20)), notify_expiry_days=30
    )
    default_days = LicenseFactory(tenant=acme, name="Default", expires_at=now + timedelta(days=20))
    turned_off = set_notices(
        LicenseFactory(tenant=acme, name="Off", expires_at=now + timedelta(days=2)), notify_expiry=False
    )
    soon = LicenseFactory(tenant=acme, name="Soon", expires_at=now + timedelta(days=2))

    due = {license_id: days for license_id, _, days in delivery.expiry_notices_due(now)}

    assert due == {str(own_days.id): 30, str(soon.id): 3}
    assert str(default_days.id) not in due and str(turned_off.id) not in due
    for license_id, tenant_id, days in delivery.expiry_notices_due(now):
        with on_commit():
            delivery.license_expiry_notice_send(license_id=license_id, tenant_id=tenant_id, days=days)
    assert sorted(message.to[0] for message in mail.outbox) == [admin.user.email] * 2
    assert delivery.expiry_notices_due(now) == []  # once


@pytest.mark.django_db
def test_a_notice_that_is_on_needs_a_channel_and_values_in_range(acme):
    from core.errors import ApplicationError

    license = LicenseFactory(tenant=acme)
    for changes in (
        {"notify_email": False, "notify_webhook": False},
        {"notify_seats_percent": 0},
        {"notify_seats_percent": 101},
        {"notify_expiry_days": 366},
    ):
        with pytest.raises(ApplicationError):
            set_notices(license, **changes)
    # Both notices off: no channel is needed.
    set_notices(license, notify_seats=False, notify_expiry=False, notify_email=False, notify_webhook=False)
    with tenant_scope(acme.id):
        assert License.objects.get(id=license.id).notify_email is False
