"""What the seat-ledger tests share: one license on one backend (`Seats`), the
fixture that makes it for each backend, the few database connections that
serve a test's threads (`SharedConnections`), and a crew of threads that start
their calls together."""

from __future__ import annotations

import json
import queue
import sqlite3
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager, nullcontext
from datetime import datetime
from typing import Any

import psycopg
import pytest
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper

from coditect.testing import admin_connection_url
from licenses.ledger import (
    AcquireResult,
    ExpiredLease,
    Lease,
    QueueRequest,
    QueueTicket,
    SeatGroup,
    SeatLedger,
    SessionNotFound,
)
from licenses.ledger.database import DatabaseSeatLedger
from licenses.ledger.redis import RedisSeatLedger
from licenses.tests.factories import LicenseFactory

# The database backend runs on PostgreSQL in `make test-pg` and on SQLite in
# `make test-embedded`; Redis only in the first, on the shared Redis and again
# on a Redis Cluster of the session's own (coditect/redis_cluster_testing.py).
BACKENDS = [
    pytest.param("redis", marks=pytest.mark.redis, id="redis"),
    pytest.param("redis-cluster", marks=pytest.mark.redis, id="redis-cluster"),
    pytest.param("database", marks=pytest.mark.embedded, id="database"),
]
# And each again with the floating-license rules on (issue 17) in a way that
# leaves the seats a test counts on as they are (EVERY_RULE).
BACKENDS_AND_RULES = [
    *BACKENDS,
    pytest.param("redis+rules", marks=pytest.mark.redis, id="redis-every-rule"),
    pytest.param("database+rules", marks=pytest.mark.embedded, id="database-every-rule"),
]

# Every rule at once on a license of `max_seats` that a test reads as that many
# seats: 2 overdraft seats past it, which a reservation of 2 for a group none
# of the test's holders is in takes back; a group capped at 0 seats whose
# member waits in the queue for good (its ticket holds back nobody, but every
# grant looks past it); borrow limits no test reaches. (Linger and seats per
# user change what a release and a seat are: their own suites and the property
# test, test_ledger_model.py, run them together with these.)
EVERY_RULE_OVERDRAFT = 2
EVERY_RULE_GROUPS = (SeatGroup("kept", reserve=2), SeatGroup("capped", max=0, priority=9))
EVERY_RULE_BORROWS = 1_000


# As many database connections as the embedded default's server holds (bin/run-embedded:
# gunicorn, 2 workers of 4 threads), and a production pod with one CPU (deploy/gunicorn.conf.py).
SERVER_CONNECTIONS = 8


class SharedConnections:
    """A few database connections serving any number of threads, as a server's
    worker threads serve the requests queued for them. A call borrows one (the
    alias points at it in the calling thread only) and gives it back, so at
    most `size` calls are in the database at once and the rest wait their turn,
    first come first served: a connection given back goes straight to the
    longest waiter, so a thread that calls in a loop cannot starve the others.

    A Django connection belongs to the thread that made it unless shared
    (`inc_thread_sharing`); these are, and only one thread holds each at a time."""

    def __init__(self, size: int, alias: str = DEFAULT_DB_ALIAS) -> None:
        self.size = size
        self.alias = alias
        self._wrappers = [connections.create_connection(alias) for _ in range(size)]
        for wrapper in self._wrappers:
            wrapper.inc_thread_sharing()
        self._idle = list(self._wrappers)
        self._waiting: deque[tuple[threading.Event, list]] = deque()
        self._lock = threading.Lock()
        self._lent = 0
        self.peak = 0  # the most connections lent at once
        self.waits = 0  # borrowers that found every connection lent

    def _take(self) -> BaseDatabaseWrapper:
        with self._lock:
            if self._idle and not self._waiting:
                self._lent += 1
                self.peak = max(self.peak, self._lent)
                return self._idle.pop()
            self.waits += 1
            turn: tuple[threading.Event, list] = (threading.Event(), [])
            self._waiting.append(turn)
        if not turn[0].wait(timeout=60):
            with self._lock:
                if turn in self._waiting:
                    self._waiting.remove(turn)
                    raise TimeoutError("no database connection came free within 60 s")
        return turn[1][0]

    def _give_back(self, wrapper: BaseDatabaseWrapper) -> None:
        with self._lock:
            if self._waiting:
                ready, handed = self._waiting.popleft()
                handed.append(wrapper)
                ready.set()
            else:
                self._lent -= 1
                self._idle.append(wrapper)

    @contextmanager
    def borrow(self) -> Iterator[None]:
        wrapper = self._take()
        connections[self.alias] = wrapper
        try:
            yield
        finally:
            del connections[self.alias]
            assert not wrapper.in_atomic_block, "a connection came back inside a transaction"
            self._give_back(wrapper)

    def close(self) -> None:
        for wrapper in self._wrappers:
            wrapper.close()
            wrapper.dec_thread_sharing()


