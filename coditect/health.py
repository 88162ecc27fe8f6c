"""Probes: /health says the process is up; /ready says its dependencies answer
and the database has every migration of the code applied."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import connections
from django.http import JsonResponse
from django.views.decorators.cache import never_cache

from core.cache import ProcessCache
from core.errors import error_response, get_only

logger = logging.getLogger(__name__)

# The only maxmemory-policy under which Redis never drops a ledger key: with
# any other, a full Redis forgets leases and the ledger hands their seats out
# again (DESIGN.md, invariant 9). noeviction refuses the write instead, which
# the ledger answers with 503.
NO_EVICTION = "noeviction"
# A policy changes only when an operator changes it; reading it on every probe
# would add a round trip to each /ready for nothing.
EVICTION_POLICY_CACHE_SECONDS = 30.0
_eviction_policy_read: ProcessCache[str | None] = ProcessCache(lambda: EVICTION_POLICY_CACHE_SECONDS)


class EvictionPolicyUnsafe(Exception):
    """Redis answers, but may evict ledger keys, or will not say whether it does."""

    def __init__(self, reason: str, policy: str | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.policy = policy


@never_cache
@get_only
def health(request):
    return JsonResponse({"status": "ok"})


def _check_database(alias: str) -> None:
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT 1")


class MigrationsUnapplied(Exception):
    """The database answers, but the code's migrations are not all applied."""

    # Named in the answer; the rest are counted, so a fresh database's answer stays short.
    NAMED_AT_MOST = 10

    def __init__(self, unapplied: list[str]) -> None:
        super().__init__(f"{len(unapplied)} migrations unapplied")
        self.unapplied = unapplied

    @property
    def reason(self) -> str:
        named = ", ".join(self.unapplied[: self.NAMED_AT_MOST])
        more = len(self.unapplied) - self.NAMED_AT_MOST
        if more > 0:
            named += f" and {more} more"
        return (
            f"The database is not migrated: {len(self.unapplied)} migrations unapplied ({named});"
            " run `python manage.py migrate` as the owner role."
        )


# Migrations are applied before a release serves and never unapplied under it,
# so once a process has seen them all applied it stops reading django_migrations.
_migrations_seen_applied = False


def unapplied_migrations(alias: str = "default") -> list[str]:
    """The code's migrations the database `alias` has not applied, as "app.name"."""
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connections[alias])
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    return [f"{migration.app_label}.{migration.name}" for migration, backwards in plan if not backwards]


def _check_migrations() -> None:
    global _migrations_seen_applied
    if _migrations_seen_applied:
        return
    unapplied = unapplied_migrations("default")
    if unapplied:
        raise MigrationsUnapplied(unapplied)
    _migrations_seen_applied = True


def _redis_client():
    from core.redis_clients import redis_connect

    return redis_connect(
        settings.REDIS_URL, socket_timeout=settings.REDIS_SOCKET_TIMEOUT, client_name="coditect-ready"
    )


def _check_redis() -> None:
    """PING the Redis, or on a cluster every primary: a primary that does not
    answer leaves its slots' licenses without a ledger until its replica takes
    over, and the probe says so."""
    from core.redis_clients import redis_each_node

    client = _redis_client()
    try:
        redis_each_node(client, client.ping, primaries_only=True)
    finally:
        client.close()


def redis_eviction_policy() -> str | None:
    """Redis's maxmemory-policy, or None where Redis will not tell (CONFIG
    renamed or refused, as on Memorystore). On a cluster every node is asked,
    replicas too (a replica is the primary of its slots after a failover): the
    first unsafe policy found is the answer, else None if any node would not
    tell. A Redis that does not answer raises, as a PING would. Each process
    keeps an answer for EVICTION_POLICY_CACHE_SECONDS, per URL."""
    import redis

    from core.redis_clients import redis_each_node

    def read() -> str | None:
        client = _redis_client()

        def policy_of(**node) -> str | None:
            try:
                policy = client.config_get("maxmemory-policy", **node).get("maxmemory-policy")
            except redis.ResponseError:  # unknown command, NOPERM: the operator must vouch for it
                return None
            if isinstance(policy, bytes):
                policy = policy.decode()
            return policy or None

        try:
            policies = list(redis_each_node(client, policy_of).values())
        finally:
            client.close()
        unsafe = [policy for policy in policies if policy not in (None, NO_EVICTION)]
        if unsafe:
            return unsafe[0]
        return None if None in policies else NO_EVICTION

    return _eviction_policy_read.get(settings.REDIS_URL, read)


