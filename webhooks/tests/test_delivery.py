"""Outbound webhooks end to end, with real commits (the sender runs on the
operator path, a connection of its own): a loopback server receives what
the server sends, and the `standardwebhooks` library verifies it."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core import mail
from standardwebhooks.webhooks import Webhook

from audit.events import Event
from audit.services import audit_record
from coditect.personas import api_client, tenant_admin, tenant_member
from licenses.services import license_create
from licenses.tests.conftest import acquire
from licenses.tests.factories import LicenseFactory
from tenants.scope import operator_scope, tenant_scope
from tenants.tests.factories import TenantFactory
from webhooks.models import Delivery, DeliveryStatus, Endpoint, Message
from webhooks.services import deliveries_sweep

pytestmark = [pytest.mark.postgres]


class Receiver:
    """A loopback HTTP server that answers `status` and keeps what it got."""

    def __init__(self) -> None:
        self.status = 204
        self.received: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def acme_hooks(committed_db, eager_tasks, receiver, settings):
    settings.DEBUG = True  # a loopback target, over http://
    tenant = TenantFactory(name="Acme", slug="acme")
    admin = tenant_admin(tenant)
    answer = admin.client.post(
        "/api/v1/webhooks/endpoints",
        {"url": receiver.url, "event_types": ["lease.acquired", "license.created"]},
        format="json",
    )
    assert answer.status_code == 201, answer.content
    return tenant, admin, answer.json()


def deliveries(endpoint_id) -> list[Delivery]:
    with operator_scope():
        return list(
            Delivery.objects.filter(endpoint_id=endpoint_id).select_related("message").order_by("created_at")
        )


def test_a_signed_lease_acquired_reaches_the_endpoint_and_verifies(acme_hooks, receiver):
    tenant, _admin, endpoint = acme_hooks
    assert endpoint["secret"].startswith("whsec_")
    license = LicenseFactory(tenant=tenant)
    assert acquire(tenant_member(tenant), license).status_code == 201

    assert len(receiver.received) == 1
    headers, body = receiver.received[0]
    # Verified by an independent Standard Webhooks implementation.
    payload = Webhook(endpoint["secret"]).verify(body, headers)
    assert payload["type"] == "lease.acquired"
    assert payload["data"]["tenant_id"] == str(tenant.id)
    assert payload["data"]["target_id"] == str(license.id)
    assert headers["webhook-id"].startswith("msg_")
    with pytest.raises(Exception, match=r"(?i)signature"):
        Webhook(endpoint["secret"]).verify(body + b" ", headers)
    [delivery] = deliveries(endpoint["id"])
    assert (delivery.status, delivery.attempts, delivery.last_response_code) == (
        DeliveryStatus.SUCCEEDED,
        1,
        204,
    )

    # The API's delivery log says the same; the secret is never shown again.
    listed = _admin.client.get(f"/api/v1/webhooks/endpoints/{endpoint['id']}/deliveries").json()["results"]
    assert [(d["event_type"], d["status"], d["last_response_code"]) for d in listed] == [
        ("lease.acquired", "succeeded", 204)
    ]
    shown = _admin.client.get(f"/api/v1/webhooks/endpoints/{endpoint['id']}").json()
    assert "secret" not in shown


def test_no_secret_in_the_payload(acme_hooks, receiver):
    tenant, _admin, endpoint = acme_hooks
    _license, key = license_create(tenant=tenant, max_seats=3)
    [(_headers, body)] = receiver.received
    assert json.loads(body)["type"] == "license.created"
    assert key not in body.decode()
    assert endpoint["secret"] not in body.decode()


def test_a_500_is_retried_with_backoff_then_the_endpoint_is_disabled(
    acme_hooks, receiver, settings, app_clock
):
    settings.WEBHOOK_RETRY_BASE_SECONDS = 10
    settings.WEBHOOK_DISABLE_AFTER_FAILURES = 3
    settings.WEBHOOK_DISABLE_AFTER_SECONDS = 0
    settings.WEBHOOK_MAX_ATTEMPTS = 5
    tenant, admin, endpoint = acme_hooks
    receiver.status = 500
    license = LicenseFactory(tenant=tenant)
    member = tenant_member(tenant)
    assert acquire(member, license).status_code == 201
    assert len(receiver.received) == 1

    waits, shifted = [], 0.0
    for tries in (2, 3):
        [delivery] = deliveries(endpoint["id"])
        assert delivery.status == DeliveryStatus.PENDING and delivery.last_response_code == 500
        with operator_scope():
            last_try = delivery.attempt_log.order_by("-attempted_at").first().attempted_at
        wait = (delivery.next_attempt_at - last_try).total_seconds()
        ceiling = 10 * 2 ** (tries - 2)
        assert ceiling / 2 <= wait <= ceiling + 1, (tries, wait)
        waits.append(wait)
        # Not yet due: the sweep leaves it.
        deliveries_sweep()
        assert len(receiver.received) == tries - 1
        shifted += wait + 1
        app_clock(shifted)
        deliveries_sweep()
        assert len(receiver.received) == tries
    # The same message each time.
    assert len({headers["webhook-id"] for headers, _ in receiver.received}) == 1

    with operator_scope():
        disabled = Endpoint.objects.get(pk=endpoint["id"])
    assert not disabled.enabled and disabled.failure_count == 3 and disabled.disabled_at
    [delivery] = deliveries(endpoint["id"])
    assert delivery.status == DeliveryStatus.FAILED and delivery.attempts == 3
    [email] = mail.outbox
    assert email.to == [admin.user.email] and receiver.url in email.body

    # Nothing more reaches it, and the API says why it stopped.
    assert acquire(member, license, fingerprint="machine-0002").status_code == 201
    app_clock(shifted + 3600)
    deliveries_sweep()
    assert len(receiver.received) == 3
    admin.client = api_client(admin.user)  # a token of the moved clock
    shown = admin.client.get(f"/api/v1/webhooks/endpoints/{endpoint['id']}").json()
    assert shown["enabled"] is False and "3 failed" in shown["disabled_reason"]
    ping = admin.client.post(f"/api/v1/webhooks/endpoints/{endpoint['id']}/ping")
    assert ping.status_code == 409 and ping.json()["error"]["code"] == "webhook_endpoint_disabled"
    redeliver = admin.client.post(f"/api/v1/webhooks/deliveries/{delivery.id}/redeliver")
    assert redeliver.status_code == 409


def test_redelivery_sends_the_same_message_again(acme_hooks, receiver, settings):
    settings.WEBHOOK_MAX_ATTEMPTS = 1
    tenant, admin, endpoint = acme_hooks
    receiver.status = 500
    assert acquire(tenant_member(tenant), LicenseFactory(tenant=tenant)).status_code == 201
    [failed] = deliveries(endpoint["id"])
    assert failed.status == DeliveryStatus.FAILED

    receiver.status = 200
    answer = admin.client.post(f"/api/v1/webhooks/deliveries/{failed.id}/redeliver")
    assert answer.status_code == 202, answer.content
    # Sent once the request commits (here, at once: no broker).
    newest = admin.client.get(f"/api/v1/webhooks/endpoints/{endpoint['id']}/deliveries").json()["results"][0]
    assert newest["id"] == answer.json()["id"] and newest["status"] == "succeeded"
    assert len(receiver.received) == 2
    (first, _), (again, body) = receiver.received
    assert first["webhook-id"] == again["webhook-id"]
    assert Webhook(endpoint["secret"]).verify(body, again)["type"] == "lease.acquired"

    ping = admin.client.post(f"/api/v1/webhooks/endpoints/{endpoint['id']}/ping")
    assert ping.status_code == 202
    assert json.loads(receiver.received[-1][1])["type"] == "webhook.ping"


def test_a_change_that_rolls_back_sends_nothing(acme_hooks, receiver):
    tenant, _admin, _endpoint = acme_hooks
    license = LicenseFactory(tenant=tenant)

    class Undone(Exception):
        pass

    with pytest.raises(Undone), tenant_scope(tenant.id):
        audit_record(
            action=Event.LEASE_ACQUIRED, tenant_id=tenant.id, target=license, details={"created": True}
        )
        raise Undone
    with operator_scope():
        assert not Message.objects.filter(event_type="lease.acquired").exists()
    assert receiver.received == []

    # The same change, committed, is sent.
    with tenant_scope(tenant.id):
        audit_record(
            action=Event.LEASE_ACQUIRED, tenant_id=tenant.id, target=license, details={"created": True}
        )
    assert len(receiver.received) == 1


def test_an_operator_wide_endpoint_hears_every_tenant_and_tenants_do_not_see_it(acme_hooks, receiver):
    from webhooks.services import endpoint_create

    _tenant, admin, _endpoint = acme_hooks
    with operator_scope():
        operator_endpoint = endpoint_create(tenant_id=None, url=receiver.url, event_types=["license.created"])
    globex = TenantFactory(name="Globex", slug="globex")
    license_create(tenant=globex, max_seats=1)  # Acme's endpoint does not hear Globex
    [(headers, body)] = receiver.received
    assert Webhook(operator_endpoint.secret).verify(body, headers)["data"]["tenant_id"] == str(globex.id)
    assert admin.client.get(f"/api/v1/webhooks/endpoints/{operator_endpoint.id}").status_code == 404
    listed = admin.client.get("/api/v1/webhooks/endpoints").json()["results"]
    assert str(operator_endpoint.id) not in {item["id"] for item in listed}


def test_a_short_outage_of_many_failed_tries_does_not_disable_the_endpoint(acme_hooks, receiver, settings):
    """Many tries fail within a minute (a receiver restarting): the endpoint
    stays on until it has also been failing for WEBHOOK_DISABLE_AFTER_SECONDS."""
    settings.WEBHOOK_DISABLE_AFTER_FAILURES = 2
    settings.WEBHOOK_DISABLE_AFTER_SECONDS = 3600
    tenant, _admin, endpoint = acme_hooks
    receiver.status = 500
    member = tenant_member(tenant)
    for n in range(3):
        license = LicenseFactory(tenant=tenant)
        assert acquire(member, license, fingerprint=f"machine-000{n}").status_code == 201
    assert len(receiver.received) == 3
    with operator_scope():
        still = Endpoint.objects.get(pk=endpoint["id"])
    assert still.failure_count == 3 and still.enabled and still.failing_since is not None
