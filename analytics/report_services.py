"""Monthly usage reports (issue 16, "Reports by themselves"): per license and
past UTC month, the figures and a CSV, emailed to the tenant's active admins
and kept on the dashboard for MONTHLY_REPORT_RETENTION_DAYS.

The figures are the usage API's: the month is rolled up again first (the
rollup is idempotent and recomputes from the audit events, so a late expiry
record or a rollup that never ran over part of the month is put right), then
read back through `analytics.selectors.usage_series`, the selector behind
`GET /api/v1/analytics/usage`, so the report and the API cannot differ:
- peak_seats: the highest daily peak of the month;
- average_seats: the mean of the month's hourly peaks, every hour of the
  month counted (an idle hour is 0), to two decimals; the API's
  `granularity=hour` over the month gives the same number;
- acquisitions, denials (by code), sessions_ended, session_seconds: sums of
  the days;
- overdraft_seats: seats held beyond max_seats at the peak, max(0, peak -
  max_seats): a license's overdraft seats (issue 17), or a limit lowered
  below the seats in use (invariant 6);
- top users: the rollups keep no per-user figures, so these come from the
  same sources the rollup reads (`analytics.services.usage_sources`), with
  the rollup's rule: sessions that ended in the month, their length summed per
  user. Their sum is the month's session_seconds.

Idempotent, and safe with two workers at once: one report per (license,
month) (a unique constraint; the second insert is ignored and the row read
back), and the email is sent in the transaction that locks the report row
and sets `emailed_at`, so a second run finds it sent and sends nothing. A
send that fails rolls `emailed_at` back and the task's retry sends again.
"""

from __future__ import annotations

import csv
import io
import logging
import uuid
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta

from django.conf import settings
from django.db import router, transaction
from django.utils import timezone

from accounts.models import User
from analytics.models import MonthlyReport
from analytics.selectors import usage_series
from analytics.services import DAY, usage_rollup_license, usage_sources
from audit.events import Event
from audit.services import audit_record
from core.email import email_send
from licenses.delivery import tenant_admin_emails
from licenses.models import License
from tenants.models import Tenant
from tenants.scope import operator_scope, tenant_scope

logger = logging.getLogger(__name__)

# How many users the report names, most session time first.
REPORT_TOP_USERS = 10
# Reports deleted per transaction by the prune.
PRUNE_BATCH = 1000
# Cells a spreadsheet would run as a formula get a leading apostrophe.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


# --- months ------------------------------------------------------------------------------------


def month_first(moment: datetime | date) -> date:
    """The first day of the UTC month holding `moment`."""
    if isinstance(moment, datetime):
        moment = moment.astimezone(UTC).date()
    return moment.replace(day=1)


def month_add(month: date, months: int) -> date:
    index = month.year * 12 + month.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def month_bounds(month: date) -> tuple[datetime, datetime]:
    """[start, end) of a month, in UTC."""
    start = datetime(month.year, month.month, 1, tzinfo=UTC)
    following = month_add(month, 1)
    return start, datetime(following.year, following.month, 1, tzinfo=UTC)


def month_previous(now: datetime | None = None) -> date:
    return month_add(month_first(now or timezone.now()), -1)


def month_parse(text: str) -> date:
    """A month written YYYY-MM; ValueError otherwise."""
    year, _, month = (text or "").strip().partition("-")
    if not (len(year) == 4 and year.isdigit() and len(month) == 2 and month.isdigit()):
        raise ValueError(f"not a month (YYYY-MM): {text!r}")
    return date(int(year), int(month), 1)


# --- which reports are due ------------------------------------------------------------------


def monthly_report_targets(*, month: date) -> list[tuple[str, str]]:
    """(license id, tenant id) of each license that should have a report for
    `month` and has none emailed yet: licenses not deleted, made before the
    month ended, of tenants that are active and not deleted."""
    _, end = month_bounds(month)
    with operator_scope():
        tenants = Tenant.objects.filter(is_active=True, deleted_at__isnull=True).values("id")
        emailed = MonthlyReport.objects.filter(month=month, emailed_at__isnull=False).values("license_id")
        licenses = (
            License.objects.filter(deleted_at__isnull=True, created_at__lt=end, tenant_id__in=tenants)
            .exclude(id__in=emailed)
            .order_by("tenant_id", "created_at")
            .values_list("id", "tenant_id")
        )
        return [(str(lid), str(tid)) for lid, tid in licenses.iterator()]


# --- building one report ----------------------------------------------------------------------


