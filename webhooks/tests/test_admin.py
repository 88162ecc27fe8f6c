"""The console's webhook pages (Webhooks: Endpoints, Deliveries), through
the admin's own views with real commits and a loopback receiver:

- adding an endpoint shows its signing secret once (the message after the
  save), never on its page or a later one, and that secret verifies what the
  server then sends (the `standardwebhooks` library);
- a target the API refuses (a private range) is refused by the form too;
- "Send the selected deliveries again" makes a new delivery of the same
  message (the same webhook-id reaches the receiver again), audited; a
  disabled endpoint's is refused and makes none;
- a tenant's admin (or member) reaches none of these pages.
"""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse
from standardwebhooks.webhooks import Webhook

from accounts.models import Role
from accounts.tests.factories import TEST_PASSWORD, UserFactory
from audit.models import AuditLog
from coditect.personas import tenant_member
from licenses.tests import test_admin
from licenses.tests.conftest import acquire
from licenses.tests.factories import LicenseFactory
from tenants.scope import operator_scope, tenant_scope
from tenants.tests.factories import TenantFactory
from webhooks.models import Delivery, Endpoint
from webhooks.tests.test_delivery import Receiver

pytestmark = pytest.mark.postgres

fresh_content_types = test_admin.fresh_content_types
quick_password_hashing = test_admin.quick_password_hashing
operator = test_admin.operator
console = test_admin.console

ENDPOINTS = "admin:webhooks_endpoint_changelist"
DELIVERIES = "admin:webhooks_delivery_changelist"
SECRET = re.compile(r"whsec_[A-Za-z0-9+/=]+")


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def acme(committed_db, eager_tasks, settings):
    settings.DEBUG = True  # a loopback target, over http://
    return TenantFactory(name="Acme", slug="acme")


def text(response) -> str:
    return response.content.decode()


def endpoints() -> list[Endpoint]:
    with operator_scope():
        return list(Endpoint.objects.order_by("created_at"))


def deliveries(endpoint) -> list[Delivery]:
    with operator_scope():
        return list(Delivery.objects.filter(endpoint_id=endpoint.pk).order_by("created_at"))


def audit(tenant, action) -> list[AuditLog]:
    with tenant_scope(tenant.id):
        return list(AuditLog.objects.filter(action=action).order_by("id"))


def add_endpoint(console, tenant, url, event_types=("lease.acquired",)):
    return console.post(
        reverse("admin:webhooks_endpoint_add"),
        {
            "tenant": str(tenant.pk),
            "url": url,
            "description": "billing",
            "event_types": list(event_types),
            "enabled": "on",
        },
        follow=True,
    )


def test_a_new_endpoints_secret_is_shown_once_and_signs_what_is_sent(console, acme, receiver):
    added = add_endpoint(console, acme, receiver.url)

    assert added.status_code == 200
    [endpoint] = endpoints()
    shown = SECRET.findall(text(added))
    assert shown == [endpoint.secret]
    assert "shown this once" in text(added)
    # Never again: not on the list reloaded, not on the endpoint's page.
    assert endpoint.secret not in text(console.get(reverse(ENDPOINTS)))
    page = console.get(reverse("admin:webhooks_endpoint_change", args=[endpoint.pk]))
    assert page.status_code == 200 and endpoint.secret not in text(page) and "whsec_" not in text(page)
    [row] = audit(acme, "webhook.endpoint_created")
    assert row.details == {"url": receiver.url, "event_types": ["lease.acquired"]}
    assert endpoint.secret not in str(row.details)

    # The secret the operator copied verifies the server's delivery.
    assert acquire(tenant_member(acme), LicenseFactory(tenant=acme)).status_code == 201
    [(headers, body)] = receiver.received
    assert Webhook(shown[0]).verify(body, headers)["type"] == "lease.acquired"


def test_the_secret_never_rides_in_a_cookie(console, acme, receiver):
    """The message that shows it is kept in the session (MESSAGE_STORAGE): a
    cookie is signed, not sealed, and outlives the page."""
    added = console.post(
        reverse("admin:webhooks_endpoint_add"),
        {"tenant": str(acme.pk), "url": receiver.url, "event_types": ["lease.acquired"], "enabled": "on"},
    )
    [endpoint] = endpoints()
    assert added.status_code == 302
    assert endpoint.secret not in added.cookies.output()
    shown = console.get(added["Location"])
    assert endpoint.secret in text(shown) and endpoint.secret not in shown.cookies.output()


def test_the_form_refuses_a_target_in_a_private_range_and_makes_nothing(console, acme):
    refused = add_endpoint(console, acme, "https://10.1.2.3/hooks")

    assert refused.status_code == 200 and "errornote" in text(refused)
    assert "whsec_" not in text(refused)
    assert endpoints() == [] and audit(acme, "webhook.endpoint_created") == []


