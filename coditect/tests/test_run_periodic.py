"""`manage.py run_periodic`: the embedded default's beat, run once."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from accounts.models import Role
from accounts.tests.factories import UserFactory
from analytics import tasks as analytics_tasks
from analytics.models import DailyUsage
from analytics.services import usage_rollup_license
from analytics.tasks import usage_rollup_license_task, usage_rollup_task
from analytics.tests.conftest import EventScript
from audit.models import AuditLog
from coditect.celery import app as celery_app
from licenses.ledger import LedgerUnavailable, get_seat_ledger
from licenses.tests.factories import LicenseFactory
from tenants.scope import tenant_scope
from tenants.tests.factories import TenantFactory

pytestmark = pytest.mark.embedded


def test_one_round_records_the_expired_lease_and_rolls_up_its_usage(committed_db, eager_tasks):
    tenant = TenantFactory()
    user = UserFactory(tenant=tenant, role=Role.USER)
    license = LicenseFactory(tenant=tenant, max_seats=2, lease_ttl=1)
    with tenant_scope(tenant.id):
        lease = (
            get_seat_ledger()
            .acquire(
                license_id=license.id,
                tenant_id=tenant.id,
                max_seats=2,
                fingerprint="machine-1",
                user_id=str(user.pk),
                ttl=1,
            )
            .lease
        )
    EventScript(license).acquire(timezone.now(), lease.session_id, user, "machine-1")
    time.sleep(1.3)

    call_command("run_periodic", "--once")

    with tenant_scope(tenant.id):
        expired = list(
            AuditLog.objects.filter(action="lease.expired").values_list("details__session_id", flat=True)
        )
        day = DailyUsage.objects.get(license=license)
    assert expired == [lease.session_id]
    assert (day.acquisitions, day.peak_seats, day.sessions_ended, day.distinct_users) == (1, 1, 1, 1)


def test_a_license_whose_rollup_fails_does_not_stop_the_rollup_of_the_others(
    committed_db, eager_tasks, monkeypatch, caplog
):
    licenses = [LicenseFactory(tenant=TenantFactory(), max_seats=2) for _ in range(3)]
    for n, license in enumerate(licenses):
        user = UserFactory(tenant=license.tenant, role=Role.USER)
        EventScript(license).acquire(timezone.now(), f"S{n}", user, f"machine-{n}")
    attempted = []

    def first_one_fails(*, license_id, **window):
        attempted.append(license_id)
        if len(attempted) == 1:
            raise RuntimeError("this license's rollup breaks")
        return usage_rollup_license(license_id=license_id, **window)

    monkeypatch.setattr(analytics_tasks, "usage_rollup_license", first_one_fails)

    # Outside a transaction, as the embedded default's runner calls it: each
    # license's task runs at once, in this process.
    assert usage_rollup_task.delay().get() == 3

    assert sorted(attempted) == sorted(str(license.id) for license in licenses)
    for license in licenses:
        with tenant_scope(license.tenant_id):
            rolled_up = DailyUsage.objects.filter(license=license).exists()
        assert rolled_up is (str(license.id) != attempted[0])
    assert [r.task_args[0] for r in caplog.records if r.getMessage() == "background task failed"] == [
        attempted[0]
    ]


def test_a_rollup_that_meets_a_ledger_that_does_not_answer_is_tried_again(committed_db, monkeypatch):
    license = LicenseFactory(tenant=TenantFactory(), max_seats=2)
    calls = []

    def ledger_blinks_once(**arguments):
        calls.append(arguments)
        if len(calls) == 1:
            raise LedgerUnavailable("Redis does not answer: connection refused")
        return usage_rollup_license(**arguments)

    monkeypatch.setattr(analytics_tasks, "usage_rollup_license", ledger_blinks_once)
    now = timezone.now()
    arguments = [
        str(license.id),
        str(license.tenant_id),
        (now - timedelta(hours=1)).isoformat(),
        now.isoformat(),
    ]

    # As a worker runs it (see licenses/tests/test_tasks_sweep.py).
    assert usage_rollup_license_task.apply(args=arguments, throw=False).get() > 0
    assert len(calls) == 2


def test_every_periodic_entry_names_a_task_some_app_registers(settings):
    # A task that moves between apps keeps its entry working only if the
    # schedule follows its name.
    celery_app.loader.import_default_modules()
    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert scheduled <= set(celery_app.tasks), scheduled - set(celery_app.tasks)
    assert "analytics.audit_export" in scheduled


# A task's name is what the broker carries: a message queued before a deploy
# names the task as it was, so a task that moves between apps keeps its name.
TASK_NAMES = {
    "analytics.audit_export",
    "analytics.audit_export_day",
    "analytics.usage_rollup",
    "analytics.usage_rollup_license",
    "licenses.lease_events_drain",
    "licenses.lease_events_drain_license",
    "licenses.lease_expiry_sweep",
    "licenses.lease_expiry_sweep_license",
    # Email (issue 15)
    "licenses.delivery_email",
    "licenses.expiry_notice",
    "licenses.expiry_notices",
    "licenses.seats_near_limit_notice",
    # Monthly usage reports (issue 16)
    "analytics.monthly_reports",
    "analytics.monthly_report_license",
    "analytics.monthly_reports_prune",
    # Floating-license rules (issue 17)
    "licenses.overdraft_notice",
}


def test_the_tasks_keep_the_names_queued_messages_carry():
    celery_app.loader.import_default_modules()
    ours = {name for name in celery_app.tasks if name.split(".")[0] in {"analytics", "audit", "licenses"}}
    assert ours == TASK_NAMES
