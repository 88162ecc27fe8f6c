"""Idempotent creates of the provisioning API: the `Idempotency-Key` header.

The first create with a key claims it (a row of `licenses_idempotency_records`,
unique per caller and key, inserted in the request's transaction) and, once
it has succeeded, keeps its answer in that row. The same key again:

- with the same request (method, path and body, compared as a SHA-256 of
  canonical JSON): the same answer, status and body, replayed with
  `Idempotent-Replayed: true`; nothing is created again;
- with another request: 422 `idempotency_key_reused`, nothing changes.

Two requests with one key at once: the second one's insert waits on the
unique index until the first commits, then replays its answer (or, if the
first failed and rolled back, goes ahead itself). An answer that is not 2xx is
not kept: the claim is dropped, and the same key may be tried again.

Keys are per caller (an API key; two keys never see each other's) and kept
`IDEMPOTENCY_KEY_HOURS` (24): older rows are purged when a create claims a
key, and an older key counts as new. The answer holds a license key, shown
once: the row keeps it sealed (AES-GCM) under a key derived from the caller's
own API key, which the server does not store, so only a caller who presents
that API key again can have it replayed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import uuid
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from django.utils import timezone

from core.errors import ApplicationError
from licenses.models import IdempotencyRecord

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
# Printable ASCII without spaces, as the IETF draft's examples and Stripe's keys.
KEY_SHAPE = re.compile(r"^[\x21-\x7e]{1,255}$")
_PURPOSE = b"coditect.licenses.idempotency.v1:"


@dataclass
class Claim:
    """A claimed key (`record`), or an answer to replay (`replay`)."""

    record: IdempotencyRecord | None
    seal_key: bytes
    replay: tuple[int, dict] | None = None


def request_digest(*, method: str, path: str, body) -> str:
    canonical = json.dumps([method, path, body], sort_keys=True, separators=(",", ":"), cls=DjangoJSONEncoder)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _seal_key(secret: str, key: str) -> bytes:
    return hmac.new(secret.encode(), _PURPOSE + key.encode(), hashlib.sha256).digest()


def _seal(seal_key: bytes, record_id: int, answer: dict) -> str:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = os.urandom(12)
    plain = json.dumps(answer, cls=DjangoJSONEncoder).encode()
    return base64.b64encode(nonce + AESGCM(seal_key).encrypt(nonce, plain, str(record_id).encode())).decode()


def _unseal(seal_key: bytes, record: IdempotencyRecord) -> dict | None:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    raw = base64.b64decode(record.sealed_answer or "")
    try:
        return json.loads(AESGCM(seal_key).decrypt(raw[:12], raw[12:], str(record.pk).encode()))
    except (InvalidTag, ValueError):
        return None


def idempotency_key_from(headers) -> str | None:
    """The request's `Idempotency-Key`, or None; a malformed one is 400."""
    key = headers.get(HEADER)
    if key is None:
        return None
    if not KEY_SHAPE.match(key):
        raise ApplicationError(
            "The request is not valid.",
            details={"fields": {HEADER: ["1 to 255 printable ASCII characters, no spaces."]}},
        )
    return key


def idempotency_claim(*, caller_id: uuid.UUID, secret: str, key: str, digest: str) -> Claim:
    """Claim `key` for this request, or find the answer to replay. Runs in the
    request's transaction (the claim commits with what the request creates)."""
    seal_key = _seal_key(secret, key)
    cutoff = timezone.now() - timedelta(hours=settings.IDEMPOTENCY_KEY_HOURS)
    IdempotencyRecord.objects.filter(created_at__lt=cutoff).delete()
    try:
        with transaction.atomic():
            record = IdempotencyRecord.objects.create(caller_id=caller_id, key=key, request_digest=digest)
        return Claim(record=record, seal_key=seal_key)
    except IntegrityError:
        pass
    existing = IdempotencyRecord.objects.filter(caller_id=caller_id, key=key).first()
    if existing is None or existing.request_digest != digest:
        raise ApplicationError(
            f"This {HEADER} was used for another request; use a new key for a new request.",
            code="idempotency_key_reused",
        )
    answer = _unseal(seal_key, existing) if existing.status_code else None
    if answer is None:
        raise ApplicationError(
            f"This {HEADER} was used for another request; use a new key for a new request.",
            code="idempotency_key_reused",
        )
    return Claim(record=None, seal_key=seal_key, replay=(existing.status_code, answer))


def idempotency_finish(claim: Claim, *, status: int, answer: dict) -> None:
    """Keep a successful answer under the claim; drop the claim of any other."""
    record = claim.record
    if record is None:
        return
    if 200 <= status < 300:
        record.status_code = status
        record.sealed_answer = _seal(claim.seal_key, record.pk, answer)
        record.save(update_fields=["status_code", "sealed_answer"])
    else:
        record.delete()
