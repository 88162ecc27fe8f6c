"""REDIS_CLUSTER: what runs on Redis besides the seat ledger, on a real Redis
Cluster of the session's own (coditect/redis_cluster_testing.py): the Django
cache, /ready and /metrics; and the settings that make it so. (The seat
ledger's contract suite runs on the cluster in licenses/tests, the rate limits'
and the sign-in throttle's suites in accounts/tests.)"""

from __future__ import annotations

import uuid

import pytest
from redis.cluster import RedisCluster

from coditect import health
from coditect.testing import settings_in_a_new_process, settings_read

pytestmark = pytest.mark.redis


@pytest.fixture
def on_the_cluster(settings, redis_cluster):
    """REDIS_URL, the cache and the Redis seat ledger on the cluster, as the
    settings make them for a redis+cluster:// REDIS_URL."""
    settings.REDIS_URL = redis_cluster.url
    settings.REDIS_CLUSTER = True
    settings.SEAT_LEDGER = "redis"
    settings.REDIS_EVICTION_POLICY_VERIFIED = False
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": redis_cluster.url,
            "KEY_PREFIX": settings.REDIS_KEY_PREFIX,
            "OPTIONS": {
                "SOCKET_CONNECT_TIMEOUT": settings.REDIS_SOCKET_TIMEOUT,
                "SOCKET_TIMEOUT": settings.REDIS_SOCKET_TIMEOUT,
                "CLIENT_CLASS": "core.redis_cache.ClusterCacheClient",
            },
        }
    }
    health._eviction_policy_read.clear()
    yield redis_cluster
    health._eviction_policy_read.clear()


# --- the cache ------------------------------------------------------------------------------


def test_the_cache_keeps_keys_on_every_primary_and_reads_them_back_many_at_once(on_the_cluster):
    from django.core.cache import cache

    client = cache.client.get_client()
    assert isinstance(client, RedisCluster)
    run = uuid.uuid4().hex[:8]
    values = {f"{run}:{n}": n for n in range(60)}  # a primary left with none: 3 * (2/3)^60, never
    cache.set_many(values, timeout=60)
    primaries = {client.get_node_from_key(cache.make_key(key)).name for key in values}
    assert primaries == {shard.primary.address for shard in on_the_cluster.shards()}

    # Keys of several slots at once: one MGET per slot, not one the cluster refuses.
    assert cache.get_many([*values, f"{run}:missing"]) == values
    assert sorted(cache.keys(f"{run}:*")) == sorted(values)
    assert cache.add(f"{run}:0", "again") is False and cache.get(f"{run}:0") == 0
    assert cache.add(f"{run}:new", "first", timeout=60) is True
    assert cache.incr(f"{run}:5", 10) == 15
    assert cache.delete_many([f"{run}:{n}" for n in range(10)]) == 10
    assert cache.get_many(list(values)) == {key: value for key, value in values.items() if value >= 10}
    assert cache.delete_pattern(f"{run}:*") == 51  # 50 left of the 60, and the one added
    assert cache.get_many([*values, f"{run}:new"]) == {}


def test_the_apps_own_cache_use_works_on_the_cluster(on_the_cluster, settings):
    """The password-reset email's interval (a cache.add slot), as the app takes it."""
    from accounts import emails

    settings.PASSWORD_RESET_EMAIL_INTERVAL = 60
    user_id = uuid.uuid4()
    assert emails._reset_mail_slot_take(user_id) is True
    assert emails._reset_mail_slot_take(user_id) is False
    emails._reset_mail_slot_give_back(user_id)
    assert emails._reset_mail_slot_take(user_id) is True


# --- /ready and /metrics ----------------------------------------------------------------------


@pytest.mark.django_db(databases="__all__")
def test_ready_reads_the_policy_of_every_node_of_the_cluster_replicas_too(on_the_cluster, client):
    response = client.get("/ready")
    assert response.status_code == 200, response.content
    assert "redis" in response.json()["checks"]

    # One replica that would evict keys once it is a primary is enough to say no.
    replica = on_the_cluster.shards()[1].replicas[0]
    with replica.client() as node:
        node.config_set("maxmemory-policy", "allkeys-lru")
    try:
        health._eviction_policy_read.clear()
        response = client.get("/ready")
        assert response.status_code == 503
        error = response.json()["error"]
        assert error["details"]["failed"] == {"redis": "EvictionPolicyUnsafe"}
        assert error["details"]["maxmemory_policy"] == {"found": "allkeys-lru", "required": "noeviction"}
    finally:
        with replica.client() as node:
            node.config_set("maxmemory-policy", "noeviction")
    health._eviction_policy_read.clear()
    assert client.get("/ready").status_code == 200


@pytest.mark.slow
@pytest.mark.django_db(databases="__all__")
def test_ready_fails_while_a_primary_is_down_and_passes_once_its_replica_took_over(on_the_cluster, client):
    shard = on_the_cluster.shards()[0]
    try:
        shard.primary.kill()
        response = client.get("/ready")
        assert response.status_code == 503
        assert set(response.json()["error"]["details"]["failed"]) == {"redis"}
        on_the_cluster.wait_promoted(shard.replicas[0], timeout=30)
        assert client.get("/ready").status_code == 200
    finally:
        on_the_cluster.heal()


