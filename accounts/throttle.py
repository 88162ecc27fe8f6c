"""The sign-in throttle: per account, whatever address the attempts come from.

Every password door (the API's login, the dashboard's sign-in, the admin
site's) asks `login_attempt_begin` before it looks the account up or hashes a
password. An account is its normalised email, whether or not a user has it,
so an unknown address is throttled exactly as a real one and the answer tells
nothing. From the Nth consecutive failure on (LOGIN_FAILURES_BEFORE_THROTTLE),
each failure locks the account for LOGIN_BACKOFF_BASE_SECONDS * 2^(failures -
N), at most LOGIN_BACKOFF_MAX_SECONDS; while locked, every attempt is refused
(`LoginThrottled`, which doors answer as 429 `login_throttled` with
Retry-After), the right password too. A success clears the run, so does an
operator (`login_throttle_clear`: the admin's user action, `manage.py
unlock_login`); failures are forgotten LOGIN_FAILURE_WINDOW_SECONDS after
the last one.

An attempt let through is counted as a failure before its password is
checked, and the success clears it: parallel attempts cannot all pass before
the lock, since the one that makes the Nth failure sets the lock itself.

Where the run lives: Redis (login_throttle.lua, one key per account) when
RATE_LIMIT_BACKEND is redis, the database (LoginThrottle rows) otherwise.
Beside Redis every lock is also written to the database, and the database's
lock is read first, so a locked account stays refused while Redis is away.
While Redis does not answer, the database counts the runs (fail over, with a
WARNING): sign-in keeps working and keeps being throttled; a run of fewer
than N failures counted in Redis starts again from zero. A database that does
not answer is 503: sign-in cannot look anyone up then either.

Guesses at many accounts at once pass every account's throttle (each is a
first failure); `login_check_slot` bounds them instead: a host runs at most
LOGIN_CONCURRENT_CHECKS password checks at once, and refuses the rest at once.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import logging
import math
import os
import random
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import redis
from django.conf import settings
from django.db import DatabaseError, connections, transaction
from django.utils import timezone

from accounts.models import LoginThrottle
from core.errors import ServiceUnavailable
from core.redis_clients import REDIS_ERRORS, RedisClient
from core.redis_scripts import ScriptClients
from tenants.scope import DEFAULT_DB

logger = logging.getLogger(__name__)

REDIS_RETRY_AFTER_FAILURE_SECONDS = 5.0
_SCRIPT_SOURCE = (Path(__file__).parent / "login_throttle.lua").read_text()
STORE_DOWN = "The sign-in throttle's store does not answer; try again shortly."


class LoginThrottled(Exception):
    """This account is locked for `retry_after` more seconds (at least 1)."""

    def __init__(self, retry_after: float) -> None:
        self.retry_after = max(1, math.ceil(retry_after))
        super().__init__(f"sign-in throttled for {self.retry_after} s")


@dataclass(frozen=True)
class LoginAttempt:
    """An attempt let through, already counted as a failure."""

    key: str
    failures: int  # the run, this attempt included
    locked_for: int  # seconds this attempt locked the account for (0: none)
    store: str  # "redis" or "database"


def login_throttle_key(email: str) -> str:
    """The account's key: a keyed digest of the normalised email (stores hold no address)."""
    normalised = email.strip().lower()
    return hmac.new(settings.SECRET_KEY.encode(), f"login:{normalised}".encode(), hashlib.sha256).hexdigest()


def login_backoff_seconds(failures: int) -> float:
    """How long the failure that makes a run of `failures` locks the account for."""
    threshold = settings.LOGIN_FAILURES_BEFORE_THROTTLE
    if threshold <= 0 or failures < threshold:
        return 0.0
    exponent = min(failures - threshold, 40)
    return min(settings.LOGIN_BACKOFF_BASE_SECONDS * 2**exponent, settings.LOGIN_BACKOFF_MAX_SECONDS)


def login_attempt_begin(*, email: str) -> LoginAttempt | None:
    """Let one attempt on this account through (counted as a failure), or raise
    LoginThrottled. None: the throttle is off. ServiceUnavailable when no store
    answers."""
    if settings.LOGIN_FAILURES_BEFORE_THROTTLE <= 0:
        return None
    key = login_throttle_key(email)
    now = timezone.now()
    if settings.RATE_LIMIT_BACKEND == "redis" and time.monotonic() >= _redis_down_until:
        _refuse_if_locked_in_database(key, now)
        attempt = _redis_begin(key, now)
        if attempt is not None:
            if attempt.locked_for:
                _database_mirror(key, attempt, now)
            return attempt
    return _database_begin(key, now)


