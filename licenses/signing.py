"""License tokens: compact JWS signed by the license key ring, verified locally.

The keys (PEM files, a Cloud KMS key version, the development key), their
`kid`s, rotation and the JWKS document are the key ring's (core.keyring);
this module says which settings hold them and what a license token claims.
Rotating: the new key goes first in LICENSE_SIGNING_KEY_FILE (or becomes
LICENSE_SIGNING_KMS_KEY), the old one moves behind it or into
LICENSE_VERIFY_KEYS_FILE, and tokens it signed keep verifying until it is
removed.

Verification never leaves the process: the key set is loaded once per process
(a KMS signer fetches its public key once) and `kid` is looked up in it, never
followed anywhere. Each key accepts exactly one algorithm, its own.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings

from core.errors import ApplicationError
from core.keyring import Keyring, KeySet, TokenRejected

# Pods' clocks differ by NTP jitter: a token made on one must not be "not yet
# valid" on the next. Small against the hours of offline grace.
CLOCK_SKEW_LEEWAY_SECONDS = 30
REQUIRED_CLAIMS = ("exp", "nbf", "iat", "iss", "sub", "sid", "tid")

_MISSING_SIGNER = (
    "No license signing key: set LICENSE_SIGNING_KEY_FILE (a PEM private key file, Ed25519 or RSA) "
    "or LICENSE_SIGNING_KMS_KEY (a Cloud KMS key version, projects/.../cryptoKeyVersions/N). "
    "DEBUG is off, so no development key is made."
)

LICENSE_KEYRING = Keyring(
    name="license signing key",
    tokens="license tokens",
    algorithms=("EdDSA", "RS256"),
    key_files_setting="LICENSE_SIGNING_KEY_FILE",
    verify_files_setting="LICENSE_VERIFY_KEYS_FILE",
    kms_key_setting="LICENSE_SIGNING_KMS_KEY",
    kms_timeout_setting="LICENSE_SIGNING_KMS_TIMEOUT",
    kms_allow_software_setting="LICENSE_SIGNING_KMS_ALLOW_SOFTWARE",
    dev_key_file_setting="LICENSE_SIGNING_DEV_KEY_FILE",
    missing=_MISSING_SIGNER,
    decided_by=("LICENSE_TOKEN_ISSUER",),
)


class InvalidLicenseToken(ApplicationError):
    """Missing, malformed, forged, expired or unknown-key token. The message
    never repeats the token."""

    code = "not_authenticated"

    def __init__(self, message: str = "The license token is not valid.") -> None:
        super().__init__(
            message, headers={"WWW-Authenticate": 'Bearer realm="license", error="invalid_token"'}
        )


def signing_keys() -> KeySet:
    """The process's license key set, loaded on first use and kept (the
    heartbeat path verifies on every request)."""
    return LICENSE_KEYRING.keys()


def signing_keys_reset() -> None:
    LICENSE_KEYRING.reset()


def signing_startup_check() -> None:
    """Refuse to start without a signer when DEBUG is off; a bad key file
    stops the deploy. KMS is not called (see Keyring.startup_check)."""
    LICENSE_KEYRING.startup_check()


def _timestamp(moment: datetime, name: str) -> int:
    if moment.tzinfo is None:
        raise ValueError(f"{name} must be timezone-aware")
    return int(moment.timestamp())


def license_token_issue(*, license: Any, lease: Any, expires_at: datetime, now: datetime) -> str:
    """Sign the token of one lease. `expires_at` is the caller's choice: the
    offline grace, or the end of a borrow."""
    issued_at = _timestamp(now, "now")
    terms = license.terms
    claims = {
        "iss": settings.LICENSE_TOKEN_ISSUER,
        "sub": str(license.id),
        "tid": str(license.tenant_id),
        "sid": str(lease.session_id),
        "fp": lease.fingerprint,
        "ent": terms.entitlements,
        "iat": issued_at,
        "nbf": issued_at,
        "exp": _timestamp(expires_at, "expires_at"),
    }
    # The policy's terms a client checks offline, each only where it applies:
    # the end of the grace period after expiry (seconds, as `exp`), the last
    # day of maintenance (an ISO date) and the newest version covered.
    if terms.grace_until is not None:
        claims["grace_until"] = _timestamp(terms.grace_until, "grace_until")
    if terms.maintenance_end is not None:
        claims["maint"] = terms.maintenance_end.isoformat()
    if terms.max_version:
        claims["ver_max"] = terms.max_version
    # A seat granted past max_seats, out of the license's overdraft seats.
    if getattr(lease, "overdraft", False):
        claims["ovr"] = True
    return signing_keys().sign(claims)


def _identifiers_check(claims: dict[str, Any]) -> None:
    for name in ("sub", "sid", "tid"):
        if not isinstance(claims[name], str) or not claims[name]:
            raise ValueError(f"{name} is not a non-empty string")


def license_token_verify(token: str) -> dict[str, Any]:
    """The token's claims, if one of our keys signed it and it is current.
    Local only: no KMS, no database."""
    try:
        return signing_keys().verify(
            token,
            issuer=settings.LICENSE_TOKEN_ISSUER,
            leeway=CLOCK_SKEW_LEEWAY_SECONDS,
            required=REQUIRED_CLAIMS,
            check=_identifiers_check,
        )
    except TokenRejected as rejected:
        if rejected.expired:
            raise InvalidLicenseToken("The license token has expired.") from None
        raise InvalidLicenseToken() from None


def jwks() -> dict[str, Any]:
    """The public JWK set: the signing key first, then the retired ones."""
    return {"keys": [dict(key) for key in signing_keys().jwks["keys"]]}
