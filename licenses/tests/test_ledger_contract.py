"""The seat ledger's contract (DESIGN.md "Seat ledger: invariants"), one suite
for every backend: Redis, the database on PostgreSQL, the database on SQLite."""

from __future__ import annotations

import random
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from licenses.ledger import NoSeatsAvailable, SessionNotFound
from licenses.tests import ledger_support
from licenses.tests.ledger_support import Crew

# The fixture, one license per backend, and again with every floating rule on (issue 17).
make_seats = ledger_support.make_seats_and_every_rule

ROUNDS = 20
ACQUIRERS = 200


def near(when: datetime, expected: datetime, tolerance: float = 1.0) -> bool:
    return abs((when - expected).total_seconds()) <= tolerance


# --- invariant 1: never oversell ------------------------------------------------------------


def test_two_hundred_racing_acquirers_get_exactly_ten_seats_twenty_rounds_running(make_seats):
    """Each round, 200 threads, one per machine (a distinct fingerprint each),
    wait at a barrier until all 200 are there, then all ask for one of 10
    seats at once; the leases are ended before the next round.

    Redis takes the 200 calls side by side. The database backend (PostgreSQL
    and SQLite alike) serves them on `SERVER_CONNECTIONS` (8) shared
    connections, as a server with 8 worker threads does: 8 acquires are in the
    database at once, racing for the license row's lock (on SQLite, for the
    database's write lock), and the other 192 queue for a connection, in the
    order they came. The checks between rounds use the same 8; the test's own
    connection only makes the license: 9 connections in all."""
    seats = make_seats(max_seats=10, committed=True)
    started = time.monotonic()
    with Crew(ACQUIRERS) as crew:
        for round_ in range(ROUNDS):

            def acquire(index: int, round_: int = round_):
                try:
                    return seats.acquire(f"round-{round_}-machine-{index}")
                except NoSeatsAvailable as refused:
                    assert refused.max_seats == 10
                    return None

            outcomes = crew.run(acquire)
            granted = [outcome for outcome in outcomes if outcome is not None]
            assert len(outcomes) == ACQUIRERS
            assert len(granted) == 10, f"round {round_}: {len(granted)} leases for 10 seats"
            assert all(outcome.created for outcome in granted)
            assert len({outcome.lease.session_id for outcome in granted}) == 10
            assert seats.used() == 10
            assert len(seats.release_every_live_lease()) == 10
    elapsed = time.monotonic() - started
    if seats.shared:
        # Every connection was busy at once and acquirers queued for them: a race.
        assert seats.shared.peak == seats.shared.size and seats.shared.waits >= ROUNDS
        served = f"{seats.shared.size} shared connections ({seats.shared.waits} calls queued for one)"
    else:
        served = "one Redis client"
    print(f"\n{seats.backend}: {ROUNDS} rounds of {ACQUIRERS} acquirers on {served}, {elapsed:.1f}s")