def eviction_policy_problem(policy: str | None) -> str | None:
    """Why a seat ledger cannot trust this Redis's policy, or None when it can."""
    if policy == NO_EVICTION:
        return None
    if policy is None:
        if settings.REDIS_EVICTION_POLICY_VERIFIED:
            return None
        return (
            "Redis refuses CONFIG, so its maxmemory-policy cannot be read; once you have checked that it is"
            f" {NO_EVICTION}, set REDIS_EVICTION_POLICY_VERIFIED=true."
        )
    return (
        f"Redis's maxmemory-policy is {policy}; the seat ledger needs {NO_EVICTION}"
        " (an evicted ledger key frees a seat that is still in use)."
    )


def _check_redis_eviction_policy() -> None:
    policy = redis_eviction_policy()
    problem = eviction_policy_problem(policy)
    if problem:
        raise EvictionPolicyUnsafe(problem, policy)


def _ledger_is_redis() -> bool:
    return bool(settings.REDIS_URL) and settings.SEAT_LEDGER == "redis"


def eviction_policy_log_at_start() -> None:
    """Say at a worker's start, in an ERROR line, that its ledger's Redis may
    evict keys. Never raises: the worker serves, and /ready keeps it out of
    traffic."""
    if not _ledger_is_redis():
        return
    try:
        policy = redis_eviction_policy()
    except Exception as exc:  # Redis down now is /ready's to report, not a reason to stop
        logger.warning("redis eviction policy not read at start", extra={"error": type(exc).__name__})
        return
    problem = eviction_policy_problem(policy)
    if problem:
        logger.error(
            "the seat ledger's Redis may evict keys: %s",
            problem,
            extra={"maxmemory_policy": policy, "required_policy": NO_EVICTION},
        )


def _check_redis_for_ready() -> None:
    _check_redis()
    if _ledger_is_redis():
        _check_redis_eviction_policy()


@never_cache
@get_only
def ready(request):
    checks = {"database": lambda: _check_database("default"), "migrations": _check_migrations}
    if settings.OPERATOR_DATABASE != "default":
        # Sign-in by email and the admin site go through the operator role.
        checks["operator_database"] = lambda: _check_database(settings.OPERATOR_DATABASE)
    if settings.REDIS_URL:
        checks["redis"] = _check_redis_for_ready
    failed = {}
    unsafe: EvictionPolicyUnsafe | None = None
    unmigrated: MigrationsUnapplied | None = None
    for name, check in checks.items():
        if name == "migrations" and "database" in failed:
            continue  # a database that does not answer cannot say what it has applied
        try:
            check()
        except MigrationsUnapplied as exc:
            logger.error(
                "readiness check failed: migrations unapplied",
                extra={"dependency": name, "unapplied_migrations": exc.unapplied[: exc.NAMED_AT_MOST]},
            )
            failed[name] = type(exc).__name__
            unmigrated = exc
        except EvictionPolicyUnsafe as exc:
            logger.warning("readiness check failed", extra={"dependency": name, "error": exc.reason})
            failed[name] = type(exc).__name__
            unsafe = exc
        except Exception as exc:  # any failure means not ready; say which
            logger.warning("readiness check failed", extra={"dependency": name, "error": type(exc).__name__})
            failed[name] = type(exc).__name__
            if name in {"database", "migrations"}:
                connections["default"].close()
            elif name == "operator_database":
                connections[settings.OPERATOR_DATABASE].close()
    if failed:
        details = {"failed": failed}
        answered_but_unfit = {EvictionPolicyUnsafe.__name__, MigrationsUnapplied.__name__}
        unanswered = sorted(name for name, error in failed.items() if error not in answered_but_unfit)
        reasons = ["A dependency does not answer: " + ", ".join(unanswered) + "."] if unanswered else []
        if unmigrated is not None:
            reasons.append(unmigrated.reason)
            details["unapplied_migrations"] = unmigrated.unapplied
        if unsafe is not None:
            # Redis answers; what it must change is its policy, so say which it has and which it needs.
            reasons.append(unsafe.reason)
            details["maxmemory_policy"] = {"found": unsafe.policy, "required": NO_EVICTION}
        return error_response("service_unavailable", " ".join(reasons), details)
    return JsonResponse({"status": "ready", "checks": sorted(checks)})