def test_send_again_makes_a_new_delivery_of_the_same_message(console, acme, receiver):
    add_endpoint(console, acme, receiver.url)
    [endpoint] = endpoints()
    assert acquire(tenant_member(acme), LicenseFactory(tenant=acme)).status_code == 201
    [first] = deliveries(endpoint)

    listed = console.get(reverse(DELIVERIES))
    assert listed.status_code == 200 and "Send the selected deliveries again" in text(listed)
    sent = console.post(
        reverse(DELIVERIES),
        {"action": "redeliver", "_selected_action": [str(first.pk)], "index": "0"},
        follow=True,
    )

    assert "1 sent again." in text(sent)
    first_again, second = deliveries(endpoint)
    assert first_again.pk == first.pk and second.pk != first.pk
    assert second.message_id == first.message_id and second.status == "succeeded"
    assert len(receiver.received) == 2
    assert receiver.received[0][0]["webhook-id"] == receiver.received[1][0]["webhook-id"]
    [row] = audit(acme, "webhook.redelivered")
    assert row.details["delivery_id"] == str(first.pk)
    # The delivery's page shows both attempts' answers, read only.
    page = console.get(reverse("admin:webhooks_delivery_change", args=[second.pk]))
    assert page.status_code == 200 and 'name="_save"' not in text(page)


def test_send_again_to_a_disabled_endpoint_is_refused_and_makes_none(console, acme, receiver):
    add_endpoint(console, acme, receiver.url)
    [endpoint] = endpoints()
    assert acquire(tenant_member(acme), LicenseFactory(tenant=acme)).status_code == 201
    [first] = deliveries(endpoint)
    with operator_scope():
        Endpoint.objects.filter(pk=endpoint.pk).update(enabled=False, disabled_reason="failing")

    refused = console.post(
        reverse(DELIVERIES),
        {"action": "redeliver", "_selected_action": [str(first.pk)], "index": "0"},
        follow=True,
    )

    assert "disabled; enable it first" in text(refused)
    assert deliveries(endpoint) == [first] and len(receiver.received) == 1
    assert audit(acme, "webhook.redelivered") == []


@pytest.mark.parametrize("role", [Role.TENANT_ADMIN, Role.USER])
def test_a_tenants_user_reaches_none_of_the_webhook_pages(console, acme, receiver, role):
    add_endpoint(console, acme, receiver.url)
    [endpoint] = endpoints()
    assert acquire(tenant_member(acme), LicenseFactory(tenant=acme)).status_code == 201
    [delivery] = deliveries(endpoint)
    user = UserFactory(tenant=acme, role=role, email="boss@acme.test", is_staff=True)
    client = Client()
    with tenant_scope(acme.id):
        client.force_login(user)

    answers = [
        client.get(reverse(ENDPOINTS)),
        client.get(reverse("admin:webhooks_endpoint_change", args=[endpoint.pk])),
        client.get(reverse(DELIVERIES)),
        client.post(reverse(DELIVERIES), {"action": "redeliver", "_selected_action": [str(delivery.pk)]}),
        client.post(
            reverse("admin:webhooks_endpoint_add"),
            {
                "tenant": str(acme.pk),
                "url": "https://hooks.example.com/in",
                "event_types": ["lease.acquired"],
            },
        ),
    ]
    login = client.post(reverse("admin:login"), {"username": user.email, "password": TEST_PASSWORD})

    assert [a.status_code for a in answers] == [302] * len(answers)
    assert all(reverse("admin:login") in a["Location"] for a in answers)
    assert login.status_code == 200  # the form again: not an operator
    assert endpoint.secret not in "".join(text(a) for a in answers)
    assert len(endpoints()) == 1 and deliveries(endpoint) == [delivery]


def test_ticking_enabled_again_forgives_the_failures_and_is_audited(console, acme, receiver):
    add_endpoint(console, acme, receiver.url)
    [endpoint] = endpoints()
    with operator_scope():
        Endpoint.objects.filter(pk=endpoint.pk).update(
            enabled=False, failure_count=15, disabled_at=endpoint.created_at, disabled_reason="15 failures"
        )

    saved = console.post(
        reverse("admin:webhooks_endpoint_change", args=[endpoint.pk]),
        {"url": receiver.url, "description": "billing", "event_types": ["lease.acquired"], "enabled": "on"},
    )

    assert saved.status_code == 302
    [again] = endpoints()
    assert (again.enabled, again.failure_count, again.disabled_at, again.disabled_reason) == (
        True,
        0,
        None,
        "",
    )
    assert again.secret == endpoint.secret
    [row] = audit(acme, "webhook.endpoint_updated")
    assert row.details == {"changes": ["enabled"]}
