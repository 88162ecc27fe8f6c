"""The Celery app: configured from Django settings (every `CELERY_*` setting).

With REDIS_URL set, Redis is the broker and the result store; without it (the
embedded default) tasks run eagerly in the caller's process and no broker is
needed. Tasks live in each app's `tasks.py` and are found by autodiscovery;
periodic ones go in settings.CELERY_BEAT_SCHEDULE.

Task outcomes are counted for Prometheus by the signal handlers below. A
worker or beat process serves its own metrics on CELERY_METRICS_PORT (on Cloud
Run that is $PORT, which each service must listen on anyway). Run the worker
with `--pool threads` (as deploy/cloudrun does): the counters then live in the
one process that serves them.
"""

from __future__ import annotations

import logging
import os
import threading
import time

from celery import Celery, signals
from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "coditect.settings")

logger = logging.getLogger(__name__)

app = Celery("coditect")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

TASKS = Counter(
    "coditect_celery_tasks",
    "Celery tasks run, by task and outcome (succeeded, failed, retried, rejected, revoked).",
    ["task", "outcome"],
)
TASK_SECONDS = Histogram(
    "coditect_celery_task_seconds",
    "Time one Celery task ran, by task.",
    ["task"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0),
)

_started: dict[str, float] = {}
_started_lock = threading.Lock()


def _task_label(sender) -> str:
    # Only names of tasks this code registered become label values: a message
    # naming anything else cannot grow the series.
    name = getattr(sender, "name", None)
    return name if name in app.tasks else "other"


def _count(sender, outcome: str) -> None:
    TASKS.labels(task=_task_label(sender), outcome=outcome).inc()


@signals.task_prerun.connect
def _task_started(task_id=None, **kwargs) -> None:
    with _started_lock:
        _started[task_id] = time.perf_counter()


@signals.task_postrun.connect
def _task_finished(sender=None, task_id=None, **kwargs) -> None:
    with _started_lock:
        started = _started.pop(task_id, None)
    if started is not None:
        TASK_SECONDS.labels(task=_task_label(sender)).observe(time.perf_counter() - started)


@signals.task_success.connect
def _task_succeeded(sender=None, **kwargs) -> None:
    _count(sender, "succeeded")


# Each task run has a context of its own: its audit rows and log lines carry
# the task's id where a request's would carry the request's.
_task_contexts: dict[str, object] = {}


@signals.task_prerun.connect
def _task_context_open(task_id=None, **kwargs) -> None:
    from core.context import context_enter

    _task_contexts[task_id] = context_enter(request_id=f"task-{task_id}"[:64])


@signals.task_postrun.connect
def _task_context_close(task_id=None, **kwargs) -> None:
    from core.context import context_exit

    token = _task_contexts.pop(task_id, None)
    if token is not None:
        context_exit(token)


@signals.task_failure.connect
def _task_failed(sender=None, **kwargs) -> None:
    _count(sender, "failed")


@signals.task_retry.connect
def _task_retried(sender=None, **kwargs) -> None:
    _count(sender, "retried")


@signals.task_rejected.connect
def _task_rejected(sender=None, **kwargs) -> None:
    _count(None, "rejected")


@signals.task_revoked.connect
def _task_revoked(sender=None, request=None, **kwargs) -> None:
    _count(sender, "revoked")


def _serve_metrics(**kwargs) -> None:
    from django.conf import settings
    from prometheus_client import start_http_server

    port = settings.CELERY_METRICS_PORT
    if port:
        start_http_server(port, addr=os.environ.get("CELERY_METRICS_ADDR", "0.0.0.0"))  # noqa: S104 - the container's own port
        logger.info("serving Celery metrics", extra={"port": port})


signals.worker_init.connect(_serve_metrics, weak=False)
signals.beat_init.connect(_serve_metrics, weak=False)


def _redis_queue_keys(queue: str) -> list[str]:
    """The Redis lists kombu keeps one queue in: one per priority step."""
    from kombu.transport.redis import PRIORITY_STEPS, Channel

    options = app.conf.broker_transport_options or {}
    steps = options.get("priority_steps", PRIORITY_STEPS)
    sep = options.get("sep", Channel.sep)
    prefix = options.get("global_keyprefix", "")
    return [prefix + (queue if step == 0 else f"{queue}{sep}{step}") for step in steps]


class CeleryQueueCollector(Collector):
    """Messages waiting in the broker per queue, read at scrape time (the backlog)."""

    def describe(self):
        return iter(())

    def collect(self):
        family = GaugeMetricFamily(
            "coditect_celery_queue_length", "Messages waiting in the broker, by queue.", labels=["queue"]
        )
        broker = app.conf.broker_url or ""
        queue = app.conf.task_default_queue
        if broker.startswith(("redis://", "rediss://")):
            import redis

            try:
                client = redis.Redis.from_url(broker, socket_connect_timeout=2, socket_timeout=2)
                try:
                    with client.pipeline(transaction=False) as pipe:
                        for key in _redis_queue_keys(queue):
                            pipe.llen(key)
                        family.add_metric([queue], sum(pipe.execute()))
                finally:
                    client.close()
            except Exception:  # a scrape must answer while Redis does not
                logger.warning("celery queue length could not be read", exc_info=True)
        else:
            # No broker (tasks run eagerly): nothing can wait.
            family.add_metric([queue], 0)
        yield family
