"""The Redis seat ledger (production): one Lua script per operation.

Key layout, per license (the prefix is settings.REDIS_KEY_PREFIX, outside the
braces; every key carries the `{license_id}` hash tag, so each script touches
one cluster slot):

    <prefix>:seats:{<license_id>}:live     ZSET session id -> expiry (ms, Redis TIME)
    <prefix>:seats:{<license_id>}:leases   HASH session id -> lease record (JSON)
    <prefix>:seats:{<license_id>}:holders  HASH user id + "\\n" + fingerprint -> session id of
                                                that user's live lease on that machine
    <prefix>:seats:{<license_id>}:expired  ZSET session id -> when the sweep may take it (ms)
    <prefix>:seats:{<license_id>}:by_created  ZSET (lex) of live leases by creation, for paging
    <prefix>:seats:{<license_id>}:by_user  ZSET (lex) the same, per user
    <prefix>:seats:{<license_id>}:events   STREAM audit events of releases and borrows, written
                                                by the script that makes the change, until the
                                                drainer has recorded them (records_events)
    <prefix>:seats:{<license_id>}:borrows  ZSET session id -> the end of its borrow (ms): the
                                                leases out on borrow, for the borrow limits
    <prefix>:seats:{<license_id>}:users    HASH user id -> live leases it holds: seats per user
    <prefix>:seats:{<license_id>}:queue    ZSET holder -> place of its waiting ticket
    <prefix>:seats:{<license_id>}:tickets  HASH holder -> its ticket (id, created, group, priority)
    <prefix>:seats:{<license_id>}:deadlines ZSET holder -> when its ticket leaves unless polled (ms)
    <prefix>:seats:{<license_id>}:groups   HASH group -> live leases (and users) it holds

Every script first moves the members of `live` whose expiry has passed to
`expired` (their records stay in `leases` until the sweep acknowledges them),
so a seat frees itself on the Redis clock with no call and no background task.
Keys expire at the latest lease expiry plus the retention, so an abandoned
license's keys do not live forever. See prelude.lua.

The client is core.redis_clients': one Redis, or for a `redis+cluster://` URL
(REDIS_CLUSTER=true) a RedisCluster, which sends each script to the primary
that owns the license's slot and follows that slot when it moves (a
failover): the scripts run unchanged.

A Redis that lost its state (restarted empty, failed over, evicted) lacks the
license's generation marker: acquire then puts back the borrowed leases kept in
PostgreSQL (`borrowed`, licenses/ledger/borrowed.py) before it grants a seat,
and refuses (LedgerUnavailable, 503) while PostgreSQL does not answer
(DESIGN.md invariant 9).
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis
from django.conf import settings
from django.db import DatabaseError
from redis.cluster import RedisCluster
from redis.commands.core import Script
from redis.exceptions import RedisClusterException

from audit.events import Detail, Event
from core.context import current_context
from core.redis_clients import RedisClient, SharedRedisClient, redis_connect, redis_disconnect
from licenses.ledger.base import (
    AcquireResult,
    BorrowLimitReached,
    ExpiredLease,
    GroupLimitReached,
    Lease,
    LeaseCursorInvalid,
    LedgerEvent,
    LedgerUnavailable,
    NoSeatsAvailable,
    PendingEvent,
    QueueFull,
    QueueRequest,
    QueueTicket,
    SeatGroup,
    SeatLedger,
    SessionNotFound,
    TicketNotFound,
    UserMachineLimitReached,
    new_session_id,
)

if TYPE_CHECKING:
    from licenses.ledger.borrowed import BorrowedLeaseStore

logger = logging.getLogger(__name__)

SCRIPT_DIR = Path(__file__).resolve().parent
SCRIPT_NAMES = (
    "acquire",
    "heartbeat",
    "borrow",
    "unborrow",
    "release",
    "live",
    "live_page",
    "used",
    "queued",
    "tickets_drop",
    "expired_pending",
    "expired_ack",
    "restore",
    "events_pending",
    "events_ack",
)
KEY_NAMES = (
    "live",
    "leases",
    "holders",
    "expired",
    "by_created",
    "by_user",
    "events",
    "borrows",
    "users",
    "queue",
    "tickets",
    "deadlines",
    "groups",
)
# A paging cursor: a lease's place in by_created, '<created ms, 15 digits>:<session id>'.
_PAGE_POSITION = re.compile(r"\d{15}:[A-Za-z0-9_-]{1,128}")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Replies from Redis that mean "not now", as opposed to a bug in a script.
_UNAVAILABLE_REPLIES = ("OOM", "LOADING", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN", "BUSY", "READONLY")
# redis-py turns most of those replies into classes of their own and strips the
# code from the message, so they are caught by class; the prefix check above
# covers the rest (BUSY, and any reply a client version leaves as plain text).
_UNAVAILABLE_ERRORS = tuple(
    getattr(redis.exceptions, name)
    for name in (
        "ReadOnlyError",
        "OutOfMemoryError",
        "MasterDownError",
        "ClusterDownError",
        "TryAgainError",
        # A cluster that kept redirecting the call (MOVED/ASK) past redis-py's
        # limit: its topology is changing under the call.
        "ClusterError",
    )
    if hasattr(redis.exceptions, name)
)


def _ms(seconds: int | float) -> int:
    return int(seconds * 1000)


def _epoch_ms(moment: datetime) -> int:
    # Rounded, not truncated: a time read back from the database must give
    # the same millisecond Redis recorded.
    return round(moment.timestamp() * 1000)


def _time(ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=int(ms))


def _record(lease: Lease) -> str:
    """A lease as acquire.lua and borrow.lua record it."""
    record = {
        "fp": lease.fingerprint,
        "uid": lease.user_id,
        "tid": str(lease.tenant_id),
        "ci": json.dumps(lease.client_info or {}),
        "c": _epoch_ms(lease.created_at),
    }
    if lease.borrowed_until is not None:
        record["b"] = _epoch_ms(lease.borrowed_until)
    if lease.overdraft:
        record["o"] = 1
    if lease.group is not None:
        record["g"] = lease.group
    return json.dumps(record)


def _rule(rule: SeatGroup) -> dict[str, Any]:
    """A group rule as acquire.lua reads it."""
    rule_arg: dict[str, Any] = {"n": rule.name, "r": rule.reserve, "p": rule.priority}
    if rule.max is not None:
        rule_arg["m"] = rule.max
    return rule_arg


def _event_arg(event: LedgerEvent | None) -> str:
    if event is None:
        return ""
    return json.dumps(
        {
            "id": event.event_id,
            "a": event.action,
            "d": event.details,
            "rq": event.request_id,
            "ip": event.client_ip,
            "u": event.user_id,
            "ac": event.actor,
        }
    )


def _script_source(name: str) -> str:
    prelude = (SCRIPT_DIR / "prelude.lua").read_text()
    return f"{prelude}\n{(SCRIPT_DIR / f'{name}.lua').read_text()}"


class RedisSeatLedger(SeatLedger):
    name = "redis"
    # Release and borrow keep their audit event in the license's stream, in the
    # script that makes the change: the request writes nothing to PostgreSQL.
    records_events = True

    def __init__(
        self,
        client: RedisClient | None = None,
        *,
        connect: Callable[[], RedisClient] | None = None,
        retention_seconds: int = 7 * 24 * 3600,
        expired_cap: int = 100_000,
        sweep_claim_seconds: int = 300,
        key_prefix: str | None = None,
        borrowed: BorrowedLeaseStore | None = None,
    ) -> None:
        if (client is None) == (connect is None):
            raise ValueError("give the ledger a client, or a way to connect")
        # A cluster client learns the topology when it is made, so the client is
        # made at the first call (`connect`), where a cluster that does not
        # answer is LedgerUnavailable (503) and a later call tries again.
        self._shared_client = SharedRedisClient(connect or (lambda: client))
        self.retention_seconds = retention_seconds
        self.expired_cap = expired_cap
        # An expired lease handed to a sweeper that never acknowledges it comes
        # back to the next sweeper after this long.
        self.sweep_claim_seconds = sweep_claim_seconds
        self._key_prefix = key_prefix
        # Where borrows are kept durably; None keeps them in Redis only (the
        # ledger's own tests, which run without a database).
        self.borrowed = borrowed
        # Loaded once; redis-py runs them by EVALSHA and loads them again if
        # Redis answers NOSCRIPT (a restart, a failover, a node new to the
        # cluster). Bytes, so no client is needed to make them: each call
        # names the client it runs on.
        self.scripts = {name: Script(client, _script_source(name).encode()) for name in SCRIPT_NAMES}

    @classmethod
    def from_settings(cls, **options: Any) -> RedisSeatLedger:
        return cls.from_url(
            settings.REDIS_URL,
            socket_timeout=settings.REDIS_SOCKET_TIMEOUT,
            max_connections=settings.SEAT_LEDGER_REDIS_MAX_CONNECTIONS,
            retention_seconds=settings.SEAT_LEDGER_REDIS_RETENTION,
            **options,
        )

    @classmethod
    def from_url(
        cls, url: str, *, socket_timeout: float, max_connections: int = 64, **options: Any
    ) -> RedisSeatLedger:
        """The ledger on the Redis (or, for a `+cluster` URL, the Redis Cluster) at `url`."""

        def connect() -> RedisClient:
            return redis_connect(
                url,
                socket_timeout=socket_timeout,
                # Per node on a cluster.
                max_connections=max_connections,
                # Waiting for a free pooled connection: short, because with every
                # connection taken by a Redis that hangs, the one a waiter finally
                # gets would cost it a whole socket timeout more.
                pool_timeout=min(socket_timeout, 1.0),
                # One quick retry on a broken connection (a stale pooled socket; on
                # a cluster, a node gone, after reading the topology again); none on
                # a timeout, where the script may have run: an answer that does not
                # come is LedgerUnavailable, not a hang.
                retries_after_broken_connection=1,
                decode_responses=True,
                client_name="coditect-seat-ledger",
            )

        return cls(connect=connect, **options)

    # --- plumbing ---------------------------------------------------------------------

    @property
    def client(self) -> RedisClient:
        """The Redis client, made at first use. Raises redis.ConnectionError
        while a cluster cannot be reached."""
        return self._shared_client.get()

    def disconnect(self) -> None:
        """Close every pooled connection (a test's teardown)."""
        if self._shared_client.made is not None:
            redis_disconnect(self._shared_client.made)

    @property
    def key_prefix(self) -> str:
        return self._key_prefix if self._key_prefix is not None else settings.REDIS_KEY_PREFIX

    def keys(self, license_id: uuid.UUID) -> list[str]:
        base = f"{self.key_prefix}:seats:{{{license_id}}}"
        return [f"{base}:{name}" for name in KEY_NAMES]

    def _run(self, script: str, license_id: uuid.UUID, *args: Any) -> Any:
        try:
            return self.scripts[script](
                keys=self.keys(license_id),
                args=[_ms(self.retention_seconds), self.expired_cap, *args],
                client=self.client,
            )
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise LedgerUnavailable(f"Redis does not answer: {exc}") from exc
        except _UNAVAILABLE_ERRORS as exc:
            raise LedgerUnavailable(f"Redis refuses work: {type(exc).__name__}") from exc
        except redis.ResponseError as exc:
            if str(exc).startswith(_UNAVAILABLE_REPLIES):
                raise LedgerUnavailable(f"Redis refuses work: {exc}") from exc
            raise
        except RedisClusterException as exc:
            # The cluster client's own: no node serves the license's slot (a
            # primary lost and its replica not yet promoted), none reachable.
            # The keys of one call share one slot (the {license_id} hash tag,
            # test_ledger_redis.py), so this is never a call split across slots.
            raise LedgerUnavailable(f"Redis Cluster cannot serve the license's slot: {exc}") from exc
        except TypeError as exc:
            # redis-py's cluster client, on a node lost without warning,
            # disconnects the pooled connections of every thread while some
            # are reading: a read then finds its socket gone ("argument must
            # be an int, or have a fileno() method"). A dependency lost mid
            # call, as a ConnectionError is, not a bug of the call.
            if "fileno" in str(exc) and isinstance(self.client, RedisCluster):
                raise LedgerUnavailable(f"Redis Cluster lost the connection under the call: {exc}") from exc
            raise

    @staticmethod
    def _lease(license_id: uuid.UUID, session_id: str, raw: str, expires_ms: int) -> Lease:
        record = json.loads(raw)
        return Lease(
            session_id=session_id,
            license_id=license_id,
            tenant_id=uuid.UUID(record["tid"]),
            fingerprint=record["fp"],
            user_id=record["uid"],
            created_at=_time(record["c"]),
            expires_at=_time(expires_ms),
            borrowed_until=_time(record["b"]) if record.get("b") else None,
            client_info=json.loads(record["ci"]),
            overdraft=bool(record.get("o")),
            lingering_until=_time(record["lg"]) if record.get("lg") else None,
            group=record.get("g"),
        )

    # --- the interface --------------------------------------------------------------------

    def call_scope(self, tenant_id: uuid.UUID) -> AbstractContextManager:
        # Redis holds no tenant rows: no database transaction, so a heartbeat
        # needs only Redis and keeps working while PostgreSQL is down.
        return nullcontext()

    def acquire(
        self,
        *,
        license_id: uuid.UUID,
        tenant_id: uuid.UUID,
        max_seats: int,
        fingerprint: str,
        user_id: str | None,
        ttl: int,
        client_info: dict[str, Any] | None = None,
        overdraft: int = 0,
        per_user: bool = False,
        machines_per_user: int | None = None,
        groups: tuple[SeatGroup, ...] = (),
        group: str | None = None,
        queue: QueueRequest | None = None,
    ) -> AcquireResult | QueueTicket:
        if user_id is not None and "\n" in user_id:
            # The holders hash joins user and machine with a newline (prelude.lua).
            raise ValueError("a user id holds no newline")
        record = json.dumps(
            {"fp": fingerprint, "uid": user_id, "tid": str(tenant_id), "ci": json.dumps(client_info or {})}
        )
        rules = json.dumps([_rule(rule) for rule in groups]) if groups else ""
        restores = 0
        while True:
            reply = self._run(
                "acquire",
                license_id,
                fingerprint,
                _ms(ttl),
                max_seats,
                new_session_id(),
                record,
                overdraft,
                "1" if per_user else "",
                "" if machines_per_user is None else machines_per_user,
                group or "",
                rules,
                "" if queue is None else _ms(queue.ttl),
                0 if queue is None else queue.max_tickets,
                (queue.ticket_id if queue is not None else None) or "",
                new_session_id(),
            )
            if reply[0] == -3:  # this Redis lost the license's state
                restores += 1
                if restores > 3:
                    # The marker vanishes as soon as it is set: a Redis that
                    # evicts everything it is given keeps no seat safely.
                    raise LedgerUnavailable("Redis keeps losing the seat ledger's state")
                self._restore(license_id, tenant_id)
                continue
            if reply[0] != -2:  # -2: the fresh session id was taken; draw again
                break
        match reply[0]:
            case -1:
                raise NoSeatsAvailable(
                    used=reply[1], max_seats=max_seats, held_for=reply[2] if len(reply) > 2 else ""
                )
            case -4:
                raise UserMachineLimitReached(limit=machines_per_user, held=reply[1])
            case -5:
                raise TicketNotFound(queue.ticket_id if queue else "")
            case -6:
                raise QueueFull(waiting=reply[1], max_tickets=queue.max_tickets if queue else 0)
            case -7:
                raise GroupLimitReached(group=group or "", limit=reply[2], held=reply[1])
            case 3:
                _, ticket_id, position, waiting, created_ms, deadline_ms, created = reply
                return QueueTicket(
                    ticket_id=ticket_id,
                    position=position,
                    waiting=waiting,
                    created_at=_time(created_ms),
                    expires_at=_time(deadline_ms),
                    created=created == 1,
                )
        outcome, session_id, raw, expires_ms, used, ticket_id, waited = reply
        return AcquireResult(
            lease=self._lease(license_id, session_id, raw, expires_ms),
            created=outcome in (1, 2),
            used=used,
            reclaimed=outcome == 2,
            ticket_id=ticket_id or None,
            waited=timedelta(milliseconds=int(waited)) if ticket_id else None,
        )

    def _restore(self, license_id: uuid.UUID, tenant_id: uuid.UUID) -> None:
        """Give a Redis that lost this license's state the borrowed leases back
        and set its marker; record `lease.lost` for each open session it no
        longer knows. Needs PostgreSQL: without it, LedgerUnavailable."""
        borrowed: list[Lease] = []
        open_sessions: dict = {}
        if self.borrowed is not None:
            try:
                # A session acquired longer ago than the retention and live
                # until the loss gets no lost event: the bound keeps the read
                # of the audit log short when every license restores at once.
                sources = self.borrowed.restore_sources(
                    license_id=license_id,
                    tenant_id=tenant_id,
                    since=datetime.now(UTC) - timedelta(seconds=self.retention_seconds),
                )
            except DatabaseError as exc:
                raise LedgerUnavailable(f"the borrowed seats cannot be read back: {exc}") from exc
            borrowed, open_sessions = sources.borrowed, sources.open_sessions
        triples: list[Any] = []
        for lease in borrowed:
            triples += [lease.session_id, _record(lease), _epoch_ms(lease.borrowed_until)]
        reply = self._run("restore", license_id, new_session_id(), len(borrowed), *triples, *open_sessions)
        if reply[0] == 0:
            return  # another process restored it first
        _, restored, lost = reply
        logger.warning(
            "the seat ledger lost its state for a license: restored its borrowed leases",
            extra={"license_id": str(license_id), "restored": restored, "lost": len(lost)},
        )
        if self.borrowed is not None and lost:
            try:
                self.borrowed.record_lost(
                    license_id=license_id, tenant_id=tenant_id, lost=[open_sessions[sid] for sid in lost]
                )
            except DatabaseError:
                # The seats are right already; only the record of the loss is missing.
                logger.exception(
                    "lost leases could not be recorded", extra={"license_id": str(license_id), "lost": lost}
                )

    def heartbeat(
        self, *, license_id: uuid.UUID, session_id: str, ttl: int, rejection: LedgerEvent | None = None
    ) -> Lease:
        reply = self._run("heartbeat", license_id, session_id, _ms(ttl), _event_arg(rejection))
        if reply is None:
            raise SessionNotFound(session_id)
        return self._lease(license_id, session_id, *reply)

    def release(
        self, *, license_id: uuid.UUID, session_id: str, event: LedgerEvent | None = None, linger: int = 0
    ) -> Lease:
        reply = self._run("release", license_id, session_id, _event_arg(event), _ms(linger))
        if reply is None:
            raise SessionNotFound(session_id)
        raw, ended_ms, was_borrowed = reply
        lease = self._lease(license_id, session_id, raw, ended_ms)
        if was_borrowed and self.borrowed is not None:
            try:
                self.borrowed.forget(lease)
            except DatabaseError:
                # The seat is free; the row left behind only holds a seat
                # after a loss of Redis until its borrow ends: never an oversell.
                logger.warning(
                    "a returned borrow stays in the database until it ends",
                    extra={"license_id": str(license_id)},
                    exc_info=True,
                )
        return lease

    def borrow(
        self,
        *,
        license_id: uuid.UUID,
        session_id: str,
        seconds: int,
        not_after: datetime | None = None,
        event: LedgerEvent | None = None,
        max_borrowed: int | None = None,
        max_per_user: int | None = None,
    ) -> Lease:
        limit = "" if not_after is None else _ms(not_after.timestamp())
        if self.borrowed is not None:
            try:
                self.borrowed.reachable()
            except DatabaseError as exc:
                raise LedgerUnavailable(f"the borrow cannot be kept durably: {exc}") from exc
        # The borrow's id is its event's: what a caller names to undo it.
        borrow_id = event.event_id if event is not None else uuid.uuid4().hex
        reply = self._run(
            "borrow",
            license_id,
            session_id,
            _ms(seconds),
            limit,
            _event_arg(event),
            borrow_id,
            "" if max_borrowed is None else max_borrowed,
            "" if max_per_user is None else max_per_user,
        )
        if reply is None:
            raise SessionNotFound(session_id)
        if reply[0] == -1:
            _, scope, borrowed = reply
            raise BorrowLimitReached(
                scope, max_borrowed if scope == "license" else max_per_user, int(borrowed)
            )
        lease = self._lease(license_id, session_id, *reply)
        if self.borrowed is not None:
            try:
                self.borrowed.keep(lease)
            except DatabaseError as exc:
                # A borrow held only in Redis would be sold again after a loss
                # of Redis: it does not stand. The lease is put back as it was
                # and the client is told 503, with nothing changed.
                self._borrow_put_back(lease, borrow_id, reason="borrow_not_durable", durable_copy_made=False)
                raise LedgerUnavailable(f"the borrow cannot be kept durably: {exc}") from exc
        return lease

    def borrow_undo(self, *, borrowed: Lease, borrow_id: str, reason: str) -> Lease | None:
        return self._borrow_put_back(borrowed, borrow_id, reason=reason, durable_copy_made=True)

    def _borrow_put_back(
        self, borrowed: Lease, borrow_id: str, *, reason: str, durable_copy_made: bool
    ) -> Lease | None:
        context = current_context()
        undone = LedgerEvent(
            action=Event.LEASE_BORROW_UNDONE,
            details={Detail.REASON: reason},
            request_id=context.request_id,
            client_ip=context.client_ip,
        )
        try:
            reply = self._run(
                "unborrow", borrowed.license_id, borrowed.session_id, borrow_id, _event_arg(undone)
            )
        except LedgerUnavailable:
            # Redis failed right after the borrow: it stands there, answered
            # 503. The client acquires or borrows again; the seat is one seat.
            logger.exception("a borrow answered 503 could not be undone")
            return None
        if reply is None:
            return None  # changed since (another borrow, a release): left as it is, durable copy and all
        restored = self._lease(borrowed.license_id, borrowed.session_id, *reply)
        if self.borrowed is not None and durable_copy_made:
            try:
                if restored.is_borrowed:
                    self.borrowed.keep(restored)
                else:
                    self.borrowed.forget(restored)
            except DatabaseError:
                # Never an oversell: a row held longer than its borrow only
                # keeps a seat after a loss of Redis until that borrow ends.
                logger.warning("an undone borrow's durable copy stays until it ends", exc_info=True)
        return restored

    def live_leases(self, *, license_id: uuid.UUID) -> list[Lease]:
        reply = self._run("live", license_id)
        leases = [self._lease(license_id, *reply[i : i + 3]) for i in range(0, len(reply), 3)]
        return sorted(leases, key=lambda lease: (lease.created_at, lease.session_id))

    def live_leases_page(
        self, *, license_id: uuid.UUID, cursor: str | None, limit: int, user_id: str | None = None
    ) -> tuple[list[Lease], str | None]:
        # One user's page reads that user's own index (by_user), so it costs
        # the same however many leases other users hold; the price is a
        # second index entry per lease, written by acquire and removed with it.
        if cursor is not None and not _PAGE_POSITION.fullmatch(cursor):
            raise LeaseCursorInvalid(cursor)
        more, last, *rest = self._run("live_page", license_id, cursor or "", limit, user_id or "")
        leases = [self._lease(license_id, *rest[i : i + 3]) for i in range(0, len(rest), 3)]
        return leases, (last if more and last else None)

    def used(self, *, license_id: uuid.UUID, per_user: bool = False) -> int:
        return self._run("used", license_id, "1" if per_user else "")

    def queued(self, *, license_id: uuid.UUID) -> int:
        return self._run("queued", license_id)

    def tickets_drop(
        self, *, license_id: uuid.UUID, user_id: str | None = None, fingerprint: str | None = None
    ) -> int:
        if user_id is None and fingerprint is None:
            raise ValueError("name the user or the machine whose tickets go")
        return self._run("tickets_drop", license_id, "" if user_id is None else user_id, fingerprint or "")

    def expired_pending(self, *, license_id: uuid.UUID, limit: int = 500) -> list[ExpiredLease]:
        reply = self._run("expired_pending", license_id, limit, _ms(self.sweep_claim_seconds))
        pending = []
        for i in range(0, len(reply), 2):
            expired_ms = json.loads(reply[i + 1])["x"]
            lease = self._lease(license_id, reply[i], reply[i + 1], expired_ms)
            pending.append(ExpiredLease(lease=lease, expired_at=lease.expires_at))
        return pending

    def expired_ack(self, *, license_id: uuid.UUID, session_ids: list[str]) -> None:
        if session_ids:
            self._run("expired_ack", license_id, *session_ids)

    def events_pending(self, *, license_id: uuid.UUID, limit: int = 500) -> list[PendingEvent]:
        pending = []
        for stream_id, values in self._run("events_pending", license_id, limit):
            entry = dict(zip(values[::2], values[1::2], strict=True))
            raw = json.loads(entry["e"])
            event = LedgerEvent(
                action=raw["a"],
                details=raw.get("d") or {},
                event_id=raw["id"],
                request_id=raw.get("rq") or "",
                client_ip=raw.get("ip"),
                user_id=raw.get("u"),
                actor=raw.get("ac") or "",
            )
            occurred = int(entry["t"])
            lease = self._lease(license_id, entry["sid"], entry["r"], occurred) if entry["r"] else None
            pending.append(
                PendingEvent(stream_id=stream_id, event=event, lease=lease, occurred_at=_time(occurred))
            )
        return pending

    def events_ack(self, *, license_id: uuid.UUID, stream_ids: list[str]) -> None:
        self._run("events_ack", license_id, *stream_ids)
