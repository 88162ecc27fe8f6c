"""The seat ledger's queue and group rules (issue 17), one suite for every
backend as test_ledger_contract.py is: tickets granted in queue order inside
the step that grants, abandoned tickets leaving by themselves, reservations
and group limits that hold while hundreds of acquirers race."""

from __future__ import annotations

import threading
import time

import pytest

from licenses.ledger import (
    AcquireResult,
    GroupLimitReached,
    NoSeatsAvailable,
    QueueFull,
    QueueTicket,
    SeatGroup,
    TicketNotFound,
)
from licenses.ledger.redis import KEY_NAMES
from licenses.tests import ledger_support
from licenses.tests.ledger_support import Crew

make_seats = ledger_support.make_seats  # the fixture, one license per backend


def _fill(seats, count: int) -> list:
    return [seats.acquire(f"holder-{index}", user_id=f"holder-{index}").lease for index in range(count)]


# --- the queue ------------------------------------------------------------------------------


def test_fifty_queued_clients_get_the_seats_in_queue_order_and_nobody_skips_ahead(make_seats):
    """5 seats held; 50 clients queue at once, then every round frees one or
    two seats and all 50 poll at once (with 20 plain acquirers racing them):
    the seats go to the head of the queue, in order, never to a plain
    acquirer, and never more than 5 are live."""
    seats = make_seats(max_seats=5, committed=True)
    holders = _fill(seats, 5)
    with Crew(70) as crew:
        queued = crew.run(
            lambda index: (
                seats.acquire(f"q-{index}", user_id=f"q-{index}", queue=True) if index < 50 else None
            )
        )[:50]
        assert all(isinstance(ticket, QueueTicket) and ticket.created for ticket in queued)
        # The positions are the order the queue took them in: 1 to 50, once each.
        assert sorted(ticket.position for ticket in queued) == list(range(1, 51))
        order = [index for index, _ in sorted(enumerate(queued), key=lambda pair: pair[1].position)]
        tickets = {index: ticket.ticket_id for index, ticket in enumerate(queued)}
        assert seats.queued() == 50

        granted: list[int] = []
        live = list(holders)
        freed_per_round = [1, 2] * 17  # 51 seats over the rounds: all 50 and a spare
        for freeing in freed_per_round:
            for _ in range(min(freeing, len(live))):
                seats.release(live.pop(0).session_id)

            def poll(index: int):
                if index >= 50:
                    try:
                        return seats.acquire(f"plain-{index}", user_id=f"plain-{index}")
                    except NoSeatsAvailable:
                        return None
                if index in granted:
                    return None
                return seats.acquire(f"q-{index}", user_id=f"q-{index}", ticket_id=tickets[index])

            outcomes = crew.run(poll)
            winners = [index for index, outcome in enumerate(outcomes) if isinstance(outcome, AcquireResult)]
            waiting = [index for index in order if index not in granted]
            # The head of the queue, as many as seats were freed; a plain
            # acquirer only once nobody waits.
            assert sorted(index for index in winners if index < 50) == sorted(waiting[:freeing])
            assert len([index for index in winners if index >= 50]) == max(0, freeing - len(waiting))
            for index in winners:
                outcome = outcomes[index]
                assert outcome.created and outcome.ticket_id == tickets.get(index)  # None: plain
                live.append(outcome.lease)
            granted += sorted((index for index in winners if index < 50), key=order.index)
            assert seats.used() <= 5
            assert ledger_support_live_count(seats) <= 5
            # Those still waiting moved up: the next one is at the head now.
            if len(granted) < 50:
                head = order[len(granted)]
                assert seats.acquire(f"q-{head}", user_id=f"q-{head}", ticket_id=tickets[head]).position == 1
        assert granted[:50] == order
        assert seats.queued() == 0


def ledger_support_live_count(seats) -> int:
    return len(seats.raw_live()[1])


def test_an_abandoned_ticket_leaves_the_queue_by_itself_within_its_ttl(make_seats):
    seats = make_seats(max_seats=1, queue_ttl=1)
    holder = _fill(seats, 1)[0]
    first = seats.acquire("first", user_id="first", queue=True)
    second = seats.acquire("second", user_id="second", queue=True)
    assert (first.position, second.position, second.waiting) == (1, 2, 2)
    # Polling keeps the second in the queue; the first is never polled again.
    time.sleep(0.6)
    assert seats.acquire("second", user_id="second", ticket_id=second.ticket_id).position == 2
    time.sleep(0.6)
    assert seats.queued() == 1
    with pytest.raises(TicketNotFound):
        seats.acquire("first", user_id="first", ticket_id=first.ticket_id)
    seats.release(holder.session_id)
    # The abandoned ticket holds nobody back: the second gets the seat.
    granted = seats.acquire("second", user_id="second", ticket_id=second.ticket_id)
    assert isinstance(granted, AcquireResult) and granted.ticket_id == second.ticket_id
    assert granted.waited.total_seconds() >= 1.0
    time.sleep(1.1)
    assert seats.queued() == 0


