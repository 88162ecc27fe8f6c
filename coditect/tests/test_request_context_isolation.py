"""Attacks on the request context: nothing of one request (its id, its
address, its actor) may reach the next request on the same thread, a Celery
task run inside it, or code that runs with no context open; and a client
cannot choose what the audit row says about it."""

from __future__ import annotations

import json
import logging

import pytest
from celery import shared_task
from django.test import RequestFactory
from rest_framework.test import APIClient

from accounts.tests.factories import TEST_PASSWORD, UserFactory
from audit.events import Event
from audit.models import AuditLog
from audit.services import audit_record
from core.context import context_set_actor, current_context, request_context
from core.logging import JsonFormatter, RequestIdFilter
from core.middleware import RequestContextMiddleware
from tenants.scope import operator_scope, tenant_scope
from tenants.tests.factories import TenantFactory

pytestmark = pytest.mark.embedded

EMPTY = ("", None, None)


def context_now() -> tuple:
    context = current_context()
    return (context.request_id, context.client_ip, context.actor)


def log_line() -> dict:
    record = logging.makeLogRecord({"msg": "probe", "levelname": "INFO", "name": "probe"})
    RequestIdFilter().filter(record)
    return json.loads(JsonFormatter().format(record))


@shared_task(name="tests.context_probe_audit")
def context_probe_audit(tenant_id: str) -> list:
    with tenant_scope(tenant_id):
        row = audit_record(action=Event.TENANT_CREATED, tenant_id=tenant_id)
    context = current_context()
    return [row.request_id, row.ip_address, context.actor is None]


@shared_task(name="tests.context_probe_fails")
def context_probe_fails() -> None:
    raise RuntimeError("this task breaks")


def test_naming_an_actor_with_no_context_open_names_nobody_and_leaks_into_no_later_context():
    class Intruder:
        pk = 666

    context_set_actor(Intruder())
    assert context_now() == EMPTY
    with request_context(request_id="next"):
        assert current_context().actor is None
    assert "actor_id" not in log_line()


def test_a_request_that_raises_leaves_no_context_behind():
    def explode(request):
        context_set_actor(type("User", (), {"pk": 7})())
        raise RuntimeError("the view breaks")

    middleware = RequestContextMiddleware(explode)
    request = RequestFactory().get("/", HTTP_X_REQUEST_ID="req-explodes", REMOTE_ADDR="203.0.113.7")
    with pytest.raises(RuntimeError):
        middleware(request)
    assert context_now() == EMPTY
    assert log_line()["request_id"] is None


def test_one_requests_id_address_and_actor_never_reach_the_next_request_on_the_thread(committed_db):
    tenant = TenantFactory()
    with tenant_scope(tenant.id):
        user = UserFactory(tenant=tenant, email="first@ctx.test")
    client = APIClient()  # the test client runs every request on this thread

    first = client.post(
        "/api/v1/auth/login",
        {"email": user.email, "password": TEST_PASSWORD},
        format="json",
        headers={"X-Request-ID": "first-request"},
        REMOTE_ADDR="198.51.100.1",
    )
    assert first.status_code == 200
    me = client.get(
        "/api/v1/auth/me",
        headers={"Authorization": f"Bearer {first.json()['access_token']}", "X-Request-ID": "me-request"},
    )
    assert me.status_code == 200
    assert context_now() == EMPTY

    second = client.post(
        "/api/v1/auth/login",
        {"email": "nobody@ctx.test", "password": "wrong-password-2"},
        format="json",
        REMOTE_ADDR="192.0.2.55",
    )
    assert second.status_code == 401
    assert context_now() == EMPTY
    with operator_scope():
        failed = AuditLog.objects.get(action=Event.AUTH_LOGIN_FAILED)
    assert failed.ip_address == "192.0.2.55"
    assert failed.request_id not in ("", "first-request", "me-request")
    assert failed.request_id == second.headers["X-Request-ID"]


def test_a_client_cannot_choose_its_address_or_smuggle_a_request_id_into_the_audit_row(
    committed_db, settings
):
    settings.TRUSTED_PROXY_COUNT = 0
    response = APIClient().post(
        "/api/v1/auth/login",
        {"email": "nobody@ctx.test", "password": "wrong-password-3"},
        format="json",
        headers={"X-Request-ID": "evil\nline", "X-Forwarded-For": "10.9.8.7"},
        REMOTE_ADDR="192.0.2.66",
    )
    assert response.status_code == 401
    with operator_scope():
        failed = AuditLog.objects.get(action=Event.AUTH_LOGIN_FAILED)
    assert failed.ip_address == "192.0.2.66"
    assert failed.request_id == response.headers["X-Request-ID"]
    assert "\n" not in failed.request_id and "evil" not in failed.request_id


@pytest.mark.django_db
def test_a_task_run_inside_a_request_carries_none_of_the_requests_address_or_actor(eager_tasks, tenant_a):
    class Caller:
        pk = 41

    with request_context(request_id="outer-request", client_ip="198.51.100.9"):
        caller = Caller()
        context_set_actor(caller)
        request_id, ip, no_actor = context_probe_audit.delay(str(tenant_a.id)).get()
        assert request_id.startswith("task-") and ip is None and no_actor
        # The request's own context is back, whole, once the task is done.
        assert context_now() == ("outer-request", "198.51.100.9", caller)

        with pytest.raises(RuntimeError):
            context_probe_fails.delay()
        assert context_now() == ("outer-request", "198.51.100.9", caller)
    assert context_now() == EMPTY
