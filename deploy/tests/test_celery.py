"""The Celery services of deploy/cloudrun, run as Cloud Run runs them (their
command, production settings, Redis as broker and result store): the worker
takes a task from the broker, runs it, and counts it on its own /metrics
port; beat starts and serves its port too. And without Redis (the embedded
default) tasks run eagerly, with no broker."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml
from django.conf import settings
from django.db import connections
from prometheus_client.parser import text_string_to_metric_families

from deploy.tests.production import production_env
from deploy.tests.tools import DEPLOY, REPO


def _service_command(name: str) -> list[str]:
    service = yaml.safe_load((DEPLOY / "cloudrun" / f"celery-{name}.yaml").read_text())
    argv = service["spec"]["template"]["spec"]["containers"][0]["command"]
    return [str(Path(sys.executable).with_name(argv[0])), *argv[1:]]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _scrape(port: int) -> list:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
        return [s for f in text_string_to_metric_families(response.read().decode()) for s in f.samples]


def _wait_for_metrics(port: int, process: subprocess.Popen, log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        try:
            _scrape(port)
            return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"no metrics on port {port}:\n{log.read_text()}")


@pytest.fixture
def celery_env(django_db_setup, tmp_path):
    if connections["default"].vendor != "postgresql" or not settings.REDIS_URL:
        pytest.skip("needs PostgreSQL and Redis")
    params = connections["default"].settings_dict
    host, port, name = params.get("HOST") or "127.0.0.1", params.get("PORT") or 5432, params["NAME"]
    # A queue of this test's own, so that parallel runs never take each other's tasks.
    queue = f"deploy-test-{uuid.uuid4().hex[:8]}"
    return production_env(
        tmp_path,
        DATABASE_URL=f"postgresql://{params['USER']}@{host}:{port}/{name}",
        DATABASE_OPERATOR_URL=f"postgresql://{connections['operator'].settings_dict['USER']}@{host}:{port}/{name}",
        REDIS_URL=settings.REDIS_URL,
        REDIS_KEY_PREFIX=f"{settings.REDIS_KEY_PREFIX}-celery",
        CELERY_TASK_DEFAULT_QUEUE=queue,
        CELERY_METRICS_ADDR="127.0.0.1",
    )


def _start(argv: list[str], env: dict, log: Path) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen(argv, cwd=REPO, env=env, stdout=out, stderr=out)


def _stop(process: subprocess.Popen) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def test_the_cloud_run_worker_runs_a_task_from_redis_and_counts_it_on_its_port(celery_env, tmp_path):
    from coditect.celery import app

    queue = celery_env["CELERY_TASK_DEFAULT_QUEUE"]
    argv = _service_command("worker")
    argv[argv.index("--queues") + 1] = queue
    argv += ["--hostname", f"{queue}@%h"]
    port = _free_port()
    log = tmp_path / "worker.log"
    worker = _start(argv, {**celery_env, "CELERY_METRICS_PORT": str(port)}, log)
    try:
        _wait_for_metrics(port, worker, log)
        result = app.send_task("celery.accumulate", args=(1, 2), queue=queue)
        assert result.get(timeout=20) == [1, 2]  # JSON: the tuple comes back a list
        result.forget()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            done = [
                s.value
                for s in _scrape(port)
                if s.name == "coditect_celery_tasks_total"
                and s.labels == {"task": "celery.accumulate", "outcome": "succeeded"}
            ]
            if done == [1.0]:
                break
            time.sleep(0.1)
        assert done == [1.0], log.read_text()
    finally:
        assert _stop(worker) == 0, log.read_text()


def test_the_cloud_run_beat_starts_and_serves_its_port(celery_env, tmp_path):
    argv = _service_command("beat")
    argv[argv.index("--schedule") + 1] = str(tmp_path / "celerybeat-schedule")
    port = _free_port()
    log = tmp_path / "beat.log"
    beat = _start(argv, {**celery_env, "CELERY_METRICS_PORT": str(port)}, log)
    try:
        _wait_for_metrics(port, beat, log)
    finally:
        _stop(beat)


@pytest.mark.embedded
def test_without_redis_tasks_run_eagerly_and_are_counted(settings):
    from coditect.celery import TASKS, app

    if settings.REDIS_URL:
        pytest.skip("the embedded default has no Redis")
    assert app.conf.task_always_eager
    assert app.conf.broker_url == "memory://"

    @app.task(name="deploy.tests.eager_probe")
    def eager_probe(value):
        return value * 2

    before = TASKS.labels(task="deploy.tests.eager_probe", outcome="succeeded")._value.get()
    assert eager_probe.delay(21).get() == 42
    assert TASKS.labels(task="deploy.tests.eager_probe", outcome="succeeded")._value.get() == before + 1
