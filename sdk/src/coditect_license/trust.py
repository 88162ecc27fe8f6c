"""Trust anchors: the keys an application believes license tokens from.

An application ships its anchors (taken from the server at build time with
`manage.py license_trust_anchors`):

- `trusted_root_keys`: the public half of the server's long-lived key set
  root key. The server publishes its license signing keys as a signed key
  set (GET /.well-known/coditect-keyset.jws, a compact JWS with `typ`
  "coditect-keyset+jwt" and claims iss, iat, exp, keys); a key from it is
  trusted only while the set's signature verifies under a pinned root key
  and its `exp` has not passed. This is how a new license signing key is
  trusted without an application update.
- `trusted_jwks`: license signing keys trusted as they are, for as long as
  the application ships them (no rotation without an update).

A token, fresh from the server or read from the offline cache, verifies
only under one of those keys. Nothing in the cache or on the network adds
a key by itself: the cache's own key set is ignored, and a signed key set
from the cache is checked again like one from the network. Without any
anchor the client refuses to be made, unless the application asks for
`insecure_trust_on_first_use`, a development mode that believes the first
key set the server (or the cache) shows, and says so at every start.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jwt.exceptions import InvalidTokenError

from coditect_license.errors import ClockSetBack, KeySetInvalid, TokenInvalid, TrustNotConfigured
from coditect_license.tokens import KeySet, signature_checked

logger = logging.getLogger("coditect_license")

_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n.+?-----END \1-----", re.DOTALL)
KEYSET_TYP = "coditect-keyset+jwt"
KEYSET_PATHS = ("/.well-known/coditect-keyset.jws", "/api/v1/.well-known/coditect-keyset.jws")
KEYSET_REQUIRED_CLAIMS = ["iat", "exp", "keys"]
INSECURE_WARNING = (
    "INSECURE: insecure_trust_on_first_use is on: license tokens are checked against whatever key set "
    "the server or the offline cache shows first, so anyone who controls this machine can forge a "
    "license. Development only: ship trusted_root_keys (or trusted_jwks) instead."
)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 (SHA-256): the `kid` the server gives its keys."""
    if jwk.get("kty") == "OKP":
        members = {name: jwk[name] for name in ("crv", "kty", "x")}
    elif jwk.get("kty") == "RSA":
        members = {name: jwk[name] for name in ("e", "kty", "n")}
    else:
        raise ValueError(f"unsupported key type {jwk.get('kty')!r}")
    canonical = json.dumps(members, sort_keys=True, separators=(",", ":"))
    return _b64url(hashlib.sha256(canonical.encode("utf-8")).digest())


