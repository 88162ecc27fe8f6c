"""What the seat-ledger tests share: one license on one backend (`Seats`), the
fixture that makes it for each backend, and a crew of threads that start
their calls together."""

from __future__ import annotations

import json
import queue
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, closing, nullcontext
from typing import Any

import psycopg
import pytest
from django.conf import settings
from django.db import connections

from coditect.testing import admin_connection_url
from licenses.ledger import AcquireResult, ExpiredLease, Lease, SeatLedger
from licenses.ledger.database import DatabaseSeatLedger
from licenses.ledger.redis import RedisSeatLedger
from licenses.tests.factories import LicenseFactory
from tenants.scope import tenant_scope

# The database backend runs on PostgreSQL in `make test-pg` and on SQLite in
# `make test-embedded`; Redis only in the first.
BACKENDS = [
    pytest.param("redis", marks=pytest.mark.redis, id="redis"),
    pytest.param("database", marks=pytest.mark.embedded, id="database"),
]


class Seats:
    """One license on one backend, called the way the API calls the ledger:
    the database backend inside the license's tenant scope."""

    def __init__(self, ledger: SeatLedger, license_id: uuid.UUID, tenant_id: uuid.UUID, max_seats: int):
        self.ledger = ledger
        self.license_id = license_id
        self.tenant_id = tenant_id
        self.max_seats = max_seats

    @property
    def backend(self) -> str:
        if self.ledger.name == "redis":
            return "redis"
        return connections["default"].vendor  # postgresql or sqlite

    @property
    def is_redis(self) -> bool:
        return self.ledger.name == "redis"

    def scope(self) -> AbstractContextManager:
        return nullcontext() if self.is_redis else tenant_scope(self.tenant_id)

    def call(self, method: str, **kwargs: Any) -> Any:
        with self.scope():
            return getattr(self.ledger, method)(license_id=self.license_id, **kwargs)

    def acquire(
        self,
        fingerprint: str,
        *,
        ttl: int = 60,
        max_seats: int | None = None,
        user_id: str | None = "user-1",
        client_info: dict | None = None,
    ) -> AcquireResult:
        return self.call(
            "acquire",
            tenant_id=self.tenant_id,
            max_seats=self.max_seats if max_seats is None else max_seats,
            fingerprint=fingerprint,
            user_id=user_id,
            ttl=ttl,
            client_info=client_info,
        )

    def heartbeat(self, session_id: str, *, ttl: int = 60) -> Lease:
        return self.call("heartbeat", session_id=session_id, ttl=ttl)

    def release(self, session_id: str) -> Lease:
        return self.call("release", session_id=session_id)

    def borrow(self, session_id: str, *, seconds: int) -> Lease:
        return self.call("borrow", session_id=session_id, seconds=seconds)

    def get(self, session_id: str) -> Lease:
        return self.call("get", session_id=session_id)

    def live(self) -> list[Lease]:
        return self.call("live_leases")

    def used(self) -> int:
        return self.call("used")

    def release_all(self) -> list[Lease]:
        return self.call("release_all")

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

    def thread_done(self) -> None:
        """A worker thread's last act: give back its own database connection."""
        if not self.is_redis:
            connections.close_all()

    def concurrency(self, wanted: int) -> int:
        """How many threads may call at once. Each database thread holds its own
        connection: the PostgreSQL server allows 100 in all, for every engineer's
        test run at once. SQLite lets one writer in at a time and makes the
        others sleep and retry (its busy handler backs off up to 100 ms), so
        past a handful of threads a round only gets slower, not more racy.
        Redis takes all comers."""
        limits = {"postgresql": 20, "sqlite": 8}
        return min(wanted, limits.get(self.backend, wanted))


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
    backend = request.param
    if backend == "redis" and not settings.REDIS_URL:
        pytest.skip("needs Redis (REDIS_URL)")
    made: list[SeatLedger] = []

    def make(max_seats: int = 10, *, committed: bool = False, **ledger_options: Any) -> Seats:
        if backend == "redis":
            ledger = RedisSeatLedger.from_settings()
            for name, value in ledger_options.items():
                setattr(ledger, name, value)
            made.append(ledger)
            return Seats(ledger, uuid.uuid4(), uuid.uuid4(), max_seats)
        request.getfixturevalue("committed_db" if committed else "db")
        license = LicenseFactory(max_seats=max_seats)
        return Seats(DatabaseSeatLedger(**ledger_options), license.id, license.tenant_id, max_seats)

    yield make
    for ledger in made:
        if isinstance(ledger, RedisSeatLedger):
            ledger.client.connection_pool.disconnect()


class Crew:
    """Threads reused from round to round. In each round every thread waits at
    a barrier, so their calls start together, then runs `work(index)`."""

    def __init__(self, size: int, on_exit: Callable[[], None] = lambda: None) -> None:
        self.size = size
        self._on_exit = on_exit
        self._jobs: list[queue.Queue] = [queue.Queue() for _ in range(size)]
        self._results: queue.Queue = queue.Queue()
        self._barrier = threading.Barrier(size, timeout=60)
        self._threads = [threading.Thread(target=self._loop, args=(i,), daemon=True) for i in range(size)]
        for thread in self._threads:
            thread.start()

    def _loop(self, index: int) -> None:
        try:
            while (work := self._jobs[index].get()) is not None:
                try:
                    self._barrier.wait()
                    self._results.put((index, work(index), None))
                except BaseException as exc:
                    self._results.put((index, None, exc))
        finally:
            self._on_exit()

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