@pytest.mark.django_db
def test_metrics_say_the_cluster_answers_and_add_up_its_primaries(on_the_cluster):
    from coditect.metrics import DependencyCollector

    families = {family.name: family for family in DependencyCollector().collect()}
    up = {sample.labels["dependency"]: sample.value for sample in families["coditect_dependency_up"].samples}
    assert up["redis"] == 1
    primaries = on_the_cluster.shards()
    used = []
    for shard in primaries:
        with shard.primary.client() as node:
            used.append(node.info("memory")["used_memory"])
    reported = families["coditect_redis_used_memory_bytes"].samples[0].value
    # The sum over the primaries, not one node's figure (memory moves a little between reads).
    assert 0.8 * sum(used) <= reported <= 1.2 * sum(used)
    assert reported > 1.5 * max(used)
    assert families["coditect_redis_connected_clients"].samples[0].value >= len(primaries)


# --- settings ---------------------------------------------------------------------------------


REDIS_SETTINGS = (
    "{'url': settings.REDIS_URL, 'cluster': settings.REDIS_CLUSTER, 'cache': settings.CACHES['default'],"
    " 'broker': settings.CELERY_BROKER_URL, 'results': settings.CELERY_RESULT_BACKEND}"
)


def settings_with(**env):
    return settings_in_a_new_process({"DEBUG": "1", **env}, REDIS_SETTINGS)


def settled(**env) -> dict:
    return settings_read({"DEBUG": "1", **env}, REDIS_SETTINGS)


def test_redis_cluster_true_makes_the_url_a_cluster_url_and_the_cache_cluster_aware(tmp_path):
    got = settled(
        CODITECT_VAR_DIR=str(tmp_path),
        REDIS_URL="redis://10.0.0.9:6379",
        REDIS_CLUSTER="true",
        CELERY_BROKER_URL="redis://10.0.0.10:6379/0",
    )
    assert got["url"] == "redis+cluster://10.0.0.9:6379"
    assert got["cluster"] is True
    assert got["cache"]["LOCATION"] == got["url"]
    assert got["cache"]["OPTIONS"]["CLIENT_CLASS"] == "core.redis_cache.ClusterCacheClient"
    # Celery keeps its plain Redis, for its results too.
    assert got["broker"] == got["results"] == "redis://10.0.0.10:6379/0"


def test_the_broker_url_of_a_cluster_may_come_from_a_mounted_secret_file(tmp_path):
    # A broker URL carries its AUTH string: on GKE it arrives as a file.
    (tmp_path / "broker").write_text("redis://:auth@10.0.0.10:6379/0\n")
    got = settled(
        CODITECT_VAR_DIR=str(tmp_path),
        REDIS_URL="redis+cluster://10.0.0.9:6379/0",
        CELERY_BROKER_URL_FILE=str(tmp_path / "broker"),
    )
    assert got["broker"] == got["results"] == "redis://:auth@10.0.0.10:6379/0"


def test_a_cluster_url_alone_turns_redis_cluster_on(tmp_path):
    got = settled(
        CODITECT_VAR_DIR=str(tmp_path),
        REDIS_URL="redis+cluster://10.0.0.9:6379/0",
        CELERY_BROKER_URL="memory://",
    )
    assert got["cluster"] is True and got["url"] == "redis+cluster://10.0.0.9:6379/0"
    assert got["results"] is None


def test_a_tls_cluster_url_verifies_every_node_as_a_rediss_url_does(tmp_path):
    from redis.connection import SSLConnection, parse_url

    from core.redis_clients import redis_py_url

    ca = tmp_path / "cluster-ca.pem"
    got = settled(
        CODITECT_VAR_DIR=str(tmp_path),
        REDIS_URL="rediss+cluster://:auth@10.0.0.9:6378/0",
        REDIS_SSL_CA_CERTS=str(ca),
        CELERY_BROKER_URL="rediss://10.0.0.10:6378/0?ssl_cert_reqs=required",
    )
    assert got["url"].startswith("rediss+cluster://")
    # What redis-py's RedisCluster reads from the URL, and hands every node's pool.
    options = parse_url(redis_py_url(got["url"]))
    assert options["connection_class"] is SSLConnection
    assert options["ssl_cert_reqs"] == "required" and options["ssl_ca_certs"] == str(ca)
    assert options["ssl_check_hostname"] is True