def test_a_free_seat_waits_for_the_head_of_the_queue_until_its_ticket_lapses(make_seats):
    seats = make_seats(max_seats=1, queue_ttl=1)
    holder = _fill(seats, 1)[0]
    head = seats.acquire("head", user_id="head", queue=True)
    seats.acquire("next", user_id="next", queue=True)
    seats.release(holder.session_id)
    # The seat is the head's: the second ticket, and a plain acquire, wait.
    assert isinstance(seats.acquire("next", user_id="next", queue=True), QueueTicket)
    with pytest.raises(NoSeatsAvailable):
        seats.acquire("plain", user_id="plain")
    assert isinstance(seats.acquire("head", user_id="head", ticket_id=head.ticket_id), AcquireResult)


def test_queueing_again_without_the_ticket_keeps_the_holders_place(make_seats):
    """A client whose 202 was lost asks again: same ticket, same place."""
    seats = make_seats(max_seats=1)
    _fill(seats, 1)
    first = seats.acquire("a", user_id="a", queue=True)
    seats.acquire("b", user_id="b", queue=True)
    again = seats.acquire("a", user_id="a", queue=True)
    assert (again.ticket_id, again.position, again.created) == (first.ticket_id, 1, False)
    # Another user on the same machine is another holder, with a ticket of their own.
    assert seats.acquire("a", user_id="c", queue=True).position == 3


def test_a_full_queue_refuses_a_new_ticket_and_an_unknown_ticket_is_not_found(make_seats):
    seats = make_seats(max_seats=1, queue_max=2)
    _fill(seats, 1)
    seats.acquire("a", user_id="a", queue=True)
    seats.acquire("b", user_id="b", queue=True)
    with pytest.raises(QueueFull) as full:
        seats.acquire("c", user_id="c", queue=True)
    assert (full.value.waiting, full.value.max_tickets) == (2, 2)
    with pytest.raises(TicketNotFound):
        seats.acquire("c", user_id="c", ticket_id="not-a-ticket")
    # A ticket is its holder's: another holder cannot poll with it.
    a = seats.acquire("a", user_id="a", queue=True)
    with pytest.raises(TicketNotFound):
        seats.acquire("b", user_id="b", ticket_id=a.ticket_id)


def test_a_holder_with_a_live_lease_gets_it_back_and_leaves_the_queue(make_seats):
    seats = make_seats(max_seats=1)
    mine = seats.acquire("a", user_id="a").lease
    again = seats.acquire("a", user_id="a", queue=True)
    assert isinstance(again, AcquireResult) and again.lease.session_id == mine.session_id
    assert seats.queued() == 0


def test_a_priority_groups_tickets_go_ahead_of_earlier_ones(make_seats):
    seats = make_seats(max_seats=1, groups=(SeatGroup("urgent", priority=5),))
    holder = _fill(seats, 1)[0]
    early = seats.acquire("early", user_id="early", queue=True)
    urgent = seats.acquire("urgent", user_id="urgent", queue=True, group="urgent")
    assert (urgent.position, seats.acquire("early", user_id="early", queue=True).position) == (1, 2)
    seats.release(holder.session_id)
    assert isinstance(seats.acquire("early", user_id="early", ticket_id=early.ticket_id), QueueTicket)
    assert seats.acquire("urgent", user_id="urgent", ticket_id=urgent.ticket_id, group="urgent").created


def test_the_queue_is_rebuilt_empty_when_lost_and_its_tickets_are_not_found(make_seats):
    seats = make_seats(max_seats=1)
    _fill(seats, 1)
    ticket = seats.acquire("a", user_id="a", queue=True)
    if not seats.is_redis:
        pytest.skip("the database keeps its tickets")
    keys = seats.ledger.keys(seats.license_id)
    seats.ledger.client.delete(*(keys[KEY_NAMES.index(name)] for name in ("queue", "tickets", "deadlines")))
    with pytest.raises(TicketNotFound):
        seats.acquire("a", user_id="a", ticket_id=ticket.ticket_id)
    assert seats.acquire("a", user_id="a", queue=True).position == 1


