"""The embedded default's SQLite backend (core.sqlite_backend): a process's
threads take turns at the write lock in the order they came, with no sleeping
busy handler between them; every way a transaction ends passes the lock on;
other processes still meet at SQLite's own lock."""

from __future__ import annotations

import sqlite3
import threading
import time
from contextlib import closing

import pytest
from django.db import IntegrityError, OperationalError, connection, connections, transaction

from core.sqlite_backend.base import FifoLock, write_lock

pytestmark = pytest.mark.embedded


@pytest.fixture
def sqlite_db(committed_db):
    """The test database on SQLite, with a scratch table; real commits."""
    if connection.vendor != "sqlite":
        pytest.skip("the SQLite backend of the embedded default")
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE scratch_parent (id INTEGER PRIMARY KEY)")
        cursor.execute(
            "CREATE TABLE scratch (id INTEGER PRIMARY KEY, writer INTEGER, "
            "parent INTEGER REFERENCES scratch_parent (id) DEFERRABLE INITIALLY DEFERRED)"
        )
    yield
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE scratch")
        cursor.execute("DROP TABLE scratch_parent")


def the_write_lock() -> FifoLock:
    return write_lock(str(connection.settings_dict["NAME"]))


def is_free(lock: FifoLock) -> bool:
    if lock.acquire(timeout=0):
        lock.release()
        return True
    return False


def in_thread(work) -> threading.Thread:
    def run() -> None:
        try:
            work()
        finally:
            connections.close_all()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


# --- the lock ---------------------------------------------------------------------------------


def test_the_lock_passes_to_its_waiters_in_the_order_they_came():
    lock = FifoLock()
    assert lock.acquire(timeout=1)
    order = []

    def wait_then_note(index: int) -> None:
        assert lock.acquire(timeout=10)
        order.append(index)
        lock.release()

    threads = []
    for index in range(5):
        threads.append(threading.Thread(target=wait_then_note, args=(index,)))
        threads[-1].start()
        while len(lock._waiting) < index + 1:  # in line before the next one comes
            time.sleep(0.001)
    lock.release()
    for thread in threads:
        thread.join(timeout=10)
    assert order == [0, 1, 2, 3, 4]
    assert is_free(lock)


def test_a_waiter_that_runs_out_of_time_leaves_the_line():
    lock = FifoLock()
    assert lock.acquire(timeout=1)
    outcome = []
    waiter = threading.Thread(target=lambda: outcome.append(lock.acquire(timeout=0.05)))
    waiter.start()
    waiter.join(timeout=5)
    assert outcome == [False]
    lock.release()
    assert is_free(lock), "nobody is left in line to hand it to"


# --- the backend ------------------------------------------------------------------------------


def test_threads_of_one_process_take_equal_turns_at_the_write_lock(sqlite_db):
    # SQLite's busy handler lets whoever polls at the right moment in: a thread
    # writing in a loop could hold the database while another waited seconds.
    deadline = time.monotonic() + 1.5
    turns = [0] * 8
    longest_wait = [0.0] * 8

    def write_in_a_loop(writer: int) -> None:
        while time.monotonic() < deadline:
            started = time.monotonic()
            with transaction.atomic():
                longest_wait[writer] = max(longest_wait[writer], time.monotonic() - started)
                with connection.cursor() as cursor:
                    cursor.execute("INSERT INTO scratch (writer) VALUES (%s)", [writer])
            turns[writer] += 1

    threads = [in_thread(lambda writer=writer: write_in_a_loop(writer)) for writer in range(8)]
    for thread in threads:
        thread.join(timeout=30)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM scratch")
        assert cursor.fetchone()[0] == sum(turns)
    assert min(turns) >= max(turns) // 2, turns
    print(f"\n8 writers: {sum(turns)} transactions in 1.5 s, {turns}, longest wait {max(longest_wait):.3f}s")


def test_a_thread_waits_while_another_writes_and_gives_up_after_the_timeout(sqlite_db, monkeypatch):
    monkeypatch.setitem(connection.settings_dict["OPTIONS"], "timeout", 0.2)
    outcome = []

    def write() -> None:
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("INSERT INTO scratch (writer) VALUES (2)")
            outcome.append("written")
        except OperationalError as exc:
            outcome.append(str(exc))

    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("INSERT INTO scratch (writer) VALUES (1)")
        in_thread(write).join(timeout=5)
        assert outcome and "database is locked" in outcome[0]

        late = in_thread(write)  # waits for this commit, then writes
        time.sleep(0.05)
    late.join(timeout=5)
    assert outcome[1:] == ["written"]
    assert is_free(the_write_lock())


def test_a_rolled_back_transaction_passes_the_lock_on(sqlite_db):
    with pytest.raises(ValueError), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("INSERT INTO scratch (writer) VALUES (1)")
        raise ValueError("the request failed")
    assert is_free(the_write_lock())


def test_a_commit_that_fails_keeps_the_lock_until_its_rollback(sqlite_db):
    # A deferred foreign key is checked at COMMIT, which fails and leaves the
    # transaction open: the lock must outlast it, then go.
    with pytest.raises(IntegrityError), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("INSERT INTO scratch (writer, parent) VALUES (1, 404)")
    assert connection._write_lock is None
    assert is_free(the_write_lock())
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("INSERT INTO scratch (writer) VALUES (1)")


def test_a_connection_closed_inside_its_transaction_passes_the_lock_on(sqlite_db):
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("INSERT INTO scratch (writer) VALUES (1)")
        connection.close()
        assert is_free(the_write_lock())
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM scratch")
        assert cursor.fetchone() == (0,)


def test_another_process_still_meets_sqlite_s_own_lock(sqlite_db, monkeypatch):
    monkeypatch.setitem(connection.settings_dict["OPTIONS"], "timeout", 0.2)
    connection.close()  # the next connection opens with the short busy timeout
    with closing(sqlite3.connect(connection.settings_dict["NAME"], isolation_level=None)) as other:
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(OperationalError, match="locked"), transaction.atomic():
            pass
        assert is_free(the_write_lock()), "a BEGIN that failed holds nothing"
        other.execute("COMMIT")
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("INSERT INTO scratch (writer) VALUES (1)")
