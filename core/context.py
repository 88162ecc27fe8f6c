"""Who and what the current request (or task run) is: its id, the client's
address and the actor, for logs and audit rows.

The request-context middleware opens it for every request; authentication
names the actor; a Celery task run opens its own. Services read it here
instead of being handed the request.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any


@dataclass(frozen=True)
class RequestContext:
    request_id: str = ""
    client_ip: str | None = None  # compressed, as PostgreSQL's inet gives it back
    actor: Any = None  # the authenticated user, once authentication has run
    # What to undo if the request fails: changes made outside its database
    # transaction (a seat taken in Redis), which its rollback cannot reach.
    undo: list[Callable[[], object]] = field(default_factory=list)


logger = logging.getLogger(__name__)

_EMPTY = RequestContext()
_current: ContextVar[RequestContext] = ContextVar("coditect_request_context", default=_EMPTY)


def current_context() -> RequestContext:
    return _current.get()


def context_enter(*, request_id: str, client_ip: str | None = None) -> Token:
    """Open a context; hand the token back to `context_exit` (for callers that
    cannot use a `with` block, as Celery's prerun and postrun signals)."""
    return _current.set(RequestContext(request_id=request_id, client_ip=client_ip))


def context_exit(token: Token) -> None:
    _current.reset(token)


@contextmanager
def request_context(*, request_id: str = "", client_ip: str | None = None) -> Iterator[RequestContext]:
    token = context_enter(request_id=request_id, client_ip=client_ip)
    try:
        yield _current.get()
    finally:
        context_exit(token)


def context_set_actor(actor: Any) -> None:
    """Name the caller once authentication has found it (for the rest of this context)."""
    current = _current.get()
    if current is not _EMPTY and current.actor is not actor:
        _current.set(replace(current, actor=actor))


def context_undo_on_failure(undo: Callable[[], object]) -> None:
    """Have `undo` run if the current request fails (answers 5xx), so that an
    answer of 503 leaves nothing changed. Outside a request, nothing to do."""
    current = _current.get()
    if current is not _EMPTY:
        current.undo.append(undo)


def context_undo_changes() -> None:
    """The request failed: undo, newest first, what it registered; an undo
    that fails is logged (the change then ends as it would have: a lease by
    its expiry)."""
    current = _current.get()
    while current.undo:
        undo = current.undo.pop()
        try:
            undo()
        except Exception:
            logger.exception("a failed request's change could not be undone")


def normalized_ip(value: str) -> str | None:
    """The address in its one written form (None if it is none)."""
    # Remembered: every request asks it of its peer, and peers repeat (a load
    # balancer, an office). Only what could be an address is kept, and a
    # fixed number of them.
    return _normalized_ip(value) if len(value) <= 64 else None


@lru_cache(maxsize=4096)
def _normalized_ip(value: str) -> str | None:
    try:
        return ipaddress.ip_address(value.strip()).compressed
    except ValueError:
        return None


def client_ip(request) -> str:
    """The peer address, or, behind TRUSTED_PROXY_COUNT proxies of ours, the
    X-Forwarded-For entry the outermost of them wrote (entries left of it are
    whatever the client chose to send)."""
    from django.conf import settings

    remote = normalized_ip(request.META.get("REMOTE_ADDR", "")) or "unknown"
    trusted = settings.TRUSTED_PROXY_COUNT
    if trusted > 0:
        hops = [hop for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
        if len(hops) >= trusted:
            return normalized_ip(hops[-trusted]) or remote
    return remote
