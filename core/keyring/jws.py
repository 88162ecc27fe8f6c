"""Compact JWS on the wire: base64url, the unverified header that picks the
key, and the memo of tokens already verified."""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Hashable
from typing import Any


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


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
    token string (with the options it was verified under, where the caller
    verifies one token more than one way).

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
        self._entries: dict[Hashable, dict[str, Any]] = {}
        self._max_entries = max_entries

    def get(self, token: Hashable, *, leeway: float) -> dict[str, Any] | None:
        claims = self._entries.get(token)
        if claims is None:
            return None
        now = time.time()
        if claims["exp"] <= now - leeway or claims["nbf"] > now + leeway or claims["iat"] > now + leeway:
            self._entries.pop(token, None)
            return None
        return dict(claims)

    def put(self, token: Hashable, claims: dict[str, Any]) -> None:
        if len(self._entries) >= self._max_entries:
            self._entries.clear()
        self._entries[token] = dict(claims)
