"""The server's own user tokens.

Access tokens are compact JWS (EdDSA over Ed25519) signed with the auth key,
which is not the license signing key: a leak of one never forges the other.
Every key is known by its RFC 7638 thumbprint as `kid`; the first key of
AUTH_SIGNING_KEY_FILE signs and the others verify until removed, so rotation
needs no bookkeeping. Verification looks `kid` up in that fixed set, accepts
one algorithm and one token type, and requires every claim it relies on.

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
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver

from core.keyring import (
    LoadedOnce,
    VerifiedTokens,
    development_key_file,
    jwk_thumbprint,
    jws_header,
    pem_blocks,
)

logger = logging.getLogger(__name__)

ALGORITHM = "EdDSA"
# RFC 9068: the type keeps an access token from being mistaken for any other JWT.
ACCESS_TOKEN_TYPE = "at+jwt"
REQUIRED_CLAIMS = ["iss", "aud", "sub", "tid", "role", "iat", "nbf", "exp", "jti"]
# Pods' clocks differ by NTP jitter: a token made on one must not be "not yet
# valid" on the next.
CLOCK_SKEW_LEEWAY_SECONDS = 10

# Verified tokens are remembered on the key set: what decides a verification resets it.
_KEY_SETTINGS = frozenset(
    {
        "DEBUG",
        "VAR_DIR",
        "AUTH_SIGNING_KEY_FILE",
        "AUTH_SIGNING_DEV_KEY_FILE",
        "AUTH_TOKEN_ISSUER",
        "AUTH_TOKEN_AUDIENCE",
    }
)


class InvalidToken(Exception):
    """A token that is not ours, not valid, or not well-formed. The reason is for
    logs; callers answer every case with the same 401."""


def key_id(public_key: ed25519.Ed25519PublicKey) -> str:
    """RFC 7638 thumbprint of the key's JWK."""
    return jwk_thumbprint(public_key)


@dataclass(frozen=True)
class AuthKey:
    kid: str
    private_key: ed25519.Ed25519PrivateKey

    @property
    def public_key(self) -> ed25519.Ed25519PublicKey:
        return self.private_key.public_key()


@dataclass(frozen=True)
class AuthKeySet:
    signer: AuthKey
    by_kid: Mapping[str, AuthKey]
    verified: VerifiedTokens = field(default_factory=VerifiedTokens, repr=False, compare=False)


def _load_private_keys(path: str) -> list[AuthKey]:
    keys = []
    for _label, block in pem_blocks(path, what="auth signing key (AUTH_SIGNING_KEY_FILE)"):
        try:
            key = serialization.load_pem_private_key(block, password=None)
        except (TypeError, ValueError) as exc:
            raise ImproperlyConfigured(f"{path}: not an unencrypted PEM private key ({exc}).") from exc
        if not isinstance(key, ed25519.Ed25519PrivateKey):
            raise ImproperlyConfigured(f"{path}: the auth signing key must be Ed25519.")
        keys.append(AuthKey(kid=key_id(key.public_key()), private_key=key))
    return keys


def _development_key(path: Path) -> AuthKey:
    """The DEBUG key, made once under VAR_DIR (never in the repository)."""
    return _load_private_keys(str(development_key_file(path, what="auth signing key")))[0]


_MISSING_KEY = (
    "No auth signing key: set AUTH_SIGNING_KEY_FILE (an Ed25519 private key in PEM, not the "
    "license signing key). DEBUG is off, so no development key is made."
)


def _load_keyset() -> AuthKeySet:
    paths = [p for p in settings.AUTH_SIGNING_KEY_FILE if str(p).strip()]
    if paths:
        keys = [key for path in paths for key in _load_private_keys(str(path).strip())]
    elif settings.AUTH_SIGNING_DEV_KEY_FILE:  # set only when DEBUG was on at startup
        keys = [_development_key(Path(settings.AUTH_SIGNING_DEV_KEY_FILE))]
    else:
        raise ImproperlyConfigured(_MISSING_KEY)
    return AuthKeySet(signer=keys[0], by_kid={key.kid: key for key in keys})