def test_churn_never_holds_more_than_max_seats_nor_a_lease_it_did_not_grant(make_seats):
    seats = make_seats(max_seats=5, committed=True)
    workers = 12
    duration = 2.5
    granted: dict[str, str] = {}  # session id -> fingerprint, as acquire handed it out
    granted_lock = threading.Lock()
    counts = {"acquired": 0, "existing": 0, "denied": 0, "heartbeats": 0, "released": 0, "lost": 0}
    deadline = time.monotonic() + duration

    def churn(index: int) -> dict:
        rng = random.Random(index)
        mine: list[str] = []
        tally = dict.fromkeys(counts, 0)
        while time.monotonic() < deadline:
            roll = rng.random()
            if roll < 0.45 or not mine:
                # Fingerprints are shared between workers, so acquires also
                # race for the same machine; a 1 s lease is left to expire.
                fingerprint = f"machine-{rng.randrange(12)}"
                try:
                    result = seats.acquire(fingerprint, ttl=rng.choice([1, 30]))
                except NoSeatsAvailable:
                    tally["denied"] += 1
                    continue
                with granted_lock:
                    granted.setdefault(result.lease.session_id, fingerprint)
                tally["acquired" if result.created else "existing"] += 1
                mine.append(result.lease.session_id)
            elif roll < 0.75:
                session_id = rng.choice(mine)
                try:
                    seats.heartbeat(session_id, ttl=30)
                    tally["heartbeats"] += 1
                except SessionNotFound:
                    mine.remove(session_id)
                    tally["lost"] += 1
            else:
                session_id = mine.pop(rng.randrange(len(mine)))
                try:
                    seats.release(session_id)
                    tally["released"] += 1
                except SessionNotFound:
                    tally["lost"] += 1
        return tally

    samples = 0
    seen: dict[str, str] = {}

    def check(leases: dict[str, str], held: int) -> None:
        assert len(leases) <= 5 and held <= 5, (held, leases)
        assert len(set(leases.values())) == len(leases), f"two live leases for one machine: {leases}"
        seen.update(leases)

    # The checker reads the store itself and asks the ledger, queueing with the
    # workers for a connection (and on SQLite for the write lock, in turn).
    with Crew(workers) as crew:
        crew.start(churn)
        while time.monotonic() < deadline:
            check(*reversed(seats.raw_live()))
            check({lease.session_id: lease.fingerprint for lease in seats.live()}, seats.used())
            samples += 1
        for tally in crew.collect():
            for name, value in tally.items():
                counts[name] += value
    check({lease.session_id: lease.fingerprint for lease in seats.live()}, seats.used())
    unknown = {sid: fp for sid, fp in seen.items() if granted.get(sid) != fp}
    assert not unknown, f"the ledger held leases nobody was granted: {unknown}"
    # That churn happened at all (a loaded two-core machine runs fewer rounds in the time).
    assert counts["acquired"] > 5 and counts["denied"] > 0 and samples > 10
    print(f"\n{seats.backend}: churn {counts}, {samples} samples, {len(seen)} distinct live leases seen")


def test_lowering_max_seats_keeps_live_leases_and_refuses_new_ones_until_under_the_limit(make_seats):
    seats = make_seats(max_seats=3)
    a, b, c = (seats.acquire(f"machine-{n}").lease for n in "abc")

    with pytest.raises(NoSeatsAvailable) as refused:
        seats.acquire("machine-d", max_seats=2)
    assert (refused.value.used, refused.value.max_seats) == (3, 2)
    for lease in (a, b, c):
        seats.heartbeat(lease.session_id)
    again = seats.acquire("machine-c", max_seats=2)
    assert (again.created, again.lease.session_id, again.used) == (False, c.session_id, 3)

    seats.release(a.session_id)
    with pytest.raises(NoSeatsAvailable):
        seats.acquire("machine-d", max_seats=2)
    seats.release(b.session_id)
    assert seats.acquire("machine-d", max_seats=2).used == 2


# --- invariant 2: acquire is idempotent per (user, fingerprint) ------------------------------


def test_acquiring_again_from_the_same_machine_returns_its_lease_extended(make_seats):
    seats = make_seats(max_seats=2)
    first = seats.acquire("machine-a", ttl=30, user_id="user-7", client_info={"app": "cad", "v": [1, 2]})
    # The same user: another user of the machine would get a lease of their own.
    again = seats.acquire("machine-a", ttl=120, user_id="user-7")

    assert (first.created, first.used) == (True, 1)
    assert (again.created, again.used) == (False, 1)
    assert again.lease.session_id == first.lease.session_id
    assert again.lease.expires_at > first.lease.expires_at + timedelta(seconds=80)
    assert again.lease.user_id == "user-7"
    assert again.lease.client_info == {"app": "cad", "v": [1, 2]}
    assert again.lease.license_id == seats.license_id and again.lease.tenant_id == seats.tenant_id
    shorter = seats.acquire("machine-a", ttl=5, user_id="user-7")
    assert shorter.lease.expires_at >= again.lease.expires_at, "acquire never shortens a lease"
    assert seats.acquire("machine-b").created
    with pytest.raises(NoSeatsAvailable):
        seats.acquire("machine-c")