def login_attempt_succeeded(attempt: LoginAttempt | None) -> None:
    """The password was right: the account's run of failures ends."""
    if attempt is None:
        return
    if attempt.store == "redis":
        try:
            redis_client(settings.REDIS_URL).delete(_redis_key(attempt.key))
        except REDIS_ERRORS as exc:
            # The run stays until its window ends: at worst the owner is throttled early.
            logger.warning("sign-in throttle cannot clear a run in Redis", extra={"error": repr(exc)})
    LoginThrottle.objects.using(DEFAULT_DB).filter(key=attempt.key).delete()


@dataclass(frozen=True)
class ThrottleState:
    failures: int
    locked_for: int  # seconds left (0: not locked)


def login_throttle_state(*, email: str) -> ThrottleState:
    """What the stores hold for this account (the longer lock of the two)."""
    key = login_throttle_key(email)
    now = timezone.now()
    failures, locked_for = 0, 0.0
    row = LoginThrottle.objects.using(DEFAULT_DB).filter(key=key).first()
    if row is not None and _remembered(row, now):
        failures = row.failures
        if row.locked_until and row.locked_until > now:
            locked_for = (row.locked_until - now).total_seconds()
    if settings.RATE_LIMIT_BACKEND == "redis":
        try:
            values = redis_client(settings.REDIS_URL).hmget(
                _redis_key(key), "failures", "last", "locked_until"
            )
        except REDIS_ERRORS as exc:
            raise ServiceUnavailable(STORE_DOWN) from exc
        now_ms = _ms(now)
        if values[0] is not None and now_ms - int(values[1]) <= settings.LOGIN_FAILURE_WINDOW_SECONDS * 1000:
            failures = max(failures, int(values[0]))
            locked_for = max(locked_for, (int(values[2]) - now_ms) / 1000)
    return ThrottleState(failures=failures, locked_for=math.ceil(max(0.0, locked_for)))


def login_throttle_clear(*, email: str) -> int:
    """End the account's run and lock in every store (an operator's unlock).
    Returns the run's failures (0: there was nothing to clear). The database
    is cleared first: with Redis away the account is unlocked for as long as
    the database counts, and the ServiceUnavailable says to try again."""
    key = login_throttle_key(email)
    now = timezone.now()
    rows = LoginThrottle.objects.using(DEFAULT_DB).filter(key=key)
    row = rows.first()
    failures = row.failures if row is not None and _remembered(row, now) else 0
    rows.delete()
    if settings.RATE_LIMIT_BACKEND == "redis":
        try:
            client = redis_client(settings.REDIS_URL)
            values = client.hmget(_redis_key(key), "failures", "last")
            client.delete(_redis_key(key))
        except REDIS_ERRORS as exc:
            raise ServiceUnavailable(STORE_DOWN) from exc
        if (
            values[0] is not None
            and _ms(now) - int(values[1]) <= settings.LOGIN_FAILURE_WINDOW_SECONDS * 1000
        ):
            failures = max(failures, int(values[0]))
    return failures


# --- Redis ------------------------------------------------------------------------------

_redis_scripts = ScriptClients(_SCRIPT_SOURCE, client_name="coditect-login-throttle")
_redis_down_until = 0.0


def _redis_entry(url: str) -> tuple[RedisClient, redis.commands.core.Script]:
    return _redis_scripts.entry(url)


def redis_client(url: str) -> RedisClient:
    """The throttle's Redis client (one per URL and process; a RedisCluster
    for a cluster URL). Raises REDIS_ERRORS while a cluster cannot be reached."""
    return _redis_entry(url)[0]


def _redis_key(key: str) -> str:
    return f"{settings.REDIS_KEY_PREFIX}:login:{key}"


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _redis_begin(key: str, now: datetime) -> LoginAttempt | None:
    """The attempt counted in Redis; None when Redis does not answer."""
    global _redis_down_until
    try:
        allowed, failures, lock_ms = _redis_entry(settings.REDIS_URL)[1](
            keys=[_redis_key(key)],
            args=[
                _ms(now),
                settings.LOGIN_FAILURES_BEFORE_THROTTLE,
                int(settings.LOGIN_BACKOFF_BASE_SECONDS * 1000),
                int(settings.LOGIN_BACKOFF_MAX_SECONDS * 1000),
                int(settings.LOGIN_FAILURE_WINDOW_SECONDS * 1000),
            ],
        )
    except REDIS_ERRORS as exc:
        _redis_down_until = time.monotonic() + REDIS_RETRY_AFTER_FAILURE_SECONDS
        logger.warning(
            "sign-in throttle cannot reach Redis; counting failed sign-ins in the database",
            extra={"error": repr(exc)},
        )
        return None
    if not allowed:
        raise LoginThrottled(int(lock_ms) / 1000)
    return LoginAttempt(
        key=key, failures=int(failures), locked_for=math.ceil(int(lock_ms) / 1000), store="redis"
    )


