"""License tokens: compact JWS signed by the configured key, verified locally.

The signer is a local PEM key (Ed25519 by default, or RSA for RS256) or a Cloud
KMS key version (RS256, see licenses/kms.py). Every key is known by its RFC 7638
thumbprint as `kid`, so rotating needs no bookkeeping: the new key goes first in
LICENSE_SIGNING_KEY_FILE (or becomes LICENSE_SIGNING_KMS_KEY), the old one moves
behind it or into LICENSE_VERIFY_KEYS_FILE, and tokens it signed keep verifying
until it is removed.

Verification never leaves the process: the key set is loaded once per process
(a KMS signer fetches its public key once) and `kid` is looked up in it, never
followed anywhere. Each key accepts exactly one algorithm, its own.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import jwt
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver

from core.errors import ApplicationError
from core.keyring import (
    LoadedOnce,
    VerifiedTokens,
    b64url,
    development_key_file,
    jwk_required_members,
    jwk_thumbprint,
    jws_header,
    pem_blocks,
)

logger = logging.getLogger(__name__)

PublicKey = ed25519.Ed25519PublicKey | rsa.RSAPublicKey
PrivateKey = ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey

# Pods' clocks differ by NTP jitter: a token made on one must not be "not yet
# valid" on the next. Small against the hours of offline grace.
CLOCK_SKEW_LEEWAY_SECONDS = 30
REQUIRED_CLAIMS = ("exp", "nbf", "iat", "iss", "sub", "sid", "tid")
MIN_RSA_BITS = 2048

_KEY_SETTINGS = frozenset(
    {
        "DEBUG",
        "LICENSE_SIGNING_KEY_FILE",
        "LICENSE_SIGNING_KMS_KEY",
        "LICENSE_VERIFY_KEYS_FILE",
        "LICENSE_SIGNING_KMS_TIMEOUT",
        "LICENSE_SIGNING_DEV_KEY_FILE",
        "LICENSE_TOKEN_ISSUER",  # verified tokens are remembered on the key set
    }
)


class InvalidLicenseToken(ApplicationError):
    """Missing, malformed, forged, expired or unknown-key token. The message
    never repeats the token."""

    code = "not_authenticated"

    def __init__(self, message: str = "The license token is not valid.") -> None:
        super().__init__(
            message, headers={"WWW-Authenticate": 'Bearer realm="license", error="invalid_token"'}
        )


# --- keys -----------------------------------------------------------------------


@dataclass(frozen=True)
class VerificationKey:
    kid: str
    alg: str  # the one algorithm this key accepts
    public_key: PublicKey
    jwk: dict[str, str]

    @classmethod
    def from_public_key(cls, public_key: Any, *, source: str) -> VerificationKey:
        if isinstance(public_key, ed25519.Ed25519PublicKey):
            alg = "EdDSA"
        elif isinstance(public_key, rsa.RSAPublicKey):
            if public_key.key_size < MIN_RSA_BITS:
                raise ImproperlyConfigured(
                    f"{source}: an RSA key of {public_key.key_size} bits is too weak; use {MIN_RSA_BITS} or more."
                )
            alg = "RS256"
        else:
            raise ImproperlyConfigured(
                f"{source}: a {type(public_key).__name__} cannot sign license tokens; use Ed25519 or RSA."
            )
        kid = jwk_thumbprint(public_key)
        jwk = {**jwk_required_members(public_key), "kid": kid, "alg": alg, "use": "sig"}
        return cls(kid=kid, alg=alg, public_key=public_key, jwk=jwk)


class Signer(Protocol):
    key: VerificationKey

    def sign(self, signing_input: bytes) -> bytes: ...


@dataclass(frozen=True)
class LocalSigner:
    private_key: PrivateKey
    key: VerificationKey

    @classmethod
    def from_private_key(cls, private_key: Any, *, source: str) -> LocalSigner:
        key = VerificationKey.from_public_key(private_key.public_key(), source=source)
        return cls(private_key=private_key, key=key)

    def sign(self, signing_input: bytes) -> bytes:
        if isinstance(self.private_key, ed25519.Ed25519PrivateKey):
            return self.private_key.sign(signing_input)
        return self.private_key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())


@dataclass(frozen=True)
class KeySet:
    """The signer and every key a token may name: the signer's first, then
    the retired ones."""

    signer: Signer
    keys: Mapping[str, VerificationKey]
    jwks: dict[str, Any] = field(repr=False)
    verified: VerifiedTokens = field(default_factory=VerifiedTokens, repr=False, compare=False)

    @classmethod
    def build(cls, signer: Signer, retired: Iterable[VerificationKey] = ()) -> KeySet:
        keys: dict[str, VerificationKey] = {signer.key.kid: signer.key}
        for key in retired:
            keys.setdefault(key.kid, key)
        return cls(signer=signer, keys=keys, jwks={"keys": [key.jwk for key in keys.values()]})


def _load_private_keys(path: str) -> list[LocalSigner]:
    signers = []
    for label, block in pem_blocks(path, what="license signing key"):
        if "PRIVATE KEY" not in label:
            raise ImproperlyConfigured(f"{path}: expected a PEM private key, found {label}.")
        try:
            private_key = serialization.load_pem_private_key(block, password=None)
        except (TypeError, ValueError) as exc:
            # TypeError: the key is encrypted; a mounted secret is protected by its mount.
            raise ImproperlyConfigured(f"{path}: not an unencrypted PEM private key ({exc}).") from exc
        signers.append(LocalSigner.from_private_key(private_key, source=path))
    return signers


def _load_public_keys(path: str) -> list[VerificationKey]:
    keys = []
    for label, block in pem_blocks(path, what="license signing key"):
        try:
            if "PRIVATE KEY" in label:
                public_key = serialization.load_pem_private_key(block, password=None).public_key()
            elif "PUBLIC KEY" in label:
                public_key = serialization.load_pem_public_key(block)
            else:
                raise ImproperlyConfigured(f"{path}: expected a PEM public or private key, found {label}.")
        except (TypeError, ValueError) as exc:
            raise ImproperlyConfigured(f"{path}: the {label} cannot be loaded ({exc}).") from exc
        keys.append(VerificationKey.from_public_key(public_key, source=path))
    return keys


def _paths(value: str | Iterable[str] | None) -> list[str]:
    if not value:
        return []
    if isinstance(value, (str, Path)):
        value = str(value).split(",")
    return [str(item).strip() for item in value if str(item).strip()]


def _development_key(path: Path) -> LocalSigner:
    """The DEBUG key, made once and kept under VAR_DIR (never in the repository)."""
    return _load_private_keys(str(development_key_file(path, what="license signing key")))[0]


def _kms_configured() -> bool:
    return bool(settings.LICENSE_SIGNING_KMS_KEY)


def _check_one_signer() -> None:
    if _kms_configured() and _paths(settings.LICENSE_SIGNING_KEY_FILE):
        raise ImproperlyConfigured(
            "Set LICENSE_SIGNING_KEY_FILE or LICENSE_SIGNING_KMS_KEY, not both; keys that should only "
            "verify go in LICENSE_VERIFY_KEYS_FILE."
        )


def _load_keyset() -> KeySet:
    _check_one_signer()
    retired = [key for path in _paths(settings.LICENSE_VERIFY_KEYS_FILE) for key in _load_public_keys(path)]
    if _kms_configured():
        from licenses import kms

        return KeySet.build(kms.kms_signer(), retired)
    key_files = _paths(settings.LICENSE_SIGNING_KEY_FILE)
    if key_files:
        signers = [signer for path in key_files for signer in _load_private_keys(path)]
    elif settings.LICENSE_SIGNING_DEV_KEY_FILE:  # set only when DEBUG was on at startup
        signers = [_development_key(Path(settings.LICENSE_SIGNING_DEV_KEY_FILE))]
    else:
        raise ImproperlyConfigured(_MISSING_SIGNER)
    return KeySet.build(signers[0], [signer.key for signer in signers[1:]] + retired)


_MISSING_SIGNER = (
    "No license signing key: set LICENSE_SIGNING_KEY_FILE (a PEM private key file, Ed25519 or RSA) "
    "or LICENSE_SIGNING_KMS_KEY (a Cloud KMS key version, projects/.../cryptoKeyVersions/N). "
    "DEBUG is off, so no development key is made."
)

_keyset: LoadedOnce[KeySet] = LoadedOnce(lambda: _load_keyset())


def signing_keys() -> KeySet:
    """The process's key set, loaded on first use and kept (the heartbeat path
    verifies on every request, so nothing is re-read per call)."""
    return _keyset.get()


def signing_keys_reset() -> None:
    _keyset.reset()


@receiver(setting_changed)
def _reset_on_setting_change(*, setting: str, **kwargs: Any) -> None:
    if setting in _KEY_SETTINGS or setting == "VAR_DIR":
        signing_keys_reset()


def signing_startup_check() -> None:
    """Refuse to start without a signer when DEBUG is off, and load local keys
    now, so that a bad file stops the deploy rather than the first acquire.
    KMS is not called here: management commands must not need it, and a gRPC
    channel must not be made before gunicorn forks."""
    _check_one_signer()
    if _kms_configured():
        from licenses import kms

        kms.kms_key_name_check(settings.LICENSE_SIGNING_KMS_KEY)
        for path in _paths(settings.LICENSE_VERIFY_KEYS_FILE):
            _load_public_keys(path)
        return
    if not _paths(settings.LICENSE_SIGNING_KEY_FILE):
        if not settings.LICENSE_SIGNING_DEV_KEY_FILE:
            raise ImproperlyConfigured(_MISSING_SIGNER)
        return  # the development key is made on first use, not by every command
    signing_keys()


# --- tokens -----------------------------------------------------------------------


def _segment(value: dict[str, Any]) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode("utf-8"))


def _timestamp(moment: datetime, name: str) -> int:
    if moment.tzinfo is None:
        raise ValueError(f"{name} must be timezone-aware")
    return int(moment.timestamp())


def jws_sign(claims: dict[str, Any], signer: Signer) -> str:
    header = {"alg": signer.key.alg, "kid": signer.key.kid, "typ": "JWT"}
    signing_input = f"{_segment(header)}.{_segment(claims)}"
    signature = signer.sign(signing_input.encode("ascii"))
    return f"{signing_input}.{b64url(signature)}"


def license_token_issue(*, license: Any, lease: Any, expires_at: datetime, now: datetime) -> str:
    """Sign the token of one lease. `expires_at` is the caller's choice: the
    offline grace, or the end of a borrow."""
    issued_at = _timestamp(now, "now")
    claims = {
        "iss": settings.LICENSE_TOKEN_ISSUER,
        "sub": str(license.id),
        "tid": str(license.tenant_id),
        "sid": str(lease.session_id),
        "fp": lease.fingerprint,
        "ent": license.entitlements or {},
        "iat": issued_at,
        "nbf": issued_at,
        "exp": _timestamp(expires_at, "expires_at"),
    }
    return jws_sign(claims, signing_keys().signer)


def license_token_verify(token: str) -> dict[str, Any]:
    """The token's claims, if one of our keys signed it and it is current.
    Local only: no KMS, no database."""
    keyset = signing_keys()
    if isinstance(token, str) and (claims := keyset.verified.get(token, leeway=CLOCK_SKEW_LEEWAY_SECONDS)):
        return claims
    try:
        header = jws_header(token)
    except ValueError:
        raise InvalidLicenseToken() from None
    kid = header.get("kid")
    key = keyset.keys.get(kid) if isinstance(kid, str) else None
    if key is None:
        raise InvalidLicenseToken()
    try:
        claims = jwt.decode(
            token,
            key.public_key,
            algorithms=[key.alg],
            issuer=settings.LICENSE_TOKEN_ISSUER,
            leeway=CLOCK_SKEW_LEEWAY_SECONDS,
            options={"require": list(REQUIRED_CLAIMS)},
        )
    except jwt.ExpiredSignatureError:
        raise InvalidLicenseToken("The license token has expired.") from None
    except (jwt.PyJWTError, TypeError, ValueError):
        raise InvalidLicenseToken() from None
    for name in ("sub", "sid", "tid"):
        if not isinstance(claims[name], str) or not claims[name]:
            raise InvalidLicenseToken()
    keyset.verified.put(token, claims)
    return claims


def jwks() -> dict[str, Any]:
    """The public JWK set: the signing key first, then the retired ones."""
    return {"keys": [dict(key) for key in signing_keys().jwks["keys"]]}
