"""Keys and key sets, whatever holds the private half (a PEM file or Cloud KMS).

A key is known by its RFC 7638 thumbprint as `kid`, derived from the key, so
rotation needs no bookkeeping, and each key accepts exactly one algorithm, its
own (Ed25519 means EdDSA, RSA means RS256). A key set is the one signer and
every key a token may name: the signer's first, then the retired ones, which
verify and are published but never sign.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import jwt
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from django.core.exceptions import ImproperlyConfigured

from core.keyring.jws import VerifiedTokens, b64url, jws_header

PublicKey = ed25519.Ed25519PublicKey | rsa.RSAPublicKey
PrivateKey = ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey

ALGORITHMS = ("EdDSA", "RS256")
_KIND_OF = {"EdDSA": "Ed25519", "RS256": "RSA"}
MIN_RSA_BITS = 2048


def _b64url_uint(value: int) -> str:
    return b64url(value.to_bytes((value.bit_length() + 7) // 8 or 1, "big"))


def jwk_required_members(public_key: PublicKey) -> dict[str, str]:
    """The members RFC 7638 hashes for a thumbprint (and the core of the JWK)."""
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return {"crv": "Ed25519", "kty": "OKP", "x": b64url(raw)}
    numbers = public_key.public_numbers()
    return {"e": _b64url_uint(numbers.e), "kty": "RSA", "n": _b64url_uint(numbers.n)}


def jwk_thumbprint(public_key: PublicKey) -> str:
    """RFC 7638: the key id, derived from the key, so rotation needs no bookkeeping."""
    canonical = json.dumps(jwk_required_members(public_key), sort_keys=True, separators=(",", ":"))
    return b64url(hashlib.sha256(canonical.encode("utf-8")).digest())


@dataclass(frozen=True)
class VerificationKey:
    kid: str
    alg: str  # the one algorithm this key accepts
    public_key: PublicKey
    jwk: dict[str, str]

    @classmethod
    def from_public_key(
        cls,
        public_key: Any,
        *,
        source: str,
        algorithms: Sequence[str] = ALGORITHMS,
        tokens: str = "tokens",
    ) -> VerificationKey:
        """`algorithms` are those the token kind allows; `tokens` names the kind in errors."""
        if isinstance(public_key, ed25519.Ed25519PublicKey):
            alg = "EdDSA"
        elif isinstance(public_key, rsa.RSAPublicKey):
            alg = "RS256"
        else:
            alg = None
        if alg not in algorithms:
            kinds = " or ".join(_KIND_OF[name] for name in algorithms)
            raise ImproperlyConfigured(
                f"{source}: a {type(public_key).__name__} cannot sign {tokens}; use {kinds}."
            )
        if alg == "RS256" and public_key.key_size < MIN_RSA_BITS:
            raise ImproperlyConfigured(
                f"{source}: an RSA key of {public_key.key_size} bits is too weak; use {MIN_RSA_BITS} or more."
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
    def from_private_key(
        cls,
        private_key: Any,
        *,
        source: str,
        algorithms: Sequence[str] = ALGORITHMS,
        tokens: str = "tokens",
    ) -> LocalSigner:
        key = VerificationKey.from_public_key(
            private_key.public_key(), source=source, algorithms=algorithms, tokens=tokens
        )
        return cls(private_key=private_key, key=key)

    def sign(self, signing_input: bytes) -> bytes:
        if isinstance(self.private_key, ed25519.Ed25519PrivateKey):
            return self.private_key.sign(signing_input)
        return self.private_key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())


def _segment(value: dict[str, Any]) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode("utf-8"))


def jws_sign(claims: dict[str, Any], signer: Signer, *, typ: str = "JWT") -> str:
    """A compact JWS by any signer (a local key or KMS); the header's members
    in sorted order, as PyJWT writes them."""
    header = {"alg": signer.key.alg, "kid": signer.key.kid, "typ": typ}
    signing_input = f"{_segment(header)}.{_segment(claims)}"
    return f"{signing_input}.{b64url(signer.sign(signing_input.encode('ascii')))}"


class TokenRejected(Exception):
    """A token no key of the set verifies, or whose claims do not hold. The
    reason is for logs; each token kind answers with its own error."""

    def __init__(self, reason: str, *, expired: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.expired = expired


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

    def sign(self, claims: dict[str, Any], *, typ: str = "JWT") -> str:
        return jws_sign(claims, self.signer, typ=typ)

    def verify(
        self,
        token: object,
        *,
        issuer: str,
        leeway: float,
        required: Sequence[str],
        audience: str | None = None,
        typ: str | None = None,
        check: Callable[[dict[str, Any]], object] | None = None,
    ) -> dict[str, Any]:
        """The claims of a token one of these keys signed, or TokenRejected.

        `kid` is looked up in this set, never followed anywhere; the key's own
        algorithm is the only one accepted; `check` (raising ValueError or
        TypeError) is what the token kind requires of its claims beyond
        presence. A token verified before, under these same options, has only
        its times checked again.
        """
        # The memo answers only for what it verified: the same token under
        # stricter options (another issuer, audience, type or check) is
        # verified in full.
        memo_key = (token, issuer, audience, typ, tuple(required), check)
        if isinstance(token, str) and (claims := self.verified.get(memo_key, leeway=leeway)):
            return claims
        try:
            header = jws_header(token)
        except ValueError as exc:
            raise TokenRejected(f"malformed: {exc}") from None
        if typ is not None and header.get("typ") != typ:
            raise TokenRejected(f"type {header.get('typ')!r} is not {typ!r}")
        kid = header.get("kid")
        key = self.keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise TokenRejected("unknown kid")
        if header.get("alg") != key.alg:
            raise TokenRejected(f"algorithm {header.get('alg')!r} is not accepted")
        options: dict[str, Any] = {"require": list(required)}
        if audience is not None:
            options["strict_aud"] = True
        try:
            claims = jwt.decode(
                token,
                key.public_key,
                algorithms=[key.alg],
                issuer=issuer,
                audience=audience,
                leeway=leeway,
                options=options,
            )
            if check is not None:
                check(claims)
        except jwt.ExpiredSignatureError as exc:
            raise TokenRejected(str(exc), expired=True) from None
        except (jwt.PyJWTError, TypeError, ValueError, AttributeError) as exc:
            raise TokenRejected(str(exc)) from None
        self.verified.put(memo_key, claims)
        return claims