class Seats:
    """One license on one backend, called the way the gateway calls the ledger:
    in the scope the backend asks for (the database backend inside the
    license's tenant scope, Redis in none), and, when threads
    share the license (`committed`), on one of `SERVER_CONNECTIONS` shared
    connections (`self.shared`) from whichever thread calls."""

    def __init__(
        self,
        ledger: SeatLedger,
        license_id: uuid.UUID,
        tenant_id: uuid.UUID,
        max_seats: int,
        shared: SharedConnections | None = None,
        *,
        overdraft: int = 0,
        linger: int = 0,
        per_user: bool = False,
        machines_per_user: int | None = None,
        groups: tuple[SeatGroup, ...] = (),
        queue_ttl: int = 60,
        queue_max: int = 100,
        every_rule: bool = False,
    ):
        self.ledger = ledger
        self.license_id = license_id
        self.tenant_id = tenant_id
        self.max_seats = max_seats
        self.shared = shared
        # The license's floating rules (issue 17), as its policy would hand them over.
        self.overdraft = overdraft
        self.linger = linger
        self.per_user = per_user
        self.machines_per_user = machines_per_user
        self.groups = groups
        self.queue_ttl = queue_ttl
        self.queue_max = queue_max
        self.every_rule = every_rule
        if every_rule:
            self.overdraft = EVERY_RULE_OVERDRAFT
            self.groups = EVERY_RULE_GROUPS
            self.queue_ttl = 3600
            waiting = self.acquire("capped-machine", user_id="capped-user", group="capped", queue=True)
            assert isinstance(waiting, QueueTicket)

    @property
    def backend(self) -> str:
        if self.ledger.name == "redis":
            return "redis"
        return connections["default"].vendor  # postgresql or sqlite

    @property
    def is_redis(self) -> bool:
        return self.ledger.name == "redis"

    def call(self, method: str, **kwargs: Any) -> Any:
        with self.shared.borrow() if self.shared else nullcontext(), self.ledger.call_scope(self.tenant_id):
            return getattr(self.ledger, method)(license_id=self.license_id, **kwargs)

    def acquire(
        self,
        fingerprint: str,
        *,
        ttl: int = 60,
        max_seats: int | None = None,
        user_id: str | None = "user-1",
        client_info: dict | None = None,
        overdraft: int | None = None,
        group: str | None = None,
        queue: bool = False,
        ticket_id: str | None = None,
    ) -> AcquireResult | QueueTicket:
        """Acquire as the API does; `queue` waits in the license's queue
        (polling with `ticket_id`), as `"queue": true` does."""
        queued = None
        if queue or ticket_id is not None:
            queued = QueueRequest(ttl=self.queue_ttl, max_tickets=self.queue_max, ticket_id=ticket_id)
        return self.call(
            "acquire",
            tenant_id=self.tenant_id,
            max_seats=self.max_seats if max_seats is None else max_seats,
            fingerprint=fingerprint,
            user_id=user_id,
            ttl=ttl,
            client_info=client_info,
            overdraft=self.overdraft if overdraft is None else overdraft,
            per_user=self.per_user,
            machines_per_user=self.machines_per_user,
            groups=self.groups,
            group=group,
            queue=queued,
        )

    def heartbeat(self, session_id: str, *, ttl: int = 60) -> Lease:
        return self.call("heartbeat", session_id=session_id, ttl=ttl)

    def release(self, session_id: str, *, linger: int | None = None) -> Lease:
        return self.call("release", session_id=session_id, linger=self.linger if linger is None else linger)

    def borrow(
        self,
        session_id: str,
        *,
        seconds: int,
        not_after: datetime | None = None,
        max_borrowed: int | None = None,
        max_per_user: int | None = None,
    ) -> Lease:
        if self.every_rule:
            max_borrowed = EVERY_RULE_BORROWS if max_borrowed is None else max_borrowed
            max_per_user = EVERY_RULE_BORROWS if max_per_user is None else max_per_user
        return self.call(
            "borrow",
            session_id=session_id,
            seconds=seconds,
            not_after=not_after,
            max_borrowed=max_borrowed,
            max_per_user=max_per_user,
        )

    def live(self) -> list[Lease]:
        return self.call("live_leases")

    def live_lease(self, session_id: str) -> Lease:
        """One live lease, found among the live ones. Raises SessionNotFound."""
        for lease in self.live():
            if lease.session_id == session_id:
                return lease
        raise SessionNotFound(session_id)

    def used(self) -> int:
        return self.call("used", per_user=self.per_user)

    def queued(self) -> int:
        return self.call("queued")

    def release_every_live_lease(self) -> list[Lease]:
        """End every live lease, one release each (between a test's rounds)."""
        ended = []
        for lease in self.live():
            try:
                ended.append(self.release(lease.session_id, linger=0))
            except SessionNotFound:
                pass  # expired meanwhile
        return ended

    def expired_pending(self, *, limit: int = 500) -> list[ExpiredLease]:
        return self.call("expired_pending", limit=limit)

    def expired_ack(self, session_ids: list[str]) -> None:
        self.call("expired_ack", session_ids=session_ids)

    def raw_live(self) -> tuple[int, dict[str, str]]:
        """The store itself, read past the ledger and on the store's own clock:
        how many entries it holds for the license (live or not yet pruned), and
        the live ones as session id -> fingerprint. Reads take no lock, so a
        checker never waits behind the writers it watches."""
        if self.is_redis:
            live_key, leases_key = self.ledger.keys(self.license_id)[:2]
            total, *pairs = self.ledger.client.eval(RAW_REDIS_LIVE, 2, live_key, leases_key)
            return total, {pairs[i]: json.loads(pairs[i + 1])["fp"] for i in range(0, len(pairs), 2)}
        if self.backend == "postgresql":
            with psycopg.connect(admin_connection_url()) as conn:
                rows = conn.execute(
                    "SELECT session_id, fingerprint, expires_at > clock_timestamp() "
                    "FROM license_leases WHERE license_id = %s",
                    [self.license_id],
                ).fetchall()
        else:
            with closing(sqlite3.connect(connections["default"].settings_dict["NAME"])) as conn:
                rows = conn.execute(
                    "SELECT session_id, fingerprint, expires_at > strftime('%Y-%m-%d %H:%M:%f', 'now') "
                    "FROM license_leases WHERE license_id = ?",
                    [self.license_id.hex],
                ).fetchall()
        return len(rows), {session_id: fingerprint for session_id, fingerprint, live in rows if live}


