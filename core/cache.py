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
    Bounded: when full it starts over."""

    def __init__(self, max_age: Callable[[], float], max_entries: int = 10_000) -> None:
        self._max_age = max_age
        self._max_entries = max_entries
        self._entries: dict[Hashable, tuple[float, V]] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable, load: Callable[[], V]) -> V:
        now = time.monotonic()
        hit = self._entries.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        value = load()
        max_age = self._max_age()
        if max_age > 0:
            with self._lock:
                if len(self._entries) >= self._max_entries:
                    self._entries.clear()
                self._entries[key] = (now + max_age, value)
        return value

    def forget(self, key: Hashable) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
