"""Keys, PEM files, licenses and leases for the token-signing tests.

Keys are made once per test process: RSA generation is slow and every test
only needs keys that differ from each other, not fresh ones.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from licenses.ledger.base import Lease
from licenses.models import License


def utcnow() -> datetime:
    return datetime.now(UTC)


@functools.cache
def ed25519_key(index: int = 0) -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


@functools.cache
def rsa_key(bits: int = 2048, index: int = 0) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def private_pem(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def public_pem(key) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def write_pem(path: Path, *keys, public: bool = False) -> str:
    path.write_bytes(b"".join(public_pem(key) if public else private_pem(key) for key in keys))
    return str(path)


def unsaved_license(**fields) -> License:
    fields.setdefault("id", uuid.uuid4())
    fields.setdefault("tenant_id", uuid.uuid4())
    fields.setdefault("entitlements", {"pro": True, "seats_per_user": 2})
    fields.setdefault("max_seats", 5)
    return License(**fields)


def lease_of(license: License, **fields) -> Lease:
    fields.setdefault("session_id", uuid.uuid4().hex)
    fields.setdefault("fingerprint", "fp-" + uuid.uuid4().hex[:16])
    return Lease(
        license_id=license.id,
        tenant_id=license.tenant_id,
        user_id=None,
        created_at=utcnow(),
        expires_at=utcnow() + timedelta(minutes=6),
        **fields,
    )


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segment(value: dict) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def hs256_token(header: dict, claims: dict, secret: bytes) -> str:
    """An HMAC token made by hand: PyJWT rightly refuses to make one with a PEM."""
    signing_input = f"{segment(header)}.{segment(claims)}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def tampered(token: str) -> str:
    """The token with one payload character changed (the signature left as is)."""
    header, payload, signature = token.split(".")
    middle = len(payload) // 2
    changed = "A" if payload[middle] != "A" else "B"
    return f"{header}.{payload[:middle]}{changed}{payload[middle + 1 :]}.{signature}"