def test_concurrent_acquires_from_one_machine_make_one_lease(make_seats):
    seats = make_seats(max_seats=5, committed=True)
    with Crew(50) as crew:
        for round_ in range(3):
            results = crew.run(lambda index, round_=round_: seats.acquire(f"the-machine-{round_}"))
            assert len({result.lease.session_id for result in results}) == 1
            assert sum(result.created for result in results) == 1
            assert seats.used() == 1
            seats.release_every_live_lease()


# --- invariant 10: a lease belongs to one user on one machine -----------------------------------


def test_two_users_on_one_machine_hold_two_leases_and_each_gets_only_their_own_back(make_seats):
    seats = make_seats(max_seats=3)
    alice = seats.acquire("shared-pc", user_id="alice")
    bob = seats.acquire("shared-pc", user_id="bob")

    assert (alice.created, alice.used) == (True, 1)
    assert (bob.created, bob.used) == (True, 2), "the machine's second user takes a seat of their own"
    assert bob.lease.session_id != alice.lease.session_id
    assert (alice.lease.user_id, bob.lease.user_id) == ("alice", "bob")
    for user, mine in (("alice", alice), ("bob", bob)):
        again = seats.acquire("shared-pc", user_id=user)
        assert (again.created, again.lease.session_id, again.used) == (False, mine.lease.session_id, 2)
        assert again.lease.user_id == user

    # Leases without a user are one holder among themselves, apart from any user's.
    anonymous = seats.acquire("shared-pc", user_id=None)
    assert anonymous.created and anonymous.lease.user_id is None
    assert seats.acquire("shared-pc", user_id=None).lease.session_id == anonymous.lease.session_id
    with pytest.raises(NoSeatsAvailable):
        seats.acquire("shared-pc", user_id="carol")

    # Ending one user's lease leaves the other's, and frees that user's place only.
    seats.release(alice.lease.session_id)
    assert seats.heartbeat(bob.lease.session_id).session_id == bob.lease.session_id
    assert seats.acquire("shared-pc", user_id="bob").lease.session_id == bob.lease.session_id
    successor = seats.acquire("shared-pc", user_id="alice")
    assert successor.created and successor.lease.session_id != alice.lease.session_id
    assert sorted(lease.user_id or "" for lease in seats.live()) == ["", "alice", "bob"]


def test_a_users_lease_that_expired_frees_only_that_users_place_on_the_machine(make_seats):
    seats = make_seats(max_seats=3)
    short = seats.acquire("shared-pc", ttl=1, user_id="alice").lease
    anonymous = seats.acquire("shared-pc", ttl=1, user_id=None).lease
    long = seats.acquire("shared-pc", ttl=60, user_id="bob").lease
    time.sleep(1.1)

    assert [lease.session_id for lease in seats.live()] == [long.session_id]
    assert seats.acquire("shared-pc", user_id="bob").lease.session_id == long.session_id
    for user, ended in (("alice", short), (None, anonymous)):
        fresh = seats.acquire("shared-pc", user_id=user)
        assert fresh.created and fresh.lease.session_id != ended.session_id


def test_two_users_racing_for_one_seat_on_one_machine_never_hold_two(make_seats):
    """Many threads, half acting as each of two users of one machine, ask for
    the one seat at once: one lease, its user's threads all get it back, the
    other user's are all refused."""
    seats = make_seats(max_seats=1, committed=True)
    with Crew(40) as crew:
        for round_ in range(3):

            def acquire(index: int, round_: int = round_):
                user = ("alice", "bob")[index % 2]
                try:
                    result = seats.acquire(f"shared-pc-{round_}", user_id=user)
                except NoSeatsAvailable:
                    return user, None
                return user, result

            outcomes = crew.run(acquire)
            granted = [(user, result) for user, result in outcomes if result is not None]
            assert len({result.lease.session_id for _, result in granted}) == 1
            assert sum(result.created for _, result in granted) == 1
            winner = granted[0][0]
            assert all(result.lease.user_id == winner for _, result in granted)
            assert {user for user, result in outcomes if result is None} == {"alice", "bob"} - {winner}
            assert seats.used() == 1 and len(seats.raw_live()[1]) == 1
            seats.release_every_live_lease()


