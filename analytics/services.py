"""Usage rollups: per license, per hour and per day, recomputed from sources.

The sources are the audit events the lease services write (DESIGN.md
invariant 8) and, for leases still open, the seat ledger. A rollup recomputes
every period of a window from those sources and upserts the rows, so running
it twice, late, or after a late expiry record gives the same figures.

A session (one lease) runs from its acquisition to the event that ended it:
release, forced release, end by suspension, or expiry (at the ledger's
`expired_at`, not when the sweep noticed). Per period:
- peak_seats: most sessions open at one instant (an end and a start at the
  same instant do not overlap);
- acquisitions: new leases (`lease.acquired` with created=true); renewals of a
  machine's live lease are not acquisitions;
- denials, by code: refused acquires of this license (an unknown key names no
  license and is not counted against any);
- distinct users and machines: those holding a seat at some time in the period;
- sessions_ended, session_seconds: sessions that ended in the period and their
  total length (their average is the quotient).
Periods are UTC hours and UTC days.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.db import connections
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from analytics.models import DailyUsage, HourlyUsage, UsageRollup, UsageRollupRun
from audit.events import LEASE_ENDING_EVENTS, Detail, Event
from audit.models import AuditLog
from core.errors import ServiceUnavailable
from licenses.leases import lease_expiry_sweep_license
from licenses.ledger.gateway import seat_ledger
from licenses.models import License
from tenants.scope import tenant_scope

logger = logging.getLogger(__name__)

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)

ACQUIRED = Event.LEASE_ACQUIRED
DENIED = Event.LEASE_DENIED
# Every event that ends a lease; the first one found for a session wins.
ENDED = LEASE_ENDING_EVENTS


def floor_hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def floor_day(moment: datetime) -> datetime:
    return floor_hour(moment).replace(hour=0)


def ceil_to(moment: datetime, floor, step: timedelta) -> datetime:
    start = floor(moment)
    return start if start == moment else start + step


@dataclass
class Session:
    session_id: str
    start: datetime | None = None
    end: datetime | None = None  # None: still open
    user_id: str = ""
    fingerprint: str = ""
    # Its end is a guess (see usage_sources): it counts as held, not as ended.
    provisional: bool = False

    def overlaps(self, begin: datetime, stop: datetime) -> bool:
        return self.start < stop and (self.end is None or self.end > begin)


@dataclass(frozen=True)
class Sources:
    sessions: list[Session]
    acquisitions: list[datetime]
    denials: list[tuple[datetime, str]]
    # Leases granted to a queued ticket: when, and how long it waited (s).
    waits: list[tuple[datetime, float]] = field(default_factory=list)


def _when(value) -> datetime | None:
    if not value:
        return None
    moment = parse_datetime(value) if isinstance(value, str) else value
    if moment is not None and timezone.is_naive(moment):
        moment = timezone.make_aware(moment, UTC)
    return moment


def _events(license_id: uuid.UUID, actions: Iterable[str]):
    return AuditLog.objects.filter(
        target_type="licenses.license", target_id=str(license_id), action__in=list(actions)
    )


def usage_sources(
    *, license: License, begin: datetime, end: datetime, now: datetime, live_leases: bool = True
) -> Sources:
    """Every session that may overlap [begin, end), and the window's
    acquisitions and denials. Runs in the license's tenant scope. Without
    `live_leases` the ledger is not asked: a session with no end on record
    then has a provisional end (for readers of ended sessions only, which
    leave both kinds out)."""
    sessions: dict[str, Session] = {}

    # Sessions that ended at or after `begin`: an end is recorded no earlier
    # than it happened (an expiry is recorded by a later sweep), so the
    # recording time bounds the search.
    for row in _events(license.id, ENDED).filter(created_at__gte=begin).order_by("id").iterator():
        details = row.details or {}
        session_id = details.get(Detail.SESSION_ID)
        if not session_id or session_id in sessions:
            continue
        if row.action == Event.LEASE_EXPIRED:
            ended = _when(details.get(Detail.EXPIRED_AT))
        else:
            # An end the Redis ledger recorded itself is written when drained: it says when it was.
            ended = _when(details.get(Detail.OCCURRED_AT)) or row.created_at
        session = Session(
            session_id=session_id,
            start=_when(details.get(Detail.ACQUIRED_AT)),
            end=ended or row.created_at,
            user_id=str(details.get(Detail.USER_ID) or ""),
            fingerprint=details.get(Detail.FINGERPRINT) or "",
        )
        sessions[session_id] = session

    acquisitions: list[datetime] = []
    waits: list[tuple[datetime, float]] = []
    acquired_rows = _events(license.id, [ACQUIRED]).filter(created_at__gte=begin, created_at__lt=end)
    for row in acquired_rows.order_by("id").iterator():
        details = row.details or {}
        if not details.get(Detail.CREATED, True):
            continue
        acquisitions.append(row.created_at)
        waited = details.get("waited_seconds")
        if isinstance(waited, int | float):
            waits.append((row.created_at, float(waited)))
        session_id = details.get(Detail.SESSION_ID)
        if session_id and session_id not in sessions:
            sessions[session_id] = Session(session_id=session_id)
        if session_id:
            _fill_from_acquired(sessions[session_id], row)

    # Ended sessions whose end event did not say when they began (events
    # written before they carried `acquired_at`): their acquisition says.
    missing = [s.session_id for s in sessions.values() if s.start is None]
    if missing:
        for row in (
            _events(license.id, [ACQUIRED])
            .filter(**{f"details__{Detail.SESSION_ID}__in": missing})
            .order_by("id")
        ):
            _fill_from_acquired(sessions[row.details[Detail.SESSION_ID]], row)

    # A lingering lease holds its seat for its holder, but nobody uses it:
    # its session ended at the release (on record, or about to be).
    live = {
        lease.session_id: lease
        for lease in (_live_leases(license) if live_leases else [])
        if not lease.lingering
    }
    for lease in live.values():
        session = sessions.setdefault(lease.session_id, Session(session_id=lease.session_id))
        if session.end is None:
            session.start = session.start or lease.created_at
            session.user_id = session.user_id or str(lease.user_id or "")
            session.fingerprint = session.fingerprint or lease.fingerprint

    for session in sessions.values():
        if session.end is None and session.session_id not in live and session.start is not None:
            # Neither live nor ended on record (its expiry not yet swept): it
            # held its seat at least one TTL; a later run, after the sweep,
            # puts the true end in.
            session.end = min(session.start + timedelta(seconds=license.terms.lease_ttl), now)
            session.provisional = True

    denials = [
        (row.created_at, (row.details or {}).get(Detail.CODE) or "unknown")
        for row in _events(license.id, [DENIED]).filter(created_at__gte=begin, created_at__lt=end)
    ]
    usable = [s for s in sessions.values() if s.start is not None and (s.end is None or s.end > s.start)]
    return Sources(sessions=usable, acquisitions=acquisitions, denials=denials, waits=waits)


def _live_leases(license: License) -> list:
    """The license's live leases; none when the ledger does not answer.

    Everything else a rollup reads is in the database. Without the ledger, a
    session begun in the window with no end on record counts as an unswept
    expiry (held one TTL, a provisional end); one begun before the window and
    still live is missed. The periodic rollup recomputes its whole look-back
    every run, so the next run with the ledger back puts both right."""
    try:
        return seat_ledger().live_leases(license_id=license.id, tenant_id=license.tenant_id)
    except ServiceUnavailable:
        logger.warning(
            "usage rollup without live leases: the seat ledger does not answer",
            extra={"license_id": str(license.id)},
        )
        return []


def _fill_from_acquired(session: Session, row: AuditLog) -> None:
    session.start = session.start or row.created_at
    session.user_id = session.user_id or str(row.user_id or "")
    session.fingerprint = session.fingerprint or (row.details or {}).get(Detail.FINGERPRINT) or ""


def _levels(
    sessions: list[Session], begin: datetime, stop: datetime, now: datetime, max_seats: int
) -> tuple[int, int, float]:
    """A sweep line over [begin, stop) (ends sort before starts at the same
    instant): the most sessions open at once, the most of them past
    `max_seats` at once, and the seat-seconds past it (the overdraft)."""
    changes = []
    level = 0
    for session in sessions:
        if session.start <= begin:
            level += 1
        else:
            changes.append((session.start, 1))
        end = session.end if session.end is not None else now
        if end < stop:
            changes.append((end, -1))
    peak = level
    over_seconds = 0.0
    moment = begin
    for at, step in sorted(changes, key=lambda change: (change[0], change[1])):
        over_seconds += max(0, level - max_seats) * (at - moment).total_seconds()
        moment = at
        level += step
        peak = max(peak, level)
    over_seconds += max(0, level - max_seats) * (stop - moment).total_seconds()
    return peak, max(0, peak - max_seats), over_seconds


def usage_figures(
    sources: Sources, begin: datetime, stop: datetime, now: datetime, *, max_seats: int | None = None
) -> dict:
    """The figures of one period [begin, stop). Overdraft is the seats held
    past `max_seats` (the license's, as it is now): a seat granted past the
    limit is marked so for good, but once another seat frees the license is
    only as far over as it holds more than max_seats."""
    open_sessions = [s for s in sources.sessions if s.overlaps(begin, stop)]
    limit = max_seats if max_seats is not None else 10**9
    peak, over_peak, over_seconds = _levels(open_sessions, begin, stop, now, limit)
    ended = [s for s in sources.sessions if s.end is not None and not s.provisional and begin <= s.end < stop]
    denied = Counter(code for moment, code in sources.denials if begin <= moment < stop)
    waited = [seconds for moment, seconds in sources.waits if begin <= moment < stop]
    return {
        "peak_seats": peak,
        "acquisitions": sum(1 for moment in sources.acquisitions if begin <= moment < stop),
        "denials": sum(denied.values()),
        "denials_by_code": dict(sorted(denied.items())),
        "distinct_users": len({s.user_id for s in open_sessions if s.user_id}),
        "distinct_machines": len({s.fingerprint for s in open_sessions if s.fingerprint}),
        "sessions_ended": len(ended),
        "session_seconds": round(sum((s.end - s.start).total_seconds() for s in ended), 3),
        "overdraft_peak": over_peak,
        "overdraft_seconds": round(over_seconds, 3),
        "queued_acquisitions": len(waited),
        "queue_wait_seconds": round(sum(waited), 3),
        "queue_wait_max": round(max(waited, default=0.0), 3),
    }


def _lock_license_rollup(license_id: uuid.UUID) -> None:
    """Two rollups of one license wait for each other instead of racing their upserts."""
    connection = connections["default"]
    if connection.vendor != "postgresql":
        return  # SQLite's IMMEDIATE transactions already run one at a time
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [f"rollup:{license_id}"])


def _store(model: type[UsageRollup], license: License, periods: dict[datetime, dict], computed_at) -> None:
    """Upsert the periods with activity; remove rows of the recomputed
    periods that no longer have any."""
    active = {start: figures for start, figures in periods.items() if any(figures.values())}
    if periods:
        model.objects.filter(license_id=license.id, period_start__in=list(periods)).exclude(
            period_start__in=list(active)
        ).delete()
    rows = [
        model(
            tenant_id=license.tenant_id,
            license_id=license.id,
            period_start=start,
            computed_at=computed_at,
            **figures,
        )
        for start, figures in active.items()
    ]
    if rows:
        model.objects.bulk_create(
            rows,
            update_conflicts=True,
            unique_fields=["license", "period_start"],
            update_fields=[*UsageRollup.FIGURES, "computed_at"],
        )


def usage_rollup_license(
    *,
    license_id: uuid.UUID | str,
    tenant_id: uuid.UUID | str,
    start: datetime,
    end: datetime,
    now: datetime | None = None,
) -> int:
    """Recompute the hours of [start, end) and the whole days they touch, up
    to now; return how many periods were recomputed. Idempotent."""
    now = now or timezone.now()
    end = min(end, now)
    if end <= start:
        return 0
    # Expiries first, so that sessions that timed out are on record.
    try:
        lease_expiry_sweep_license(license_id=uuid.UUID(str(license_id)), tenant_id=uuid.UUID(str(tenant_id)))
    except ServiceUnavailable:
        pass  # sessions not yet swept get a provisional end; a later run corrects it
    hours = _periods(floor_hour(start), end, HOUR)
    days = _periods(floor_day(start), end, DAY)
    with tenant_scope(tenant_id):
        _lock_license_rollup(license_id)
        license = License.objects.filter(id=license_id).first()
        if license is None:
            return 0
        sources = usage_sources(license=license, begin=days[0], end=days[-1] + DAY, now=now)
        computed_at = timezone.now()
        _store(
            HourlyUsage,
            license,
            {h: usage_figures(sources, h, h + HOUR, now, max_seats=license.max_seats) for h in hours},
            computed_at,
        )
        _store(
            DailyUsage,
            license,
            {d: usage_figures(sources, d, d + DAY, now, max_seats=license.max_seats) for d in days},
            computed_at,
        )
        _mark_rolled_up(license, end)
    return len(hours) + len(days)


def _mark_rolled_up(license: License, end: datetime) -> None:
    """Record how far the license's figures now reach (only ever forward)."""
    run, created = UsageRollupRun.objects.get_or_create(
        license_id=license.id, defaults={"tenant_id": license.tenant_id, "rolled_up_to": end}
    )
    if not created and run.rolled_up_to < end:
        UsageRollupRun.objects.filter(pk=run.pk, rolled_up_to__lt=end).update(rolled_up_to=end)


def _periods(first: datetime, end: datetime, step: timedelta) -> list[datetime]:
    periods = []
    moment = first
    while moment < end:
        periods.append(moment)
        moment += step
    return periods