# --- database ----------------------------------------------------------------------------


def _remembered(row: LoginThrottle, now: datetime) -> bool:
    return (now - row.last_failure_at).total_seconds() <= settings.LOGIN_FAILURE_WINDOW_SECONDS


def _refuse_if_locked_in_database(key: str, now: datetime) -> None:
    try:
        locked_until = (
            LoginThrottle.objects.using(DEFAULT_DB)
            .filter(key=key, locked_until__gt=now)
            .values_list("locked_until", flat=True)
            .first()
        )
    except DatabaseError as exc:
        raise ServiceUnavailable(STORE_DOWN) from exc
    if locked_until is not None:
        raise LoginThrottled((locked_until - now).total_seconds())


def _database_mirror(key: str, attempt: LoginAttempt, now: datetime) -> None:
    """Write a lock Redis just set to the database too, so it holds without Redis."""
    try:
        LoginThrottle.objects.using(DEFAULT_DB).update_or_create(
            key=key,
            defaults={
                "failures": attempt.failures,
                "last_failure_at": now,
                "locked_until": now + timedelta(seconds=attempt.locked_for),
            },
        )
    except DatabaseError as exc:
        raise ServiceUnavailable(STORE_DOWN) from exc


def _database_begin(key: str, now: datetime) -> LoginAttempt:
    connection = connections[DEFAULT_DB]
    rows = LoginThrottle.objects.using(DEFAULT_DB)
    try:
        with transaction.atomic(using=DEFAULT_DB):
            if connection.vendor == "postgresql":
                # One attempt per account at a time, so two cannot both read the
                # run before either counts (the row may not exist yet to lock).
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [f"login:{key}"])
            row = rows.filter(key=key).first()
            if row is not None and row.locked_until is not None and row.locked_until > now:
                raise LoginThrottled((row.locked_until - now).total_seconds())
            if row is None:
                row = LoginThrottle(key=key, failures=0)
            elif not _remembered(row, now):
                row.failures = 0
            row.failures += 1
            lock = math.ceil(login_backoff_seconds(row.failures))
            row.last_failure_at = now
            row.locked_until = now + timedelta(seconds=lock) if lock else None
            row.save(using=DEFAULT_DB)
            if random.random() < 0.01:  # noqa: S311 - sampling, not security
                # Runs that went quiet (most are addresses nobody has).
                forgotten = now - timedelta(seconds=settings.LOGIN_FAILURE_WINDOW_SECONDS)
                rows.filter(last_failure_at__lt=forgotten).exclude(locked_until__gt=now).delete()
    except DatabaseError as exc:
        raise ServiceUnavailable(STORE_DOWN) from exc
    return LoginAttempt(key=key, failures=row.failures, locked_for=lock, store="database")


# --- password checks at once, per host ----------------------------------------------------


class LoginBusy(Exception):
    """Every password-check slot of this host is taken: try again in a second."""


def _slot_directory() -> Path:
    configured = settings.LOGIN_CHECK_SLOT_DIR
    if configured:
        return Path(configured)
    shm = Path("/dev/shm")  # noqa: S108 - a memory filesystem, per pod; the lock files hold nothing
    return shm if shm.is_dir() else Path(tempfile.gettempdir())


def login_check_slot_path(slot: int) -> Path:
    """The lock file of one slot of this deployment on this host."""
    database = settings.DATABASES[DEFAULT_DB].get("NAME", "")
    named = f"{settings.SECRET_KEY}:{settings.REDIS_KEY_PREFIX}:{database}"
    return _slot_directory() / f"coditect-login-{hashlib.sha256(named.encode()).hexdigest()[:16]}-{slot}"


@contextmanager
def login_check_slot() -> Iterator[None]:
    """Hold one of this host's LOGIN_CONCURRENT_CHECKS slots for a password
    check, or raise LoginBusy at once. A flood of sign-ins for many accounts
    (which no account's throttle sees) then keeps at most that many workers
    hashing, and the rest serve /health, heartbeats and everything else.

    A slot is an exclusive `flock` on a file in a memory filesystem (/dev/shm):
    shared by every worker process and thread of the host (the pod), none of
    another, and let go by the kernel when its holder ends, however it ends.
    The files are named by this deployment (its SECRET_KEY, Redis prefix and
    database), so two servers on one machine do not share slots."""
    slots = settings.LOGIN_CONCURRENT_CHECKS
    if slots <= 0:
        yield
        return
    held = None
    for slot in random.sample(range(slots), slots):
        descriptor = os.open(login_check_slot_path(slot), os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            continue
        held = descriptor
        break
    if held is None:
        raise LoginBusy
    try:
        yield
    finally:
        fcntl.flock(held, fcntl.LOCK_UN)
        os.close(held)
