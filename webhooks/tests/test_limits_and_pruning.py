"""What keeps webhooks bounded: a tenant's endpoints are limited (checked
under a lock, so creates at once cannot pass it), finished deliveries are
pruned after their retention, and sending again from the console takes the
right to change endpoints."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.db import connections
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from coditect.personas import tenant_admin
from licenses.tests.test_admin import make_operator
from tenants.scope import operator_scope, tenant_scope
from tenants.tests.factories import TenantFactory
from webhooks.models import Delivery, DeliveryAttempt, Endpoint, Message
from webhooks.services import deliveries_prune
from webhooks.tests.factories import DeliveryAttemptFactory, DeliveryFactory, EndpointFactory

ENDPOINTS = "/api/v1/webhooks/endpoints"


def create(persona, n: int):
    body = {"url": f"https://hooks{n}.example.com/in", "event_types": ["lease.acquired"]}
    return persona.client.post(ENDPOINTS, body, format="json")


@pytest.mark.embedded
@pytest.mark.django_db
def test_one_endpoint_past_the_limit_is_409_and_makes_nothing(settings):
    settings.WEBHOOK_MAX_ENDPOINTS_PER_TENANT = 2
    acme, globex = TenantFactory(), TenantFactory()
    admin, other = tenant_admin(acme), tenant_admin(globex)
    assert [create(admin, n).status_code for n in range(2)] == [201, 201]
    refused = create(admin, 3)
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "webhook_endpoint_limit_reached"
    assert refused.json()["error"]["details"]["limit"] == 2
    with tenant_scope(acme.id):
        assert Endpoint.objects.count() == 2
    # Another tenant's count is its own.
    assert create(other, 1).status_code == 201


@pytest.mark.postgres
def test_creates_at_once_cannot_pass_the_limit(committed_db, settings):
    settings.WEBHOOK_MAX_ENDPOINTS_PER_TENANT = 3
    acme = TenantFactory()
    workers = 8
    admins = [tenant_admin(acme) for _ in range(1)] * workers
    start, answers, errors = threading.Barrier(workers), [], []

    def make(n: int) -> None:
        try:
            start.wait()
            answers.append(create(admins[n], n).status_code)
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=make, args=(n,)) for n in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert sorted(answers) == [201] * 3 + [409] * 5
    with operator_scope():
        assert Endpoint.objects.filter(tenant_id=acme.id).count() == 3


@pytest.mark.embedded
def test_finished_deliveries_past_their_retention_go_with_their_tries_and_pending_ones_stay(
    committed_db, settings
):
    settings.WEBHOOK_DELIVERY_RETENTION_DAYS = 30
    acme = TenantFactory()
    long_ago = timezone.now() - timedelta(days=31)
    with tenant_scope(acme.id):
        endpoint = EndpointFactory(tenant=acme)
        old_ok = DeliveryFactory(tenant=acme, endpoint=endpoint, status="succeeded", completed_at=long_ago)
        old_failed = DeliveryFactory(tenant=acme, endpoint=endpoint, status="failed", completed_at=long_ago)
        recent = DeliveryFactory(
            tenant=acme, endpoint=endpoint, status="succeeded", completed_at=timezone.now()
        )
        pending = DeliveryFactory(tenant=acme, endpoint=endpoint, status="pending")
        for delivery in (old_ok, old_failed, recent):
            DeliveryAttemptFactory(tenant=acme, delivery=delivery)
        Message.objects.filter(pk__in=[old_ok.message_id, old_failed.message_id]).update(
            dispatched_at=long_ago
        )
    Delivery.unscoped.filter(pk=pending.pk).update(created_at=long_ago)

    assert deliveries_prune(batch=1) == 2
    with operator_scope():
        assert set(Delivery.objects.values_list("pk", flat=True)) == {recent.pk, pending.pk}
        assert set(DeliveryAttempt.objects.values_list("delivery_id", flat=True)) == {recent.pk}
        assert not Message.objects.filter(pk__in=[old_ok.message_id, old_failed.message_id]).exists()
        assert Message.objects.filter(pk__in=[recent.message_id, pending.message_id]).count() == 2
    # The command does the same (for a server without a broker); nothing is left to go.
    call_command("prune_webhook_deliveries")
    with operator_scope():
        assert Delivery.objects.count() == 2


@pytest.mark.embedded
def test_send_again_takes_the_right_to_change_endpoints(committed_db):
    acme = TenantFactory()
    with tenant_scope(acme.id):
        delivery = DeliveryFactory(tenant=acme, status="failed", completed_at=timezone.now())
    viewer = make_operator("hooks-viewer@coditect.test")
    with operator_scope():
        viewer.user_permissions.add(
            Permission.objects.get(codename="view_delivery"), Permission.objects.get(codename="view_endpoint")
        )
    client = Client()
    with operator_scope():
        client.force_login(viewer)
    listed = client.get(reverse("admin:webhooks_delivery_changelist"))
    assert listed.status_code == 200 and "Send the selected deliveries again" not in listed.content.decode()
    client.post(
        reverse("admin:webhooks_delivery_changelist"),
        {"action": "redeliver", "_selected_action": [str(delivery.pk)], "index": "0"},
    )
    with operator_scope():
        assert Delivery.objects.count() == 1  # nothing sent again

    with operator_scope():
        viewer.user_permissions.add(Permission.objects.get(codename="change_endpoint"))
        viewer = type(viewer).objects.get(pk=viewer.pk)  # permissions read anew
        client.force_login(viewer)
    listed = client.get(reverse("admin:webhooks_delivery_changelist"))
    assert "Send the selected deliveries again" in listed.content.decode()


@pytest.mark.embedded
def test_the_console_form_says_the_limit_and_makes_nothing(committed_db, settings):
    settings.WEBHOOK_MAX_ENDPOINTS_PER_TENANT = 1
    acme = TenantFactory()
    with tenant_scope(acme.id):
        EndpointFactory(tenant=acme)
    operator = make_operator("hooks-admin@coditect.test", is_superuser=True)
    client = Client()
    with operator_scope():
        client.force_login(operator)
    refused = client.post(
        reverse("admin:webhooks_endpoint_add"),
        {"tenant": str(acme.pk), "url": "https://hooks.example.com/in", "event_types": ["lease.acquired"]},
    )
    assert refused.status_code == 200 and "At most 1 webhook endpoints" in refused.content.decode()
    with operator_scope():
        assert Endpoint.objects.filter(tenant_id=acme.id).count() == 1
