"""Helpers for the SDK's unit tests: locally made keys, tokens and signed key
sets, and a tiny HTTP server whose answers each test scripts."""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ed25519

ISSUER = "coditect-license-server"
KEYSET_TYP = "coditect-keyset+jwt"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class SigningKey:
    private: ed25519.Ed25519PrivateKey = field(default_factory=ed25519.Ed25519PrivateKey.generate)
    kid: str = field(default_factory=lambda: uuid.uuid4().hex[:16])

    @property
    def jwk(self) -> dict[str, str]:
        raw = self.private.public_key().public_bytes_raw()
        return {
            "kty": "OKP",
            "crv": "Ed25519",
            "x": b64url(raw),
            "kid": self.kid,
            "alg": "EdDSA",
            "use": "sig",
        }

    @property
    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.jwk]}

    def token(self, *, kid: str | None = None, **claims: Any) -> str:
        return jwt.encode(claims, self.private, algorithm="EdDSA", headers={"kid": kid or self.kid})


def signed_keyset(
    root: SigningKey,
    keys: list[dict[str, Any]],
    *,
    now: float | None = None,
    lifetime: float = 30 * 86400,
    issuer: str = ISSUER,
    typ: str = KEYSET_TYP,
) -> str:
    """A key set signed as the server signs it (licenses.keyset), by `root`."""
    now = time.time() if now is None else now
    claims = {"iss": issuer, "iat": int(now), "exp": int(now + lifetime), "keys": keys}
    return jwt.encode(claims, root.private, algorithm="EdDSA", headers={"kid": root.kid, "typ": typ})


def claims_for(
    *,
    fingerprint: str,
    license_id: str | None = None,
    session_id: str | None = None,
    now: float | None = None,
    lifetime: float = 3600,
    entitlements: dict | None = None,
) -> dict[str, Any]:
    now = time.time() if now is None else now
    return {
        "iss": ISSUER,
        "sub": license_id or str(uuid.uuid4()),
        "tid": str(uuid.uuid4()),
        "sid": session_id or uuid.uuid4().hex,
        "fp": fingerprint,
        "ent": entitlements if entitlements is not None else {"pro": True},
        "iat": int(now),
        "nbf": int(now),
        "exp": int(now + lifetime),
    }


def iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat()


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    at: float


Reply = tuple[int, dict[str, str], Any]


