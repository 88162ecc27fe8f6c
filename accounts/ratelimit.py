"""Rate limits: per client address (middleware, every request but the probes
and the operator console's signed-in operators) and per user (a DRF
throttle, after authentication has said who is calling).

Both count requests in a sliding window: in Redis by a Lua script over a sorted
set (ratelimit.lua, loaded once, run by EVALSHA), or, where there is no Redis
(the embedded default), in a database table under a lock. A refused request
answers 429 `rate_limited` with Retry-After; every counted request carries
RateLimit-Limit, RateLimit-Remaining and RateLimit-Reset (the tighter limit
speaks).

When the limiter's store is down, requests go through (fail open) and a
warning is logged: a limiter protects the service, it must not become the
outage. Redis is then left alone for a few seconds rather than waited on by
every request.

The per-address limit guards the API and the sign-in doors. The admin site
(ADMIN_URL) is the operators' console: a support person clicking through it,
or several behind one office address, must not be refused by the limit meant
for API clients. So a request to the admin site is counted only when it does
not come from a signed-in operator (active staff without a tenant, whom the
admin site lets in). Who is signed in is known only after the session and
authentication middleware, which run after this one: for the admin site the
count is made in `process_view`, just before the view, where `request.user`
reads the session the admin view reads anyway (one lookup, cached on the
request: no query is added). Every other request is counted in `__call__`,
as before, and never touches the session. Anonymous admin requests (the login
form included, which the sign-in throttle guards as well) stay counted.

A refused request answers in the shape of where it went: the API's error
shape (JSON) under /api/ and /.well-known/, an HTML page (templates/429.html)
for the pages (admin site, dashboard); both with Retry-After.
"""

from __future__ import annotations

import logging
import math
import random
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, connections, transaction
from django.db.models import Count, Min
from django.http import HttpResponse
from django.template.loader import render_to_string
from django.utils import timezone
from rest_framework.throttling import BaseThrottle

from accounts.models import RateLimitHit
from core.context import client_ip
from core.errors import ApplicationError, error_response, is_api_request
from core.redis_clients import REDIS_ERRORS
from core.redis_scripts import ScriptClients
from tenants.scope import DEFAULT_DB

logger = logging.getLogger(__name__)

UNLIMITED_PATHS = frozenset({"/health", "/ready", "/metrics"})
REDIS_RETRY_AFTER_FAILURE_SECONDS = 5.0
_SCRIPT_SOURCE = (Path(__file__).parent / "ratelimit.lua").read_text()


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_after: float  # seconds until the oldest counted request leaves the window

    def headers(self) -> dict[str, str]:
        reset = max(0, math.ceil(self.reset_after))
        headers = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(max(0, self.remaining)),
            "RateLimit-Reset": str(reset),
        }
        if not self.allowed:
            headers["Retry-After"] = str(max(1, reset))
        return headers


def rate_limit_hit(*, key: str, limit: int, window: int | None = None) -> Decision | None:
    """Count one request against `key` if it fits in the window. None: no
    decision could be made (the store is down), so let the request through."""
    window = window or settings.RATE_LIMIT_WINDOW_SECONDS
    if settings.RATE_LIMIT_BACKEND == "redis":
        return _redis_hit(key, limit, window)
    return _database_hit(key, limit, window)


# --- Redis ------------------------------------------------------------------------------

_redis_scripts = ScriptClients(_SCRIPT_SOURCE, client_name="coditect-rate-limit")
_redis_down_until = 0.0


def _redis_script(url: str):
    return _redis_scripts.entry(url)[1]


def _redis_hit(key: str, limit: int, window: int) -> Decision | None:
    global _redis_down_until
    if time.monotonic() < _redis_down_until:
        return None
    try:
        # One key per script call: on a Redis Cluster it lives on one slot.
        allowed, remaining, reset_ms = _redis_script(settings.REDIS_URL)(
            keys=[f"{settings.REDIS_KEY_PREFIX}:ratelimit:{key}"],
            args=[limit, window * 1000, uuid.uuid4().hex],
        )
    except REDIS_ERRORS as exc:
        _redis_down_until = time.monotonic() + REDIS_RETRY_AFTER_FAILURE_SECONDS
        logger.warning(
            "rate limiter cannot reach Redis; letting requests through", extra={"error": repr(exc)}
        )
        return None
    return Decision(bool(allowed), limit, int(remaining), int(reset_ms) / 1000)


# --- database (no Redis) -------------------------------------------------------------------


