"""A real Celery worker, started for the test against Redis, runs a usage
rollup end to end: the task travels through the broker, the worker opens the
tenant's scope as the app role, and the rows land in PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.db import connections

from accounts.models import Role
from accounts.tests.factories import UserFactory
from analytics.models import DailyUsage, HourlyUsage
from analytics.tasks import usage_rollup_license_task
from analytics.tests.conftest import EventScript
from coditect.celery import app as celery_app
from licenses.tests.factories import LicenseFactory
from tenants.scope import tenant_scope
from tenants.tests.factories import TenantFactory

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

ROOT = Path(settings.BASE_DIR)
DAY = datetime(2026, 4, 6, tzinfo=UTC)


def database_url(alias: str) -> str:
    params = connections[alias].settings_dict
    host, port = params.get("HOST") or "127.0.0.1", params.get("PORT") or 5432
    return f"postgresql://{params['USER']}@{host}:{port}/{params['NAME']}"


@pytest.fixture
def worker_queue(committed_db, tmp_path):
    """A worker of its own on a queue of its own, so parallel runs never take
    each other's tasks; stopped, and its queue removed, afterwards."""
    if not settings.REDIS_URL or "operator" not in settings.DATABASES:
        pytest.skip("needs PostgreSQL (both roles) and Redis")
    queue = f"coditect-test-{uuid.uuid4().hex[:10]}"
    env = {
        **os.environ,
        "DEBUG": "1",
        "SECRET_KEY": "worker-test-only-not-secret",
        "DATABASE_URL": database_url("default"),
        "DATABASE_OPERATOR_URL": database_url("operator"),
        "REDIS_URL": settings.REDIS_URL,
        "REDIS_KEY_PREFIX": settings.REDIS_KEY_PREFIX,
        "SEAT_LEDGER": settings.SEAT_LEDGER,
        "CELERY_TASK_ALWAYS_EAGER": "0",
        "CODITECT_VAR_DIR": str(tmp_path / "var"),
    }
    log = tmp_path / "worker.log"
    argv = [sys.executable, "-m", "celery", "-A", "coditect", "worker", "--queues", queue, "--pool", "solo"]
    argv += ["--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel", "INFO"]
    argv += ["--hostname", f"{queue}@%h"]
    with open(log, "wb") as output:
        worker = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield queue, log
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
        client = redis.Redis.from_url(settings.REDIS_URL)
        client.delete(queue, f"_kombu.binding.{queue}")
        client.close()


def test_a_real_worker_runs_a_rollup_task_through_redis(worker_queue):
    queue, log = worker_queue
    tenant = TenantFactory()
    license = LicenseFactory(tenant=tenant, max_seats=4)
    alice, bob = (UserFactory(tenant=tenant, role=Role.USER) for _ in range(2))
    script = EventScript(license)
    script.acquire(DAY + timedelta(hours=9), "W1", alice, "m1")
    script.acquire(DAY + timedelta(hours=9, minutes=30), "W2", bob, "m2")
    script.end(DAY + timedelta(hours=10), "lease.released", "W1", alice, "m1", DAY + timedelta(hours=9))
    script.end(
        DAY + timedelta(hours=11), "lease.released", "W2", bob, "m2", DAY + timedelta(hours=9, minutes=30)
    )

    assert not celery_app.conf.task_always_eager, "this test is about a real broker"
    result = usage_rollup_license_task.apply_async(
        args=[str(license.id), str(tenant.id), DAY.isoformat(), (DAY + timedelta(days=1)).isoformat()],
        queue=queue,
    )
    try:
        periods = result.get(timeout=60)
    except Exception:
        pytest.fail(f"the worker did not run the task:\n{log.read_text(errors='replace')[-3000:]}")

    assert periods == 24 + 1
    with tenant_scope(tenant.id):
        day = DailyUsage.objects.get(license=license)
        hours = dict(HourlyUsage.objects.filter(license=license).values_list("period_start", "peak_seats"))
    assert (day.peak_seats, day.acquisitions, day.sessions_ended, day.session_seconds) == (
        2,
        2,
        2,
        3600 + 5400,
    )
    # W2 ended at 11:00 sharp: that hour has its end, and no seat held.
    assert hours == {DAY + timedelta(hours=9): 2, DAY + timedelta(hours=10): 1, DAY + timedelta(hours=11): 0}
    assert "analytics.usage_rollup_license" in log.read_text(errors="replace")
