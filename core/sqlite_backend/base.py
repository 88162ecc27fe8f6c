"""SQLite for the embedded default, with its write transactions queued in Python.

Every transaction takes SQLite's write lock at BEGIN (IMMEDIATE, see settings),
so that the database seat ledger's read-then-write is serialised. Threads of
one process contending for that lock would each wait in SQLite's busy handler,
which sleeps and retries with back-offs of up to 100 ms: a lock freed after a
millisecond is noticed up to 100 ms later, and under load most of the time goes
to sleeping. Here the threads of a process queue in Python instead, on one lock
per database file, taken before BEGIN and passed on the moment the transaction
ends, in arrival order, without sleeping. Other processes (gunicorn's other
workers, `run_periodic`) still meet at SQLite's own lock and its busy handler.
"""

from __future__ import annotations

import threading
from collections import deque

from django.db import OperationalError
from django.db.backends.sqlite3 import base


class FifoLock:
    """A lock handed to its waiters in the order they came. A thread that
    releases and at once asks again queues behind the others, where a plain
    `threading.Lock` would often let it take the lock straight back."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._held = False
        self._waiting: deque[threading.Lock] = deque()

    def acquire(self, timeout: float) -> bool:
        with self._guard:
            if not self._held:
                self._held = True
                return True
            turn = threading.Lock()
            turn.acquire()
            self._waiting.append(turn)
        if turn.acquire(timeout=timeout):
            return True
        with self._guard:
            if turn in self._waiting:
                self._waiting.remove(turn)
                return False
        return True  # handed over just as the wait ran out

    def release(self) -> None:
        with self._guard:
            if self._waiting:
                self._waiting.popleft().release()  # still held: it passes to the next in line
            else:
                self._held = False


_locks: dict[str, FifoLock] = {}
_locks_guard = threading.Lock()


def write_lock(database: str) -> FifoLock:
    """The process's lock for write transactions on one database file."""
    with _locks_guard:
        return _locks.setdefault(database, FifoLock())


class DatabaseWrapper(base.DatabaseWrapper):
    _write_lock: FifoLock | None = None  # held by this connection's open transaction

    def _queues_writers(self) -> bool:
        # DEFERRED transactions take no lock at BEGIN; an in-memory database
        # is one connection's own.
        return self.transaction_mode in {"IMMEDIATE", "EXCLUSIVE"} and not self.is_in_memory_db()

    def _start_transaction_under_autocommit(self) -> None:
        if not self._queues_writers():
            return super()._start_transaction_under_autocommit()
        lock = write_lock(str(self.settings_dict["NAME"]))
        # Waiting here replaces waiting in SQLite's busy handler, and no longer.
        if not lock.acquire(timeout=float(self.settings_dict["OPTIONS"].get("timeout", 5.0))):
            raise OperationalError("database is locked (other threads of this process held it)")
        self._write_lock = lock
        try:
            super()._start_transaction_under_autocommit()
        finally:
            self._pass_write_lock_on()

    def _pass_write_lock_on(self, *, closed: bool = False) -> None:
        """Give up the write lock once this connection's transaction is over
        (a failed COMMIT leaves it open, for the rollback that follows)."""
        if self._write_lock is None:
            return
        if not closed and self.connection is not None and self.connection.in_transaction:
            return
        lock, self._write_lock = self._write_lock, None
        lock.release()

    def _commit(self):
        try:
            return super()._commit()
        finally:
            self._pass_write_lock_on()

    def _rollback(self):
        try:
            return super()._rollback()
        finally:
            self._pass_write_lock_on()

    def _set_autocommit(self, autocommit):
        try:
            return super()._set_autocommit(autocommit)
        finally:
            self._pass_write_lock_on()  # turning autocommit on commits

    def _close(self):
        try:
            return super()._close()
        finally:
            self._pass_write_lock_on(closed=True)
