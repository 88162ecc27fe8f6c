"""Ledger keys must never be evicted: /ready fails, and a worker logs an ERROR
at start, when the Redis seat ledger's Redis has a maxmemory-policy other
than noeviction, or refuses to say (CONFIG disabled) and no operator vouched
for it with REDIS_EVICTION_POLICY_VERIFIED.

Each test starts a real redis-server of its own on a free port."""

from __future__ import annotations

import logging
import runpy
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.conf import settings as django_settings

from coditect import health

pytestmark = [
    pytest.mark.skipif(not shutil.which("redis-server"), reason="needs redis-server"),
    pytest.mark.django_db(databases="__all__"),
]

EVICTING = ("--maxmemory", "2mb", "--maxmemory-policy", "allkeys-lru")
NOT_EVICTING = ("--maxmemory", "2mb", "--maxmemory-policy", "noeviction")
CONFIG_DISABLED = ("--rename-command", "CONFIG", "")


@pytest.fixture
def own_redis(redis_servers):
    return redis_servers


@pytest.fixture
def redis_ledger_on(settings):
    """Point the Redis seat ledger (and so /ready) at a Redis of the test's own."""

    def point(server) -> None:
        settings.REDIS_URL = server.url
        settings.SEAT_LEDGER = "redis"

    health._eviction_policy_read.clear()
    yield point
    health._eviction_policy_read.clear()


def test_ready_fails_when_the_ledgers_redis_evicts_keys(client, own_redis, redis_ledger_on):
    server = own_redis(*EVICTING)
    # Not a policy on paper only: filled past maxmemory, this Redis drops keys.
    with server.client.pipeline(transaction=False) as pipe:
        for n in range(400):
            pipe.set(f"filler:{n}", b"x" * 10_000)
        pipe.execute()
    assert server.client.info("stats")["evicted_keys"] > 0
    redis_ledger_on(server)

    response = client.get("/ready")

    assert response.status_code == 503
    error = response.json()["error"]
    assert set(error) == {"code", "message", "details"}
    assert error["code"] == "service_unavailable"
    assert error["details"]["failed"] == {"redis": "EvictionPolicyUnsafe"}
    assert error["details"]["maxmemory_policy"] == {"found": "allkeys-lru", "required": "noeviction"}
    assert "allkeys-lru" in error["message"] and "noeviction" in error["message"]
    assert "does not answer" not in error["message"]


def test_ready_answers_when_the_ledgers_redis_never_evicts(client, own_redis, redis_ledger_on):
    redis_ledger_on(own_redis(*NOT_EVICTING))

    response = client.get("/ready")

    assert response.status_code == 200
    assert "redis" in response.json()["checks"]


def test_ready_fails_where_config_is_disabled_unless_an_operator_verified_the_policy(
    client, settings, own_redis, redis_ledger_on
):
    redis_ledger_on(own_redis(*NOT_EVICTING, *CONFIG_DISABLED))

    settings.REDIS_EVICTION_POLICY_VERIFIED = False
    response = client.get("/ready")
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["details"]["failed"] == {"redis": "EvictionPolicyUnsafe"}
    assert error["details"]["maxmemory_policy"] == {"found": None, "required": "noeviction"}
    assert "REDIS_EVICTION_POLICY_VERIFIED" in error["message"]

    settings.REDIS_EVICTION_POLICY_VERIFIED = True
    assert client.get("/ready").status_code == 200


def test_the_verified_setting_does_not_excuse_a_policy_redis_reports(
    client, settings, own_redis, redis_ledger_on
):
    redis_ledger_on(own_redis(*EVICTING))
    settings.REDIS_EVICTION_POLICY_VERIFIED = True

    response = client.get("/ready")

    assert response.status_code == 503
    assert response.json()["error"]["details"]["maxmemory_policy"]["found"] == "allkeys-lru"


def test_the_policy_is_read_once_per_cache_period_not_on_every_probe(
    client, own_redis, redis_ledger_on, monkeypatch
):
    server = own_redis(*NOT_EVICTING)
    redis_ledger_on(server)
    assert client.get("/ready").status_code == 200

    server.client.config_set("maxmemory-policy", "allkeys-lru")
    assert client.get("/ready").status_code == 200  # the answer read a moment ago still stands

    import time

    later = time.monotonic() + health.EVICTION_POLICY_CACHE_SECONDS + 1
    monkeypatch.setattr("core.cache.time.monotonic", lambda: later)
    assert client.get("/ready").status_code == 503


def test_a_redis_that_does_not_answer_is_still_reported_as_not_answering(client, own_redis, redis_ledger_on):
    server = own_redis(*NOT_EVICTING)
    redis_ledger_on(server)
    server.process.terminate()
    server.process.wait(timeout=10)

    response = client.get("/ready")

    assert response.status_code == 503
    error = response.json()["error"]
    assert error["message"] == "A dependency does not answer: redis."
    assert "maxmemory_policy" not in error["details"]
    assert error["details"]["failed"]["redis"] != "EvictionPolicyUnsafe"


def test_the_database_ledger_does_not_need_a_non_evicting_redis(client, settings, own_redis, redis_ledger_on):
    redis_ledger_on(own_redis(*EVICTING))
    settings.SEAT_LEDGER = "database"

    assert client.get("/ready").status_code == 200


def _gunicorn_post_worker_init(monkeypatch, tmp_path):
    # The config file makes a metrics directory of its own unless one is set;
    # a test must not switch the rest of the session to multiprocess metrics.
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "prometheus"))
    config = runpy.run_path(str(Path(django_settings.BASE_DIR) / "deploy" / "gunicorn.conf.py"))
    worker = SimpleNamespace(log=logging.getLogger("test.gunicorn.worker"))
    return lambda: config["post_worker_init"](worker)


def test_a_gunicorn_worker_logs_an_error_naming_the_policy_at_start(
    caplog, own_redis, redis_ledger_on, monkeypatch, tmp_path
):
    redis_ledger_on(own_redis(*EVICTING))
    post_worker_init = _gunicorn_post_worker_init(monkeypatch, tmp_path)

    with caplog.at_level(logging.ERROR, logger="coditect.health"):
        post_worker_init()

    errors = [r for r in caplog.records if r.name == "coditect.health" and r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "allkeys-lru" in errors[0].getMessage()
    assert errors[0].maxmemory_policy == "allkeys-lru"
    assert errors[0].required_policy == "noeviction"


def test_a_worker_logs_no_error_at_start_when_redis_never_evicts(
    caplog, own_redis, redis_ledger_on, monkeypatch, tmp_path
):
    redis_ledger_on(own_redis(*NOT_EVICTING))
    post_worker_init = _gunicorn_post_worker_init(monkeypatch, tmp_path)

    with caplog.at_level(logging.INFO, logger="coditect.health"):
        post_worker_init()

    assert not [r for r in caplog.records if r.name == "coditect.health" and r.levelno >= logging.WARNING]


def test_a_worker_starts_without_raising_when_redis_does_not_answer(
    caplog, own_redis, redis_ledger_on, monkeypatch, tmp_path
):
    server = own_redis(*EVICTING)
    redis_ledger_on(server)
    server.process.terminate()
    server.process.wait(timeout=10)
    post_worker_init = _gunicorn_post_worker_init(monkeypatch, tmp_path)

    with caplog.at_level(logging.WARNING, logger="coditect.health"):
        post_worker_init()

    assert [r for r in caplog.records if r.name == "coditect.health" and r.levelno == logging.WARNING]
