"""License tokens: the key set (JWKS) and local verification.

Verification follows the server's rules (DESIGN.md, "Tokens"): the key is
looked up by `kid` in a fixed key set, each key is pinned to one algorithm
(EdDSA for Ed25519, RS256 for RSA), `none` and HS* are never accepted, and
exp/nbf/iss are required. Times are checked here against the client's clock
(injectable), not inside PyJWT, so that a clock set back can be told apart
from an expired token.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import jwt
from jwt.exceptions import InvalidTokenError, PyJWKError

from coditect_license.errors import (
    ClockSetBack,
    KeyNotTrusted,
    MaintenanceExpired,
    TokenExpired,
    TokenInvalid,
)

logger = logging.getLogger(__name__)

REQUIRED_CLAIMS = ["iss", "sub", "sid", "fp", "iat", "nbf", "exp"]
MIN_RSA_BITS = 2048


def _pinned_algorithm(jwk: Mapping[str, Any]) -> str | None:
    kty = jwk.get("kty")
    if kty == "OKP" and jwk.get("crv") == "Ed25519":
        expected = "EdDSA"
    elif kty == "RSA":
        expected = "RS256"
    else:
        return None
    declared = jwk.get("alg")
    if declared is not None and declared != expected:
        return None
    if jwk.get("use", "sig") != "sig":
        return None
    return expected


@dataclass(frozen=True)
class _Key:
    kid: str
    algorithm: str
    key: Any


def signature_checked(token: str, *, key: Any, algorithm: str, required: list[str]) -> dict[str, Any]:
    """The payload of a compact JWS whose signature verifies under `key` with
    `algorithm`, and which has every claim `required`; PyJWT's time and
    issuer checks are off, made by the caller against its own clock. Raises
    jwt.InvalidTokenError."""
    return jwt.decode(
        token,
        key=key,
        algorithms=[algorithm],
        options={
            "require": required,
            "verify_exp": False,
            "verify_nbf": False,
            "verify_iat": False,
            "verify_iss": False,
            "verify_aud": False,
        },
    )


class KeySet:
    """A fixed set of public keys by `kid`, each pinned to one algorithm."""

    def __init__(self, jwks: Mapping[str, Any]) -> None:
        if not isinstance(jwks, Mapping) or not isinstance(jwks.get("keys"), list):
            raise TokenInvalid("A JWKS is an object with a list of keys.")
        keys: dict[str, _Key] = {}
        kept: list[dict[str, Any]] = []
        for jwk in jwks["keys"]:
            if not isinstance(jwk, Mapping) or not isinstance(jwk.get("kid"), str) or jwk["kid"] in keys:
                continue
            algorithm = _pinned_algorithm(jwk)
            if algorithm is None:
                logger.debug("skipping a key of an unsupported type or algorithm", extra={"kid": jwk["kid"]})
                continue
            try:
                key = jwt.PyJWK(dict(jwk), algorithm=algorithm).key
            except (PyJWKError, InvalidTokenError, ValueError, TypeError):
                logger.debug("skipping a malformed key", extra={"kid": jwk["kid"]})
                continue
            if algorithm == "RS256" and key.key_size < MIN_RSA_BITS:
                continue
            keys[jwk["kid"]] = _Key(jwk["kid"], algorithm, key)
            kept.append(dict(jwk))
        self._keys = keys
        self.jwks: dict[str, Any] = {"keys": kept}

    def __contains__(self, kid: object) -> bool:
        return kid in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    @property
    def kids(self) -> list[str]:
        return sorted(self._keys)

    def fingerprint(self) -> str:
        """A stable text form, to compare two key sets."""
        return json.dumps(self.jwks, sort_keys=True, separators=(",", ":"))

    def union(self, other: KeySet) -> KeySet:
        """These keys, then the other's (a `kid` in both keeps this set's key)."""
        return KeySet({"keys": self.jwks["keys"] + other.jwks["keys"]})

    def pinned_key(self, token: str) -> tuple[dict[str, Any], Any, str]:
        """(header, key, algorithm) of the key that must have signed `token`:
        its `kid` looked up here, its `alg` the one pinned for that key."""
        try:
            header = jwt.get_unverified_header(token)
        except InvalidTokenError as exc:
            raise TokenInvalid("The token is not a compact JWS.") from exc
        kid = header.get("kid")
        if not isinstance(kid, str) or kid not in self._keys:
            raise KeyNotTrusted(
                "The token is signed by a key this application does not trust.", details={"kid": str(kid)}
            )
        pinned = self._keys[kid]
        if header.get("alg") != pinned.algorithm:
            raise TokenInvalid("The token's algorithm is not the one pinned for its key.")
        return header, pinned.key, pinned.algorithm

    def verify(
        self,
        token: str,
        *,
        now: float,
        fingerprint: str | None = None,
        issuer: str | None = None,
        license_id: str | None = None,
        session_id: str | None = None,
        last_seen: float | None = None,
        leeway: float = 300.0,
    ) -> Claims:
        """Verify `token` at wall-clock time `now`; raise a TokenInvalid subclass
        saying why it is refused."""
        _header, key, algorithm = self.pinned_key(token)
        try:
            payload = signature_checked(token, key=key, algorithm=algorithm, required=REQUIRED_CLAIMS)
        except InvalidTokenError as exc:
            raise TokenInvalid(f"The token does not verify ({type(exc).__name__}).") from exc

        claims = Claims.from_payload(payload)
        if issuer is not None and claims.issuer != issuer:
            raise TokenInvalid("The token has another issuer.")
        if fingerprint is not None and claims.fingerprint != fingerprint:
            raise TokenInvalid("The token was issued to another machine.")
        if license_id is not None and claims.license_id != license_id:
            raise TokenInvalid("The token is for another license.")
        if session_id is not None and claims.session_id != session_id:
            raise TokenInvalid("The token is for another session.")
        if now < claims.issued_at - leeway or now < claims.not_before - leeway:
            raise ClockSetBack("The system clock reads earlier than the token's issue time.")
        if last_seen is not None and now < last_seen - leeway:
            raise ClockSetBack("The system clock reads earlier than a time this machine has already seen.")
        if now >= claims.expires_at:
            raise TokenExpired("The license token has expired.", details={"exp": claims.expires_at})
        return claims


@dataclass(frozen=True)
class Claims:
    """The verified claims of a license token."""

    issuer: str
    license_id: str
    tenant_id: str | None
    session_id: str
    fingerprint: str
    entitlements: dict[str, Any]
    issued_at: float
    not_before: float
    expires_at: float
    raw: dict[str, Any] = field(repr=False, default_factory=dict)
    # The policy's terms (each None where the policy sets none): the end of
    # the grace period after the license's expiry, the last day of
    # maintenance (an application released after it is not covered) and the
    # newest application version covered.
    grace_until: float | None = None
    maintenance_end: date | None = None
    max_version: str | None = None

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> Claims:
        try:
            return cls(
                issuer=str(payload["iss"]),
                license_id=str(payload["sub"]),
                tenant_id=str(payload["tid"]) if payload.get("tid") is not None else None,
                session_id=str(payload["sid"]),
                fingerprint=str(payload["fp"]),
                entitlements=dict(payload.get("ent") or {}),
                issued_at=float(payload["iat"]),
                not_before=float(payload["nbf"]),
                expires_at=float(payload["exp"]),
                raw=dict(payload),
                grace_until=float(payload["grace_until"]) if payload.get("grace_until") is not None else None,
                maintenance_end=date.fromisoformat(payload["maint"]) if payload.get("maint") else None,
                max_version=str(payload["ver_max"]) if payload.get("ver_max") else None,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise TokenInvalid("The token's claims are malformed.") from exc


# --- Maintenance: the application's own version against the license's terms ---------

_VERSION = re.compile(r"^\s*v?(\d+(?:\.\d+)*)")


def version_tuple(version: str) -> tuple[int, ...]:
    """The leading dotted numbers of a version ("2.5.1rc1" is (2, 5, 1)),
    without trailing zeros, so that 2.4 and 2.4.0 compare equal; ValueError
    for a version that starts with none."""
    match = _VERSION.match(str(version))
    if match is None:
        raise ValueError(f"{version!r} is not a version (dotted numbers, e.g. 2.4.1)")
    parts = [int(part) for part in match.group(1).split(".")]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def maintenance_check(claims: Claims, *, app_version: str | None, app_released: date | None) -> None:
    """Refuse (MaintenanceExpired) an application newer than the license
    covers: a version above the token's `ver_max`, or a release day after its
    `maint`. An application that says neither, or a token with neither, passes."""
    if app_version is not None and claims.max_version:
        try:
            covered = version_tuple(claims.max_version)
        except ValueError:
            raise TokenInvalid("The token's ver_max is not a version.") from None
        if version_tuple(app_version) > covered:
            raise MaintenanceExpired(
                f"This license covers versions up to {claims.max_version}; this is {app_version}.",
                details={"ver_max": claims.max_version, "app_version": app_version},
            )
    if app_released is not None and claims.maintenance_end is not None:
        if app_released > claims.maintenance_end:
            raise MaintenanceExpired(
                f"This license's maintenance ended on {claims.maintenance_end.isoformat()}; this "
                f"version was released on {app_released.isoformat()}.",
                details={
                    "maint": claims.maintenance_end.isoformat(),
                    "app_released": app_released.isoformat(),
                },
            )