def _month_rollup(
    license_id: uuid.UUID | str, tenant_id: uuid.UUID | str, month: date, now: datetime
) -> None:
    """Recompute the month's hours and days, a day at a time (each call's
    sources are one day's events: memory stays bounded on a busy license)."""
    start, end = month_bounds(month)
    moment = start
    while moment < end:
        usage_rollup_license(
            license_id=license_id, tenant_id=tenant_id, start=moment, end=moment + DAY, now=now
        )
        moment += DAY


def _top_users(license: License, month: date, now: datetime) -> list[dict]:
    """The users with the most session time in the month: sessions that ended
    in it (as the rollup counts session_seconds), their lengths summed."""
    start, end = month_bounds(month)
    sources = usage_sources(license=license, begin=start, end=end, now=now)
    seconds: dict[str, float] = defaultdict(float)
    sessions: Counter = Counter()
    for session in sources.sessions:
        if session.end is None or session.provisional or not start <= session.end < end:
            continue
        seconds[session.user_id] += (session.end - session.start).total_seconds()
        sessions[session.user_id] += 1
    ranked = sorted(seconds.items(), key=lambda item: (-item[1], item[0]))[:REPORT_TOP_USERS]
    ids = [user_id for user_id, _ in ranked if _is_uuid(user_id)]
    emails = {str(pk): email for pk, email in User.objects.filter(id__in=ids).values_list("id", "email")}
    return [
        {
            "email": emails.get(user_id) or ("(no user)" if not user_id else "(deleted user)"),
            "seconds": round(total, 3),
            "sessions": sessions[user_id],
        }
        for user_id, total in ranked
    ]


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except (ValueError, TypeError):
        return False
    return True


def monthly_report_figures(*, license: License, month: date, now: datetime | None = None) -> dict:
    """The report's figures (see the module's docstring), in the license's
    tenant scope, from the rollups as they stand."""
    now = now or timezone.now()
    start, end = month_bounds(month)
    (days,) = usage_series(granularity="day", start=start, end=end, licenses=[license])
    (hours,) = usage_series(granularity="hour", start=start, end=end, licenses=[license])
    days, hours = days["periods"], hours["periods"]
    peak = max((day["peak_seats"] for day in days), default=0)
    by_code: Counter = Counter()
    for day in days:
        by_code.update(day["denials_by_code"])
    return {
        "max_seats": license.max_seats,
        "peak_seats": peak,
        "average_seats": round(sum(hour["peak_seats"] for hour in hours) / len(hours), 2) if hours else 0.0,
        "acquisitions": sum(day["acquisitions"] for day in days),
        "denials": sum(day["denials"] for day in days),
        "denials_by_code": dict(sorted(by_code.items())),
        "sessions_ended": sum(day["sessions_ended"] for day in days),
        "session_seconds": round(sum(day["session_seconds"] for day in days), 3),
        "overdraft_seats": max(0, peak - license.max_seats),
        "top_users": _top_users(license, month, now),
        "days": days,
    }


def _cell(value) -> str:
    text = "" if value is None else str(value)
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


def _codes(by_code: dict) -> str:
    return "; ".join(f"{code}={count}" for code, count in sorted(by_code.items()))


def monthly_report_csv(*, license: License, tenant: Tenant, month: date, figures: dict) -> str:
    """The CSV: three tables, each with its header row, a blank line between:
    the month's summary, its days (the usage API's daily figures, column for
    column), and its top users."""
    out = io.StringIO()
    writer = csv.writer(out)

    def row(*cells) -> None:
        writer.writerow([_cell(cell) for cell in cells])

    row(
        "tenant", "license_id", "license", "key_prefix", "month", "max_seats", "peak_seats", "average_seats",
        "overdraft_seats", "acquisitions", "denials", "denials_by_code", "sessions_ended", "session_seconds",
    )  # fmt: skip
    row(
        tenant.name,
        license.id,
        license.name,
        license.key_prefix,
        f"{month:%Y-%m}",
        figures["max_seats"],
        figures["peak_seats"],
        f"{figures['average_seats']:.2f}",
        figures["overdraft_seats"],
        figures["acquisitions"],
        figures["denials"],
        _codes(figures["denials_by_code"]),
        figures["sessions_ended"],
        figures["session_seconds"],
    )
    writer.writerow([])
    row(
        "date", "peak_seats", "acquisitions", "denials", "denials_by_code", "distinct_users",
        "distinct_machines", "sessions_ended", "session_seconds",
    )  # fmt: skip
    for day in figures["days"]:
        row(
            f"{day['period_start']:%Y-%m-%d}",
            day["peak_seats"],
            day["acquisitions"],
            day["denials"],
            _codes(day["denials_by_code"]),
            day["distinct_users"],
            day["distinct_machines"],
            day["sessions_ended"],
            day["session_seconds"],
        )
    writer.writerow([])
    row("user_email", "session_seconds", "sessions")
    for user in figures["top_users"]:
        row(user["email"], user["seconds"], user["sessions"])
    return out.getvalue()


