"""What only the database ledger has: its rows, its tenant scope, its locks."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connections

from coditect.testing import TcpProxy
from licenses.ledger import LedgerUnavailable, SessionNotFound
from licenses.ledger.base import LedgerError
from licenses.ledger.database import DatabaseSeatLedger
from licenses.models import Lease
from licenses.tests.factories import LeaseFactory, LicenseFactory
from tenants.scope import ScopeError, operator_scope, tenant_scope
from tenants.tests.factories import TenantFactory

pytestmark = pytest.mark.embedded

ledger = DatabaseSeatLedger()


def acquire(license, fingerprint="machine-a", *, ttl=60, tenant_id=None):
    return ledger.acquire(
        license_id=license.id,
        tenant_id=tenant_id or license.tenant_id,
        max_seats=license.max_seats,
        fingerprint=fingerprint,
        user_id="user-1",
        ttl=ttl,
    )


@pytest.fixture
def license(tenant_a):
    return LicenseFactory(tenant=tenant_a, max_seats=3)


@pytest.fixture
def committed_license(committed_db):
    """For tests whose threads or operator connection must see the rows."""
    return LicenseFactory(tenant=TenantFactory(), max_seats=3)


def test_it_refuses_to_run_outside_a_tenant_scope(license):
    for call in (
        lambda: acquire(license),
        lambda: ledger.used(license_id=license.id),
        lambda: ledger.heartbeat(license_id=license.id, session_id="x", ttl=60),
        lambda: ledger.expired_pending(license_id=license.id),
    ):
        with pytest.raises(ScopeError):
            call()


def test_another_tenants_scope_sees_and_touches_none_of_the_leases(license, tenant_b):
    with tenant_scope(license.tenant_id):
        lease = acquire(license).lease

    with tenant_scope(tenant_b.id):
        assert ledger.used(license_id=license.id) == 0
        assert ledger.live_leases(license_id=license.id) == []
        for call in (ledger.heartbeat, ledger.release):
            kwargs = {"ttl": 60} if call == ledger.heartbeat else {}
            with pytest.raises(SessionNotFound):
                call(license_id=license.id, session_id=lease.session_id, **kwargs)
    # The license row is out of reach too. (A caller's bug, not a refusal: it
    # spoils the caller's transaction, so each gets its own here.)
    with pytest.raises(LedgerError), tenant_scope(tenant_b.id):
        acquire(license, "machine-b")
    with pytest.raises(LedgerError), tenant_scope(tenant_b.id):
        acquire(license, "machine-b", tenant_id=tenant_b.id)
    with pytest.raises(LedgerError), tenant_scope(license.tenant_id):
        acquire(license, "machine-b", tenant_id=tenant_b.id)

    with tenant_scope(license.tenant_id):
        assert [live.session_id for live in ledger.live_leases(license_id=license.id)] == [lease.session_id]


def test_a_released_lease_row_is_gone_and_an_expired_one_waits_for_the_sweep(license):
    with tenant_scope(license.tenant_id):
        released = acquire(license, "machine-a").lease
        ledger.release(license_id=license.id, session_id=released.session_id)
        expired = LeaseFactory(
            tenant=license.tenant,
            license=license,
            created_at=datetime.now(UTC) - timedelta(hours=2),
            expires_at=datetime.now(UTC) - timedelta(hours=1),
        )

        assert not Lease.objects.filter(session_id=released.session_id).exists()
        assert ledger.used(license_id=license.id) == 0
        (pending,) = ledger.expired_pending(license_id=license.id)
        assert pending.lease.session_id == expired.session_id
        assert pending.expired_at == expired.expires_at
        assert Lease.objects.get(session_id=expired.session_id).sweep_claimed_until > datetime.now(UTC)
        ledger.expired_ack(license_id=license.id, session_ids=[expired.session_id])
        assert not Lease.objects.exists()


def test_the_sweep_runs_in_operator_scope_too(committed_license):
    license = committed_license
    with tenant_scope(license.tenant_id):
        lease = LeaseFactory(
            tenant=license.tenant, license=license, expires_at=datetime.now(UTC) - timedelta(seconds=1)
        )
    with operator_scope():
        (pending,) = ledger.expired_pending(license_id=license.id)
        assert pending.lease.session_id == lease.session_id
        ledger.expired_ack(license_id=license.id, session_ids=[lease.session_id])
    with tenant_scope(license.tenant_id):
        assert not Lease.objects.exists()


def test_a_refusal_leaves_the_callers_transaction_usable(license):
    with tenant_scope(license.tenant_id):
        lease = acquire(license).lease
        with pytest.raises(SessionNotFound):
            ledger.heartbeat(license_id=license.id, session_id="no-such-session", ttl=60)
        # The caller goes on in the same transaction, e.g. to audit the refusal.
        assert [live.session_id for live in ledger.live_leases(license_id=license.id)] == [lease.session_id]


@pytest.mark.postgres
def test_a_sweeper_holding_its_batch_does_not_block_another(committed_license):
    license = committed_license
    if connections["default"].vendor != "postgresql":
        pytest.skip("SKIP LOCKED is PostgreSQL's; SQLite runs one writer at a time")
    with tenant_scope(license.tenant_id):
        expired = {
            LeaseFactory(
                tenant=license.tenant,
                license=license,
                expires_at=datetime.now(UTC) - timedelta(seconds=n + 1),
            ).session_id
            for n in range(4)
        }
    holding, release = threading.Event(), threading.Event()
    first: list[str] = []

    def slow_sweeper():
        try:
            with tenant_scope(license.tenant_id):
                batch = ledger.expired_pending(license_id=license.id, limit=2)
                first.extend(item.lease.session_id for item in batch)
                holding.set()
                release.wait(10)  # still in its transaction: the rows stay locked
        finally:
            connections.close_all()

    thread = threading.Thread(target=slow_sweeper)
    thread.start()
    try:
        assert holding.wait(10)
        started = time.monotonic()
        with tenant_scope(license.tenant_id):
            second = [item.lease.session_id for item in ledger.expired_pending(license_id=license.id)]
        assert time.monotonic() - started < 1, "the second sweeper waited for the first"
    finally:
        release.set()
        thread.join()
    assert len(first) == 2 and sorted(first + second) == sorted(expired)


@pytest.mark.postgres
def test_the_ledger_is_unavailable_while_the_database_is_cut_off(committed_db, settings):
    # Operator scope holds no transaction, so the ledger's own statement is the
    # first to meet the cut (a tenant scope's BEGIN would meet it first).
    database = connections[settings.OPERATOR_DATABASE]
    if database.vendor != "postgresql":
        pytest.skip("needs PostgreSQL")
    proxy = TcpProxy(
        database.settings_dict.get("HOST") or "127.0.0.1", int(database.settings_dict.get("PORT") or 5432)
    )
    original = dict(database.settings_dict)
    database.close()
    database.settings_dict.update(HOST="127.0.0.1", PORT=str(proxy.port))
    try:
        with operator_scope():
            assert ledger.used(license_id=uuid.uuid4()) == 0
            proxy.cut()
            started = time.monotonic()
            with pytest.raises(LedgerUnavailable):
                ledger.used(license_id=uuid.uuid4())
            assert time.monotonic() - started < 2
    finally:
        database.close()
        database.settings_dict.clear()
        database.settings_dict.update(original)
        proxy.close()


@pytest.mark.django_db
@pytest.mark.embedded
def test_a_limit_lowered_after_the_caller_read_it_still_counts():
    """The API reads max_seats before the ledger locks the row; an operator may
    lower it in between. The value under the lock wins when it is stricter."""
    from licenses.ledger import NoSeatsAvailable, get_seat_ledger
    from licenses.tests.factories import LicenseFactory
    from tenants.scope import tenant_scope

    ledger = get_seat_ledger("database")
    license = LicenseFactory(max_seats=2)
    with tenant_scope(license.tenant_id):
        ledger.acquire(
            license_id=license.id,
            tenant_id=license.tenant_id,
            max_seats=2,
            fingerprint="fp-lower-1",
            user_id=None,
            ttl=60,
        )
        license.max_seats = 1
        license.save()
        with pytest.raises(NoSeatsAvailable):
            ledger.acquire(
                license_id=license.id,
                tenant_id=license.tenant_id,
                max_seats=2,  # what the caller read a moment ago
                fingerprint="fp-lower-2",
                user_id=None,
                ttl=60,
            )