def _database_hit(key: str, limit: int, window: int) -> Decision | None:
    connection = connections[DEFAULT_DB]
    # In its own transaction (the per-address check, before the view) a lock per
    # key makes count-then-insert exact. Inside a request's transaction (the
    # per-user check) a lock would be held for the whole request, so none is
    # taken: SQLite serialises writers anyway; on PostgreSQL without Redis a few
    # concurrent requests may slip past the per-user limit.
    lock = connection.vendor == "postgresql" and not connection.in_atomic_block
    try:
        with transaction.atomic(using=DEFAULT_DB):
            if lock:
                with connection.cursor() as cursor:
                    cursor.execute(
                        "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [f"ratelimit:{key}"]
                    )
            now = timezone.now()
            start = now - timedelta(seconds=window)
            hits = RateLimitHit.objects.using(DEFAULT_DB)
            if random.random() < 0.01:  # noqa: S311 - sampling, not security
                hits.filter(hit_at__lte=start).delete()  # keys that went quiet
            else:
                hits.filter(key=key, hit_at__lte=start).delete()
            seen = hits.filter(key=key).aggregate(count=Count("id"), oldest=Min("hit_at"))
            count, oldest = seen["count"], seen["oldest"]
            allowed = count < limit
            if allowed:
                hits.create(key=key, hit_at=now)
                count += 1
                oldest = oldest or now
    except DatabaseError as exc:
        logger.warning(
            "rate limiter cannot use the database; letting the request through", extra={"error": repr(exc)}
        )
        return None
    reset_after = (oldest + timedelta(seconds=window) - now).total_seconds()
    return Decision(allowed, limit, limit - count, reset_after)


# --- who is calling --------------------------------------------------------------------------


def _refusal(message: str, decision: Decision):
    return message, {"retry_after": int(decision.headers()["Retry-After"])}


# The admin site's views that check a password: counted for every caller.
PASSWORD_VIEWS = frozenset({"login", "password_change"})


class PerIpRateLimitMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response
        self.console_prefix = "/" + settings.ADMIN_URL.strip("/") + "/"

    def _console(self, request) -> bool:
        return request.path_info.startswith(self.console_prefix)

    def __call__(self, request):
        limit = settings.RATE_LIMIT_PER_IP
        request.rate_limit_ip = None
        counted = False
        if limit > 0 and request.path_info not in UNLIMITED_PATHS:
            console = self._console(request)
            # A console request with no session cannot be an operator's: it is
            # counted here, before anything else answers it.
            if not console or settings.SESSION_COOKIE_NAME not in request.COOKIES:
                refused = self._count(request, limit)
                if refused is not None:
                    return refused
                counted = True
            request._rate_limit_ip_pending = not counted
        response = self.get_response(request)
        if getattr(request, "_rate_limit_ip_pending", False) and not _signed_in_operator(request):
            # A console request with a session that no view counted (answered
            # before one, by a redirect or a refusal) still counts: its answer
            # is made, so it is not refused, but the next one may be.
            self._count(request, limit)
        decisions = [
            d for d in (request.rate_limit_ip, getattr(request, "rate_limit_user", None)) if d is not None
        ]
        if decisions and "RateLimit-Limit" not in response:
            tightest = min(decisions, key=lambda d: d.remaining)
            for name, value in tightest.headers().items():
                response[name] = value
        return response

    def process_view(self, request, view_func, view_args, view_kwargs):
        """The admin site's requests with a session, counted once the session
        has said who is calling: a signed-in operator's pages are not counted;
        the sign-in and password forms always are, whoever is signed in (a
        session is no licence to try passwords)."""
        if not getattr(request, "_rate_limit_ip_pending", False):
            return None
        request._rate_limit_ip_pending = False
        match = request.resolver_match
        password_form = match is not None and match.url_name in PASSWORD_VIEWS
        if _signed_in_operator(request) and not password_form:
            return None
        return self._count(request, settings.RATE_LIMIT_PER_IP)

    def _count(self, request, limit: int):
        """Count the request against its address; the refusal, if it is one."""
        ip = getattr(request, "client_ip", None) or client_ip(request)
        decision = rate_limit_hit(key=f"ip:{ip}", limit=limit)
        request.rate_limit_ip = decision
        if decision is None or decision.allowed:
            return None
        message = "Too many requests from this address; slow down."
        if is_api_request(request):
            message, details = _refusal(message, decision)
            response = error_response("rate_limited", message, details)
        else:
            retry_after = int(decision.headers()["Retry-After"])
            context = {"retry_after": retry_after}
            page = render_to_string("429.html", context)
            response = HttpResponse(page, status=429, content_type="text/html; charset=utf-8")
        for name, value in decision.headers().items():
            response[name] = value
        return response


def _signed_in_operator(request) -> bool:
    """An active operator (staff without a tenant) signed in to this session,
    as the admin site's own permission check asks (accounts/admin.py)."""
    user = getattr(request, "user", None)
    return bool(user is not None and user.is_active and getattr(user, "is_operator", False))


class PerUserRateLimit(BaseThrottle):
    """The per-user limit, as a DRF throttle so it runs after authentication."""

    def allow_request(self, request, view) -> bool:
        limit = settings.RATE_LIMIT_PER_USER
        user_id = getattr(request.user, "pk", None)
        if limit <= 0 or user_id is None:
            return True
        decision = rate_limit_hit(key=f"user:{user_id}", limit=limit)
        if decision is None:
            return True
        request._request.rate_limit_user = decision
        if not decision.allowed:
            message, details = _refusal("Too many requests for this account; slow down.", decision)
            raise ApplicationError(message, code="rate_limited", details=details, headers=decision.headers())
        return True