def _public_jwk(public_key: Any) -> dict[str, str]:
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    if isinstance(public_key, ed25519.Ed25519PublicKey):
        jwk = {"kty": "OKP", "crv": "Ed25519", "x": _b64url(public_key.public_bytes_raw()), "alg": "EdDSA"}
    elif isinstance(public_key, rsa.RSAPublicKey):
        numbers = public_key.public_numbers()

        def uint(value: int) -> str:
            return _b64url(value.to_bytes((value.bit_length() + 7) // 8 or 1, "big"))

        jwk = {"kty": "RSA", "n": uint(numbers.n), "e": uint(numbers.e), "alg": "RS256"}
    else:
        raise ValueError(f"a {type(public_key).__name__} cannot sign license tokens")
    return {**jwk, "use": "sig", "kid": jwk_thumbprint(jwk)}


def with_kids(jwks: Mapping[str, Any]) -> dict[str, Any]:
    """The JWK set with a `kid` (its RFC 7638 thumbprint) on any key without one."""
    if not isinstance(jwks, Mapping) or not isinstance(jwks.get("keys"), list):
        raise TrustNotConfigured("A key set is an object with a list of keys.")
    keys = []
    for jwk in jwks["keys"]:
        if isinstance(jwk, Mapping) and "kid" not in jwk:
            try:
                jwk = {**jwk, "kid": jwk_thumbprint(jwk)}
            except (KeyError, ValueError):
                pass  # KeySet skips it
        keys.append(jwk)
    return {"keys": keys}


def load_keys_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A JWK set from a file: a JWKS (`{"keys": [...]}`), one JWK, or PEM public
    keys (each named by its thumbprint, as the server names its keys)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise TrustNotConfigured(f"The key file {path} cannot be read ({type(exc).__name__}).") from exc
    if b"-----BEGIN" in data:
        from cryptography.hazmat.primitives import serialization

        keys = []
        for block in _PEM_BLOCK.finditer(data):
            try:
                keys.append(_public_jwk(serialization.load_pem_public_key(block.group(0))))
            except ValueError as exc:
                raise TrustNotConfigured(
                    f"The key file {path} holds a PEM that is not a public key."
                ) from exc
        return {"keys": keys}
    try:
        document = json.loads(data)
    except ValueError as exc:
        raise TrustNotConfigured(f"The key file {path} is neither JSON nor PEM.") from exc
    if isinstance(document, Mapping) and "keys" not in document and "kty" in document:
        document = {"keys": [document]}
    return with_kids(document)


@dataclass(frozen=True)
class SignedKeySet:
    """A key set whose signature verified under a pinned root key."""

    keys: KeySet
    issued_at: float
    expires_at: float
    token: str  # the compact JWS, kept to be checked again from the cache

    def current(self, now: float) -> bool:
        return now < self.expires_at


def verify_signed_keyset(
    roots: KeySet,
    token: object,
    *,
    now: float,
    issuer: str | None = None,
    leeway: float = 300.0,
    allow_expired: bool = False,
) -> SignedKeySet:
    """The keys of a signed key set, or KeySetInvalid saying why it is refused.
    `allow_expired` still checks the signature (an expired set is only good
    as the floor an older one may not go below)."""
    if not isinstance(token, str):
        raise KeySetInvalid("The signed key set is not a compact JWS.")
    token = token.strip()
    try:
        header, key, algorithm = roots.pinned_key(token)
    except TokenInvalid as exc:
        raise KeySetInvalid(
            "The key set is not signed by a root key this application pins.", details=exc.details
        ) from exc
    if header.get("typ") != KEYSET_TYP:
        raise KeySetInvalid(f"The signed key set's type is not {KEYSET_TYP!r}.")
    try:
        payload = signature_checked(token, key=key, algorithm=algorithm, required=KEYSET_REQUIRED_CLAIMS)
    except InvalidTokenError as exc:
        raise KeySetInvalid(f"The signed key set does not verify ({type(exc).__name__}).") from exc
    try:
        issued_at, expires_at = float(payload["iat"]), float(payload["exp"])
        keys = KeySet({"keys": payload["keys"]})
    except (TypeError, ValueError, TokenInvalid) as exc:
        raise KeySetInvalid("The signed key set's claims are malformed.") from exc
    if issuer is not None and payload.get("iss") != issuer:
        raise KeySetInvalid("The signed key set has another issuer.")
    if expires_at <= issued_at:
        raise KeySetInvalid("The signed key set expires before it is issued.")
    if now < issued_at - leeway:
        raise ClockSetBack("The system clock reads earlier than the signed key set's issue time.")
    if now >= expires_at and not allow_expired:
        raise KeySetInvalid("The signed key set has expired.", details={"exp": expires_at})
    return SignedKeySet(keys=keys, issued_at=issued_at, expires_at=expires_at, token=token)


class Trust:
    """What one client trusts: the pinned keys, the pinned root keys and the
    newest signed key set verified under them (or, in the insecure mode, the
    first key set seen). Safe to share between threads."""

    def __init__(
        self,
        *,
        jwks: Mapping[str, Any] | None = None,
        root_keys: Mapping[str, Any] | None = None,
        insecure_trust_on_first_use: bool = False,
    ) -> None:
        self.pinned = KeySet(with_kids(jwks)) if jwks is not None else None
        self.roots = KeySet(with_kids(root_keys)) if root_keys is not None else None
        if self.pinned is not None and not len(self.pinned):
            raise TrustNotConfigured("trusted_jwks holds no usable key (Ed25519/EdDSA or RSA/RS256).")
        if self.roots is not None and not len(self.roots):
            raise TrustNotConfigured("trusted_root_keys holds no usable key (Ed25519/EdDSA or RSA/RS256).")
        anchored = self.pinned is not None or self.roots is not None
        if anchored and insecure_trust_on_first_use:
            raise ValueError("insecure_trust_on_first_use cannot be combined with trusted keys")
        if not anchored and not insecure_trust_on_first_use:
            raise TrustNotConfigured(
                "No trust anchors: pass trusted_root_keys (the server's key set root key, from "
                "`manage.py license_trust_anchors`) and/or trusted_jwks; without them no license "
                "token can be checked. insecure_trust_on_first_use=True is for development only."
            )
        self.insecure = insecure_trust_on_first_use
        self.signed: SignedKeySet | None = None
        self.unsigned: KeySet | None = None  # the insecure mode's first-seen key set
        self._lock = threading.Lock()
        self._merged: tuple[tuple[object, bool], KeySet | None] | None = None

    def keyset(self, now: float) -> KeySet | None:
        """Every key a token may verify under at `now`; None when there is none."""
        if self.insecure:
            return self.unsigned
        with self._lock:
            signed = self.signed
            current = signed is not None and signed.current(now)
            memo_key = (signed, current)
            if self._merged is not None and self._merged[0] == memo_key:
                return self._merged[1]
            merged = self.pinned
            if current:
                merged = merged.union(signed.keys) if merged is not None else signed.keys
            self._merged = (memo_key, merged)
            return merged

    def adopt(self, signed: SignedKeySet, *, leeway: float = 0.0, replay_is_error: bool = True) -> bool:
        """Make `signed` the key set in use unless one issued later already is
        (then False). One issued more than `leeway` seconds before the newest
        seen is a replay: KeySetInvalid, unless `replay_is_error` is off. (Within
        the leeway it is another server's clock, not a replay: kept out quietly.)"""
        with self._lock:
            newest = self.signed
            if newest is not None and signed.issued_at < newest.issued_at:
                if replay_is_error and signed.issued_at < newest.issued_at - leeway:
                    raise KeySetInvalid(
                        "The signed key set is older than one this application already trusts.",
                        details={"iat": signed.issued_at, "newest_iat": newest.issued_at},
                    )
                return False
            self.signed = signed
            return True
