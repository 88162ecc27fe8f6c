"""Audit export for long retention: one JSON-lines file per tenant per UTC day.

Each line is one audit row with every column, the hash chain included, so an
export can be verified on its own, years later, without the database. The
operator chain (events of no tenant) is exported as tenant `operator`.

A day is exported once it is over (and has settled: a transaction begun
before midnight may commit just after). Export is idempotent per day and
tenant: a file that exists is never written again, and two exporters racing
for one file leave exactly one (a hard link on disk, a create-only
precondition in Cloud Storage).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Protocol

from django.conf import settings
from django.utils import timezone

from audit.models import AuditLog
from audit.services import audit_row_fields
from tenants.scope import operator_scope, tenant_scope

logger = logging.getLogger(__name__)

OPERATOR_CHAIN = "operator"
# How long after midnight a day is considered closed.
SETTLE = timedelta(minutes=15)


class ExportDestination(Protocol):
    def exists(self, name: str) -> bool: ...

    def create(self, name: str, data: bytes) -> bool:
        """Write `name` unless it exists; True if this call wrote it."""


@dataclass(frozen=True)
class DirectoryDestination:
    root: Path

    def exists(self, name: str) -> bool:
        return (self.root / name).exists()

    def create(self, name: str, data: bytes) -> bool:
        target = self.root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".export-")
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.chmod(temporary, 0o440)
            try:
                os.link(temporary, target)  # fails if it exists: one writer wins
            except FileExistsError:
                return False
            return True
        finally:
            os.unlink(temporary)


@dataclass(frozen=True)
class BucketDestination:
    """A Cloud Storage bucket (google-cloud-storage, installed with firebase-admin)."""

    bucket: object  # google.cloud.storage.Bucket
    prefix: str = ""

    def exists(self, name: str) -> bool:
        return self.bucket.blob(self.prefix + name).exists()

    def create(self, name: str, data: bytes) -> bool:
        from google.api_core.exceptions import PreconditionFailed

        blob = self.bucket.blob(self.prefix + name)
        try:
            # Generation 0: create only; an existing object is left alone.
            blob.upload_from_string(data, content_type="application/x-ndjson", if_generation_match=0)
        except PreconditionFailed:
            return False
        return True


def audit_export_destination() -> ExportDestination | None:
    """The configured destination, or None when export is off."""
    if settings.AUDIT_EXPORT_BUCKET:
        from google.cloud import storage

        bucket = storage.Client().bucket(settings.AUDIT_EXPORT_BUCKET)
        return BucketDestination(bucket=bucket, prefix=settings.AUDIT_EXPORT_PREFIX)
    if settings.AUDIT_EXPORT_DIR:
        return DirectoryDestination(root=Path(settings.AUDIT_EXPORT_DIR))
    return None


def audit_export_name(*, tenant_id: uuid.UUID | str | None, day: date) -> str:
    return f"{tenant_id or OPERATOR_CHAIN}/{day:%Y}/{day.isoformat()}.jsonl"


def _line(row: AuditLog) -> str:
    # The hashed fields, plus what verifying the chain from the file needs.
    return json.dumps(
        {**audit_row_fields(row), "id": row.id, "hash": row.hash},
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )


def audit_exportable_days(*, now: datetime | None = None, lookback_days: int | None = None) -> list[date]:
    """The closed days an export run looks at, oldest first."""
    now = now or timezone.now()
    lookback_days = settings.AUDIT_EXPORT_LOOKBACK_DAYS if lookback_days is None else lookback_days
    last_closed = (now - SETTLE).date() - timedelta(days=1)
    return [last_closed - timedelta(days=n) for n in reversed(range(lookback_days))]


def audit_export_day(
    *,
    tenant_id: uuid.UUID | str | None,
    day: date,
    destination: ExportDestination | None = None,
    now: datetime | None = None,
) -> bool:
    """Export one tenant's (or the operator chain's) events of one closed day.
    Returns True if this call wrote the file; False if it was there already
    (or export is off)."""
    destination = destination or audit_export_destination()
    if destination is None:
        return False
    now = now or timezone.now()
    begin = datetime.combine(day, time.min, tzinfo=UTC)
    end = begin + timedelta(days=1)
    if now < end + SETTLE:
        raise ValueError(f"{day} is not over yet; only closed days are exported")
    name = audit_export_name(tenant_id=tenant_id, day=day)
    if destination.exists(name):
        return False
    if tenant_id:
        with tenant_scope(tenant_id):
            rows = AuditLog.objects.filter(created_at__gte=begin, created_at__lt=end)
            data = "".join(_line(row) + "\n" for row in rows.order_by("id").iterator())
    else:
        with operator_scope():
            rows = AuditLog.objects.filter(tenant__isnull=True, created_at__gte=begin, created_at__lt=end)
            data = "".join(_line(row) + "\n" for row in rows.order_by("id").iterator())
    written = destination.create(name, data.encode())
    if written:
        logger.info("audit exported", extra={"export": name, "bytes": len(data)})
    return written
