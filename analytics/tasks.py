"""Background work for analytics: usage rollups and monthly usage reports (the
audit export is audit.tasks).

The periodic entry (settings.CELERY_BEAT_SCHEDULE) fans out one task per
license; each of those takes ids, runs one idempotent service under its
tenant's scope, and may run twice or late.
"""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.db import OperationalError
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from analytics import report_services
from analytics.services import floor_hour, usage_rollup_license
from core.email import email_task_options
from core.errors import ServiceUnavailable
from core.tasks import task_enqueue_on_commit
from licenses.ledger import LedgerUnavailable
from licenses.models import License
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


# --- monthly usage reports (analytics.report_services) ----------------------------------------


@shared_task(name="analytics.monthly_report_license", **email_task_options())
def monthly_report_license_task(license_id: str, tenant_id: str, month: str) -> int:
    """Build (once) and email (once) one license's report of `month` (YYYY-MM)."""
    return report_services.monthly_report_run(
        license_id=license_id, tenant_id=tenant_id, month=report_services.month_parse(month)
    )


@shared_task(name="analytics.monthly_reports")
def monthly_reports_task(month: str | None = None) -> int:
    """Fan out one report per license for `month` (YYYY-MM; default: the
    month before this one); returns how many licenses had one due. Beat runs
    it daily: the run of the 1st sends the month's reports, later runs find
    them sent (and send what a missed or failed run left)."""
    chosen = report_services.month_parse(month) if month else report_services.month_previous()
    targets = report_services.monthly_report_targets(month=chosen)
    for license_id, tenant_id in targets:
        task_enqueue_on_commit(monthly_report_license_task, license_id, tenant_id, f"{chosen:%Y-%m}")
    return len(targets)


@shared_task(name="analytics.monthly_reports_prune")
def monthly_reports_prune_task() -> int:
    """Daily: reports older than MONTHLY_REPORT_RETENTION_DAYS go."""
    return report_services.monthly_reports_prune()