# --- reservations and group limits --------------------------------------------------------


GROUPS = (SeatGroup("a", reserve=3), SeatGroup("b", max=4))


def _group_of(index: int) -> str | None:
    return ("a", "b", None, None, "b")[index % 5]  # 40 of A, 80 of B, 80 others


def test_two_hundred_racing_acquirers_keep_the_reservation_and_the_group_limit(make_seats):
    """10 seats, A reserving 3, B at most 4: 200 acquirers of A, B and no
    group race, round after round, while a watcher reads the live leases: B
    never holds more than 4, the others never take A's unused reservation,
    and no more than 10 are live."""
    seats = make_seats(max_seats=10, committed=True, groups=GROUPS)
    seen: list[str] = []
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            live = seats.live()
            by_group = {name: sum(1 for lease in live if lease.group == name) for name in ("a", "b")}
            others = len(live) - by_group["a"] - by_group["b"]
            if by_group["b"] > 4 or len(live) > 10 or by_group["b"] + others > 10 - max(3, by_group["a"]):
                seen.append(f"{by_group} and {others} others")

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        with Crew(200) as crew:
            for round_ in range(4):
                # Every other round A stays home: its 3 seats must stay free.
                with_a = round_ % 2 == 0

                def acquire(index: int, round_: int = round_, with_a: bool = with_a):
                    group = _group_of(index)
                    if group == "a" and not with_a:
                        return None
                    try:
                        return group, seats.acquire(f"r{round_}-m{index}", user_id=f"u{index}", group=group)
                    except (NoSeatsAvailable, GroupLimitReached) as refused:
                        return group, refused

                outcomes = [outcome for outcome in crew.run(acquire) if outcome is not None]
                won = [group for group, outcome in outcomes if isinstance(outcome, AcquireResult)]
                # Every seat went, B's at most 4, A's reservation to A alone.
                assert len(won) == (10 if with_a else 7), won
                assert won.count("b") <= 4
                assert won.count("a") >= 3 if with_a else won.count("a") == 0
                assert seats.used() == len(won)
                if not with_a:
                    # The reservation was kept: A's three come in after the race.
                    for index in range(3):
                        seats.acquire(f"late-a-{index}", user_id=f"late-{index}", group="a")
                    with pytest.raises(NoSeatsAvailable):
                        seats.acquire("late-a-3", user_id="late-3", group="a")
                seats.release_every_live_lease()
    finally:
        stop.set()
        watcher.join(timeout=30)
    assert seen == []


def test_a_group_past_its_reservation_shares_the_rest_and_its_limit_refuses(make_seats):
    seats = make_seats(max_seats=4, groups=(SeatGroup("a", reserve=1, max=2),))
    assert seats.acquire("x", user_id="x").created
    assert seats.acquire("y", user_id="y").created
    assert seats.acquire("z", user_id="z").created
    # The fourth seat is A's reservation: nobody else's.
    with pytest.raises(NoSeatsAvailable):
        seats.acquire("w", user_id="w")
    assert seats.acquire("a1", user_id="a1", group="a").lease.group == "a"
    with pytest.raises(NoSeatsAvailable):
        seats.acquire("a2", user_id="a2", group="a")  # every seat is taken now
    seats.release(seats.acquire("x", user_id="x").lease.session_id)
    assert seats.acquire("a2", user_id="a2", group="a").created
    with pytest.raises(GroupLimitReached) as limit:
        seats.release(seats.acquire("y", user_id="y").lease.session_id)
        seats.acquire("a3", user_id="a3", group="a")
    assert (limit.value.group, limit.value.limit, limit.value.held) == ("a", 2, 2)


def test_per_user_a_groups_seats_are_its_users(make_seats):
    seats = make_seats(max_seats=5, per_user=True, groups=(SeatGroup("b", max=1),))
    seats.acquire("m1", user_id="bob", group="b")
    assert seats.acquire("m2", user_id="bob", group="b").created  # the same user's seat
    with pytest.raises(GroupLimitReached):
        seats.acquire("m3", user_id="carol", group="b")


def test_a_group_member_at_the_limit_queues_and_gets_a_seat_its_group_frees(make_seats):
    seats = make_seats(max_seats=3, groups=(SeatGroup("b", max=1),))
    b = seats.acquire("b1", user_id="b1", group="b").lease
    ticket = seats.acquire("b2", user_id="b2", group="b", queue=True)
    assert isinstance(ticket, QueueTicket)
    # A ticket that cannot take a seat holds back no one else.
    assert seats.acquire("other", user_id="other").created
    seats.release(b.session_id)
    assert seats.acquire("b2", user_id="b2", group="b", ticket_id=ticket.ticket_id).created


