"""The webhooks API's refusals: SSRF targets, bad input, another tenant's
endpoints (404, as an unknown id), and the delivery-time address check."""

from __future__ import annotations

import socket

import pytest

from tenants.scope import tenant_scope
from webhooks.models import Endpoint
from webhooks.tests.factories import DeliveryFactory, EndpointFactory
from webhooks.transport import TargetForbidden, target_resolve

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]

ENDPOINTS = "/api/v1/webhooks/endpoints"


def create(persona, url, event_types=("lease.acquired",)):
    return persona.client.post(ENDPOINTS, {"url": url, "event_types": list(event_types)}, format="json")


def endpoint_count(tenant) -> int:
    with tenant_scope(tenant.id):
        return Endpoint.objects.count()


@pytest.mark.parametrize(
    "url",
    [
        "https://10.0.0.5/hooks",
        "https://192.168.1.20/hooks",
        "https://169.254.169.254/latest/meta-data",
        "https://[::ffff:10.0.0.1]/hooks",
        "https://[fd00::1]/hooks",
        "https://[fec0::1]/hooks",
        "https://0.0.0.0/hooks",
        # IPv4 inside IPv6: 6to4 of 127.0.0.1 and of the metadata address, Teredo of 10.0.0.1.
        "https://[2002:7f00:1::1]/hooks",
        "https://[2002:a9fe:a9fe::1]/hooks",
        "https://[2001:0:4136:e378:8000:63bf:f5ff:fffe]/hooks",
        # 10.0.0.1 as the C library also reads it.
        "https://167772161/hooks",
        "https://0x0a000001/hooks",
        "https://10.1/hooks",
    ],
)
def test_a_target_in_a_private_or_reserved_range_is_refused(admin, url):
    answer = create(admin, url)
    assert answer.status_code == 400, answer.content
    assert answer.json()["error"]["code"] == "webhook_target_forbidden"
    assert endpoint_count(admin.tenant) == 0


def test_private_targets_allowed_only_by_the_setting(admin, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    assert create(admin, "https://10.0.0.5/hooks").status_code == 201


def test_http_and_loopback_only_with_debug(admin, settings):
    settings.DEBUG = False
    for url in ("http://hooks.example.com/in", "https://127.0.0.1/in", "https://localhost/in"):
        answer = create(admin, url)
        assert answer.json()["error"]["code"] == "webhook_target_forbidden", url
    settings.DEBUG = True
    assert create(admin, "http://127.0.0.1:9/in").status_code == 201


def test_bad_input_is_400_and_makes_nothing(admin):
    for body in (
        {"url": "https://hooks.example.com/in", "event_types": ["auth.login"]},
        {"url": "https://hooks.example.com/in", "event_types": []},
        {"url": "not a url", "event_types": ["lease.acquired"]},
        {"url": "https://user:pw@hooks.example.com/in", "event_types": ["lease.acquired"]},
    ):
        answer = admin.client.post(ENDPOINTS, body, format="json")
        assert answer.status_code == 400, body
    assert endpoint_count(admin.tenant) == 0


def test_the_secret_is_shown_once_and_the_endpoint_can_be_changed_and_removed(admin):
    made = create(admin, "https://hooks.example.com/in").json()
    assert made["secret"].startswith("whsec_")
    path = f"{ENDPOINTS}/{made['id']}"
    assert "secret" not in admin.client.get(path).json()
    assert [item["id"] for item in admin.client.get(ENDPOINTS).json()["results"]] == [made["id"]]
    changed = admin.client.patch(path, {"event_types": ["lease.denied", "license.suspended"]}, format="json")
    assert changed.json()["event_types"] == ["lease.denied", "license.suspended"]
    refused = admin.client.patch(path, {"url": "https://10.1.2.3/"}, format="json")
    assert refused.json()["error"]["code"] == "webhook_target_forbidden"
    assert admin.client.delete(path).status_code == 204
    assert admin.client.get(path).status_code == 404


def test_members_who_are_not_admins_cannot_manage_endpoints(member):
    assert create(member, "https://hooks.example.com/in").status_code == 403


def test_another_tenants_endpoint_is_unreachable(admin, outsider):
    theirs = EndpointFactory(tenant=outsider.tenant)
    delivery = DeliveryFactory(tenant=outsider.tenant, endpoint=theirs)
    path = f"{ENDPOINTS}/{theirs.id}"
    for method, url in (
        ("get", path),
        ("patch", path),
        ("delete", path),
        ("post", f"{path}/ping"),
        ("get", f"{path}/deliveries"),
        ("post", f"/api/v1/webhooks/deliveries/{delivery.id}/redeliver"),
    ):
        answer = getattr(admin.client, method)(url, {"description": "mine now"}, format="json")
        assert answer.status_code == 404, (method, url)
        assert answer.json()["error"]["code"] == "not_found"
    assert admin.client.get(ENDPOINTS).json()["results"] == []
    with tenant_scope(outsider.tenant.id):
        assert Endpoint.objects.get(pk=theirs.pk).description == ""


def test_delivery_resolves_once_and_checks_every_address(settings, monkeypatch):
    """A name is checked where it resolves at delivery time (a name that
    resolved elsewhere when it was saved gains nothing), and the connection
    goes to the address checked."""
    answers = {"rebind.example.com": ["93.184.216.34", "10.0.0.7"], "public.example.com": ["93.184.216.34"]}
    calls = []

    def getaddrinfo(host, port, *args, **kwargs):
        calls.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port)) for address in answers[host]]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    with pytest.raises(TargetForbidden, match="private"):
        target_resolve("https://rebind.example.com/in")
    target = target_resolve("https://public.example.com/in")
    assert (target.address, target.host, target.port) == ("93.184.216.34", "public.example.com", 443)
    assert calls == ["rebind.example.com", "public.example.com"]


def test_a_receiver_that_drips_its_answer_is_cut_off_at_the_timeout(settings):
    """The timeout holds the whole try, not each read: one header line every
    0.3 s would otherwise keep a worker for as long as the receiver likes."""
    import threading
    import time as clock

    from webhooks.transport import webhook_post

    settings.DEBUG = True  # a loopback receiver
    settings.WEBHOOK_TIMEOUT_SECONDS = 1.0
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]

    def drip():
        conn, _ = listener.accept()
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\n")
        try:
            for n in range(40):
                clock.sleep(0.3)
                conn.sendall(f"X-Drip-{n}: 1\r\n".encode())
        except OSError:
            pass
        finally:
            conn.close()

    threading.Thread(target=drip, daemon=True).start()
    started = clock.monotonic()
    with pytest.raises((TimeoutError, OSError)):
        webhook_post(f"http://127.0.0.1:{port}/hooks", body=b"{}", headers={})
    assert clock.monotonic() - started < 3
    listener.close()