_keyset: LoadedOnce[AuthKeySet] = LoadedOnce(lambda: _load_keyset())


def auth_keys() -> AuthKeySet:
    """The process's auth keys, loaded once (every request verifies with them)."""
    return _keyset.get()


def auth_keys_reset() -> None:
    _keyset.reset()


@receiver(setting_changed)
def _reset_on_setting_change(*, setting: str, **kwargs: Any) -> None:
    if setting in _KEY_SETTINGS:
        auth_keys_reset()


def auth_keys_startup_check() -> None:
    """Refuse to start without a key when DEBUG is off; load configured keys now,
    so a bad file stops the deploy rather than the first login."""
    if settings.AUTH_SIGNING_KEY_FILE:
        auth_keys()
    elif not settings.AUTH_SIGNING_DEV_KEY_FILE:
        raise ImproperlyConfigured(_MISSING_KEY)


# --- access tokens -------------------------------------------------------------------


@dataclass(frozen=True)
class AccessClaims:
    user_id: uuid.UUID
    tenant_id: uuid.UUID
    role: str
    jti: str
    expires_at: int


def access_token_issue(*, user_id: uuid.UUID, tenant_id: uuid.UUID, role: str) -> str:
    now = int(time.time())
    signer = auth_keys().signer
    claims = {
        "iss": settings.AUTH_TOKEN_ISSUER,
        "aud": settings.AUTH_TOKEN_AUDIENCE,
        "sub": str(user_id),
        "tid": str(tenant_id),
        "role": role,
        "iat": now,
        "nbf": now,
        "exp": now + settings.ACCESS_TOKEN_LIFETIME,
        "jti": secrets.token_urlsafe(16),
    }
    return jwt.encode(
        claims, signer.private_key, algorithm=ALGORITHM, headers={"kid": signer.kid, "typ": ACCESS_TOKEN_TYPE}
    )


def access_token_verify(token: str) -> AccessClaims:
    keyset = auth_keys()
    claims = keyset.verified.get(token, leeway=CLOCK_SKEW_LEEWAY_SECONDS)
    if claims is None:
        claims = _verify_in_full(token, keyset)
        keyset.verified.put(token, claims)
    return AccessClaims(
        user_id=uuid.UUID(claims["sub"]),
        tenant_id=uuid.UUID(claims["tid"]),
        role=str(claims["role"]),
        jti=str(claims["jti"]),
        expires_at=int(claims["exp"]),
    )


def _verify_in_full(token: str, keyset: AuthKeySet) -> dict[str, Any]:
    """The claims, checked as `AccessClaims` reads them, or InvalidToken."""
    try:
        header = jws_header(token)
    except ValueError as exc:
        raise InvalidToken(f"malformed: {exc}") from exc
    if header.get("alg") != ALGORITHM:
        raise InvalidToken(f"algorithm {header.get('alg')!r} is not accepted")
    if header.get("typ") != ACCESS_TOKEN_TYPE:
        raise InvalidToken(f"type {header.get('typ')!r} is not an access token")
    kid = header.get("kid")
    key = keyset.by_kid.get(kid) if isinstance(kid, str) else None
    if key is None:
        raise InvalidToken("unknown kid")
    try:
        claims = jwt.decode(
            token,
            key.public_key,
            algorithms=[ALGORITHM],
            audience=settings.AUTH_TOKEN_AUDIENCE,
            issuer=settings.AUTH_TOKEN_ISSUER,
            leeway=CLOCK_SKEW_LEEWAY_SECONDS,
            options={"require": REQUIRED_CLAIMS, "strict_aud": True},
        )
        uuid.UUID(claims["sub"]), uuid.UUID(claims["tid"])
    except (jwt.PyJWTError, ValueError, TypeError, AttributeError) as exc:
        raise InvalidToken(str(exc)) from exc
    return claims


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