# --- invariant 3: release is idempotent -------------------------------------------------------


def test_releasing_twice_or_an_unknown_session_frees_nothing(make_seats):
    seats = make_seats(max_seats=2)
    kept = seats.acquire("machine-a").lease
    lease = seats.acquire("machine-b").lease

    released = seats.release(lease.session_id)
    assert released.session_id == lease.session_id and released.fingerprint == "machine-b"
    for session_id in (lease.session_id, "no-such-session", kept.session_id + "x"):
        with pytest.raises(SessionNotFound):
            seats.release(session_id)
    assert [live.session_id for live in seats.live()] == [kept.session_id]
    # The machine gets a new lease, with a new session id.
    assert seats.acquire("machine-b").lease.session_id != lease.session_id


def test_concurrent_double_releases_free_exactly_one_seat(make_seats):
    seats = make_seats(max_seats=3, committed=True)
    with Crew(50) as crew:
        for round_ in range(3):
            kept = seats.acquire(f"kept-{round_}").lease
            target = seats.acquire(f"target-{round_}").lease

            def release(index: int, session_id: str = target.session_id) -> bool:
                try:
                    seats.release(session_id)
                    return True
                except SessionNotFound:
                    return False

            outcomes = crew.run(release)
            assert outcomes.count(True) == 1, outcomes.count(True)
            assert [lease.session_id for lease in seats.live()] == [kept.session_id]
            seats.release(kept.session_id)


def test_release_all_ends_every_live_lease_once(make_seats):
    """Ending every live lease of a license, one release each, frees every seat
    once: nothing is left to end, and no session can be released again."""
    seats = make_seats(max_seats=3)
    leases = [seats.acquire(f"machine-{n}").lease for n in range(3)]

    ended = [seats.release(lease.session_id) for lease in seats.live()]
    assert sorted(lease.session_id for lease in ended) == sorted(lease.session_id for lease in leases)
    assert seats.used() == 0 and seats.live() == []
    for lease in leases:
        with pytest.raises(SessionNotFound):
            seats.release(lease.session_id)
        with pytest.raises(SessionNotFound):
            seats.heartbeat(lease.session_id)
    assert seats.expired_pending() == [], "a released lease is not an expired one"
    assert seats.acquire("machine-0").created


# --- invariants 4 and 5: expiry heals itself on the ledger's clock ------------------------------


def test_a_lease_whose_heartbeats_stop_is_free_within_three_seconds_whatever_the_app_clock_says(
    make_seats, app_clock
):
    seats = make_seats(max_seats=1)
    real_start = datetime.now(UTC)

    app_clock(+600)  # the app server's clock; the ledger must not care
    lease = seats.acquire("machine-a", ttl=2).lease
    assert near(lease.expires_at, real_start + timedelta(seconds=2)), "the app clock leaked in"
    assert near(lease.created_at, real_start), "the lease's start is on the ledger's clock"
    beat = seats.heartbeat(lease.session_id, ttl=2)
    last_beat = time.monotonic()
    assert beat.expires_at >= lease.expires_at
    with pytest.raises(NoSeatsAvailable):
        seats.acquire("machine-b", ttl=2)

    app_clock(-600)
    time.sleep(max(0.0, last_beat + 3 - time.monotonic()))  # no call in between

    assert seats.used() == 0 and seats.live() == []
    with pytest.raises(SessionNotFound):
        seats.heartbeat(lease.session_id, ttl=2)
    with pytest.raises(SessionNotFound):
        seats.release(lease.session_id)
    with pytest.raises(SessionNotFound):
        seats.borrow(lease.session_id, seconds=60)
    successor = seats.acquire("machine-a", ttl=2)
    assert successor.created and successor.lease.session_id != lease.session_id
    (expired,) = seats.expired_pending()
    assert expired.lease.session_id == lease.session_id
    assert expired.expired_at == beat.expires_at


