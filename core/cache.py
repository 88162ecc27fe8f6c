"""A short per-process cache for reads the hot paths make on every call
(the license and its holder's standing, read on every heartbeat): the
database stays off that path, and a change is seen within the cache's age."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class ProcessCache(Generic[V]):
    """Values loaded on a miss and kept for `max_age()` seconds (read anew
    each time, so a settings change applies at once; 0 turns caching off).
    Bounded: when full it starts over.

    Stale if error: when a reload fails with one of `stale_on` (the store
    does not answer) and the value was loaded less than `stale_limit()`
    seconds ago, the old value is served and kept `max_age()` more, so that
    one caller per key and period, not every caller, waits on the store that
    does not answer (a heartbeat keeps working while PostgreSQL is down)."""

    def __init__(
        self,
        max_age: Callable[[], float],
        *,
        stale_on: tuple[type[BaseException], ...] = (),
        stale_limit: Callable[[], float] = lambda: 0,
        max_entries: int = 10_000,
    ) -> None:
        self._max_age = max_age
        self._stale_on = stale_on
        self._stale_limit = stale_limit
        self._max_entries = max_entries
        # key -> (fresh until, loaded at, value)
        self._entries: dict[Hashable, tuple[float, float, V]] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable, load: Callable[[], V]) -> V:
        now = time.monotonic()
        hit = self._entries.get(key)
        if hit is not None and hit[0] > now:
            return hit[2]
        try:
            value = load()
        except self._stale_on:
            if hit is None or now - hit[1] > self._stale_limit():
                raise
            self._put(key, now, hit[1], hit[2])
            return hit[2]
        self._put(key, now, now, value)
        return value

    def _put(self, key: Hashable, now: float, loaded_at: float, value: V) -> None:
        max_age = self._max_age()
        if max_age > 0:
            with self._lock:
                if len(self._entries) >= self._max_entries:
                    self._entries.clear()
                self._entries[key] = (now + max_age, loaded_at, value)

    def put(self, key: Hashable, value: V) -> None:
        """Keep `value` as if it had just been loaded (a read that found it
        by another way)."""
        now = time.monotonic()
        self._put(key, now, now, value)

    def forget(self, key: Hashable) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def on_each_commit(run: Callable[[], object]) -> None:
    """Run `run` again when each transaction open now commits, on whichever
    database it is (a change saved on the operator path commits there, not
    on `default`); nothing when none is open. The caches' forgets call it
    after forgetting at once: another thread of the process may read the old
    row between the save and the commit."""
    from django.db import connections, transaction

    for alias in connections:
        if connections[alias].in_atomic_block:
            transaction.on_commit(run, using=alias, robust=True)
