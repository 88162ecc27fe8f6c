"""Seats survive the loss of Redis (DESIGN.md invariant 9): a Redis that
restarts empty never lets live use exceed max_seats. Borrowed seats come back
from PostgreSQL before anything is granted; the leases that were not borrowed
are gone, each with a `lease.lost` audit event; acquire answers 503 while the
borrowed seats cannot be read back.

Each test starts a redis-server of its own (no persistence) and restarts it
empty on the same port; the shared Redis is never touched."""

from __future__ import annotations

import shutil
import time
from datetime import timedelta

import pytest
from django.db import OperationalError, transaction
from django.utils import timezone

from audit.events import LEASE_END_FIELDS, Detail, Event
from audit.models import AuditLog
from coditect.personas import api_client
from coditect.testing import RedisServer
from licenses import ledger as ledger_module
from licenses.ledger import LedgerEvent, get_seat_ledger
from licenses.ledger.borrowed import BorrowedLeaseStore
from licenses.models import BorrowedLease
from licenses.tests.conftest import acquire, drain_ledger_events, error_code
from licenses.tests.factories import LicenseFactory
from tenants.scope import tenant_scope

pytestmark = [
    pytest.mark.skipif(not shutil.which("redis-server"), reason="needs redis-server"),
    pytest.mark.django_db,
    pytest.mark.slow,
]


@pytest.fixture
def own_redis(tmp_path, settings):
    """The Redis seat ledger, on a redis-server of the test's own."""
    server = RedisServer(tmp_path)
    settings.REDIS_URL = server.url
    settings.SEAT_LEDGER = "redis"
    saved = ledger_module._ledgers.pop("redis", None)
    yield server
    ledger = ledger_module._ledgers.pop("redis", None)
    if ledger is not None:
        ledger.client.connection_pool.disconnect()
    if saved is not None:
        ledger_module._ledgers["redis"] = saved
    server.stop()


@pytest.fixture
def license(acme):
    return LicenseFactory(tenant=acme, max_seats=3, borrow_limit_hours=48)


def checkout(persona, license, fingerprint: str) -> dict:
    response = acquire(persona, license, fingerprint)
    assert response.status_code == 201, response.content
    return response.json()


