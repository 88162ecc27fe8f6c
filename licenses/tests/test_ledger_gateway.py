"""The gateway in front of the seat ledger: each call in the scope its backend
asks for, timed and counted, and a ledger that does not answer is a 503."""

from __future__ import annotations

import ast
import socket
import uuid
from contextlib import nullcontext
from pathlib import Path

import pytest
from django.db import connections
from django.test.utils import CaptureQueriesContext

from coditect.personas import api_client
from core.errors import ServiceUnavailable
from licenses.ledger import SessionNotFound, get_seat_ledger
from licenses.ledger.gateway import SeatLedgerGateway, seat_ledger
from licenses.ledger.metrics import LEDGER_ERRORS, LEDGER_SECONDS
from licenses.ledger.redis import RedisSeatLedger
from licenses.tests.conftest import acquire
from licenses.tests.factories import LicenseFactory
from tenants.scope import ScopeError, tenant_scope

ROOT = Path(__file__).resolve().parents[2]


def calls_timed(backend: str, operation: str) -> float:
    for metric in LEDGER_SECONDS.collect():
        for sample in metric.samples:
            if sample.name.endswith("_count") and sample.labels == {
                "backend": backend,
                "operation": operation,
            }:
                return sample.value
    return 0.0


def errors_counted(backend: str, operation: str) -> float:
    return LEDGER_ERRORS.labels(backend=backend, operation=operation)._value.get()


def seat(gateway: SeatLedgerGateway, license, fingerprint: str = "machine-gw-1"):
    return gateway.acquire(
        license_id=license.id,
        tenant_id=license.tenant_id,
        max_seats=license.max_seats,
        fingerprint=fingerprint,
        user_id=None,
        ttl=60,
    ).lease


def test_every_call_is_timed_by_backend_and_operation_and_business_answers_are_no_errors(ledger, license):
    gateway = seat_ledger()
    ids = {"license_id": license.id, "tenant_id": license.tenant_id}
    before = {
        op: calls_timed(ledger.name, op) for op in ("acquire", "heartbeat", "live_leases", "used", "release")
    }
    errors_before = errors_counted(ledger.name, "heartbeat")

    lease = seat(gateway, license)
    gateway.heartbeat(**ids, session_id=lease.session_id, ttl=60)
    assert [live.session_id for live in gateway.live_leases(**ids)] == [lease.session_id]
    assert gateway.used(**ids) == 1
    gateway.release(**ids, session_id=lease.session_id)
    with pytest.raises(SessionNotFound):
        gateway.heartbeat(**ids, session_id=lease.session_id, ttl=60)

    after = {op: calls_timed(ledger.name, op) for op in before}
    assert {op: after[op] - before[op] for op in before} == {
        "acquire": 1,
        "heartbeat": 2,
        "live_leases": 1,
        "used": 1,
        "release": 1,
    }
    assert errors_counted(ledger.name, "heartbeat") == errors_before, "session_not_found is an answer"


def test_a_ledger_that_does_not_answer_is_service_unavailable_with_retry_after_and_counted(license):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # nobody listens here once it is closed
    backend = RedisSeatLedger.from_url(f"redis://127.0.0.1:{port}/0", socket_timeout=0.5)
    gateway = SeatLedgerGateway(backend)
    errors_before = errors_counted("redis", "used")
    try:
        with pytest.raises(ServiceUnavailable) as unavailable:
            gateway.used(license_id=license.id, tenant_id=license.tenant_id)
    finally:
        backend.client.connection_pool.disconnect()
    assert unavailable.value.status == 503
    assert unavailable.value.headers == {"Retry-After": "5"}
    assert errors_counted("redis", "used") == errors_before + 1


@pytest.mark.embedded
def test_database_ledger_calls_run_in_the_licenses_tenant_scope_joining_one_already_open(db, settings):
    settings.SEAT_LEDGER = "database"
    license = LicenseFactory(max_seats=2)
    with pytest.raises(ScopeError):
        get_seat_ledger("database").used(license_id=license.id)  # the backend alone needs a scope

    gateway = seat_ledger("database")
    lease = seat(gateway, license)  # no scope open: the gateway opens the tenant's
    with tenant_scope(license.tenant_id):
        connection = connections["default"]
        with CaptureQueriesContext(connection) as queries:
            gateway.heartbeat(
                license_id=license.id, tenant_id=license.tenant_id, session_id=lease.session_id, ttl=60
            )
        assert not any("SAVEPOINT" in query["sql"] for query in queries.captured_queries), (
            "a call inside the tenant's transaction joins it"
        )
        assert gateway.used(license_id=license.id, tenant_id=license.tenant_id) == 1


@pytest.mark.redis
def test_a_heartbeat_on_the_redis_ledger_touches_no_database(settings, member, license):
    if not settings.REDIS_URL:
        pytest.skip("needs Redis")
    settings.SEAT_LEDGER = "redis"
    token = acquire(member, license).json()["token"]
    client = api_client(token=token)
    assert client.post("/api/v1/licenses/heartbeat").status_code == 200  # the license is cached now
    # (The operator alias is closed to this test: a query there would fail it.)
    with CaptureQueriesContext(connections["default"]) as queries:
        response = client.post("/api/v1/licenses/heartbeat")
    assert response.status_code == 200
    assert [query["sql"] for query in queries.captured_queries] == []


def test_nothing_but_the_gateway_reaches_for_a_backend_or_asks_which_it_has():
    """Services, the admin, the dashboard and the metrics call `seat_ledger()`;
    none calls `get_seat_ledger()` or branches on a backend's name."""
    offenders = []
    for package in ("licenses", "analytics", "accounts", "audit", "tenants", "coditect"):
        for path in (ROOT / package).rglob("*.py"):
            relative = path.relative_to(ROOT)
            if "tests" in relative.parts or relative.parts[:2] == ("licenses", "ledger"):
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Name | ast.Attribute):
                    name = node.id if isinstance(node, ast.Name) else node.attr
                    if name == "get_seat_ledger":
                        offenders.append(f"{relative}:{node.lineno} calls get_seat_ledger")
                if isinstance(node, ast.Compare):
                    source = ast.unparse(node)
                    if "ledger" in source and (".name" in source or ".backend" in source):
                        offenders.append(f"{relative}:{node.lineno} {source}")
    assert offenders == []


def test_the_backends_say_themselves_whether_a_call_needs_the_database(db, settings):
    tenant_id = uuid.uuid4()
    assert not isinstance(get_seat_ledger("database").call_scope(tenant_id), nullcontext)
    if settings.REDIS_URL:
        assert isinstance(get_seat_ledger("redis").call_scope(tenant_id), nullcontext)
