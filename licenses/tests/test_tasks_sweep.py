"""The expiry sweep (invariant 8) as background work: each lease that ended by
expiry is recorded exactly once, even with two workers sweeping at once."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest
from django.conf import settings as django_settings
from django.db import connections

from audit.models import AuditLog
from core.errors import ServiceUnavailable
from licenses import tasks as licenses_tasks
from licenses.leases import lease_expiry_sweep_license
from licenses.ledger import LedgerUnavailable, get_seat_ledger
from licenses.tasks import lease_expiry_sweep_license_task, lease_expiry_sweep_task
from licenses.tests.factories import LicenseFactory
from tenants.scope import tenant_scope
from tenants.tests.factories import TenantFactory

LEDGERS = ["redis", "database"] if django_settings.REDIS_URL else ["database"]
LEASES = 6


@pytest.fixture(params=LEDGERS)
def ledger_name(request, settings):
    settings.SEAT_LEDGER = request.param
    return request.param


def seats_that_lapse(license, count: int) -> list[str]:
    """Take `count` seats with a one-second TTL (see `let_them_lapse`)."""
    ledger = get_seat_ledger()
    with tenant_scope(license.tenant_id):
        sessions = [
            ledger.acquire(
                license_id=license.id,
                tenant_id=license.tenant_id,
                max_seats=license.max_seats,
                fingerprint=f"machine-{n:04d}",
                user_id=None,
                ttl=1,
            ).lease.session_id
            for n in range(count)
        ]
    return sessions


def let_them_lapse() -> None:
    time.sleep(1.3)  # past the one-second TTL on any clock of this machine


def expired_records(license) -> Counter:
    with tenant_scope(license.tenant_id):
        return Counter(
            AuditLog.objects.filter(action="lease.expired", target_id=str(license.id)).values_list(
                "details__session_id", flat=True
            )
        )


def two_workers_at_once(task, license, rounds: int = 5) -> list[int]:
    """Run `task` for one license in two threads released together, `rounds`
    times each, as two Celery workers would; what each run returned."""
    start = threading.Barrier(2)
    recorded: list[int] = []
    errors: list[BaseException] = []

    def worker():
        try:
            start.wait()
            for _ in range(rounds):
                recorded.append(task(license_id=license.id, tenant_id=license.tenant_id))
        except BaseException as error:
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    return recorded


@pytest.mark.postgres
def test_two_workers_sweeping_at_once_record_each_expired_lease_exactly_once(committed_db, ledger_name):
    license = LicenseFactory(tenant=TenantFactory(), max_seats=LEASES, lease_ttl=1)
    sessions = seats_that_lapse(license, LEASES)
    let_them_lapse()
    assert sum(two_workers_at_once(lease_expiry_sweep_license, license)) == LEASES
    assert expired_records(license) == dict.fromkeys(sessions, 1)
    with tenant_scope(license.tenant_id):
        assert get_seat_ledger().expired_pending(license_id=license.id) == []


@pytest.mark.postgres
def test_the_periodic_sweep_fans_out_per_license_and_running_it_again_records_nothing(
    committed_db, ledger_name, eager_tasks
):
    tenant = TenantFactory()
    first = LicenseFactory(tenant=tenant, max_seats=2, lease_ttl=1)
    second = LicenseFactory(tenant=TenantFactory(), max_seats=2, lease_ttl=1)
    sessions = {first.id: seats_that_lapse(first, 2), second.id: seats_that_lapse(second, 1)}
    let_them_lapse()

    assert lease_expiry_sweep_task.delay().get() == 2
    lease_expiry_sweep_task.delay().get()

    for license in (first, second):
        assert expired_records(license) == dict.fromkeys(sessions[license.id], 1)
        with tenant_scope(license.tenant_id):
            (event,) = AuditLog.objects.filter(action="lease.expired", target_id=str(license.id))[:1]
            assert event.tenant_id == license.tenant_id
            assert {"session_id", "fingerprint", "acquired_at", "expired_at"} <= set(event.details)


@pytest.mark.embedded
def test_a_license_whose_sweep_fails_does_not_stop_the_sweep_of_the_others(
    committed_db, eager_tasks, monkeypatch, caplog
):
    licenses = [LicenseFactory(tenant=TenantFactory(), max_seats=1, lease_ttl=1) for _ in range(3)]
    sessions = {license.id: seats_that_lapse(license, 1) for license in licenses}
    let_them_lapse()
    attempted = []

    def first_one_fails(*, license_id, tenant_id):
        attempted.append(license_id)
        if len(attempted) == 1:
            raise RuntimeError("this license's sweep breaks")
        return lease_expiry_sweep_license(license_id=license_id, tenant_id=tenant_id)

    monkeypatch.setattr(licenses_tasks, "lease_expiry_sweep_license", first_one_fails)

    # Outside a transaction, as the embedded default's runner calls it: each
    # license's task runs at once, in this process.
    assert lease_expiry_sweep_task.delay().get() == 3

    assert sorted(attempted) == sorted(license.id for license in licenses)
    broken = attempted[0]
    for license in licenses:
        expected = {} if license.id == broken else dict.fromkeys(sessions[license.id], 1)
        assert expired_records(license) == expected
    (failure,) = [record for record in caplog.records if record.getMessage() == "background task failed"]
    assert failure.task_args == [
        str(broken),
        str(next(lic.tenant_id for lic in licenses if lic.id == broken)),
    ]


@pytest.mark.embedded
def test_a_sweep_that_meets_a_ledger_that_does_not_answer_is_tried_again(
    committed_db, eager_tasks, monkeypatch
):
    license = LicenseFactory(tenant=TenantFactory(), max_seats=1, lease_ttl=1)
    sessions = seats_that_lapse(license, 1)
    let_them_lapse()
    calls = []

    def ledger_blinks_once(*, license_id, tenant_id):
        calls.append(license_id)
        if len(calls) == 1:
            raise LedgerUnavailable("Redis does not answer: connection refused")
        return lease_expiry_sweep_license(license_id=license_id, tenant_id=tenant_id)

    monkeypatch.setattr(licenses_tasks, "lease_expiry_sweep_license", ledger_blinks_once)

    # As a worker runs it (an eager run that propagates errors has Celery raise
    # Retry instead; the next periodic run is the retry there).
    result = lease_expiry_sweep_license_task.apply(
        args=[str(license.id), str(license.tenant_id)], throw=False
    )

    assert result.get() == 1

    assert len(calls) == 2
    assert expired_records(license) == dict.fromkeys(sessions, 1)


def released_with_events(license, count: int) -> list[str]:
    """Take and release `count` seats through the service's way of calling
    the ledger: each release hands the ledger its audit event."""
    from licenses.ledger import LedgerEvent

    ledger = get_seat_ledger()
    sessions = []
    with tenant_scope(license.tenant_id):
        for n in range(count):
            lease = ledger.acquire(
                license_id=license.id,
                tenant_id=license.tenant_id,
                max_seats=license.max_seats,
                fingerprint=f"machine-{n:04d}",
                user_id=None,
                ttl=60,
            ).lease
            ledger.release(
                license_id=license.id, session_id=lease.session_id, event=LedgerEvent("lease.released")
            )
            sessions.append(lease.session_id)
    return sessions


def released_records(license) -> Counter:
    with tenant_scope(license.tenant_id):
        return Counter(
            AuditLog.objects.filter(action="lease.released", target_id=str(license.id)).values_list(
                "details__session_id", flat=True
            )
        )


@pytest.mark.postgres
@pytest.mark.redis
def test_two_workers_draining_at_once_record_each_event_exactly_once(committed_db, settings):
    from licenses.leases import lease_events_drain_license

    if not settings.REDIS_URL:
        pytest.skip("needs Redis")
    settings.SEAT_LEDGER = "redis"
    license = LicenseFactory(tenant=TenantFactory(), max_seats=LEASES)
    sessions = released_with_events(license, LEASES)
    assert sum(two_workers_at_once(lease_events_drain_license, license)) == LEASES
    assert released_records(license) == dict.fromkeys(sessions, 1)
    assert get_seat_ledger().events_pending(license_id=license.id) == []


@pytest.mark.postgres
@pytest.mark.redis
def test_a_drain_that_died_before_acknowledging_records_nothing_twice(committed_db, settings, monkeypatch):
    from licenses.leases import lease_events_drain_license
    from licenses.ledger.redis import RedisSeatLedger

    if not settings.REDIS_URL:
        pytest.skip("needs Redis")
    settings.SEAT_LEDGER = "redis"
    license = LicenseFactory(tenant=TenantFactory(), max_seats=2)
    sessions = released_with_events(license, 2)

    def ack_that_dies(self, **kwargs):
        raise LedgerUnavailable("the worker died after its commit")

    with monkeypatch.context() as patch:
        patch.setattr(RedisSeatLedger, "events_ack", ack_that_dies)
        with pytest.raises(ServiceUnavailable):  # the gateway's answer to LedgerUnavailable
            lease_events_drain_license(license_id=license.id, tenant_id=license.tenant_id)
    assert released_records(license) == dict.fromkeys(sessions, 1)  # committed, not acknowledged
    assert len(get_seat_ledger().events_pending(license_id=license.id)) == 2

    assert lease_events_drain_license(license_id=license.id, tenant_id=license.tenant_id) == 0
    assert released_records(license) == dict.fromkeys(sessions, 1)
    assert get_seat_ledger().events_pending(license_id=license.id) == []


@pytest.mark.postgres
def test_the_periodic_drain_fans_out_only_to_licenses_with_events_waiting(
    committed_db, ledger_name, eager_tasks
):
    from licenses.tasks import lease_events_drain_task

    waiting = LicenseFactory(tenant=TenantFactory(), max_seats=2)
    LicenseFactory(tenant=TenantFactory(), max_seats=2)  # nothing to drain
    sessions = released_with_events(waiting, 2)

    fanned_out = lease_events_drain_task.delay().get()

    if ledger_name == "database":
        # The database ledger keeps no events: its caller records them.
        assert fanned_out == 0
        return
    assert fanned_out == 1
    assert released_records(waiting) == dict.fromkeys(sessions, 1)
    assert lease_events_drain_task.delay().get() == 0


@pytest.mark.redis
@pytest.mark.django_db
def test_a_drained_event_keeps_the_requests_id_and_address_and_when_it_happened(settings):
    from datetime import UTC, datetime

    from core.context import request_context
    from licenses.leases import lease_events_drain_license, lease_release

    if not settings.REDIS_URL:
        pytest.skip("needs Redis")
    settings.SEAT_LEDGER = "redis"
    license = LicenseFactory(tenant=TenantFactory(), max_seats=1)
    (session_id,) = seats_that_lapse(license, 1)
    claims = {"sub": str(license.id), "tid": str(license.tenant_id), "sid": session_id}
    with request_context(request_id="req-released", client_ip="192.0.2.9"):
        lease_release(claims=claims)
    released_at = datetime.now(UTC)
    assert released_records(license) == {}  # not yet: the drainer writes it

    time.sleep(0.2)
    assert lease_events_drain_license(license_id=license.id, tenant_id=license.tenant_id) == 1
    with tenant_scope(license.tenant_id):
        row = AuditLog.objects.get(action="lease.released", target_id=str(license.id))
    assert (row.request_id, row.ip_address) == ("req-released", "192.0.2.9")
    assert row.details["session_id"] == session_id
    occurred = datetime.fromisoformat(row.details["occurred_at"])
    assert abs((occurred - released_at).total_seconds()) < 0.15  # the ledger's time, not the drain's
