"""The periodic audit export, across tenants, as the beat schedule runs it."""

from __future__ import annotations

import json
from datetime import timedelta
from unittest import mock

import pytest
from django.utils import timezone

from audit import tasks as audit_tasks
from audit.export import audit_export_day
from audit.tasks import audit_export_task
from audit.tests.test_audit_export import MIDNIGHT, audit_at
from tenants.tests.factories import TenantFactory

pytestmark = pytest.mark.usefixtures("test_events")


def lines(path) -> list[str]:
    return [json.loads(line)["action"] for line in path.read_text().splitlines()]


def test_the_periodic_export_catches_up_every_tenant_and_then_has_nothing_to_do(
    committed_db, eager_tasks, tmp_path, settings
):
    acme, globex = TenantFactory(), TenantFactory()
    audit_at(MIDNIGHT - timedelta(seconds=1), acme, "test.yesterday")
    audit_at(MIDNIGHT + timedelta(hours=8), globex, "test.other_tenant")
    audit_at(MIDNIGHT + timedelta(hours=9), None, "test.operator")
    settings.AUDIT_EXPORT_DIR = str(tmp_path)
    settings.AUDIT_EXPORT_LOOKBACK_DAYS = 2

    with mock.patch.object(timezone, "now", return_value=MIDNIGHT + timedelta(days=1, hours=1)):
        # The closed days of the look-back (the 3rd and the 4th), for two
        # tenants and the operator chain.
        assert audit_export_task.delay().get() == 2 * 3
        assert audit_export_task.delay().get() == 0

    assert lines(tmp_path / str(acme.id) / "2026" / "2026-05-03.jsonl") == ["test.yesterday"]
    assert lines(tmp_path / str(acme.id) / "2026" / "2026-05-04.jsonl") == []
    assert lines(tmp_path / str(globex.id) / "2026" / "2026-05-04.jsonl") == ["test.other_tenant"]
    assert lines(tmp_path / "operator" / "2026" / "2026-05-04.jsonl") == ["test.operator"]


def test_one_export_that_fails_does_not_stop_the_others(
    committed_db, eager_tasks, tmp_path, settings, monkeypatch
):
    acme, globex = TenantFactory(), TenantFactory()
    audit_at(MIDNIGHT + timedelta(hours=8), acme, "test.acme")
    audit_at(MIDNIGHT + timedelta(hours=8), globex, "test.globex")
    settings.AUDIT_EXPORT_DIR = str(tmp_path)
    settings.AUDIT_EXPORT_LOOKBACK_DAYS = 1
    attempted = []

    def first_one_fails(*, tenant_id, day):
        attempted.append(tenant_id)
        if len(attempted) == 1:
            raise RuntimeError("this export breaks")
        return audit_export_day(tenant_id=tenant_id, day=day)

    monkeypatch.setattr(audit_tasks, "audit_export_day", first_one_fails)

    with mock.patch.object(timezone, "now", return_value=MIDNIGHT + timedelta(days=1, hours=1)):
        assert audit_export_task.delay().get() == 3

    assert len(attempted) == 3
    written = {path.parent.parent.name for path in tmp_path.glob("*/2026/2026-05-04.jsonl")}
    assert written == {str(acme.id), str(globex.id), "operator"} - {attempted[0] or "operator"}
