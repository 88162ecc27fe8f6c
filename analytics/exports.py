"""CSV exports of the dashboard (issue 16): usage per license per period, and
the audit log, each streamed a bounded number of rows at a time.

The usage file's figures come from `usage_series`, the selector the usage API
answers from, over the range the API's own query serializer checks: the two
cannot differ. The rows are produced after the view has returned (the
response streams), so each generator opens its tenant's scope itself.

Every text cell that a spreadsheet would take for a formula (starting with
= + - @, a tab or a carriage return) gets a leading ' (OWASP's advice on CSV
injection); license names, user emails and audit details are the tenant's
own input.
"""

from __future__ import annotations

import csv
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime

from analytics.selectors import usage_series
from audit.readable import References, TargetLabels, action_text, detail_label, value_text, who
from audit.selectors import audit_rows_filtered
from licenses.models import License
from licenses.selectors import license_get, license_page
from tenants.scope import tenant_scope

# Licenses read per query of the usage file; audit rows per query (and per
# lookup of the people and objects they name) of the audit file.
LICENSES_PER_BATCH = 100
AUDIT_ROWS_PER_BATCH = 500
# The most rows one audit file holds: a request for more is refused (400), not cut short.
AUDIT_EXPORT_MAX_ROWS = 100_000

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

USAGE_COLUMNS = (
    "license_id",
    "license_name",
    "key_prefix",
    "max_seats",
    "granularity",
    "period_start",
    "peak_seats",
    "acquisitions",
    "denials",
    "denials_by_code",
    "distinct_users",
    "distinct_machines",
    "sessions_ended",
    "session_seconds",
    "avg_session_seconds",
    "overdraft_peak",
    "overdraft_seconds",
    "queued_acquisitions",
    "queue_wait_seconds",
    "queue_wait_max",
    "as_of",
)
AUDIT_COLUMNS = ("time_utc", "actor", "action", "action_code", "target", "details")


def csv_safe(value) -> str:
    """A cell as text, with a leading ' where a spreadsheet would see a formula."""
    text = "" if value is None else str(value)
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


class _Line:
    """A file-like object csv.writer writes one line into, handed back as it is."""

    def write(self, value: str) -> str:
        return value


def csv_lines(header: Iterable[str], rows: Iterable[Iterable]) -> Iterator[str]:
    writer = csv.writer(_Line())
    yield writer.writerow(list(header))
    for row in rows:
        yield writer.writerow([csv_safe(cell) for cell in row])


def iso_utc(moment: datetime | None) -> str:
    if moment is None:
        return ""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _number(value) -> str:
    return "" if value is None else str(value)


def usage_rows(
    *,
    tenant_id: uuid.UUID,
    granularity: str,
    start: datetime,
    end: datetime,
    license_id: uuid.UUID | None = None,
) -> Iterator[list]:
    """One row per license per period of [start, end): the usage API's figures."""
    cursor: str | None = None
    while True:
        with tenant_scope(tenant_id):
            if license_id is not None:
                licenses: list[License] = [license_get(license_id=license_id)]
                cursor = None
            else:
                page = license_page(cursor=cursor, limit=LICENSES_PER_BATCH)
                licenses, cursor = page.items, page.next_cursor
            series = usage_series(
                granularity=granularity, start=start, end=end, licenses=licenses, from_replica=True
            )
        for item in series:
            license = item["license"]
            for period in item["periods"]:
                yield [
                    license.id,
                    license.name,
                    license.key_prefix,
                    license.max_seats,
                    granularity,
                    iso_utc(period["period_start"]),
                    period["peak_seats"],
                    period["acquisitions"],
                    period["denials"],
                    "; ".join(f"{code}: {count}" for code, count in period["denials_by_code"].items()),
                    period["distinct_users"],
                    period["distinct_machines"],
                    period["sessions_ended"],
                    _number(period["session_seconds"]),
                    _number(period["avg_session_seconds"]),
                    period["overdraft_peak"],
                    _number(period["overdraft_seconds"]),
                    period["queued_acquisitions"],
                    _number(period["queue_wait_seconds"]),
                    _number(period["queue_wait_max"]),
                    iso_utc(item["as_of"]),
                ]
        if cursor is None:
            return


def audit_export_rows(*, action: str = "", user_id=None, email: str = "", start=None, end=None):
    """The audit rows an export holds (in the caller's tenant scope): the
    audit page's filter (audit_rows_filtered: a person's rows are those they
    did, those about them and their seats'), unordered."""
    return audit_rows_filtered(action=action, user_id=user_id, email=email, start=start, end=end)


def audit_export_too_large(rows) -> bool:
    """Over AUDIT_EXPORT_MAX_ROWS? Counted up to one past it, never further."""
    return rows.order_by()[: AUDIT_EXPORT_MAX_ROWS + 1].count() > AUDIT_EXPORT_MAX_ROWS


def details_full_text(details, references: References) -> str:
    """Every detail as "label: value", users by their email (the page cuts them; a file does not)."""
    if not details:
        return ""
    if not isinstance(details, dict):
        return value_text(details)
    parts = []
    for name, value in details.items():
        email = references.user_email(value) if name == "user_id" and isinstance(value, str) else None
        parts.append(f"{detail_label(name)}: {email or value_text(value)}")
    return "; ".join(parts)


def audit_rows(
    *, tenant_id: uuid.UUID, action: str = "", user_id=None, email: str = "", start=None, end=None
) -> Iterator[list]:
    """The tenant's audit rows as people read them, newest first, in batches
    (keyset on the id, so the file costs the same at its end as at its start)."""
    before = None
    while True:
        with tenant_scope(tenant_id):
            rows = audit_export_rows(action=action, user_id=user_id, email=email, start=start, end=end)
            if before is not None:
                rows = rows.filter(id__lt=before)
            batch = list(rows.order_by("-id")[:AUDIT_ROWS_PER_BATCH])
            if not batch:
                return
            references = References(batch, people=True, details=True)
            labels = TargetLabels(batch, references)
            lines = [
                [
                    iso_utc(row.created_at),
                    who(row, references),
                    action_text(row.action),
                    row.action,
                    labels(row) if row.target_type else "",
                    details_full_text(row.details, references),
                ]
                for row in batch
            ]
        yield from lines
        if len(batch) < AUDIT_ROWS_PER_BATCH:
            return
        before = batch[-1].id
