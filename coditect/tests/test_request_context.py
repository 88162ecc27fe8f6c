"""The request context: who and what the current request or task run is,
carried to audit rows and log lines without passing the request through
services."""

from __future__ import annotations

import ast
import json
import logging
from pathlib import Path

import pytest
from celery import signals
from rest_framework.test import APIClient

from accounts.tests.factories import TEST_PASSWORD, UserFactory
from audit.events import Event
from audit.models import AuditLog
from audit.services import audit_record
from core.context import current_context, request_context
from core.logging import JsonFormatter, RequestIdFilter
from tenants.scope import tenant_scope
from tenants.tests.factories import TenantFactory

ROOT = Path(__file__).resolve().parents[2]
APPS = ("core", "tenants", "audit", "accounts", "licenses", "analytics", "coditect")


def _service_modules():
    for app in APPS:
        for path in (ROOT / app).rglob("*.py"):
            parts = path.relative_to(ROOT).parts
            if "tests" in parts or "migrations" in parts:
                continue
            if path.stem in {"services", "selectors", "leases"} or path.parent.name == "services":
                yield path


def test_no_service_function_takes_a_request_argument():
    modules = list(_service_modules())
    assert len(modules) >= 6
    offenders = []
    for path in modules:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                arguments = node.args.posonlyargs + node.args.args + node.args.kwonlyargs
                if any(argument.arg == "request" for argument in arguments):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}")
    assert offenders == []


@pytest.mark.embedded
def test_an_api_call_leaves_its_request_id_and_address_on_the_audit_row(committed_db):
    tenant_a = TenantFactory()
    with tenant_scope(tenant_a.id):
        user = UserFactory(tenant=tenant_a, email="ctx@a.test")
    response = APIClient().post(
        "/api/v1/auth/login",
        {"email": user.email, "password": TEST_PASSWORD},
        format="json",
        headers={"X-Request-ID": "lb-trace-42"},
        REMOTE_ADDR="203.0.113.9",
    )
    assert response.status_code == 200
    with tenant_scope(tenant_a.id):
        row = AuditLog.objects.get(action=Event.AUTH_LOGIN)
    assert (row.request_id, row.ip_address) == ("lb-trace-42", "203.0.113.9")
    assert current_context().request_id == ""  # the context ended with the request


@pytest.mark.django_db
@pytest.mark.embedded
def test_a_task_run_has_a_context_of_its_own(tenant_a):
    with request_context(request_id="outer", client_ip="198.51.100.1"):
        signals.task_prerun.send(sender=None, task_id="abc-123", task=None)
        try:
            assert current_context().request_id == "task-abc-123"
            with tenant_scope(tenant_a.id):
                row = audit_record(action=Event.TENANT_CREATED, tenant_id=tenant_a.id)
        finally:
            signals.task_postrun.send(sender=None, task_id="abc-123", task=None)
        assert current_context().request_id == "outer"
    assert (row.request_id, row.ip_address) == ("task-abc-123", None)


def test_a_log_line_carries_the_request_id_and_the_actor(tenant_a_user_stub):
    record = logging.makeLogRecord({"msg": "hello", "levelname": "INFO", "name": "test"})
    with request_context(request_id="r-1"):
        from core.context import context_set_actor

        context_set_actor(tenant_a_user_stub)
        RequestIdFilter().filter(record)
    line = json.loads(JsonFormatter().format(record))
    assert (line["request_id"], line["actor_id"]) == ("r-1", "42")


@pytest.fixture
def tenant_a_user_stub():
    class Stub:
        pk = 42

    return Stub()
