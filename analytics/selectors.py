"""Reads of usage rollups, and of the audit rows the usage pages show, through
the tenant-scoped managers."""

from __future__ import annotations

import uuid
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone

from analytics.models import DailyUsage, HourlyUsage, UsageRollup, UsageRollupRun
from analytics.services import DAY, HOUR, floor_day, floor_hour, usage_sources
from audit.events import Detail, Event
from audit.models import AuditLog
from licenses.models import License
from licenses.selectors import license_get, license_list
from tenants.scope import replica_scope

LICENSE_TARGET = "licenses.license"

GRANULARITIES: dict[str, tuple[type[UsageRollup], timedelta]] = {
    "hour": (HourlyUsage, HOUR),
    "day": (DailyUsage, DAY),
}


def _zero(period_start: datetime) -> dict:
    return {
        "period_start": period_start,
        "peak_seats": 0,
        "acquisitions": 0,
        "denials": 0,
        "denials_by_code": {},
        "distinct_users": 0,
        "distinct_machines": 0,
        "sessions_ended": 0,
        "session_seconds": 0.0,
        "avg_session_seconds": None,
        "overdraft_peak": 0,
        "overdraft_seconds": 0.0,
        "queued_acquisitions": 0,
        "queue_wait_seconds": 0.0,
        "queue_wait_max": 0.0,
    }


def _figures(row: UsageRollup) -> dict:
    figures = {name: getattr(row, name) for name in UsageRollup.FIGURES}
    figures["period_start"] = row.period_start
    figures["avg_session_seconds"] = (
        round(row.avg_session_seconds, 3) if row.avg_session_seconds is not None else None
    )
    return figures


def _first_period(granularity: str, start: datetime) -> datetime:
    return floor_hour(start) if granularity == "hour" else floor_day(start)