def test_the_group_counts_are_rebuilt_from_the_live_leases_when_lost(make_seats):
    seats = make_seats(max_seats=5, groups=(SeatGroup("b", max=2),))
    seats.acquire("b1", user_id="b1", group="b")
    seats.acquire("b2", user_id="b2", group="b")
    if seats.is_redis:
        seats.ledger.client.delete(seats.ledger.keys(seats.license_id)[KEY_NAMES.index("groups")])
    with pytest.raises(GroupLimitReached):
        seats.acquire("b3", user_id="b3", group="b")


# --- what the attack pass found ----------------------------------------------------------


def test_a_poll_with_a_stale_ticket_changes_nothing_not_even_a_lingering_seat(make_seats):
    seats = make_seats(max_seats=1, linger=300)
    blocker = _fill(seats, 1)[0]
    ticket = seats.acquire("mine", user_id="me", queue=True)
    seats.release(blocker.session_id, linger=0)
    granted = seats.acquire("mine", user_id="me", ticket_id=ticket.ticket_id)
    assert isinstance(granted, AcquireResult)
    assert seats.release(granted.lease.session_id).lingering
    with pytest.raises(TicketNotFound):
        seats.acquire("mine", user_id="me", ticket_id=ticket.ticket_id)
    # The seat still lingers for its holder: nobody else gets it.
    assert [lease.lingering for lease in seats.live()] == [True]
    with pytest.raises(NoSeatsAvailable):
        seats.acquire("other", user_id="other")


def test_reservations_past_a_lowered_seat_count_lock_no_member_out_of_their_own(make_seats):
    groups = tuple(SeatGroup(name, reserve=2) for name in ("a", "b", "c"))
    seats = make_seats(max_seats=2, groups=groups)
    # (6 seats reserved on 2, as after max_seats was lowered under them.)
    with pytest.raises(NoSeatsAvailable) as refused:
        seats.acquire("stranger", user_id="stranger")
    assert refused.value.held_for == "reserved"
    assert seats.acquire("a1", user_id="a1", group="a").created
    assert seats.acquire("b1", user_id="b1", group="b").created
    with pytest.raises(NoSeatsAvailable):
        seats.acquire("c1", user_id="c1", group="c")  # every seat is in use now


def test_a_refusal_says_why_when_seats_are_free_for_others(make_seats):
    seats = make_seats(max_seats=2)
    holder = _fill(seats, 2)[0]
    seats.acquire("waiting", user_id="waiting", queue=True)
    seats.release(holder.session_id)
    with pytest.raises(NoSeatsAvailable) as refused:
        seats.acquire("plain", user_id="plain")
    assert (refused.value.held_for, refused.value.used) == ("queue", 1)
    seats.acquire("waiting", user_id="waiting", queue=True)
    with pytest.raises(NoSeatsAvailable) as full:
        seats.acquire("plain", user_id="plain")
    assert full.value.held_for == ""


def test_a_users_second_machine_sharing_their_seat_counts_in_no_group(make_seats):
    seats = make_seats(max_seats=3, per_user=True, groups=(SeatGroup("b", reserve=1, max=0),))
    seats.acquire("m-1", user_id="u-1")
    shared = seats.acquire("m-2", user_id="u-1", group="b")  # the machine is b's, the seat u-1's
    assert shared.created and shared.lease.group is None
    # b's reservation is intact: one seat left for others, none taken from b.
    assert seats.acquire("x", user_id="x").created
    with pytest.raises(NoSeatsAvailable):
        seats.acquire("y", user_id="y")


def test_dropping_a_users_or_a_machines_tickets_frees_the_queue_behind_them(make_seats):
    seats = make_seats(max_seats=1)
    holder = _fill(seats, 1)[0]
    seats.acquire("m-1", user_id="blocked", queue=True)
    seats.acquire("m-2", user_id="blocked", queue=True)
    seats.acquire("bad-machine", user_id="someone", queue=True)
    seats.acquire("m-3", user_id="next", queue=True)
    assert seats.call("tickets_drop", user_id="blocked") == 2
    assert seats.call("tickets_drop", fingerprint="bad-machine") == 1
    assert seats.queued() == 1
    seats.release(holder.session_id)
    assert seats.acquire("m-3", user_id="next", queue=True).created