def test_a_heartbeat_extends_a_live_lease_and_never_shortens_it(make_seats):
    seats = make_seats(max_seats=1)
    lease = seats.acquire("machine-a", ttl=60).lease

    longer = seats.heartbeat(lease.session_id, ttl=600)
    # The ledger's clock and this machine's agree (no clock is shifted here).
    assert near(longer.expires_at, datetime.now(UTC) + timedelta(seconds=600))
    shorter = seats.heartbeat(lease.session_id, ttl=10)
    assert shorter.expires_at == longer.expires_at
    assert seats.live_lease(lease.session_id).expires_at == longer.expires_at
    with pytest.raises(SessionNotFound):
        seats.heartbeat("no-such-session")


# --- borrowing ----------------------------------------------------------------------------------


def test_a_borrowed_lease_keeps_its_seat_until_the_borrow_ends_or_it_is_returned(make_seats):
    seats = make_seats(max_seats=1)
    lease = seats.acquire("laptop", ttl=60).lease
    assert not lease.is_borrowed

    borrowed = seats.borrow(lease.session_id, seconds=48 * 3600)
    until = datetime.now(UTC) + timedelta(hours=48)
    assert borrowed.is_borrowed and near(borrowed.borrowed_until, until)
    assert borrowed.expires_at >= borrowed.borrowed_until
    assert seats.heartbeat(lease.session_id, ttl=60).expires_at == borrowed.expires_at
    assert seats.live_lease(lease.session_id).borrowed_until == borrowed.borrowed_until
    with pytest.raises(NoSeatsAvailable):
        seats.acquire("desktop")

    returned = seats.release(lease.session_id)
    assert returned.borrowed_until == borrowed.borrowed_until
    assert seats.acquire("desktop").created
    with pytest.raises(SessionNotFound):
        seats.borrow(lease.session_id, seconds=3600)


def test_a_borrow_never_outlasts_the_license(make_seats):
    seats = make_seats(max_seats=1)
    lease = seats.acquire("laptop", ttl=60).lease
    license_ends = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)

    borrowed = seats.borrow(lease.session_id, seconds=24 * 3600, not_after=license_ends)
    assert borrowed.borrowed_until == license_ends
    assert borrowed.expires_at == license_ends, "the seat is kept to the borrow's end, no longer"
    assert seats.live_lease(lease.session_id).borrowed_until == license_ends
    # A limit later than the borrow's own end changes nothing.
    later = seats.borrow(lease.session_id, seconds=1800, not_after=license_ends + timedelta(days=9))
    assert near(later.borrowed_until, datetime.now(UTC) + timedelta(minutes=30))


# --- reads ------------------------------------------------------------------------------------------


def test_live_leases_come_oldest_first_with_what_acquire_recorded(make_seats):
    seats = make_seats(max_seats=3)
    first = seats.acquire("machine-a", ttl=600, user_id="u-1", client_info={"os": "linux"}).lease
    time.sleep(0.005)  # the clocks of Redis scripts and SQLite tick in milliseconds
    second = seats.acquire("machine-b", ttl=60, user_id=None).lease
    seats.heartbeat(second.session_id, ttl=6000)  # later expiry, still the younger lease

    leases = seats.live()
    assert [lease.session_id for lease in leases] == [first.session_id, second.session_id]
    assert (leases[0].user_id, leases[0].client_info, leases[0].fingerprint) == (
        "u-1",
        {"os": "linux"},
        "machine-a",
    )
    assert leases[1].user_id is None and leases[1].client_info == {}
    assert leases[0].created_at <= leases[1].created_at
    assert seats.used() == 2