def test_a_cluster_url_may_name_several_nodes_and_redis_py_is_given_them_all():
    from core.redis_clients import redis_cluster_nodes, redis_cluster_url, redis_py_url, redis_url_is_cluster

    url = "rediss+cluster://user:s3cret@10.0.0.9:7000,[fd00::7]:7001,node-c/0?ssl_cert_reqs=required"
    assert redis_url_is_cluster(url) and not redis_url_is_cluster("redis://10.0.0.9:7000/0")
    assert redis_py_url(url) == "rediss://user:s3cret@10.0.0.9:7000/0?ssl_cert_reqs=required"
    assert [(node.host, node.port) for node in redis_cluster_nodes(url)] == [
        ("fd00::7", 7001),
        ("node-c", 6379),
    ]
    assert redis_cluster_nodes("redis+cluster://10.0.0.9:7000") == []
    assert redis_cluster_url("redis://10.0.0.9:7000/0") == "redis+cluster://10.0.0.9:7000/0"
    assert redis_cluster_url(url) == url
    with pytest.raises(ValueError):
        redis_cluster_url("unix:///run/redis.sock")


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"REDIS_URL": "redis+cluster://10.0.0.9:6379/0"}, "Celery cannot use as its broker"),
        ({"REDIS_CLUSTER": "true", "REDIS_URL": "redis://10.0.0.9:6379/0"}, "set CELERY_BROKER_URL"),
        (
            {
                "REDIS_URL": "redis+cluster://10.0.0.9:6379/0",
                "CELERY_BROKER_URL": "redis+cluster://10.0.0.9:6379/0",
            },
            "CELERY_BROKER_URL cannot be a Redis Cluster",
        ),
        (
            {"REDIS_URL": "redis+cluster://10.0.0.9:6379/2", "CELERY_BROKER_URL": "memory://"},
            "database 0 only",
        ),
        ({"REDIS_CLUSTER": "true"}, "REDIS_CLUSTER=true needs REDIS_URL"),
        ({"REDIS_CLUSTER": "true", "REDIS_URL": "unix:///run/redis.sock"}, "redis:// or rediss://"),
        (
            {
                "REDIS_URL": "redis+cluster://10.0.0.9:6379/0",
                "CELERY_BROKER_URL": "memory://",
                "REDIS_KEY_PREFIX": "{coditect}",
            },
            "REDIS_KEY_PREFIX holds no {",
        ),
    ],
)
def test_a_cluster_configuration_celery_or_the_cluster_cannot_use_is_refused_saying_why(tmp_path, env, says):
    result = settings_with(CODITECT_VAR_DIR=str(tmp_path), **env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and says in result.stderr, result.stderr[-2000:]


# --- a primary that hangs ---------------------------------------------------------------------


@pytest.mark.slow
def test_a_hung_primary_costs_the_rate_limiter_and_the_cache_one_socket_timeout(on_the_cluster, settings):
    """Invariant 13 on a cluster: a primary that hangs (CLIENT PAUSE: it
    accepts, acknowledges and answers nothing) costs a call of the rate
    limiter (every request's, heartbeats' too) and of the cache at most their
    socket timeout, as it costs the seat ledger: no client of ours retries
    after a timeout. The bound is a deadline, not a benchmark: redis-py's
    default retries made it eleven timeouts."""
    import time

    from django.core.cache import caches

    from accounts import ratelimit

    timeout = 0.5
    settings.REDIS_SOCKET_TIMEOUT = timeout
    settings.RATE_LIMIT_BACKEND = "redis"
    settings.CACHES = {
        "default": {
            **settings.CACHES["default"],
            "OPTIONS": {
                **settings.CACHES["default"]["OPTIONS"],
                "SOCKET_CONNECT_TIMEOUT": timeout,
                "SOCKET_TIMEOUT": timeout,
            },
        }
    }
    from core.redis_cache import ClusterConnectionFactory

    ClusterConnectionFactory._clients.clear()
    ratelimit._redis_scripts.forget(settings.REDIS_URL)
    ratelimit._redis_down_until = 0.0
    key = "ip:203.0.113.7"
    shard = on_the_cluster.shard_of(on_the_cluster.slot_of(f"{settings.REDIS_KEY_PREFIX}:ratelimit:{key}"))
    cache_key = next(
        f"hung-{n}"
        for n in range(10_000)
        if shard.holds(on_the_cluster.slot_of(f"{settings.REDIS_KEY_PREFIX}:1:hung-{n}"))
    )
    cache = caches["default"]
    # Both clients made, the topology known, before the primary hangs.
    assert ratelimit.rate_limit_hit(key=key, limit=100).allowed
    cache.set(cache_key, "before")
    # Long enough for both calls to time out (and for eleven retries to
    # show), short: a paused node answers even the UNPAUSE below only once
    # the pause ends.
    with shard.primary.client() as node:
        node.execute_command("CLIENT", "PAUSE", "4000", "ALL")
    try:
        started = time.monotonic()
        assert ratelimit.rate_limit_hit(key=key, limit=100) is None  # fails open, as documented
        limiter_took = time.monotonic() - started
        started = time.monotonic()
        # django-redis's ConnectionInterrupted, or redis-py's TimeoutError.
        with pytest.raises(Exception):
            cache.get(cache_key)
        cache_took = time.monotonic() - started
    finally:
        with shard.primary.client() as node:
            node.execute_command("CLIENT", "UNPAUSE")
        ratelimit._redis_scripts.forget(settings.REDIS_URL)
        ratelimit._redis_down_until = 0.0
        ClusterConnectionFactory._clients.clear()
    assert limiter_took < timeout + 1, limiter_took
    assert cache_took < timeout + 1, cache_took
