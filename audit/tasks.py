"""Background work for the audit log: the daily export for retention.

The periodic entry (settings.CELERY_BEAT_SCHEDULE, "audit-export") fans out one
task per tenant and closed day not exported yet; each of those runs one
idempotent export and may run twice or late.
"""

from __future__ import annotations

from datetime import date

from celery import shared_task
from django.db import OperationalError

from audit.export import audit_export_day, audit_export_destination, audit_export_name, audit_exportable_days
from core.errors import ServiceUnavailable
from core.tasks import task_enqueue_on_commit
from tenants.models import Tenant
from tenants.scope import operator_scope

# The export reads the database and writes files or a bucket; it never touches
# the seat ledger, so the ledger's errors are not among these.
RETRYABLE = (ServiceUnavailable, OperationalError)


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
