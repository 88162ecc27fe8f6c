"""`manage.py run_periodic`: the embedded default's beat, run once."""

from __future__ import annotations

import time

import pytest
from django.core.management import call_command
from django.utils import timezone

from accounts.models import Role
from accounts.tests.factories import UserFactory
from analytics.models import DailyUsage
from analytics.tests.conftest import EventScript
from audit.models import AuditLog
from coditect.celery import app as celery_app
from licenses.ledger import get_seat_ledger
from licenses.tests.factories import LicenseFactory
from tenants.scope import tenant_scope
from tenants.tests.factories import TenantFactory

pytestmark = pytest.mark.embedded


@pytest.fixture
def eager_tasks():
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous


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
