"""Reads of usage rollups, through the tenant-scoped managers."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from analytics.models import DailyUsage, HourlyUsage, UsageRollup, UsageRollupRun
from analytics.services import DAY, HOUR, floor_day, floor_hour
from licenses.models import License
from licenses.selectors import license_get, license_list

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
) -> list[dict]:
    """Per license of the current tenant (or the one asked for, or those
    given: a page of them), every period of [start, end) with its figures;
    periods with no activity are zeros."""
    model, _ = GRANULARITIES[granularity]
    if licenses is None:
        licenses = [license_get(license_id=license_id)] if license_id else license_list()
    periods = usage_periods(granularity, start, end)
    rows = model.objects.filter(license_id__in=[lic.id for lic in licenses])
    if periods:
        rows = rows.filter(period_start__gte=periods[0], period_start__lt=end)
    by_license: dict[uuid.UUID, dict[datetime, UsageRollup]] = {}
    for row in rows:
        by_license.setdefault(row.license_id, {})[row.period_start] = row
    as_of = usage_as_of([lic.id for lic in licenses])
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


def usage_as_of(license_ids: list[uuid.UUID]) -> dict[uuid.UUID, datetime]:
    """When each license's figures were last rolled up (licenses never rolled
    up are missing): one query for them all."""
    return dict(
        UsageRollupRun.objects.filter(license_id__in=license_ids).values_list("license_id", "rolled_up_to")
    )


def series_as_of(series: list[dict]) -> datetime | None:
    """The "as of" of a whole answer: the oldest of its licenses' (so every
    figure in it is at least that fresh); None when one was never rolled up."""
    moments = [item["as_of"] for item in series]
    if not moments or any(moment is None for moment in moments):
        return None
    return min(moments)