def monthly_report_build(
    *, license_id: uuid.UUID | str, tenant_id: uuid.UUID | str, month: date, now: datetime | None = None
) -> MonthlyReport | None:
    """The license's report for a past month, made if there is none yet
    (rolled up first); None for a license that is not there. Idempotent."""
    now = now or timezone.now()
    _, end = month_bounds(month)
    if end > now:
        raise ValueError(f"{month:%Y-%m} has not ended yet")
    with tenant_scope(tenant_id):
        report = MonthlyReport.objects.filter(license_id=license_id, month=month).first()
        if report is not None:
            return report
        if not License.objects.filter(id=license_id).exists():
            return None
    _month_rollup(license_id, tenant_id, month, now)
    with tenant_scope(tenant_id):
        license = License.objects.select_related("tenant").filter(id=license_id).first()
        if license is None:
            return None
        figures = monthly_report_figures(license=license, month=month, now=now)
        text = monthly_report_csv(license=license, tenant=license.tenant, month=month, figures=figures)
        figures.pop("days")
        # A second worker that got here too waits on the first's insert, then
        # its own is ignored: both read back the one row.
        MonthlyReport.objects.bulk_create(
            [
                MonthlyReport(
                    tenant_id=license.tenant_id, license=license, month=month, csv_text=text, **figures
                )
            ],
            ignore_conflicts=True,
        )
        return MonthlyReport.objects.get(license_id=license_id, month=month)


# --- emailing it ---------------------------------------------------------------------------


def monthly_report_filename(report: MonthlyReport, license: License) -> str:
    return f"usage-{license.key_prefix or license.id}-{report.month:%Y-%m}.csv"


def monthly_report_email(*, report_id: int, tenant_id: uuid.UUID | str) -> int:
    """Email the report to the tenant's active admins, once: returns how many
    messages were sent (0 when it was sent already)."""
    with tenant_scope(tenant_id):
        # The row lock makes a second worker wait; it then finds emailed_at set.
        report = (
            MonthlyReport.objects.select_for_update().filter(id=report_id, emailed_at__isnull=True).first()
        )
        if report is None:
            return 0
        license = License.objects.select_related("tenant").filter(id=report.license_id).first()
        if license is None:
            return 0
        # No active admin: nobody to send to; the report stays on the dashboard, marked sent to 0.
        to = tenant_admin_emails(license.tenant_id)
        sent = email_send(
            template="monthly_report",
            to=to,
            context={
                "tenant": license.tenant,
                "license": license,
                "report": report,
                "month_label": f"{report.month:%B %Y}",
                "dashboard_url": f"{settings.EMAIL_LINK_BASE_URL}/dashboard/reports/",
            },
            attachments=[(monthly_report_filename(report, license), report.csv_text, "text/csv")],
            tags=["monthly_report"],
        )
        report.emailed_at = timezone.now()
        report.emailed_to = sent
        report.save(update_fields=["emailed_at", "emailed_to"])
        audit_record(
            action=Event.REPORT_EMAILED,
            tenant_id=license.tenant_id,
            target=license,
            details={"month": f"{report.month:%Y-%m}", "report_id": report.id, "recipients": len(to)},
        )
    return sent


def monthly_report_run(
    *, license_id: uuid.UUID | str, tenant_id: uuid.UUID | str, month: date, now: datetime | None = None
) -> int:
    """Build (if needed) and email (if not yet) one license's report; the
    number of messages sent."""
    report = monthly_report_build(license_id=license_id, tenant_id=tenant_id, month=month, now=now)
    if report is None:
        return 0
    return monthly_report_email(report_id=report.id, tenant_id=tenant_id)


# --- keeping them a year ---------------------------------------------------------------------


def monthly_reports_prune(*, now: datetime | None = None, batch: int = PRUNE_BATCH) -> int:
    """Delete reports made more than MONTHLY_REPORT_RETENTION_DAYS ago, in
    batches (each its own transaction); returns how many."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.MONTHLY_REPORT_RETENTION_DAYS)
    deleted = 0
    with operator_scope():
        using = router.db_for_write(MonthlyReport)
        while True:
            with transaction.atomic(using=using):
                ids = list(
                    MonthlyReport.objects.using(using)
                    .filter(created_at__lt=cutoff)
                    .order_by("id")
                    .values_list("id", flat=True)[:batch]
                )
                if not ids:
                    break
                MonthlyReport.objects.using(using).filter(id__in=ids).delete()
            deleted += len(ids)
    if deleted:
        logger.info("monthly reports pruned", extra={"deleted": deleted})
    return deleted
