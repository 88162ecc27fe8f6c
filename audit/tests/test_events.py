"""One vocabulary of audit events: every event written is named in
audit/events.py, with the detail fields it declares there."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from audit.events import DETAIL_FIELDS, LEASE_END_FIELDS, LEASE_ENDING_EVENTS, Event
from audit.models import AuditLog
from audit.services import audit_record, audit_record_standalone

ROOT = Path(__file__).resolve().parents[2]
SOURCE_DIRS = ("core", "tenants", "audit", "accounts", "licenses", "analytics", "coditect")
AUDIT_WRITERS = {"audit_record", "audit_record_standalone"}


def _source_files():
    for folder in SOURCE_DIRS:
        for path in (ROOT / folder).rglob("*.py"):
            if "tests" not in path.relative_to(ROOT).parts and "migrations" not in path.parts:
                yield path


def _audit_calls():
    for path in _source_files():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
                if name in AUDIT_WRITERS:
                    yield path, node


def test_every_event_has_its_detail_fields_declared():
    assert set(DETAIL_FIELDS) == set(Event)
    for event in LEASE_ENDING_EVENTS:
        assert LEASE_END_FIELDS <= DETAIL_FIELDS[event]


def test_no_audit_write_in_the_code_names_its_event_with_a_bare_string():
    found = list(_audit_calls())
    assert len(found) > 20  # the scan sees the writers
    offenders = []
    for path, call in found:
        for keyword in call.keywords:
            if keyword.arg == "action" and isinstance(keyword.value, ast.Constant):
                offenders.append(f"{path.relative_to(ROOT)}:{call.lineno} action={keyword.value.value!r}")
    assert offenders == [], "name audit events through audit.events.Event"


def test_no_string_in_the_code_spells_an_event_name_outside_the_events_module():
    names = {event.value for event in Event}
    offenders = []
    for path in _source_files():
        if path == ROOT / "audit" / "events.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in names:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.value!r}")
    assert offenders == []


@pytest.mark.django_db
@pytest.mark.embedded
def test_it_refuses_to_write_an_event_the_module_does_not_name(tenant_a):
    with pytest.raises(ValueError, match="not named"):
        audit_record(action="lease.aquired", tenant_id=tenant_a.id)
    with pytest.raises(ValueError, match="not named"):
        audit_record_standalone(action="lease.aquired", tenant_id=tenant_a.id)
    assert not AuditLog.unscoped.filter(action="lease.aquired").exists()


@pytest.mark.django_db
@pytest.mark.embedded
def test_it_refuses_a_detail_field_the_event_does_not_declare(tenant_a):
    with pytest.raises(ValueError, match="undeclared detail fields"):
        audit_record(action=Event.LEASE_ACQUIRED, tenant_id=tenant_a.id, details={"sesion_id": "x"})
    assert not AuditLog.unscoped.filter(action=Event.LEASE_ACQUIRED).exists()
