"""Django's cache on a Redis Cluster, through django-redis.

django-redis (7.x) has no cluster client: its connection factory hands every
client a `redis.ConnectionPool`, which a RedisCluster does not take (it keeps
a pool per node), and a few of its commands name several keys at once. So:

- ClusterConnectionFactory makes the client with core.redis_clients (the one
  place that knows a `+cluster` URL), one per URL and process, as
  django-redis's own factory keeps one pool per URL.
- ClusterCacheClient uses that factory, reads many keys one slot at a time
  (`mget_nonatomic`), and lists keys with SCAN, which redis-py runs on every
  primary (KEYS would ask one node). The other commands it inherits already
  suit a cluster: each names one key, or is one redis-py spreads itself (DEL
  of several keys by slot, pipelines by node, FLUSHDB on every primary).

settings.CACHES names ClusterCacheClient when REDIS_CLUSTER is on.
"""

from __future__ import annotations

import threading
from functools import partial
from typing import Any

from django_redis.client.default import DefaultClient, _main_exceptions
from django_redis.exceptions import ConnectionInterrupted
from django_redis.pool import ConnectionFactory
from redis.exceptions import RedisClusterException

from core.redis_clients import REDIS_ERRORS, RedisClient, SharedRedisClient, redis_connect, redis_disconnect

_CLUSTER_ERRORS = (*_main_exceptions, RedisClusterException)


class ClusterConnectionFactory(ConnectionFactory):
    # Per URL and process, as django-redis keeps its pools: Django makes a
    # cache client per thread, and each would otherwise learn the topology.
    _clients: dict[str, SharedRedisClient] = {}
    _lock = threading.Lock()

    def connect(self, url: str) -> RedisClient:
        with self._lock:
            shared = self._clients.get(url)
            if shared is None:
                timeout = (
                    self.options.get("SOCKET_TIMEOUT") or self.options.get("SOCKET_CONNECT_TIMEOUT") or 2.0
                )
                connect = partial(redis_connect, url, socket_timeout=timeout, client_name="coditect-cache")
                shared = self._clients[url] = SharedRedisClient(connect)
        return shared.get()

    def disconnect(self, connection: RedisClient) -> None:
        redis_disconnect(connection)


class ClusterCacheClient(DefaultClient):
    def __init__(self, server, params: dict[str, Any], backend) -> None:
        # One URL, which may name several nodes with commas: django-redis would
        # split it there into URLs of a primary and its replicas.
        super().__init__([server] if isinstance(server, str) else server, params, backend)
        self.connection_factory = ClusterConnectionFactory(self._options)

    def get_client(self, write: bool = True, tried: list[int] | None = None) -> RedisClient:
        # Making a cluster client talks to the cluster: a cluster that does not
        # answer is the ConnectionInterrupted a command would raise.
        try:
            return super().get_client(write=write, tried=tried)
        except REDIS_ERRORS as exc:
            raise ConnectionInterrupted(connection=None) from exc

    def get_many(self, keys, version: int | None = None, client: RedisClient | None = None) -> dict:
        if client is None:
            client = self.get_client(write=False)
        if not keys:
            return {}
        made = {self.make_key(key, version=version): key for key in keys}
        try:
            # One MGET per slot: a cluster refuses one that spans slots.
            values = client.mget_nonatomic(list(made))
        except _CLUSTER_ERRORS as exc:
            raise ConnectionInterrupted(connection=client) from exc
        return {
            made[key]: self.decode(value)
            for key, value in zip(made, values, strict=True)
            if value is not None
        }

    def keys(self, search: str, version: int | None = None, client: RedisClient | None = None) -> list[Any]:
        # KEYS would ask one node; SCAN asks every primary.
        if client is None:
            client = self.get_client(write=False)
        try:
            return list(self.iter_keys(search, version=version, client=client))
        except _CLUSTER_ERRORS as exc:
            raise ConnectionInterrupted(connection=client) from exc
