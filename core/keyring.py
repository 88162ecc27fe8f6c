"""Signing keys from configuration, shared by the two token issuers (the
server's access tokens in `accounts`, license tokens in `licenses`): PEM files,
the development key made under DEBUG, RFC 7638 key ids, the per-process
cache every request verifies against, and what both verifiers need besides
PyJWT (the unverified header that picks the key, and the claims of tokens
already verified)."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, TypeVar

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from django.core.exceptions import ImproperlyConfigured

logger = logging.getLogger(__name__)

PublicKey = ed25519.Ed25519PublicKey | rsa.RSAPublicKey

_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n.+?-----END \1-----", re.DOTALL)

T = TypeVar("T")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


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


def pem_blocks(path: str, *, what: str) -> list[tuple[str, bytes]]:
    """The PEM blocks of a key file, as (label, block); `what` names the file in errors."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ImproperlyConfigured(f"The {what} file {path} cannot be read: {exc}") from exc
    blocks = [(match.group(1).decode(), match.group(0)) for match in _PEM_BLOCK.finditer(data)]
    if not blocks:
        raise ImproperlyConfigured(f"The {what} file {path} holds no PEM key.")
    return blocks


def development_key_file(path: Path, *, what: str) -> Path:
    """Make the DEBUG Ed25519 key once, under VAR_DIR (never in the repository).

    Racing processes (gunicorn workers, parallel tests) must agree on one key:
    each writes its own draft and hard-links it into place, which fails rather
    than overwrites when another got there first.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        pem = ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(pem)
            os.link(draft, path)
            logger.warning(f"made a development {what}", extra={"path": str(path)})
        except FileExistsError:
            pass
        finally:
            draft.unlink(missing_ok=True)
    return path


class LoadedOnce(Generic[T]):
    """A value a process loads on first use and keeps (keys: every request
    verifies with them, so nothing is re-read per call), until `reset()`."""

    def __init__(self, load: Callable[[], T]) -> None:
        self._load = load
        self._value: T | None = None
        self._lock = threading.Lock()

    def get(self) -> T:
        value = self._value
        if value is None:
            with self._lock:
                if self._value is None:
                    self._value = self._load()
                value = self._value
        return value

    def reset(self) -> None:
        with self._lock:
            self._value = None


_B64URL_SEGMENT = re.compile(r"[A-Za-z0-9_-]{2,1024}")


def jws_header(token: object) -> dict[str, Any]:
    """The protected header of a compact JWS, not verified: only to choose the
    key (by `kid`) or the verifier (by `alg`); PyJWT then verifies the whole
    token. Raises ValueError for anything that is not three base64url segments
    with a JSON object first."""
    if not isinstance(token, str) or token.count(".") != 2:
        raise ValueError("not a compact JWS")
    segment = token[: token.index(".")]
    if not _B64URL_SEGMENT.fullmatch(segment) or len(segment) % 4 == 1:
        raise ValueError("malformed header segment")
    header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    if not isinstance(header, dict):
        raise ValueError("the header is not a JSON object")
    return header


class VerifiedTokens:
    """Claims of tokens this process has verified in full, keyed by the whole
    token string.

    What a verification decides (signature, key, algorithm, type, issuer,
    audience, required claims) is fixed by the token's bytes and the process's
    keys; only the times move. So a token seen again (an access token is sent
    with every call for an hour, a license token with every heartbeat) has only
    `exp`, `nbf` and `iat` checked again, with the verifier's leeway. A miss,
    or a token whose times no longer hold, goes through full verification,
    which gives the precise error. Lives on a loaded key set, so reloading the
    keys forgets it; bounded, and when full it starts over.
    """

    def __init__(self, max_entries: int = 4096) -> None:
        self._entries: dict[str, dict[str, Any]] = {}
        self._max_entries = max_entries

    def get(self, token: str, *, leeway: float) -> dict[str, Any] | None:
        claims = self._entries.get(token)
        if claims is None:
            return None
        now = time.time()
        if claims["exp"] <= now - leeway or claims["nbf"] > now + leeway or claims["iat"] > now + leeway:
            self._entries.pop(token, None)
            return None
        return dict(claims)

    def put(self, token: str, claims: dict[str, Any]) -> None:
        if len(self._entries) >= self._max_entries:
            self._entries.clear()
        self._entries[token] = dict(claims)