# --- invariant 8: what expires waits for the sweep -------------------------------------------------


def test_each_expired_lease_goes_to_the_sweep_once_and_comes_back_if_not_acknowledged(make_seats):
    seats = make_seats(max_seats=3, sweep_claim_seconds=1)
    a, b, released = (seats.acquire(f"machine-{n}", ttl=1).lease for n in "abc")
    seats.release(released.session_id)
    time.sleep(1.1)

    pending = seats.expired_pending()
    assert sorted(item.lease.session_id for item in pending) == sorted([a.session_id, b.session_id])
    assert all(item.expired_at == item.lease.expires_at for item in pending)
    assert seats.expired_pending() == [], "handed out once while claimed"
    seats.expired_ack([a.session_id])

    time.sleep(1.1)  # both claims lapse; b's sweeper died before acknowledging
    assert [item.lease.session_id for item in seats.expired_pending()] == [b.session_id]
    seats.expired_ack([b.session_id, "no-such-session"])


def test_acknowledging_a_live_session_does_not_end_it(make_seats):
    seats = make_seats(max_seats=1)
    lease = seats.acquire("machine-a").lease
    seats.expired_ack([lease.session_id])
    assert seats.heartbeat(lease.session_id).session_id == lease.session_id
    assert seats.used() == 1


def test_two_sweepers_racing_never_get_the_same_expired_lease(make_seats):
    seats = make_seats(max_seats=40, committed=True)
    expected = {seats.acquire(f"machine-{n}", ttl=1).lease.session_id for n in range(40)}
    time.sleep(1.1)

    def sweep(index: int) -> list[str]:
        taken = []
        while batch := seats.expired_pending(limit=3):
            ids = [item.lease.session_id for item in batch]
            taken += ids
            seats.expired_ack(ids)
        return taken

    with Crew(4) as crew:
        taken = [session_id for batch in crew.run(sweep) for session_id in batch]
    assert len(taken) == len(set(taken)) == 40
    assert set(taken) == expected


# --- reads, one page at a time (invariant 12) -------------------------------------------------------


def all_pages(seats, *, limit: int, user_id: str | None = None) -> list[list[str]]:
    """Every page of live leases, as session ids, following next cursors."""
    pages, cursor = [], None
    while True:
        leases, cursor = seats.call("live_leases_page", cursor=cursor, limit=limit, user_id=user_id)
        pages.append([lease.session_id for lease in leases])
        if cursor is None:
            return pages
        assert len(pages) < 100, "the cursor does not advance"


def test_live_leases_page_hands_every_live_lease_once_oldest_first(make_seats):
    seats = make_seats(max_seats=10)
    for n in range(7):
        seats.acquire(f"machine-{n}", user_id=f"u-{n % 2}", client_info={"n": str(n)})

    pages = all_pages(seats, limit=3)
    assert [len(page) for page in pages] == [3, 3, 1]
    assert [sid for page in pages for sid in page] == [lease.session_id for lease in seats.live()]
    [first], cursor = seats.call("live_leases_page", cursor=None, limit=1)
    assert first == seats.live()[0], "a page's leases are whole, as live_leases reads them"
    assert cursor is not None


def test_live_leases_page_of_one_user_holds_only_that_users_leases(make_seats):
    seats = make_seats(max_seats=10)
    mine = [seats.acquire(f"mine-{n}", user_id="u-mine").lease.session_id for n in range(5)]
    for n in range(4):
        seats.acquire(f"theirs-{n}", user_id="u-theirs")
    seats.acquire("nobodys", user_id=None)

    pages = all_pages(seats, limit=2, user_id="u-mine")
    assert [len(page) for page in pages] == [2, 2, 1]
    assert sorted(sid for page in pages for sid in page) == sorted(mine)
    assert all_pages(seats, limit=50, user_id="u-nobody") == [[]]
    assert sum(map(len, all_pages(seats, limit=4))) == 10


