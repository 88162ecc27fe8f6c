"""The seat ledger's floating-license rules (issue 17), one suite for every
backend as test_ledger_contract.py is: overdraft seats and linger, each
decided in the one atomic step that grants or ends a seat."""

from __future__ import annotations

import time

import pytest

from licenses.ledger import BorrowLimitReached, NoSeatsAvailable, SessionNotFound, UserMachineLimitReached
from licenses.ledger.redis import KEY_NAMES
from licenses.tests import ledger_support
from licenses.tests.ledger_support import Crew

make_seats = ledger_support.make_seats  # the fixture, one license per backend


# --- overdraft ------------------------------------------------------------------------------


def test_two_hundred_racing_acquirers_get_max_seats_plus_the_overdraft_and_two_are_marked(make_seats):
    """10 seats and 2 of overdraft: each round 200 threads race for them and
    exactly 12 win, the two granted past the tenth marked `overdraft`."""
    seats = make_seats(max_seats=10, committed=True, overdraft=2)
    with Crew(200) as crew:
        for round_ in range(5):

            def acquire(index: int, round_: int = round_):
                try:
                    return seats.acquire(f"round-{round_}-machine-{index}")
                except NoSeatsAvailable as refused:
                    assert refused.used == 12
                    return None

            granted = [outcome for outcome in crew.run(acquire) if outcome is not None]
            assert len(granted) == 12, f"round {round_}: {len(granted)} leases for 10 + 2 seats"
            overdrafts = [outcome for outcome in granted if outcome.lease.overdraft]
            assert len(overdrafts) == 2
            # The overdraft seats are the last two granted, and say so afterwards too.
            assert sorted(outcome.used for outcome in overdrafts) == [11, 12]
            assert sorted(lease.overdraft for lease in seats.live()) == [False] * 10 + [True] * 2
            assert seats.used() == 12
            seats.release_every_live_lease()


def test_an_overdraft_lease_stays_marked_and_a_seat_freed_under_the_limit_is_not_one(make_seats):
    seats = make_seats(max_seats=2, overdraft=1)
    first = seats.acquire("a").lease
    seats.acquire("b")
    extra = seats.acquire("c").lease
    assert not first.overdraft and extra.overdraft
    with pytest.raises(NoSeatsAvailable):
        seats.acquire("d")

    seats.release(first.session_id)
    # The lease granted in overdraft is still an overdraft's; the next seat is
    # the third in use, again one past the limit.
    assert seats.live_lease(extra.session_id).overdraft
    assert seats.heartbeat(extra.session_id).overdraft
    assert seats.acquire("d").lease.overdraft
    # The holder acquiring again gets their lease back as it is.
    assert seats.acquire("c").lease.overdraft and not seats.acquire("c").created


def test_without_overdraft_the_limit_is_max_seats(make_seats):
    seats = make_seats(max_seats=1)
    assert not seats.acquire("a").lease.overdraft
    with pytest.raises(NoSeatsAvailable):
        seats.acquire("b")


# --- linger ---------------------------------------------------------------------------------


def test_a_released_seat_lingers_for_its_holder_and_another_holder_is_refused(make_seats):
    seats = make_seats(max_seats=1, linger=30)
    lease = seats.acquire("workstation", user_id="alice").lease

    released = seats.release(lease.session_id)
    assert released.lingering and released.session_id == lease.session_id
    assert seats.used() == 1  # others see the seat in use
    with pytest.raises(NoSeatsAvailable):
        seats.acquire("laptop", user_id="bob")
    with pytest.raises(NoSeatsAvailable):
        seats.acquire("workstation", user_id="bob")  # the machine alone is not the holder

    back = seats.acquire("workstation", user_id="alice")
    assert back.created and back.reclaimed and not back.lease.lingering
    # A new session on the same seat: the released one is gone for good.
    assert back.lease.session_id != lease.session_id
    assert [live.session_id for live in seats.live()] == [back.lease.session_id]
    with pytest.raises(SessionNotFound):
        seats.heartbeat(lease.session_id)
    assert not seats.heartbeat(back.lease.session_id).lingering
    assert seats.release(back.lease.session_id).lingering


def test_a_lingering_lease_takes_no_heartbeat_borrow_or_second_release(make_seats):
    seats = make_seats(max_seats=2, linger=30)
    lease = seats.acquire("workstation").lease
    seats.release(lease.session_id)

    with pytest.raises(SessionNotFound):
        seats.heartbeat(lease.session_id)
    with pytest.raises(SessionNotFound):
        seats.borrow(lease.session_id, seconds=3600)
    with pytest.raises(SessionNotFound):
        seats.release(lease.session_id)
    assert seats.used() == 1
    assert seats.live_lease(lease.session_id).lingering


