"""Deliveries over real TLS: a local HTTPS receiver with certificates made
here (a private CA, trusted through WEBHOOK_CA_FILE). The host name
`hooks.test` resolves to 127.0.0.1 only in the sender's own resolver
(transport.host_addresses), so a delivery that arrives was connected to the
address that was checked, while the certificate was checked by name (SNI).

- a certificate of the trusted CA for the name delivers;
- one of that CA for another name fails, and the delivery log says why;
- a self-signed one (not trusted) fails, and the log says why.
"""

from __future__ import annotations

import datetime
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from standardwebhooks.webhooks import Webhook

from coditect.personas import tenant_admin
from tenants.scope import operator_scope
from tenants.tests.factories import TenantFactory
from webhooks import transport
from webhooks.models import Delivery, DeliveryStatus

pytestmark = pytest.mark.postgres

HOST = "hooks.test"


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(subject: str, key, *, issuer_name: x509.Name, issuer_key, ca: bool, dns: str | None):
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    if dns:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(dns)]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def _key_pem(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A private CA and three server certificates: for hooks.test from the CA,
    for another name from the CA, and a self-signed one for hooks.test."""
    folder = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("CODITECT test CA")
    ca = _certificate("CODITECT test CA", ca_key, issuer_name=ca_name, issuer_key=ca_key, ca=True, dns=None)
    (folder / "ca.pem").write_bytes(_pem(ca))
    leaves = {}
    for label, dns, self_signed in (
        ("valid", HOST, False),
        ("other_name", "elsewhere.test", False),
        ("self_signed", HOST, True),
    ):
        key = ec.generate_private_key(ec.SECP256R1())
        certificate = _certificate(
            dns,
            key,
            issuer_name=_name(dns) if self_signed else ca_name,
            issuer_key=key if self_signed else ca_key,
            ca=False,
            dns=dns,
        )
        (folder / f"{label}.pem").write_bytes(_pem(certificate))
        (folder / f"{label}.key").write_bytes(_key_pem(key))
        leaves[label] = (folder / f"{label}.pem", folder / f"{label}.key")
    return {"ca": folder / "ca.pem", **leaves}


class TLSReceiver:
    """An HTTPS server on 127.0.0.1 that answers 204, keeping what it got and
    the name each client asked for (SNI)."""

    def __init__(self, certificate, key) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.server_names: list[str | None] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certificate, key)
        context.sni_callback = lambda _sock, name, _context: receiver.server_names.append(name)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.server.handle_error = lambda *args: None  # a refused handshake is the test's point
        self.url = f"https://{HOST}:{self.server.server_port}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def sender_resolves_the_test_host(monkeypatch):
    """hooks.test is 127.0.0.1 to the sender's resolver, and to nothing else."""
    asked = []
    real = transport.host_addresses

    def host_addresses(host, port):
        asked.append(host)
        return ["127.0.0.1"] if host == HOST else real(host, port)

    monkeypatch.setattr(transport, "host_addresses", host_addresses)
    return asked


@pytest.fixture
def acme(committed_db, eager_tasks, settings, pki, sender_resolves_the_test_host):
    settings.DEBUG = True  # a loopback address (TLS all the same)
    settings.WEBHOOK_MAX_ATTEMPTS = 1
    settings.WEBHOOK_CA_FILE = str(pki["ca"])
    tenant = TenantFactory(name="Acme", slug="acme")
    return tenant_admin(tenant)


def ping_over_tls(admin, receiver) -> tuple[dict, Delivery]:
    made = admin.client.post(
        "/api/v1/webhooks/endpoints", {"url": receiver.url, "event_types": ["lease.acquired"]}, format="json"
    )
    assert made.status_code == 201, made.content
    endpoint = made.json()
    assert admin.client.post(f"/api/v1/webhooks/endpoints/{endpoint['id']}/ping").status_code == 202
    with operator_scope():
        [delivery] = Delivery.objects.filter(endpoint_id=endpoint["id"]).prefetch_related("attempt_log")
    return endpoint, delivery


def test_a_certificate_of_a_trusted_ca_for_the_name_delivers(acme, pki, sender_resolves_the_test_host):
    receiver = TLSReceiver(*pki["valid"])
    try:
        endpoint, delivery = ping_over_tls(acme, receiver)
    finally:
        receiver.close()

    assert (delivery.status, delivery.last_response_code, delivery.last_error) == (
        DeliveryStatus.SUCCEEDED,
        204,
        "",
    )
    [(headers, body)] = receiver.received
    assert Webhook(endpoint["secret"]).verify(body, headers)["type"] == "webhook.ping"
    # Checked by name, connected to the address the sender resolved and checked
    # (no other resolver knows hooks.test).
    assert receiver.server_names == [HOST]
    assert sender_resolves_the_test_host == [HOST]


def test_a_certificate_for_another_name_fails_and_the_log_says_why(acme, pki):
    receiver = TLSReceiver(*pki["other_name"])
    try:
        _endpoint, delivery = ping_over_tls(acme, receiver)
    finally:
        receiver.close()

    assert delivery.status == DeliveryStatus.FAILED and delivery.last_response_code is None
    assert "CERTIFICATE_VERIFY_FAILED" in delivery.last_error
    assert f"not valid for '{HOST}'" in delivery.last_error
    [attempt] = delivery.attempt_log.all()
    assert attempt.error == delivery.last_error
    assert receiver.received == []


def test_a_self_signed_certificate_is_not_trusted(acme, pki):
    receiver = TLSReceiver(*pki["self_signed"])
    try:
        _endpoint, delivery = ping_over_tls(acme, receiver)
    finally:
        receiver.close()

    assert delivery.status == DeliveryStatus.FAILED
    assert "CERTIFICATE_VERIFY_FAILED" in delivery.last_error and "self-signed" in delivery.last_error
    assert receiver.received == []


def test_without_the_ca_file_the_private_ca_is_not_trusted(acme, pki, settings):
    settings.WEBHOOK_CA_FILE = ""
    receiver = TLSReceiver(*pki["valid"])
    try:
        _endpoint, delivery = ping_over_tls(acme, receiver)
    finally:
        receiver.close()

    assert delivery.status == DeliveryStatus.FAILED
    assert "CERTIFICATE_VERIFY_FAILED" in delivery.last_error
    assert receiver.received == []