RAW_REDIS_LIVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local found = {redis.call('ZCARD', KEYS[1])}
for _, sid in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')) do
  found[#found + 1] = sid
  found[#found + 1] = redis.call('HGET', KEYS[2], sid)
end
return found
"""


@pytest.fixture(params=BACKENDS)
def make_seats(request) -> Iterator[Callable[..., Seats]]:
    """`make_seats(max_seats, committed=False, **ledger_options)`: a fresh
    license on this backend. `committed=True` for tests whose threads must see
    each other's writes (the database backend then commits for real)."""
    yield from _seats_maker(request, request.param)


@pytest.fixture(params=BACKENDS_AND_RULES)
def make_seats_and_every_rule(request) -> Iterator[Callable[..., Seats]]:
    """make_seats on each backend, and again with every rule on (EVERY_RULE)."""
    backend, _, rules = request.param.partition("+")
    yield from _seats_maker(request, backend, every_rule=bool(rules))


def _seats_maker(request, backend: str, *, every_rule: bool = False) -> Iterator[Callable[..., Seats]]:
    if backend == "redis" and not settings.REDIS_URL:
        pytest.skip("needs Redis (REDIS_URL)")
    made: list[SeatLedger] = []
    shared: list[SharedConnections] = []

    def make(
        max_seats: int = 10,
        *,
        committed: bool = False,
        overdraft: int = 0,
        linger: int = 0,
        per_user: bool = False,
        machines_per_user: int | None = None,
        groups: tuple[SeatGroup, ...] = (),
        queue_ttl: int = 60,
        queue_max: int = 100,
        **ledger_options: Any,
    ) -> Seats:
        rules = {
            "overdraft": overdraft,
            "linger": linger,
            "per_user": per_user,
            "machines_per_user": machines_per_user,
            "groups": groups,
            "queue_ttl": queue_ttl,
            "queue_max": queue_max,
            "every_rule": every_rule,
        }
        if backend in ("redis", "redis-cluster"):
            if backend == "redis":
                ledger = RedisSeatLedger.from_settings()
            else:
                ledger = RedisSeatLedger.from_url(
                    request.getfixturevalue("redis_cluster").url,
                    socket_timeout=settings.REDIS_SOCKET_TIMEOUT,
                    max_connections=settings.SEAT_LEDGER_REDIS_MAX_CONNECTIONS,
                    retention_seconds=settings.SEAT_LEDGER_REDIS_RETENTION,
                )
            for name, value in ledger_options.items():
                setattr(ledger, name, value)
            made.append(ledger)
            return Seats(ledger, uuid.uuid4(), uuid.uuid4(), max_seats, **rules)
        request.getfixturevalue("committed_db" if committed else "db")
        license = LicenseFactory(max_seats=max_seats)
        # Without real commits the test runs in one transaction on its own
        # connection, which no other thread may use.
        if committed:
            shared.append(SharedConnections(SERVER_CONNECTIONS))
        return Seats(
            DatabaseSeatLedger(**ledger_options),
            license.id,
            license.tenant_id,
            max_seats,
            shared[-1] if committed else None,
            **rules,
        )

    yield make
    for ledger in made:
        if isinstance(ledger, RedisSeatLedger):
            ledger.disconnect()
    for pool in shared:
        pool.close()


class Crew:
    """Threads reused from round to round. In each round every thread waits at
    a barrier, so their calls start together, then runs `work(index)`."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._jobs: list[queue.Queue] = [queue.Queue() for _ in range(size)]
        self._results: queue.Queue = queue.Queue()
        self._barrier = threading.Barrier(size, timeout=60)
        self._threads = [threading.Thread(target=self._loop, args=(i,), daemon=True) for i in range(size)]
        for thread in self._threads:
            thread.start()

    def _loop(self, index: int) -> None:
        while (work := self._jobs[index].get()) is not None:
            try:
                self._barrier.wait()
                self._results.put((index, work(index), None))
            except BaseException as exc:
                self._results.put((index, None, exc))

    def start(self, work: Callable[[int], Any]) -> None:
        for jobs in self._jobs:
            jobs.put(work)

    def collect(self) -> list[Any]:
        results: list[Any] = [None] * self.size
        errors = []
        for _ in range(self.size):
            index, result, error = self._results.get(timeout=120)
            results[index] = result
            if error is not None:
                errors.append(error)
        if errors:
            raise errors[0]
        return results

    def run(self, work: Callable[[int], Any]) -> list[Any]:
        self.start(work)
        return self.collect()

    def close(self) -> None:
        for jobs in self._jobs:
            jobs.put(None)
        for thread in self._threads:
            thread.join(timeout=30)

    def __enter__(self) -> Crew:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