def test_a_release_without_linger_frees_a_lingering_seat(make_seats):
    """An operator's release (no linger) ends the linger: the seat is free."""
    seats = make_seats(max_seats=1, linger=30)
    lease = seats.acquire("workstation", user_id="alice").lease
    seats.release(lease.session_id)

    seats.release(lease.session_id, linger=0)
    assert seats.used() == 0
    assert seats.acquire("laptop", user_id="bob").created


def test_after_the_linger_the_seat_is_free_and_its_end_goes_to_the_sweep(make_seats):
    seats = make_seats(max_seats=1, linger=1)
    lease = seats.acquire("workstation", user_id="alice").lease
    seats.release(lease.session_id)
    with pytest.raises(NoSeatsAvailable):
        seats.acquire("laptop", user_id="bob")

    time.sleep(1.1)
    assert seats.used() == 0
    assert seats.acquire("laptop", user_id="bob").created
    (ended,) = seats.call("expired_pending")
    assert ended.lease.session_id == lease.session_id and ended.lease.lingering


def test_a_returned_borrow_lingers_as_a_plain_seat(make_seats):
    seats = make_seats(max_seats=1, linger=30)
    lease = seats.acquire("laptop").lease
    seats.borrow(lease.session_id, seconds=48 * 3600)

    released = seats.release(lease.session_id)
    assert released.lingering and not released.is_borrowed
    assert (released.expires_at - released.created_at).total_seconds() < 60


def test_a_holder_reclaims_a_lingering_seat_while_others_race_for_it(make_seats):
    """The holder's acquire racing with 39 other holders' for the seat it
    released: the holder gets it back every round, nobody else gets one."""
    seats = make_seats(max_seats=3, committed=True, linger=30)
    mine = seats.acquire("mine", user_id="alice").lease
    seats.acquire("other-1", user_id="bob")
    seats.acquire("other-2", user_id="carol")
    with Crew(40) as crew:
        for _ in range(3):
            seats.release(mine.session_id)

            def race(index: int):
                if index == 0:
                    return seats.acquire("mine", user_id="alice")
                try:
                    return seats.acquire(f"stranger-{index}", user_id=f"user-{index}")
                except NoSeatsAvailable:
                    return None

            outcomes = crew.run(race)
            assert outcomes[0].reclaimed
            assert [outcome for outcome in outcomes[1:] if outcome is not None] == []
            assert seats.used() == 3
            mine = outcomes[0].lease


def test_reclaiming_a_lingering_seat_needs_no_free_seat_even_under_a_lowered_limit(make_seats):
    seats = make_seats(max_seats=2, linger=30)
    lease = seats.acquire("workstation", user_id="alice").lease
    seats.acquire("laptop", user_id="bob")
    seats.release(lease.session_id)

    back = seats.acquire("workstation", user_id="alice", max_seats=1)
    assert back.reclaimed and back.used == 2
    with pytest.raises(NoSeatsAvailable):
        seats.acquire("desktop", user_id="carol", max_seats=1)


def test_a_reclaimed_seat_past_the_limit_is_an_overdraft_seat(make_seats):
    seats = make_seats(max_seats=1, overdraft=1, linger=30)
    seats.acquire("a", user_id="alice")
    extra = seats.acquire("b", user_id="bob").lease
    assert extra.overdraft
    seats.release(extra.session_id)
    assert seats.acquire("b", user_id="bob").lease.overdraft


# --- borrow limits --------------------------------------------------------------------------


def test_racing_borrows_past_the_licenses_borrow_limit_get_exactly_the_limit(make_seats):
    """20 live leases, at most 5 out on borrow: 20 threads borrow at once,
    exactly 5 win; a return frees a place, a re-borrow takes none."""
    seats = make_seats(max_seats=20, committed=True)
    leases = [seats.acquire(f"laptop-{n}", user_id=f"user-{n}").lease for n in range(20)]
    with Crew(20) as crew:

        def borrow(index: int):
            try:
                return seats.borrow(leases[index].session_id, seconds=3600, max_borrowed=5)
            except BorrowLimitReached as refused:
                assert (refused.scope, refused.limit, refused.borrowed) == ("license", 5, 5)
                return None

        won = [lease for lease in crew.run(borrow) if lease is not None]
    assert len(won) == 5
    assert sum(lease.is_borrowed for lease in seats.live()) == 5

    # Making a borrow longer is no new borrow; returning one frees its place.
    assert seats.borrow(won[0].session_id, seconds=7200, max_borrowed=5).is_borrowed
    others = [lease for lease in leases if lease.session_id not in {w.session_id for w in won}]
    with pytest.raises(BorrowLimitReached):
        seats.borrow(others[0].session_id, seconds=3600, max_borrowed=5)
    seats.release(won[0].session_id)
    assert seats.borrow(others[0].session_id, seconds=3600, max_borrowed=5).is_borrowed


