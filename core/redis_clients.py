"""The Redis client for a URL: the one place that chooses between one Redis
server (`redis.Redis`) and a Redis Cluster (`redis.cluster.RedisCluster`).

A URL names a cluster by its scheme: `redis+cluster://host:port/0` (or
`rediss+cluster://` for TLS), where host:port is the cluster's discovery
endpoint (Memorystore for Redis Cluster) or any node; the client finds the
others. Several nodes may be named, `redis+cluster://h1:p1,h2:p2,h3:p3/0`, so
that a client made while one of them is down still finds the cluster.
Settings turn REDIS_CLUSTER=true into that form of REDIS_URL, so a URL alone
says what it is, and every client built from it (the seat ledger, the rate
limiter, the sign-in throttle, the probes, the cache) agrees.

On a cluster every command that names keys must name keys of one slot:
the seat ledger's keys of a license share its `{license_id}` hash tag, and
the rate limiter's and sign-in throttle's scripts each touch one key.
Commands about the server rather than a key (PING, INFO, CONFIG GET) go to
each node through `redis_each_node`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeAlias

import redis
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import ClusterDownError, RedisClusterException, SlotNotCoveredError
from redis.retry import Retry

RedisClient: TypeAlias = redis.Redis | RedisCluster

CLUSTER_SUFFIX = "+cluster"
# What a Redis call may raise: redis-py's own errors, and on a cluster the
# client's (no node reachable, a slot no node serves), which are not RedisErrors.
REDIS_ERRORS: tuple[type[Exception], ...] = (redis.RedisError, RedisClusterException)


def redis_url_is_cluster(url: str) -> bool:
    return url.partition("://")[0].endswith(CLUSTER_SUFFIX)


def redis_cluster_url(url: str) -> str:
    """`url` in the form that names a cluster (`redis://` -> `redis+cluster://`)."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("redis", "rediss", "redis" + CLUSTER_SUFFIX, "rediss" + CLUSTER_SUFFIX):
        raise ValueError("a Redis Cluster URL starts with redis:// or rediss://")
    return url if scheme.endswith(CLUSTER_SUFFIX) else f"{scheme}{CLUSTER_SUFFIX}://{rest}"


def redis_py_url(url: str) -> str:
    """The URL as redis-py reads it (`redis+cluster://` -> `redis://`), with
    the first node only of a list of nodes (`redis_cluster_nodes` the rest)."""
    scheme, sep, rest = url.partition("://")
    netloc, slash, tail = rest.partition("/")
    credentials, at, hosts = netloc.rpartition("@")
    first = hosts.split(",")[0]
    return f"{scheme.removesuffix(CLUSTER_SUFFIX)}{sep}{credentials}{at}{first}{slash}{tail}"


def redis_cluster_nodes(url: str) -> list[ClusterNode]:
    """The nodes a cluster URL names past its first (`h1:p1,h2:p2,...`)."""
    netloc = url.partition("://")[2].partition("/")[0]
    nodes = []
    for address in netloc.rpartition("@")[2].split(",")[1:]:
        host, port = address, "6379"
        if address.startswith("["):  # [IPv6]:port
            host, _, rest = address[1:].partition("]")
            port = rest.removeprefix(":") or port
        elif ":" in address:
            host, _, port = address.rpartition(":")
        nodes.append(ClusterNode(host, int(port)))
    return nodes


class _ClusterNoRetryOnTimeout(RedisCluster):
    """A cluster client that retries a command after a broken connection or a
    cluster between topologies (each retry reads the topology again), but not
    after a timeout, where the command may have run: the seat ledger's
    scripts are not all safe to run twice, and a node that hangs must cost a
    caller one REDIS_SOCKET_TIMEOUT, not several."""

    ERRORS_ALLOW_RETRY = (redis.ConnectionError, ClusterDownError, SlotNotCoveredError)