def usage_period_count(granularity: str, start: datetime, end: datetime) -> int:
    """How many periods usage_periods would list, without listing them (a
    range asked for may be far over the cap)."""
    _, step = GRANULARITIES[granularity]
    first = _first_period(granularity, start)
    if end <= first:
        return 0
    return -((first - end) // step)  # ceil((end - first) / step)


def usage_periods(granularity: str, start: datetime, end: datetime) -> list[datetime]:
    """The period starts from the one holding `start` up to (not including) `end`."""
    _, step = GRANULARITIES[granularity]
    moment = _first_period(granularity, start)
    periods = []
    while moment < end:
        periods.append(moment)
        moment += step
    return periods


def usage_series(
    *,
    granularity: str,
    start: datetime,
    end: datetime,
    license_id: uuid.UUID | None = None,
    licenses: list[License] | None = None,
    from_replica: bool = False,
) -> list[dict]:
    """Per license of the current tenant (or the one asked for, or those
    given: a page of them), every period of [start, end) with its figures;
    periods with no activity are zeros.

    `from_replica`: the figures are read on the analytics read path
    (tenants.scope.replica_scope), which may trail the primary by the
    replica's lag, as `as_of` (read there too) says. The usage API, its CSV
    and the dashboard's charts read so; what stores figures (the monthly
    report) reads the primary. The licenses are always the primary's."""
    model, _ = GRANULARITIES[granularity]
    if licenses is None:
        licenses = [license_get(license_id=license_id)] if license_id else license_list()
    license_ids = [lic.id for lic in licenses]
    periods = usage_periods(granularity, start, end)
    # None: the router's choice, the primary.
    with replica_scope() if from_replica else nullcontext(None) as using:
        # "As of" first: a rollup landing between the two reads makes the
        # figures newer than it says, never older.
        as_of = usage_as_of(license_ids, using=using)
        rows = model.objects.using(using).filter(license_id__in=license_ids)
        if periods:
            rows = rows.filter(period_start__gte=periods[0], period_start__lt=end)
        by_license: dict[uuid.UUID, dict[datetime, UsageRollup]] = {}
        for row in rows:
            by_license.setdefault(row.license_id, {})[row.period_start] = row
    series = []
    for license in licenses:
        stored = by_license.get(license.id, {})
        series.append(
            {
                "license": license,
                "as_of": as_of.get(license.id),
                "periods": [
                    _figures(stored[moment]) if moment in stored else _zero(moment) for moment in periods
                ],
            }
        )
    return series


def usage_as_of(license_ids: list[uuid.UUID], *, using: str | None = None) -> dict[uuid.UUID, datetime]:
    """When each license's figures were last rolled up (licenses never rolled
    up are missing): one query for them all."""
    return dict(
        UsageRollupRun.objects.using(using)
        .filter(license_id__in=license_ids)
        .values_list("license_id", "rolled_up_to")
    )


def series_as_of(series: list[dict]) -> datetime | None:
    """The "as of" of a whole answer: the oldest of its licenses' (so every
    figure in it is at least that fresh); None when one was never rolled up."""
    moments = [item["as_of"] for item in series]
    if not moments or any(moment is None for moment in moments):
        return None
    return min(moments)


# --- Usage pages (issue 16): denials as they happen, top users, CSV rows ------------------------
# Denials are read from the `lease.denied` audit rows, not the rollups: a row
# is written by the acquire that was refused, so the table shows it at once
# (a rollup counts it up to ten minutes later).

DENIAL_PAGE_SIZE = 50
# The codes acquire refuses with (licenses.leases, licenses.selectors), for the filter.
DENIAL_CODES = (
    "no_seats_available",
    "fingerprint_not_allowed",
    "machine_blocked",
    "user_blocked",
    "license_expired",
    "license_suspended",
    "license_not_found",
    "permission_denied",
)


@dataclass(frozen=True)
class Denial:
    id: int
    at: datetime
    user_id: uuid.UUID | None
    user_email: str
    fingerprint: str
    code: str
    license: License | None  # None: the key named no license of the tenant


@dataclass(frozen=True)
class DenialPage:
    denials: list[Denial]
    older: int | None  # the cursor of the next (older) page, None on the last


def _user_emails(user_ids) -> dict[str, str]:
    from accounts.models import User

    ids = {str(pk) for pk in user_ids if pk}
    return {str(pk): email for pk, email in User.objects.filter(pk__in=ids).values_list("pk", "email")}


def denial_page(
    *,
    license_id: uuid.UUID | None = None,
    user_id: uuid.UUID | None = None,
    code: str = "",
    start: datetime | None = None,
    end: datetime | None = None,
    before: int | None = None,
    limit: int = DENIAL_PAGE_SIZE,
) -> DenialPage:
    """The current tenant's refused acquires, newest first, `limit` at a time
    (`before`: the id the previous page ended at). Keyset paging on the audit
    row's id, so a page costs the same however many denials there are."""
    rows = AuditLog.objects.filter(action=Event.LEASE_DENIED)
    if license_id is not None:
        rows = rows.filter(target_type=LICENSE_TARGET, target_id=str(license_id))
    if user_id is not None:
        rows = rows.filter(user_id=user_id)
    if code:
        rows = rows.filter(**{f"details__{Detail.CODE}": code})
    if start is not None:
        rows = rows.filter(created_at__gte=start)
    if end is not None:
        rows = rows.filter(created_at__lt=end)
    if before is not None:
        rows = rows.filter(id__lt=before)
    page = list(rows.order_by("-id")[: limit + 1])
    more, page = len(page) > limit, page[:limit]
    emails = _user_emails(row.user_id for row in page)
    license_ids = {row.target_id for row in page if row.target_type == LICENSE_TARGET}
    licenses = {str(lic.id): lic for lic in License.objects.filter(id__in=license_ids)}
    denials = [
        Denial(
            id=row.id,
            at=row.created_at,
            user_id=row.user_id,
            user_email=emails.get(str(row.user_id), "") if row.user_id else "",
            fingerprint=str((row.details or {}).get(Detail.FINGERPRINT) or ""),
            code=str((row.details or {}).get(Detail.CODE) or "unknown"),
            license=licenses.get(row.target_id) if row.target_type == LICENSE_TARGET else None,
        )
        for row in page
    ]
    return DenialPage(denials=denials, older=page[-1].id if more and page else None)


@dataclass(frozen=True)
class UserSessionTime:
    user_id: str
    email: str
    sessions: int
    seconds: float


def top_users_by_session_time(
    *, start: datetime, end: datetime, licenses: list[License] | None = None, limit: int = 10
) -> list[UserSessionTime]:
    """The users whose seats were held longest over [start, end), most first.

    Counted as the usage API counts `session_seconds`: the sessions (leases)
    that ended in the window, each for its whole length, read from the same
    audit events by the same code as the rollups (analytics.services
    .usage_sources); a seat still held is counted once it ends. So for whole
    UTC periods the users' seconds add up to the API's `session_seconds`."""
    now = timezone.now()
    end = min(end, now)
    seconds: dict[str, float] = {}
    sessions: dict[str, int] = {}
    for license in license_list() if licenses is None else licenses:
        # Ended sessions only, so the seat ledger is not asked (the page works while it is away).
        sources = usage_sources(license=license, begin=start, end=end, now=now, live_leases=False)
        for session in sources.sessions:
            if session.end is None or session.provisional or not start <= session.end < end:
                continue
            who = session.user_id or ""
            seconds[who] = seconds.get(who, 0.0) + (session.end - session.start).total_seconds()
            sessions[who] = sessions.get(who, 0) + 1
    emails = _user_emails(pk for pk in seconds if _is_uuid(pk))
    ranked = sorted(seconds, key=lambda who: (-seconds[who], who))[:limit]
    return [
        UserSessionTime(
            user_id=who,
            email=emails.get(who, ""),
            sessions=sessions[who],
            seconds=round(seconds[who], 3),
        )
        for who in ranked
    ]


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