def test_live_leases_page_order_does_not_move_with_heartbeats_releases_or_new_leases(make_seats):
    seats = make_seats(max_seats=10)
    leases = [seats.acquire(f"machine-{n}").lease for n in range(6)]
    ordered = [lease.session_id for lease in seats.live()]
    first, cursor = seats.call("live_leases_page", cursor=None, limit=3)
    assert [lease.session_id for lease in first] == ordered[:3]

    for lease in reversed(leases):  # every expiry moves; the order must not
        seats.heartbeat(lease.session_id, ttl=120)
    seats.release(ordered[4])
    newcomer = seats.acquire("machine-new").lease.session_id

    rest = []
    while cursor is not None:
        page, cursor = seats.call("live_leases_page", cursor=cursor, limit=3)
        rest += [lease.session_id for lease in page]
    assert rest == [ordered[3], ordered[5], newcomer]


def test_live_leases_page_leaves_out_expired_and_released_leases(make_seats):
    seats = make_seats(max_seats=10)
    for n in range(3):
        seats.acquire(f"short-{n}", ttl=1)
    kept = seats.acquire("long", ttl=60).lease.session_id
    released = seats.acquire("released", ttl=60).lease.session_id
    seats.release(released)
    time.sleep(1.1)

    assert all_pages(seats, limit=2) == [[kept]]
    assert seats.used() == 1


@pytest.mark.parametrize("cursor", ["", "nonsense", "x|y", "000000000000001:abc|", "2026-01-01T00:00:00|"])
def test_live_leases_page_refuses_a_cursor_it_did_not_hand_out(make_seats, cursor):
    from licenses.ledger.base import LeaseCursorInvalid

    seats = make_seats(max_seats=2)
    seats.acquire("machine-a")
    with pytest.raises(LeaseCursorInvalid):
        seats.call("live_leases_page", cursor=cursor, limit=10)


# --- invariant 8: a change's audit event exists exactly when the change does ---------------


def test_a_ledger_that_records_events_keeps_one_exactly_when_the_change_happens(make_seats):
    from licenses.ledger import LedgerEvent

    seats = make_seats(max_seats=2)
    lease = seats.acquire("machine-a").lease
    other = seats.acquire("machine-b").lease
    released = LedgerEvent(action="lease.released", request_id="req-1", client_ip="192.0.2.7")
    seats.call("release", session_id=lease.session_id, event=released)
    with pytest.raises(SessionNotFound):  # nothing changed: no event kept
        seats.call("release", session_id=lease.session_id, event=LedgerEvent(action="lease.released"))
    borrowed = LedgerEvent(action="lease.borrowed", details={"hours": 1})
    seats.call("borrow", session_id=other.session_id, seconds=3600, event=borrowed)
    rejected = LedgerEvent(action="lease.heartbeat_rejected", details={"session_id": "gone"})
    with pytest.raises(SessionNotFound):  # a refusal is the event itself
        seats.call("heartbeat", session_id="gone", ttl=60, rejection=rejected)

    pending = seats.call("events_pending")
    if not seats.ledger.records_events:
        assert pending == []  # the caller records them, in the change's transaction
        return
    assert [item.event for item in pending] == [released, borrowed, rejected]
    first, second, third = pending
    assert first.lease.session_id == lease.session_id and first.lease.fingerprint == "machine-a"
    assert near(first.occurred_at, datetime.now(UTC))
    assert second.lease.borrowed_until is not None
    assert third.lease is None

    seats.call("events_ack", stream_ids=[first.stream_id])
    assert [item.event for item in seats.call("events_pending")] == [borrowed, rejected]
    assert [item.event for item in seats.call("events_pending", limit=1)] == [borrowed]
    seats.call("events_ack", stream_ids=[second.stream_id, third.stream_id])
    assert seats.call("events_pending") == []