def redis_connect(
    url: str,
    *,
    socket_timeout: float,
    client_name: str | None = None,
    decode_responses: bool = False,
    max_connections: int | None = None,
    pool_timeout: float | None = None,
    retries_after_broken_connection: int = 1,
) -> RedisClient:
    """The client for `url`: a RedisCluster for a `+cluster` URL, else a Redis.

    `socket_timeout` bounds connecting and each answer, on every node.
    `max_connections` (per node on a cluster) with `pool_timeout`: a blocking
    pool whose callers wait at most `pool_timeout` for a free connection.
    `retries_after_broken_connection`: retry only after a broken connection
    (a stale pooled socket; on a cluster, a node gone or a topology moving)
    that many times, with no pause, and never after a timeout: for every
    client, so that a Redis (or a cluster node) that hangs costs a caller one
    `socket_timeout`, not redis-py's default retries of it (invariant 13).
    TLS options ride in a `rediss` URL's query.

    A Redis client connects at its first command; a cluster client connects
    here, to learn the topology, and raises redis.ConnectionError when no
    node answers."""
    options: dict[str, Any] = {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": socket_timeout,
        "decode_responses": decode_responses,
    }
    if client_name:
        options["client_name"] = client_name
    if max_connections is not None:
        options["max_connections"] = max_connections
    if not redis_url_is_cluster(url):
        options["retry"] = Retry(
            NoBackoff(), retries_after_broken_connection, supported_errors=(redis.ConnectionError,)
        )
        if max_connections is None:
            return redis.Redis.from_url(url, **options)
        pool = redis.BlockingConnectionPool.from_url(url, timeout=pool_timeout, **options)
        return redis.Redis(connection_pool=pool)

    options["retry"] = Retry(NoBackoff(), retries_after_broken_connection)
    if max_connections is not None:
        options["connection_pool_class"] = redis.BlockingConnectionPool
        options["timeout"] = pool_timeout
    try:
        return _ClusterNoRetryOnTimeout(
            url=redis_py_url(url), startup_nodes=redis_cluster_nodes(url), **options
        )
    except RedisClusterException as exc:
        # No node reachable, or the slots not all served: the cluster is not
        # there yet, as a Redis that refuses connections is not.
        raise redis.ConnectionError(f"Redis Cluster cannot be reached: {exc}") from exc


class SharedRedisClient:
    """One client, made at first use by `connect` and shared by a process's
    threads. One thread connects while the others wait for it; a connect that
    failed less than RETRY_AFTER_FAILURE_SECONDS ago is not tried again, its
    error is raised at once: a burst of callers while a cluster does not
    answer costs one connect timeout, not one each."""

    RETRY_AFTER_FAILURE_SECONDS = 1.0

    def __init__(self, connect: Callable[[], RedisClient]) -> None:
        self._connect = connect
        self._lock = threading.Lock()
        self._client: RedisClient | None = None
        self._failed: tuple[float, str] | None = None

    @property
    def made(self) -> RedisClient | None:
        return self._client

    def get(self) -> RedisClient:
        client = self._client
        if client is not None:
            return client
        with self._lock:
            if self._client is None:
                if (
                    self._failed is not None
                    and time.monotonic() - self._failed[0] < self.RETRY_AFTER_FAILURE_SECONDS
                ):
                    raise redis.ConnectionError(self._failed[1])
                try:
                    self._client = self._connect()
                except REDIS_ERRORS as exc:
                    self._failed = (time.monotonic(), str(exc))
                    raise
                self._failed = None
            return self._client


def redis_disconnect(client: RedisClient) -> None:
    """Close every pooled connection of the client (on a cluster, to every node)."""
    if isinstance(client, RedisCluster):
        client.disconnect_connection_pools()
    else:
        client.connection_pool.disconnect()


def redis_each_node(
    client: RedisClient, call: Callable[..., Any], *, primaries_only: bool = False
) -> dict[str, Any]:
    """`call(**target)` once per server: on a cluster once per node (or per
    primary), with `target_nodes` naming it; on one Redis once, with nothing.
    Returns what each answered, by node name ("host:port")."""
    if not isinstance(client, RedisCluster):
        return {"redis": call()}
    nodes: list[ClusterNode] = client.get_primaries() if primaries_only else client.get_nodes()
    return {node.name: call(target_nodes=node) for node in nodes}
