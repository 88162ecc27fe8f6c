"""GET /metrics: django-prometheus's metrics plus those read at scrape time.

Under gunicorn every worker is a process of its own; deploy/gunicorn.conf.py
sets PROMETHEUS_MULTIPROC_DIR so that counters and histograms add up across
workers (prometheus_client's multiprocess mode). What is read at scrape time
(seats per license, the Celery backlog, whether PostgreSQL and Redis answer)
is the same whichever worker answers, so it is added here, once per scrape.

The page is behind a credential: `Authorization: Bearer <METRICS_TOKEN>`,
compared in constant time. Without METRICS_TOKEN set it is served only with
DEBUG on (a developer's machine); in production it is refused. No header a
proxy may or may not add (X-Forwarded-For, Forwarded) decides anything.
"""

from __future__ import annotations

import hmac
import logging
import os
import time

import prometheus_client
from django.conf import settings
from django.db import connections
from django.http import HttpResponse
from django.views.decorators.cache import never_cache
from prometheus_client import multiprocess
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from core.errors import get_only

logger = logging.getLogger(__name__)


class DependencyCollector(Collector):
    """Whether PostgreSQL and Redis answer, as /ready checks them, and a little of their state.

    A gauge from the app (rather than the kubelet's probe results) says which
    dependency is down, and it reaches Prometheus while the pod is unready.
    """

    def describe(self):
        return iter(())

    def collect(self):
        from coditect import health

        up = GaugeMetricFamily(
            "coditect_dependency_up",
            "1 when the dependency answers, as /ready checks it.",
            labels=["dependency"],
        )
        seconds = GaugeMetricFamily(
            "coditect_dependency_check_seconds",
            "Time the last readiness check of the dependency took.",
            labels=["dependency"],
        )
        checks = {"database": lambda: health._check_database("default")}
        if settings.REDIS_URL:
            checks["redis"] = health._check_redis
        for name, check in checks.items():
            started = time.perf_counter()
            try:
                check()
                ok = 1
            except Exception:
                ok = 0
                if name == "database":
                    connections["default"].close()
            up.add_metric([name], ok)
            seconds.add_metric([name], time.perf_counter() - started)
        yield up
        yield seconds
        yield from self._database_state()
        if settings.REDIS_URL:
            yield from self._redis_state()

    def _database_state(self):
        connection = connections["default"]
        if connection.vendor != "postgresql":
            return
        try:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT (SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()),"
                    " current_setting('max_connections')::int"
                )
                used, limit = cursor.fetchone()
        except Exception:
            connection.close()
            return
        yield GaugeMetricFamily(
            "coditect_database_connections", "Connections open to the application's database.", value=used
        )
        yield GaugeMetricFamily(
            "coditect_database_max_connections", "PostgreSQL's max_connections.", value=limit
        )

    def _redis_state(self):
        """Redis's INFO; on a cluster, summed over the primaries (memory and
        maxmemory of the whole, clients and evictions of every primary)."""
        from core.redis_clients import redis_connect, redis_each_node

        try:
            client = redis_connect(
                settings.REDIS_URL,
                socket_timeout=settings.REDIS_SOCKET_TIMEOUT,
                client_name="coditect-metrics",
            )
            try:
                infos = list(redis_each_node(client, client.info, primaries_only=True).values())
            finally:
                client.close()
        except Exception:
            return

        def total(key: str) -> float:
            return float(sum(info.get(key, 0) for info in infos))

        for name, key, help_text in (
            ("coditect_redis_used_memory_bytes", "used_memory", "Memory Redis uses."),
            ("coditect_redis_maxmemory_bytes", "maxmemory", "Redis maxmemory (0: no limit)."),
            ("coditect_redis_connected_clients", "connected_clients", "Clients connected to Redis."),
        ):
            yield GaugeMetricFamily(name, help_text, value=total(key))
        yield CounterMetricFamily(
            "coditect_redis_evicted_keys", "Keys Redis evicted since it started.", value=total("evicted_keys")
        )


def _scrape_time_collectors() -> list[Collector]:
    from coditect.celery import CeleryQueueCollector
    from licenses.metrics import seat_collector

    return [DependencyCollector(), seat_collector(), CeleryQueueCollector()]


class _Scrape:
    def __init__(self, collectors) -> None:
        self.collectors = collectors

    def collect(self):
        for collector in self.collectors:
            try:
                yield from collector.collect()
            except Exception:  # one broken source must not empty the whole page
                logger.warning("a metrics collector failed", exc_info=True)


def metrics_refusal(request) -> HttpResponse | None:
    """None when the request may read the metrics, else the answer refusing it."""
    from core.errors import error_response

    token = settings.METRICS_TOKEN
    if not token:
        if settings.DEBUG:
            return None
        return error_response(
            "permission_denied", "The metrics are off: METRICS_TOKEN is not set and DEBUG is off."
        )
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(
        presented.strip().encode("utf-8", "surrogateescape"), token.encode("utf-8")
    ):
        return None
    response = error_response("not_authenticated", "The metrics need the metrics bearer token.")
    response["WWW-Authenticate"] = 'Bearer realm="metrics"'
    return response


@never_cache
@get_only
def metrics_view(request):
    refusal = metrics_refusal(request)
    if refusal is not None:
        return refusal
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        base = prometheus_client.CollectorRegistry()
        multiprocess.MultiProcessCollector(base)
    else:
        base = prometheus_client.REGISTRY
    page = prometheus_client.generate_latest(_Scrape([base, *_scrape_time_collectors()]))
    return HttpResponse(page, content_type=prometheus_client.CONTENT_TYPE_LATEST)
