"""One Redis client per URL with one Lua script registered on it, shared by a
process's threads: what the rate limiter and the sign-in throttle each need
(the seat ledger keeps its own, with its pool and retry settings). The client
is core.redis_clients': a RedisCluster for a `+cluster` URL."""

from __future__ import annotations

import threading
from functools import partial

import redis
from django.conf import settings

from core.redis_clients import RedisClient, SharedRedisClient, redis_connect


class ScriptClients:
    def __init__(self, source: str, *, client_name: str) -> None:
        self.source = source
        self.client_name = client_name
        self._lock = threading.Lock()
        self._clients: dict[str, SharedRedisClient] = {}
        self._entries: dict[str, tuple[RedisClient, redis.commands.core.Script]] = {}

    def entry(self, url: str) -> tuple[RedisClient, redis.commands.core.Script]:
        """The client for `url` and the script on it (EVALSHA; redis-py loads
        the script again on NOSCRIPT), made at first use. A cluster client
        learns the topology when it is made, so this raises what a command
        would (core.redis_clients.REDIS_ERRORS) while no node answers; a
        later call tries again."""
        entry = self._entries.get(url)
        if entry is not None:
            return entry
        with self._lock:
            shared = self._clients.get(url)
            if shared is None:
                connect = partial(
                    redis_connect,
                    url,
                    socket_timeout=settings.REDIS_SOCKET_TIMEOUT,
                    client_name=self.client_name,
                )
                shared = self._clients[url] = SharedRedisClient(connect)
        client = shared.get()
        with self._lock:
            return self._entries.setdefault(url, (client, client.register_script(self.source)))

    def forget(self, url: str) -> None:
        """Drop the client for `url` (a test that points it at a server of its own)."""
        with self._lock:
            self._clients.pop(url, None)
            self._entries.pop(url, None)
