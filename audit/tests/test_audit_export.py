"""Audit export: one JSON-lines file per tenant and closed day, written once."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime, timedelta
from unittest import mock

import pytest
from django.utils import timezone

from audit.export import BucketDestination, DirectoryDestination, audit_export_day
from audit.models import AuditLog
from audit.services import audit_record as record
from audit.services import audit_row_hash
from tenants.scope import tenant_scope

pytestmark = [
    pytest.mark.django_db(databases="__all__"),
    pytest.mark.embedded,
    pytest.mark.usefixtures("test_events"),
]

DAY = date(2026, 5, 4)
MIDNIGHT = datetime(2026, 5, 4, tzinfo=UTC)
LATER = MIDNIGHT + timedelta(days=3)


def audit_at(when: datetime, tenant, action: str, **details) -> None:
    with mock.patch.object(timezone, "now", return_value=when):
        if tenant is None:
            record(action=action, details=details)
        else:
            with tenant_scope(tenant.id):
                record(action=action, tenant_id=tenant.id, details=details)


@pytest.fixture
def events(acme, globex):
    audit_at(MIDNIGHT - timedelta(seconds=1), acme, "test.yesterday")
    audit_at(MIDNIGHT + timedelta(hours=8), acme, "test.first", n=1)
    audit_at(MIDNIGHT + timedelta(hours=8), globex, "test.other_tenant")
    audit_at(MIDNIGHT + timedelta(hours=23, minutes=59), acme, "test.second", n=2)
    audit_at(MIDNIGHT + timedelta(days=1), acme, "test.tomorrow")
    audit_at(MIDNIGHT + timedelta(hours=12), None, "test.operator")
    return acme, globex


def lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_closed_day_is_exported_once_per_tenant_with_its_hash_chain(events, tmp_path):
    acme, _ = events
    destination = DirectoryDestination(root=tmp_path)

    assert audit_export_day(tenant_id=acme.id, day=DAY, destination=destination, now=LATER) is True
    exported = tmp_path / str(acme.id) / "2026" / "2026-05-04.jsonl"
    rows = lines(exported)
    assert [row["action"] for row in rows] == ["test.first", "test.second"]
    assert {row["tenant_id"] for row in rows} == {str(acme.id)}
    with tenant_scope(acme.id):
        stored = AuditLog.objects.get(id=rows[1]["id"])
    assert rows[1]["hash"] == stored.hash == audit_row_hash(stored)
    assert rows[1]["prev_hash"] == rows[0]["hash"]
    for row in rows:  # verifiable from the file alone, as the README says
        content = {k: v for k, v in row.items() if k not in ("id", "hash", "prev_hash")}
        digest = hashlib.sha256(
            json.dumps(content, sort_keys=True, separators=(",", ":")).encode()
        ).hexdigest()
        assert row["hash"] == hashlib.sha256(f"{row['prev_hash']}:{digest}".encode()).hexdigest()

    before = exported.read_bytes()
    assert audit_export_day(tenant_id=acme.id, day=DAY, destination=destination, now=LATER) is False
    assert exported.read_bytes() == before


def test_the_operator_chain_is_exported_as_its_own_file(events, tmp_path):
    destination = DirectoryDestination(root=tmp_path)

    assert audit_export_day(tenant_id=None, day=DAY, destination=destination, now=LATER) is True

    rows = lines(tmp_path / "operator" / "2026" / "2026-05-04.jsonl")
    assert [row["action"] for row in rows] == ["test.operator"]
    assert rows[0]["tenant_id"] is None


def test_a_day_that_is_not_over_is_not_exported(events, tmp_path):
    acme, _ = events
    with pytest.raises(ValueError, match="not over"):
        audit_export_day(
            tenant_id=acme.id,
            day=DAY,
            destination=DirectoryDestination(root=tmp_path),
            now=MIDNIGHT + timedelta(days=1, minutes=5),
        )
    assert not any(tmp_path.iterdir())


class StandInBucket:
    """Google's edge: a bucket that keeps objects in memory and honours the
    create-only precondition as Cloud Storage does."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def blob(self, name):
        bucket = self

        class Blob:
            def exists(self):
                return name in bucket.objects

            def upload_from_string(self, data, content_type=None, if_generation_match=None):
                from google.api_core.exceptions import PreconditionFailed

                if if_generation_match == 0 and name in bucket.objects:
                    raise PreconditionFailed("exists")
                bucket.objects[name] = data

        return Blob()


def test_a_bucket_export_is_create_only(events):
    acme, _ = events
    bucket = StandInBucket()
    destination = BucketDestination(bucket=bucket, prefix="audit/")

    assert audit_export_day(tenant_id=acme.id, day=DAY, destination=destination, now=LATER) is True
    name = f"audit/{acme.id}/2026/2026-05-04.jsonl"
    first = bucket.objects[name]
    assert destination.create(f"{acme.id}/2026/2026-05-04.jsonl", b"something else") is False
    assert bucket.objects[name] == first
