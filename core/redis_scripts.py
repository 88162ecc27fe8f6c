"""One Redis client per URL with one Lua script registered on it, shared by a
process's threads: what the rate limiter and the sign-in throttle each need
(the seat ledger keeps its own, with its pool and retry settings)."""

from __future__ import annotations

import threading

import redis
from django.conf import settings


class ScriptClients:
    def __init__(self, source: str, *, client_name: str) -> None:
        self.source = source
        self.client_name = client_name
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[redis.Redis, redis.commands.core.Script]] = {}

    def entry(self, url: str) -> tuple[redis.Redis, redis.commands.core.Script]:
        """The client for `url` and the script on it (EVALSHA; redis-py loads
        the script again on NOSCRIPT), made at first use."""
        with self._lock:
            entry = self._entries.get(url)
            if entry is None:
                client = redis.Redis.from_url(
                    url,
                    socket_timeout=settings.REDIS_SOCKET_TIMEOUT,
                    socket_connect_timeout=settings.REDIS_SOCKET_TIMEOUT,
                    client_name=self.client_name,
                )
                entry = self._entries[url] = (client, client.register_script(self.source))
            return entry

    def forget(self, url: str) -> None:
        """Drop the client for `url` (a test that points it at a server of its own)."""
        with self._lock:
            self._entries.pop(url, None)
