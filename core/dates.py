"""The operator console's one date format, with its zone: "2026-12-02 14:05 UTC"
("2026-12-02 14:05:07 UTC" with the seconds, where an instant matters).

On the ground floor so that every app's pages (the audit log's below the
licenses', the tenant page above them) print a moment the same way.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

from django.utils import timezone
from django.utils.dateparse import parse_datetime

# An ISO 8601 date and time as the audit details keep them
# ("2026-12-02T05:41:07.123456+00:00"): a day alone, or digits that merely
# parse (a session id "20261202"), are not taken for one.
_ISO_MOMENT = re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d")
# The days a page's filter takes: far enough from both ends of the calendar
# that a day's end, in any zone, is still a date.
EARLIEST_DAY, LATEST_DAY = date(1970, 1, 1), date(8999, 12, 30)


def day_parse(text: str) -> date | None:
    """A day written YYYY-MM-DD between EARLIEST_DAY and LATEST_DAY, or None."""
    if len(text) != 10:
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError:
        return None
    return day if EARLIEST_DAY <= day <= LATEST_DAY else None


def when(moment, *, seconds: bool = False, none: str = "never") -> str:
    """`moment` (aware, naive meaning UTC, or an ISO 8601 string) in the one
    format; `none` for None or ""; a string that is not a date comes back as it is."""
    if moment is None or moment == "":
        return none
    if isinstance(moment, str):
        try:
            parsed = parse_datetime(moment)
        except ValueError:  # well formed, but no such date ("2025-02-30")
            parsed = None
        if parsed is None:
            return moment
        moment = parsed
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment, UTC)
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M{':%S' if seconds else ''}} UTC"


def moment_in(text) -> datetime | None:
    """The instant a string written as an ISO 8601 date and time names, else
    None (for anything else, a bare date included)."""
    if not isinstance(text, str) or not _ISO_MOMENT.match(text):
        return None
    try:
        return parse_datetime(text)
    except ValueError:
        return None
