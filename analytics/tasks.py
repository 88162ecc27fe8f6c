"""Background work for analytics: usage rollups and the audit export.

The periodic entries (settings.CELERY_BEAT_SCHEDULE) fan out one task per
license or per tenant and day; each of those takes ids, runs one idempotent
service under its tenant's scope, and may run twice or late.
"""

from __future__ import annotations

from datetime import date, timedelta

from celery import shared_task
from django.conf import settings
from django.db import OperationalError
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from analytics.audit_export import (
    audit_export_day,
    audit_export_destination,
    audit_export_name,
    audit_exportable_days,
)
from analytics.services import floor_hour, usage_rollup_license
from core.errors import ServiceUnavailable
from core.tasks import task_enqueue_on_commit
from licenses.ledger import LedgerUnavailable
from licenses.models import License
from tenants.models import Tenant
from tenants.scope import operator_scope

RETRYABLE = (ServiceUnavailable, LedgerUnavailable, OperationalError)


@shared_task(
    name="analytics.usage_rollup_license", autoretry_for=RETRYABLE, retry_backoff=True, max_retries=3
)
def usage_rollup_license_task(license_id: str, tenant_id: str, start: str, end: str) -> int:
    return usage_rollup_license(
        license_id=license_id, tenant_id=tenant_id, start=parse_datetime(start), end=parse_datetime(end)
    )


@shared_task(name="analytics.usage_rollup")
def usage_rollup_task(lookback_hours: int | None = None) -> int:
    """Recompute every license's recent hours (and their days); returns how
    many licenses. The generous look-back makes a late or missed run heal."""
    hours = settings.ANALYTICS_ROLLUP_LOOKBACK_HOURS if lookback_hours is None else lookback_hours
    now = timezone.now()
    start = (floor_hour(now) - timedelta(hours=hours)).isoformat()
    end = now.isoformat()
    with operator_scope():
        targets = [(str(lid), str(tid)) for lid, tid in License.objects.values_list("id", "tenant_id")]
    for license_id, tenant_id in targets:
        task_enqueue_on_commit(usage_rollup_license_task, license_id, tenant_id, start, end)
    return len(targets)


@shared_task(name="analytics.audit_export_day", autoretry_for=RETRYABLE, retry_backoff=True, max_retries=3)
def audit_export_day_task(tenant_id: str, day: str) -> bool:
    return audit_export_day(tenant_id=tenant_id or None, day=date.fromisoformat(day))


@shared_task(name="analytics.audit_export")
def audit_export_task() -> int:
    """Export every closed day of the look-back not exported yet, per tenant
    (and the operator chain); returns how many exports were enqueued."""
    destination = audit_export_destination()
    if destination is None:
        return 0
    with operator_scope():
        tenants = [str(tid) for tid in Tenant.objects.values_list("id", flat=True)]
    enqueued = 0
    for day in audit_exportable_days():
        day_iso = day.isoformat()
        for tenant_id in [*tenants, ""]:
            if destination.exists(audit_export_name(tenant_id=tenant_id, day=day)):
                continue
            task_enqueue_on_commit(audit_export_day_task, tenant_id, day_iso)
            enqueued += 1
    return enqueued