def borrow(token: str, hours: int = 48) -> dict:
    response = api_client(token=token).post("/api/v1/licenses/borrow", {"hours": hours}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def heartbeat(token: str):
    return api_client(token=token).post("/api/v1/licenses/heartbeat")


def live_use(license) -> tuple[int, set[str]]:
    """What the ledger itself says: its count, and the live leases' sessions."""
    ledger = get_seat_ledger("redis")
    used = ledger.used(license_id=license.id)
    sessions = {lease.session_id for lease in ledger.live_leases(license_id=license.id)}
    assert used == len(sessions)
    return used, sessions


def events(license, action: str) -> list[dict]:
    with tenant_scope(license.tenant_id):
        return list(
            AuditLog.objects.filter(action=action, target_id=str(license.id))
            .order_by("id")
            .values_list("details", flat=True)
        )


def end_borrows_soon(license, seconds: float) -> None:
    """Make the durable copies of the license's borrows end shortly (borrow
    hours are whole hours; the restore puts a borrow back only until its end)."""
    with tenant_scope(license.tenant_id):
        BorrowedLease.objects.filter(license_id=license.id).update(
            borrowed_until=timezone.now() + timedelta(seconds=seconds)
        )


def test_a_redis_restarted_empty_while_every_seat_is_borrowed_sells_none_of_them_again(
    own_redis, member, license
):
    held = [checkout(member, license, f"machine-{n:04d}") for n in range(3)]
    borrowed = [borrow(seat["token"]) for seat in held]
    sessions = {seat["session_id"] for seat in held}
    with tenant_scope(license.tenant_id):
        assert set(BorrowedLease.objects.values_list("session_id", flat=True)) == sessions

    own_redis.restart_empty()

    for n in range(3, 6):
        response = acquire(member, license, f"machine-{n:04d}")
        assert (response.status_code, error_code(response)) == (409, "no_seats_available"), response.content
        assert live_use(license) == (3, sessions)
    # After the restore the borrowed seats are live leases again: a borrowed
    # machine that comes back online heartbeats as before.
    for seat in borrowed:
        assert heartbeat(seat["token"]).status_code == 200
    assert events(license, Event.LEASE_LOST) == [], "nothing but borrowed seats was live"

    # A second loss restores them again, from the same rows.
    own_redis.restart_empty()
    response = acquire(member, license, "machine-0009")
    assert (response.status_code, error_code(response)) == (409, "no_seats_available")
    assert live_use(license) == (3, sessions)


def test_leases_lost_with_redis_are_audited_and_seats_come_back_when_the_borrows_end(
    own_redis, member, license
):
    kept = [checkout(member, license, f"machine-{n:04d}") for n in range(2)]
    for seat in kept:
        borrow(seat["token"])
    online = checkout(member, license, "machine-0002")
    end_borrows_soon(license, 8)  # time enough for a loaded machine to get to the 409

    own_redis.restart_empty()

    # The lease that was not borrowed is gone: its seat is free, and the loss is on record.
    newcomer = checkout(member, license, "machine-0003")
    assert live_use(license) == (3, {kept[0]["session_id"], kept[1]["session_id"], newcomer["session_id"]})
    (lost,) = events(license, Event.LEASE_LOST)
    assert set(lost) == LEASE_END_FIELDS - {Detail.OVERDRAFT}  # overdraft: only on an overdraft seat
    assert lost["session_id"] == online["session_id"]
    assert lost["fingerprint"] == "machine-0002"
    assert lost["user_id"] == str(member.user.pk)
    gone = heartbeat(online["token"])
    assert (gone.status_code, error_code(gone)) == (404, "session_not_found"), "the SDK acquires again"
    refused = acquire(member, license, "machine-0004")
    assert (refused.status_code, error_code(refused)) == (409, "no_seats_available")

    # The borrows end on the ledger's clock: their seats are free again.
    deadline = time.monotonic() + 20
    while acquire(member, license, "machine-0004").status_code != 201:
        assert time.monotonic() < deadline, "the restored borrows never ended"
        # One read: the count and the list are two calls, and a borrow may end between them.
        assert get_seat_ledger("redis").used(license_id=license.id) <= 3
        time.sleep(0.25)
    checkout(member, license, "machine-0005")
    assert live_use(license)[0] == 3
    refused = acquire(member, license, "machine-0006")
    assert (refused.status_code, error_code(refused)) == (409, "no_seats_available")
    assert len(events(license, Event.LEASE_LOST)) == 1, "a loss is recorded once"


def test_acquire_answers_503_while_the_borrowed_seats_cannot_be_read_back(
    own_redis, member, license, monkeypatch
):
    for n in range(3):
        borrow(checkout(member, license, f"machine-{n:04d}")["token"])
    own_redis.restart_empty()

    def database_down(self, **_):
        raise OperationalError("connection refused")

    with monkeypatch.context() as patched:
        patched.setattr(BorrowedLeaseStore, "restore_sources", database_down)
        for n in range(3, 6):
            response = acquire(member, license, f"machine-{n:04d}")
            assert (response.status_code, error_code(response)) == (503, "service_unavailable")
            assert response["Retry-After"]
        assert live_use(license) == (0, set()), "nothing granted, nothing restored"

    response = acquire(member, license, "machine-0003")
    assert (response.status_code, error_code(response)) == (409, "no_seats_available")
    assert live_use(license)[0] == 3


def test_two_restores_of_one_license_put_its_borrows_back_once(own_redis, member, license):
    borrowed = checkout(member, license, "machine-0000")
    borrow(borrowed["token"])
    online = checkout(member, license, "machine-0001")
    own_redis.restart_empty()

    ledger = get_seat_ledger("redis")
    ledger._restore(license.id, license.tenant_id)
    ledger._restore(license.id, license.tenant_id)  # another process, a moment later: finds the marker

    assert live_use(license) == (1, {borrowed["session_id"]})
    assert [lost["session_id"] for lost in events(license, Event.LEASE_LOST)] == [online["session_id"]]


def test_a_returned_borrow_leaves_nothing_to_restore(own_redis, member, license):
    seat = borrow(checkout(member, license, "machine-0000")["token"])
    assert api_client(token=seat["token"]).delete("/api/v1/licenses/release").status_code == 200
    with tenant_scope(license.tenant_id):
        assert not BorrowedLease.objects.exists()
    # The release's audit event waits in Redis until the drainer (every
    # LEASE_EVENT_DRAIN_INTERVAL) moves it; one not yet moved is lost with
    # Redis, and its session then counts as lost.
    drain_ledger_events(license)

    own_redis.restart_empty()
    for n in range(1, 4):
        checkout(member, license, f"machine-{n:04d}")
    assert live_use(license)[0] == 3
    assert events(license, Event.LEASE_LOST) == [], "a released lease was not lost"


def lease_of(license, session_id: str):
    (lease,) = [
        lease
        for lease in get_seat_ledger("redis").live_leases(license_id=license.id)
        if lease.session_id == session_id
    ]
    return lease


def durable_copies(license) -> dict:
    with tenant_scope(license.tenant_id):
        return dict(
            BorrowedLease.objects.filter(license_id=license.id).values_list("session_id", "borrowed_until")
        )


def reading_on_after_a_503() -> None:
    """A 503's handler abandons what the request's transaction wrote; in a
    test that transaction is the test's own, which reads on."""
    transaction.set_rollback(False)


def test_a_borrow_that_cannot_be_kept_durably_does_not_stand(own_redis, member, license, monkeypatch):
    """Answered 503, it has not happened: the lease is live as before, not
    borrowed, and heartbeats go on; the audit log says it was undone."""
    seat = checkout(member, license, "machine-0000")

    def database_down(self, lease):
        raise OperationalError("connection refused")

    monkeypatch.setattr(BorrowedLeaseStore, "keep", database_down)
    response = api_client(token=seat["token"]).post("/api/v1/licenses/borrow", {"hours": 48}, format="json")

    assert (response.status_code, error_code(response)) == (503, "service_unavailable")
    reading_on_after_a_503()
    assert live_use(license) == (1, {seat["session_id"]})
    lease = lease_of(license, seat["session_id"])
    assert lease.borrowed_until is None
    assert lease.expires_at < timezone.now() + timedelta(seconds=license.terms.lease_ttl + 5)
    assert heartbeat(seat["token"]).status_code == 200
    assert durable_copies(license) == {}
    drain_ledger_events(license)
    (undone,) = events(license, Event.LEASE_BORROW_UNDONE)
    assert (undone["session_id"], undone["reason"], undone["until"]) == (
        seat["session_id"],
        "borrow_not_durable",
        None,
    )
    assert events(license, Event.LEASE_ENDED) == []


def test_a_borrow_whose_token_cannot_be_signed_does_not_stand(own_redis, member, license, monkeypatch):
    """The durable copy made, then the signature fails (a KMS that does not
    answer): 503, and the lease and its durable copy are as before."""
    from core.errors import ServiceUnavailable
    from licenses import leases

    seat = checkout(member, license, "machine-0000")
    first = borrow(seat["token"], hours=2)
    before = lease_of(license, seat["session_id"])
    before_copies = durable_copies(license)

    def signer_down(**kwargs):
        raise ServiceUnavailable("The signing key service does not answer.")

    monkeypatch.setattr(leases, "license_token_issue", signer_down)
    response = api_client(token=first["token"]).post("/api/v1/licenses/borrow", {"hours": 48}, format="json")

    assert (response.status_code, error_code(response)) == (503, "service_unavailable")
    reading_on_after_a_503()
    after = lease_of(license, seat["session_id"])
    assert (after.borrowed_until, after.expires_at) == (before.borrowed_until, before.expires_at)
    assert durable_copies(license) == before_copies
    drain_ledger_events(license)
    assert [e["reason"] for e in events(license, Event.LEASE_BORROW_UNDONE)] == ["request_failed"]
    assert len(events(license, Event.LEASE_BORROWED)) == 2


def test_a_failed_borrow_does_not_undo_a_borrow_answered_200_meanwhile(
    own_redis, member, license, monkeypatch
):
    """Request A heartbeats; request B (the same client retrying) borrows for
    48 h and is answered 200; A's borrow then fails at its signature. A's
    undo must leave B's borrow, its durable copy and its seat as they are."""
    from core.errors import ServiceUnavailable
    from licenses import leases
    from licenses.ledger.redis import RedisSeatLedger

    seat = checkout(member, license, "machine-0000")
    real_borrow, real_sign = RedisSeatLedger.borrow, leases.license_token_issue
    answers, signatures = {}, []

    def b_lands_first(self, **kwargs):
        if "b" not in answers:
            answers["b"] = "pending"
            answers["b"] = api_client(token=seat["token"]).post(
                "/api/v1/licenses/borrow", {"hours": 48}, format="json"
            )
        return real_borrow(self, **kwargs)

    def a_cannot_sign(**kwargs):
        signatures.append(1)
        if len(signatures) == 2:  # B signed first; A's signature fails
            raise ServiceUnavailable("The signing key service does not answer.")
        return real_sign(**kwargs)

    monkeypatch.setattr(RedisSeatLedger, "borrow", b_lands_first)
    monkeypatch.setattr(leases, "license_token_issue", a_cannot_sign)
    a = api_client(token=seat["token"]).post("/api/v1/licenses/borrow", {"hours": 1}, format="json")
    reading_on_after_a_503()

    assert answers["b"].status_code == 200, answers["b"].content
    assert (a.status_code, error_code(a)) == (503, "service_unavailable")
    lease = lease_of(license, seat["session_id"])
    assert lease.borrowed_until is not None and lease.borrowed_until > timezone.now() + timedelta(hours=47)
    assert durable_copies(license) == {seat["session_id"]: lease.borrowed_until}
    monkeypatch.setattr(RedisSeatLedger, "borrow", real_borrow)
    own_redis.restart_empty()
    granted = [acquire(member, license, f"machine-{n:04d}").status_code for n in range(1, 4)]
    assert granted == [201, 201, 409], "B's borrowed seat came back; only two more were sold"


def test_an_undo_names_its_own_borrow_not_one_that_ends_at_the_same_time(own_redis, member, license):
    """Two borrows capped at the license's expiry end at the same millisecond:
    the first one's undo still leaves the second (answered 200) alone."""
    seat = checkout(member, license, "machine-0000")
    ledger = get_seat_ledger("redis")
    license_end = timezone.now() + timedelta(minutes=30)
    first_id, second_id = "borrow-one", "borrow-two"
    events = {n: LedgerEvent(action=Event.LEASE_BORROWED, event_id=n) for n in (first_id, second_id)}
    first = ledger.borrow(
        license_id=license.id,
        session_id=seat["session_id"],
        seconds=3600,
        not_after=license_end,
        event=events[first_id],
    )
    second = ledger.borrow(
        license_id=license.id,
        session_id=seat["session_id"],
        seconds=7200,
        not_after=license_end,
        event=events[second_id],
    )
    assert first.borrowed_until == second.borrowed_until

    assert ledger.borrow_undo(borrowed=first, borrow_id=first_id, reason="request_failed") is None
    assert lease_of(license, seat["session_id"]).borrowed_until == second.borrowed_until
    put_back = ledger.borrow_undo(borrowed=second, borrow_id=second_id, reason="request_failed")
    assert put_back.borrowed_until == first.borrowed_until, "back to the first borrow, which stands"
    assert ledger.borrow_undo(borrowed=second, borrow_id=second_id, reason="request_failed") is None, "once"


def test_an_undo_of_a_released_lease_brings_nothing_back(own_redis, member, license):
    seat = checkout(member, license, "machine-0000")
    ledger = get_seat_ledger("redis")
    event = LedgerEvent(action=Event.LEASE_BORROWED)
    borrowed = ledger.borrow(license_id=license.id, session_id=seat["session_id"], seconds=3600, event=event)
    ledger.release(license_id=license.id, session_id=seat["session_id"])
    assert ledger.borrow_undo(borrowed=borrowed, borrow_id=event.event_id, reason="request_failed") is None
    assert live_use(license) == (0, set())


def test_a_redis_that_kept_its_leases_but_lost_the_marker_loses_no_lease(own_redis, member, license):
    """The marker alone gone (evicted, or keys written before there was one):
    the restore finds the leases still there, puts nothing back twice and
    records no loss."""
    borrowed = checkout(member, license, "machine-0000")
    borrow(borrowed["token"])
    online = checkout(member, license, "machine-0001")
    ledger = get_seat_ledger("redis")
    leases_key = ledger.keys(license.id)[1]
    assert ledger.client.hdel(leases_key, "!generation") == 1

    newcomer = checkout(member, license, "machine-0002")

    assert live_use(license) == (3, {borrowed["session_id"], online["session_id"], newcomer["session_id"]})
    assert heartbeat(online["token"]).status_code == 200
    assert events(license, Event.LEASE_LOST) == []