def test_a_user_may_have_at_most_their_limit_out_on_borrow(make_seats):
    seats = make_seats(max_seats=5)
    alice = [seats.acquire(f"alice-{n}", user_id="alice").lease for n in range(3)]
    bob = seats.acquire("bob-1", user_id="bob").lease
    for lease in alice[:2]:
        seats.borrow(lease.session_id, seconds=3600, max_per_user=2)

    with pytest.raises(BorrowLimitReached) as refused:
        seats.borrow(alice[2].session_id, seconds=3600, max_per_user=2)
    assert (refused.value.scope, refused.value.borrowed) == ("user", 2)
    assert seats.borrow(bob.session_id, seconds=3600, max_per_user=2).is_borrowed  # another user's own
    assert not seats.live_lease(alice[2].session_id).is_borrowed  # nothing changed


def test_a_borrow_that_ended_no_longer_counts(make_seats):
    seats = make_seats(max_seats=2)
    first, second = (seats.acquire(f"m-{n}", user_id=f"u-{n}").lease for n in range(2))
    seats.borrow(first.session_id, seconds=1, max_borrowed=1)
    with pytest.raises(BorrowLimitReached):
        seats.borrow(second.session_id, seconds=3600, max_borrowed=1)
    time.sleep(1.1)
    assert seats.borrow(second.session_id, seconds=3600, max_borrowed=1).is_borrowed


# --- seats per user -------------------------------------------------------------------------


def test_per_user_a_users_two_machines_take_one_seat(make_seats):
    seats = make_seats(max_seats=1, per_user=True)
    desk = seats.acquire("desk", user_id="alice")
    laptop = seats.acquire("laptop", user_id="alice")
    assert desk.created and laptop.created and laptop.lease.session_id != desk.lease.session_id
    assert (desk.used, laptop.used, seats.used()) == (1, 1, 1)
    assert not laptop.lease.overdraft
    with pytest.raises(NoSeatsAvailable):
        seats.acquire("desk", user_id="bob")

    seats.release(desk.lease.session_id)
    assert seats.used() == 1  # the laptop still holds alice's seat
    with pytest.raises(NoSeatsAvailable):
        seats.acquire("other", user_id="bob")
    seats.release(laptop.lease.session_id)
    assert seats.used() == 0 and seats.acquire("other", user_id="bob").created


def test_per_user_the_machine_limit_refuses_a_users_next_machine(make_seats):
    seats = make_seats(max_seats=5, per_user=True, machines_per_user=2)
    seats.acquire("one", user_id="alice")
    seats.acquire("two", user_id="alice")
    with pytest.raises(UserMachineLimitReached) as refused:
        seats.acquire("three", user_id="alice")
    assert (refused.value.limit, refused.value.held) == (2, 2)
    assert seats.acquire("two", user_id="alice").created is False  # a machine it holds comes back
    assert seats.acquire("three", user_id="bob").created


def test_per_user_a_users_expired_lease_frees_their_seat_only_with_their_last(make_seats):
    seats = make_seats(max_seats=1, per_user=True)
    seats.acquire("desk", user_id="alice", ttl=1)
    seats.acquire("laptop", user_id="alice", ttl=60)
    time.sleep(1.1)
    assert seats.used() == 1
    with pytest.raises(NoSeatsAvailable):
        seats.acquire("x", user_id="bob")


def test_per_user_racing_users_on_many_machines_never_hold_more_seats_than_there_are(make_seats):
    """20 users with 10 machines each race for 5 seats: exactly 5 users hold
    leases, each on every machine they tried; nobody else holds one."""
    seats = make_seats(max_seats=5, committed=True, per_user=True)
    with Crew(200) as crew:

        def acquire(index: int):
            try:
                return seats.acquire(f"machine-{index % 10}", user_id=f"user-{index // 10}")
            except NoSeatsAvailable:
                return None

        granted = [outcome for outcome in crew.run(acquire) if outcome is not None]
    users = {outcome.lease.user_id for outcome in granted}
    assert len(users) == 5 and seats.used() == 5
    live = seats.live()
    assert {lease.user_id for lease in live} == users
    # Seats never free here: a user got one before they ran out, so none of
    # the winners' machines was refused, and no loser's was granted.
    assert len(live) == len(granted) == 5 * 10


def test_per_user_the_count_is_rebuilt_from_the_live_leases_when_lost(make_seats):
    seats = make_seats(max_seats=2, per_user=True)
    seats.acquire("a", user_id="alice")
    seats.acquire("b", user_id="alice")
    seats.acquire("c", user_id="bob")
    if seats.is_redis:
        seats.ledger.client.delete(seats.ledger.keys(seats.license_id)[KEY_NAMES.index("users")])
    assert seats.used() == 2
    with pytest.raises(NoSeatsAvailable):
        seats.acquire("d", user_id="carol")
    assert seats.acquire("d", user_id="alice").created
