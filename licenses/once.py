"""One-time tokens for the console's confirming forms: a double click acts once.

A confirmation page (regenerate a key, extend, suspend, a bulk action, the add
form) carries a token made for this operator, this action and this license
(`nonce_issue`). The POST that confirms takes it (`nonce_claim`): the token's
row is locked in a transaction on the admin's database path, so a second POST
with the same token waits for the first to finish, then finds it used and acts
on nothing; it goes where the first one went (`Claim.result`: the page that
shows the new key, say). A token is good for NONCE_SECONDS.

The lock is held while the action runs, and its result (the session that holds
a key to show once, the page to land on) is saved before it is released, so
the second POST never lands on a page the first has not finished.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta

from django.db import router, transaction
from django.utils import timezone

from licenses.models import ConsoleNonce

# The field a confirming form carries its token in.
NONCE_FIELD = "once"
# A confirmation left open longer than this asks again.
NONCE_SECONDS = 12 * 3600
# Longer than any token nonce_issue makes.
MAX_NONCE_LENGTH = 100


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _database() -> str:
    return router.db_for_write(ConsoleNonce)


def nonce_issue(request, action: str, license=None) -> str:
    """A new token for one confirming form; tokens past their time are dropped."""
    token = secrets.token_urlsafe(24)
    now = timezone.now()
    database = _database()
    ConsoleNonce.objects.using(database).filter(
        created_at__lt=now - timedelta(seconds=NONCE_SECONDS)
    ).delete()
    ConsoleNonce.objects.using(database).create(
        digest=_digest(token),
        user_id=request.user.pk,
        action=action,
        license_id=getattr(license, "pk", None),
        created_at=now,
    )
    return token


@dataclass
class Claim:
    """What a confirming POST found: "fresh" (act, then `done()`), "used" (a
    POST with this token acted already: go to `result`), or "unknown" (no such
    token for this operator, action and license, or it is too old: ask again)."""

    state: str
    result: str = ""
    _done: list = field(default_factory=list)

    @property
    def fresh(self) -> bool:
        return self.state == "fresh"

    @property
    def used(self) -> bool:
        return self.state == "used"

    def done(self, result: str = "") -> None:
        """The action was taken: the token is used, and a second POST goes to `result`."""
        self._done[:] = [result]


@contextmanager
def nonce_claim(request, token: str, action: str, license=None) -> Iterator[Claim]:
    """Take the token for the block's action. Inside, act only if `claim.fresh`,
    and call `claim.done()` when the action was taken; an action that was
    refused (or raised) leaves the token unused, so the form can be sent again."""
    database = _database()
    with transaction.atomic(using=database):
        row = None
        if isinstance(token, str) and 0 < len(token) <= MAX_NONCE_LENGTH and "\x00" not in token:
            row = (
                ConsoleNonce.objects.using(database)
                .select_for_update()
                .filter(
                    digest=_digest(token),
                    user_id=request.user.pk,
                    action=action,
                    license_id=getattr(license, "pk", None),
                    created_at__gt=timezone.now() - timedelta(seconds=NONCE_SECONDS),
                )
                .first()
            )
        if row is None:
            claim = Claim("unknown")
        elif row.used_at is not None:
            claim = Claim("used", row.result)
        else:
            claim = Claim("fresh")
        yield claim
        if row is not None and claim.fresh and claim._done:
            row.used_at = timezone.now()
            row.result = claim._done[0][:300]
            row.save(using=database, update_fields=["used_at", "result"])


# --- a page shown once -------------------------------------------------------------------
# The key page's token lives in the operator's session, and a session is read by
# each request before another saves it: pages opened in several tabs at once
# would each find the key still there. The token is also a row here, and one
# UPDATE takes it: of requests in flight together, exactly one shows the key.

SHOWN_ONCE_ACTION = "key_shown_once"


def once_register(request, token: str, license) -> None:
    """Record a page's token, so that `once_take` lets it be shown once."""
    ConsoleNonce.objects.using(_database()).create(
        digest=_digest(token),
        user_id=request.user.pk,
        action=SHOWN_ONCE_ACTION,
        license_id=getattr(license, "pk", None),
        created_at=timezone.now(),
    )


def once_take(request, token: str, license) -> bool:
    """True for the one request that takes the token (this operator's, this
    license's, not too old); False for every other, at once or later."""
    if not isinstance(token, str) or not 0 < len(token) <= MAX_NONCE_LENGTH or "\x00" in token:
        return False
    now = timezone.now()
    taken = (
        ConsoleNonce.objects.using(_database())
        .filter(
            digest=_digest(token),
            user_id=request.user.pk,
            action=SHOWN_ONCE_ACTION,
            license_id=getattr(license, "pk", None),
            created_at__gt=now - timedelta(seconds=NONCE_SECONDS),
            used_at__isnull=True,
        )
        .update(used_at=now)
    )
    return taken == 1
