"""POSTing a webhook without letting its address reach what it must not (SSRF).

An endpoint's URL is checked twice: when it is saved (`target_check_url`:
scheme, and a literal address's range) and at every delivery
(`target_resolve`): the host is resolved once, every address it resolves to is
checked, and the connection goes to that checked address, so a DNS answer
that changes between check and connect (rebinding) reaches nothing new. HTTPS
only unless DEBUG; loopback only with DEBUG; private, link-local, reserved,
multicast and unspecified ranges only with WEBHOOK_ALLOW_PRIVATE_TARGETS.
Redirects are not followed (http.client never does; a 3xx is a failure), each
try has a timeout, and at most WEBHOOK_RESPONSE_MAX_BYTES of the answer is read.
Over https:// the certificate is checked against the URL's host name (SNI),
trusted by the system's CAs and WEBHOOK_CA_FILE's, while the connection goes
to the checked address all the same.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import threading
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings


class TargetForbidden(Exception):
    """The URL may not be delivered to; the message says why."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str
    address: str


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes


def _split(url: str):
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise TargetForbidden("Not a URL.") from None
    if parts.scheme not in ("https", "http"):
        raise TargetForbidden("Only https:// URLs are allowed.")
    if parts.scheme == "http" and not settings.DEBUG:
        raise TargetForbidden("Only https:// URLs are allowed (http:// only with DEBUG on).")
    if not parts.hostname:
        raise TargetForbidden("The URL has no host.")
    if parts.username or parts.password:
        raise TargetForbidden("The URL may not carry credentials.")
    return parts, port or (443 if parts.scheme == "https" else 80)


def address_check(address: str) -> None:
    """TargetForbidden unless this address may be delivered to. Site-local
    IPv6 (fec0::/10, deprecated but still routed inside some networks) is
    refused as private, though Python's ipaddress calls it global."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        # An IPv4 address carried inside an IPv6 one (mapped, 6to4, Teredo) is
        # judged as the IPv4 address it reaches.
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is not None:
            address_check(str(embedded))
            if ip.ipv4_mapped is not None:
                return
    if ip.is_loopback:
        if not settings.DEBUG:
            raise TargetForbidden("A loopback address is allowed only with DEBUG on.")
        return
    if (
        ip.is_private
        or ip.is_link_local
        or ip.is_reserved
        or ip.is_multicast
        or ip.is_unspecified
        or not ip.is_global
        or (isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local)
    ) and not settings.WEBHOOK_ALLOW_PRIVATE_TARGETS:
        raise TargetForbidden(
            f"{ip} is in a private or reserved range (WEBHOOK_ALLOW_PRIVATE_TARGETS is off)."
        )


def target_check_url(url: str) -> None:
    """The checks that need no DNS (an endpoint being saved): the scheme, and
    the range of a host written as an address or as `localhost`."""
    parts, _port = _split(url)
    host = parts.hostname
    if host == "localhost" or host.endswith(".localhost"):
        host = "127.0.0.1"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        # IPv4 in the C library's other spellings (167772161, 0x0a000001, 10.1)
        # is an address too, whatever ipaddress says.
        try:
            host = str(ipaddress.IPv4Address(socket.inet_aton(host)))
        except (OSError, ValueError):
            return  # a name: resolved and checked at each delivery
    address_check(host)


def host_addresses(host: str, port: int) -> list[str]:
    """The addresses a host name resolves to: the sender's one resolver (the
    connection itself never resolves again)."""
    return [info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


def target_resolve(url: str) -> Target:
    parts, port = _split(url)
    try:
        addresses = host_addresses(parts.hostname, port)
    except (socket.gaierror, UnicodeError) as error:
        raise TargetForbidden(f"The host does not resolve: {error}") from None
    if not addresses:
        raise TargetForbidden("The host does not resolve.")
    # Every address it resolves to must pass, not just the one used.
    for address in addresses:
        address_check(address)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(scheme=parts.scheme, host=parts.hostname, port=port, path=path, address=addresses[0])


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, target: Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self._address = target.address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


def tls_context() -> ssl.SSLContext:
    """The system's trust, plus WEBHOOK_CA_FILE's CAs if set (a vendor whose
    receivers carry certificates of a private CA); certificates and host
    names are always checked."""
    context = ssl.create_default_context()
    if settings.WEBHOOK_CA_FILE:
        context.load_verify_locations(cafile=settings.WEBHOOK_CA_FILE)
    return context


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, target: Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout, context=tls_context())
        self._address = target.address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        # The certificate is checked against the URL's host name, not the address.
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def webhook_post(url: str, *, body: bytes, headers: dict[str, str]) -> Answer:
    """One POST to the checked, resolved address. TargetForbidden for a URL
    that may not be reached; OSError (http.client.HTTPException too) for a
    connection that fails or times out."""
    target = target_resolve(url)
    timeout = settings.WEBHOOK_TIMEOUT_SECONDS
    connection_class = _PinnedHTTPSConnection if target.scheme == "https" else _PinnedHTTPConnection
    connection = connection_class(target, timeout)
    # The timeout holds each socket operation; this holds the whole try, so a
    # receiver that drips its answer a byte at a time cannot keep a worker.
    cut_off = threading.Event()
    deadline = threading.Timer(timeout, _abort, args=(connection, cut_off))
    deadline.daemon = True
    deadline.start()
    try:
        connection.request(
            "POST",
            target.path,
            body=body,
            headers={
                **headers,
                "Content-Type": "application/json",
                "User-Agent": "CODITECT-Webhooks/1",
            },
        )
        response = connection.getresponse()
        answer = Answer(status=response.status, body=response.read(settings.WEBHOOK_RESPONSE_MAX_BYTES))
    except (OSError, http.client.HTTPException, ValueError, AttributeError):
        if not cut_off.is_set():
            raise
        answer = None
    finally:
        deadline.cancel()
        connection.close()
    # An answer cut off at the deadline may even parse as a short one: it is none.
    if cut_off.is_set() or answer is None:
        raise TimeoutError(f"no whole answer within {timeout:g} s")
    return answer


def _abort(connection, cut_off: threading.Event) -> None:
    cut_off.set()
    sock = getattr(connection, "sock", None)
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