class StubServer:
    """A loopback HTTP server; `route(method, path)` sets what it answers
    (a reply, or a callable taking the request and returning one)."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.routes: dict[tuple[str, str], Callable[[Recorded], Reply] | list[Reply] | Reply] = {}
        self._lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                path = self.path.split("?", 1)[0]
                request = Recorded(self.command, self.path, dict(self.headers), body, time.monotonic())
                status, headers, payload = stub._reply(self.command, path, request)
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                if "Content-Type" not in headers:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

    def route(self, method: str, path: str, reply) -> None:
        with self._lock:
            self.routes[(method, path)] = reply

    def _reply(self, method: str, path: str, request: Recorded) -> Reply:
        with self._lock:
            self.requests.append(request)
            reply = self.routes.get((method, path))
            if isinstance(reply, list):
                reply = reply.pop(0) if len(reply) > 1 else reply[0]
        if reply is None:
            return 404, {}, {"error": {"code": "not_found", "message": "no route", "details": {}}}
        if callable(reply):
            return reply(request)
        return reply

    def calls(self, method: str, path: str) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.method == method and r.path.split("?", 1)[0] == path]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def error(status: int, code: str, headers: dict[str, str] | None = None, **details) -> Reply:
    return (
        status,
        headers or {},
        {"error": {"code": code, "message": code.replace("_", " "), "details": details}},
    )


class FakeLicenseServer:
    """The license endpoints on a StubServer, minting real tokens with a local
    key, so the client's own logic can be tested without the Django server
    (the end-to-end tests drive the real one)."""

    def __init__(self, stub: StubServer, *, key: SigningKey | None = None) -> None:
        self.stub = stub
        self.keys = [key or SigningKey()]  # the signing key first, then retired ones
        self.root = SigningKey()  # the key set root key: what applications pin
        self.license_id = str(uuid.uuid4())
        self.heartbeat_interval = 0.2
        self.token_lifetime = 3600.0
        self.sessions: dict[str, str] = {}  # fingerprint -> session id
        self.borrowed: dict[str, float] = {}
        self.now: Callable[[], float] = time.time
        stub.route("GET", "/.well-known/jwks.json", lambda request: (200, {}, self.jwks))
        stub.route("GET", "/.well-known/coditect-keyset.jws", self.keyset)
        stub.route("POST", "/api/v1/licenses/acquire", self.acquire)
        stub.route("POST", "/api/v1/licenses/heartbeat", self.heartbeat)
        stub.route("DELETE", "/api/v1/licenses/release", self.release)
        stub.route("POST", "/api/v1/licenses/borrow", self.borrow)

    @property
    def key(self) -> SigningKey:
        return self.keys[0]

    @property
    def jwks(self) -> dict[str, Any]:
        return {"keys": [key.jwk for key in self.keys]}

    @property
    def trust(self) -> dict[str, Any]:
        """What an application built for this server passes to LicenseClient."""
        return {"trusted_root_keys": self.root.jwks}

    def rotate(self) -> SigningKey:
        """A new license signing key, first; the old one stays listed (retired)."""
        self.keys.insert(0, SigningKey())
        return self.key

    def keyset(self, request: Recorded) -> Reply:
        body = signed_keyset(self.root, self.jwks["keys"], now=self.now()).encode()
        return 200, {"Content-Type": "application/jose"}, body

    def _checkout(self, fingerprint: str, session_id: str, *, created: bool, lifetime: float) -> dict:
        now = self.now()
        claims = claims_for(
            fingerprint=fingerprint,
            license_id=self.license_id,
            session_id=session_id,
            now=now,
            lifetime=lifetime,
        )
        return {
            "session_id": session_id,
            "token": self.key.token(**claims),
            "token_expires_at": iso(claims["exp"]),
            "expires_at": iso(now + 3 * self.heartbeat_interval),
            "borrowed_until": iso(self.borrowed[session_id]) if session_id in self.borrowed else None,
            "heartbeat_interval": self.heartbeat_interval,
            "seats": {"used": len(self.sessions), "max": 5},
            "license": {"id": self.license_id, "expires_at": None, "entitlements": {"pro": True}},
        }

    def acquire(self, request: Recorded) -> Reply:
        fingerprint = request.body["hardware_fingerprint"]
        created = fingerprint not in self.sessions
        session_id = self.sessions.setdefault(fingerprint, uuid.uuid4().hex)
        body = self._checkout(fingerprint, session_id, created=created, lifetime=self.token_lifetime)
        return (201 if created else 200), {}, body

    def _claims(self, request: Recorded) -> dict | None:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        for key in self.keys:
            try:
                return jwt.decode(token, key.private.public_key(), algorithms=["EdDSA"])
            except jwt.InvalidTokenError:
                continue
        return None

    def heartbeat(self, request: Recorded) -> Reply:
        claims = self._claims(request)
        if claims is None:
            return error(401, "not_authenticated")
        if self.sessions.get(claims["fp"]) != claims["sid"]:
            return error(404, "session_not_found")
        body = {
            "session_id": claims["sid"],
            "expires_at": iso(self.now() + 3 * self.heartbeat_interval),
            "heartbeat_interval": self.heartbeat_interval,
        }
        return 200, {}, body

    def release(self, request: Recorded) -> Reply:
        claims = self._claims(request)
        if claims is None:
            return error(401, "not_authenticated")
        if self.sessions.get(claims["fp"]) != claims["sid"]:
            return error(404, "session_not_found")
        del self.sessions[claims["fp"]]
        self.borrowed.pop(claims["sid"], None)
        return 200, {}, {"session_id": claims["sid"], "released": True}

    def borrow(self, request: Recorded) -> Reply:
        claims = self._claims(request)
        if claims is None or self.sessions.get(claims["fp"]) != claims["sid"]:
            return error(404, "session_not_found")
        hours = request.body["hours"]
        self.borrowed[claims["sid"]] = self.now() + hours * 3600
        body = self._checkout(claims["fp"], claims["sid"], created=False, lifetime=hours * 3600)
        return 200, {}, body

    def forget_sessions(self) -> None:
        """What a flushed ledger looks like from outside."""
        self.sessions.clear()
