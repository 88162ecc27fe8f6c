"""The server's own user tokens.

Access tokens are compact JWS (EdDSA over Ed25519) signed with the auth key
ring (core.keyring), which is not the license signing key ring: a leak of one
never forges the other. The first key of AUTH_SIGNING_KEY_FILE signs and the
others verify until removed, so rotation needs no bookkeeping. Verification
looks `kid` up in that fixed set, accepts one algorithm and one token type,
and requires every claim it relies on.

Refresh tokens and invite codes are opaque random strings that carry their
tenant as a non-secret prefix (`<tenant uuid>.<secret>`): the lookup can run in
that tenant's scope as the app role, under row-level security, with no
cross-tenant read. The database keeps only their SHA-256 digest.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from core.keyring import Keyring, KeySet, TokenRejected

logger = logging.getLogger(__name__)

ALGORITHM = "EdDSA"
# RFC 9068: the type keeps an access token from being mistaken for any other JWT.
ACCESS_TOKEN_TYPE = "at+jwt"
# `sid` is the sign-in (the refresh-token family) the token was issued for:
# ending that sign-in ends its access tokens too (accounts.authentication).
REQUIRED_CLAIMS = ["iss", "aud", "sub", "tid", "sid", "role", "iat", "nbf", "exp", "jti"]
# Pods' clocks differ by NTP jitter: a token made on one must not be "not yet
# valid" on the next.
CLOCK_SKEW_LEEWAY_SECONDS = 10

_MISSING_KEY = (
    "No auth signing key: set AUTH_SIGNING_KEY_FILE (an Ed25519 private key in PEM, not the "
    "license signing key). DEBUG is off, so no development key is made."
)

AUTH_KEYRING = Keyring(
    name="auth signing key",
    tokens="access tokens",
    algorithms=(ALGORITHM,),
    key_files_setting="AUTH_SIGNING_KEY_FILE",
    dev_key_file_setting="AUTH_SIGNING_DEV_KEY_FILE",
    missing=_MISSING_KEY,
    # Verified tokens are remembered on the key set: what decides a verification resets it.
    decided_by=("AUTH_TOKEN_ISSUER", "AUTH_TOKEN_AUDIENCE"),
)


class InvalidToken(Exception):
    """A token that is not ours, not valid, or not well-formed. The reason is for
    logs; callers answer every case with the same 401."""


def auth_keys() -> KeySet:
    """The process's auth keys, loaded once (every request verifies with them)."""
    return AUTH_KEYRING.keys()


def auth_keys_reset() -> None:
    AUTH_KEYRING.reset()


def auth_keys_startup_check() -> None:
    """Refuse to start without a key when DEBUG is off; load configured keys now,
    so a bad file stops the deploy rather than the first login."""
    AUTH_KEYRING.startup_check()


# --- access tokens -------------------------------------------------------------------


@dataclass(frozen=True)
class AccessClaims:
    user_id: uuid.UUID
    tenant_id: uuid.UUID
    role: str
    jti: str
    expires_at: int
    family_id: uuid.UUID


def access_token_issue(*, user_id: uuid.UUID, tenant_id: uuid.UUID, role: str, family_id: uuid.UUID) -> str:
    """An access token of one sign-in (`family_id`, the refresh-token family)."""
    now = int(time.time())
    claims = {
        "iss": settings.AUTH_TOKEN_ISSUER,
        "aud": settings.AUTH_TOKEN_AUDIENCE,
        "sub": str(user_id),
        "tid": str(tenant_id),
        "sid": str(family_id),
        "role": role,
        "iat": now,
        "nbf": now,
        "exp": now + settings.ACCESS_TOKEN_LIFETIME,
        "jti": secrets.token_urlsafe(16),
    }
    return auth_keys().sign(claims, typ=ACCESS_TOKEN_TYPE)


def _identifiers_check(claims: dict[str, Any]) -> None:
    uuid.UUID(claims["sub"]), uuid.UUID(claims["tid"]), uuid.UUID(claims["sid"])


def access_token_verify(token: str) -> AccessClaims:
    """The claims, checked as `AccessClaims` reads them, or InvalidToken."""
    try:
        claims = auth_keys().verify(
            token,
            issuer=settings.AUTH_TOKEN_ISSUER,
            audience=settings.AUTH_TOKEN_AUDIENCE,
            typ=ACCESS_TOKEN_TYPE,
            leeway=CLOCK_SKEW_LEEWAY_SECONDS,
            required=REQUIRED_CLAIMS,
            check=_identifiers_check,
        )
    except TokenRejected as rejected:
        raise InvalidToken(rejected.reason) from rejected
    return AccessClaims(
        user_id=uuid.UUID(claims["sub"]),
        tenant_id=uuid.UUID(claims["tid"]),
        role=str(claims["role"]),
        jti=str(claims["jti"]),
        expires_at=int(claims["exp"]),
        family_id=uuid.UUID(claims["sid"]),
    )


# --- opaque secrets bound to a tenant (refresh tokens, invite codes) -------------------


def tenant_secret_new(tenant_id: uuid.UUID) -> str:
    return f"{tenant_id}.{secrets.token_urlsafe(32)}"


def tenant_secret_digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def tenant_secret_parse(value: object) -> tuple[uuid.UUID, str] | None:
    """The tenant and the digest of a presented secret; None when it is not one of ours."""
    if not isinstance(value, str) or len(value) > 200:
        return None
    value = value.strip()
    tenant_part, _, secret_part = value.partition(".")
    if len(secret_part) < 32:
        return None
    try:
        tenant_id = uuid.UUID(tenant_part)
    except ValueError:
        return None
    if str(tenant_id) != tenant_part.lower():
        return None
    return tenant_id, tenant_secret_digest(f"{tenant_id}.{secret_part}")
