"""A stateful property test of the seat ledger (issue 17), on every backend:
Hypothesis drives random sequences of acquire (plain and queued), heartbeat,
release (the client's, which lingers, and an operator's, which does not),
borrow under a borrow limit, changes of the seat limit and of the group
rules, waits past short leases' expiry and a ledger restart, with overdraft,
linger, the queue and a group rule (a reservation and a limit) on, seats per
machine or per user, against a model of what the ledger must hold; after
every step the ledger's own answers are checked against DESIGN.md's
invariants.

Time is the real clock (the ledgers' own: Redis TIME, the database's now()):
a lease whose expiry is within MARGIN of now may or may not be live, and the
model only asserts what is certain. `make test` runs a bounded number of
examples; CODITECT_LEDGER_MODEL_EXAMPLES=200 runs more by hand.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from licenses.ledger import (
    BorrowLimitReached,
    GroupLimitReached,
    NoSeatsAvailable,
    QueueFull,
    QueueTicket,
    SeatGroup,
    SessionNotFound,
)
from licenses.models import License
from licenses.tests import ledger_support
from tenants.scope import tenant_scope

make_seats = ledger_support.make_seats  # the fixture, one license per backend

OVERDRAFT = 1
LINGER = 30
BORROW_MAX = 2
MARGIN = 0.4  # seconds either side of an expiry the model does not decide
USERS = ["u0", "u1", "u2"]
MACHINES = ["m0", "m1", "m2"]
# u0 is the group's: it may reserve a seat, and holds at most GROUP_MAX.
GROUP, GROUP_MAX = "design", 2
MEMBERS = {"u0"}
QUEUE_MAX = 4
EXAMPLES = int(os.environ.get("CODITECT_LEDGER_MODEL_EXAMPLES", "6"))


@dataclass
class Held:
    holder: tuple[str, str]
    expires: float  # time.monotonic() seconds
    lingering: bool = False
    borrowed: bool = False

    def certainly_live(self, now: float) -> bool:
        return self.expires > now + MARGIN

    def certainly_gone(self, now: float) -> bool:
        return self.expires < now - MARGIN


def ledger_machine(seats) -> type[RuleBasedStateMachine]:
    class LedgerModel(RuleBasedStateMachine):
        @initialize()
        def start(self):
            seats.release_every_live_lease()
            for user in USERS:  # an earlier example's tickets would wait on in the ledger
                seats.call("tickets_drop", user_id=user)
            self.max_seats = 3
            self.limit_set(3)
            self.held: dict[str, Held] = {}
            self.waits = 0
            # The holder's queue ticket, as the ledger last named it.
            self.tickets: dict[tuple[str, str], str] = {}
            self.reserve = 1
            seats.groups = (SeatGroup(GROUP, reserve=self.reserve, max=GROUP_MAX),)

        # --- helpers ----------------------------------------------------------------

        def now(self) -> float:
            return time.monotonic()

        def forget_gone(self) -> None:
            now = self.now()
            for sid in [sid for sid, held in self.held.items() if held.certainly_gone(now)]:
                del self.held[sid]

        def limit_set(self, limit: int) -> None:
            if not seats.is_redis:  # the database ledger reads the limit under the row's lock too
                with tenant_scope(seats.tenant_id):
                    License.objects.filter(pk=seats.license_id).update(max_seats=limit)

        def pick(self, index: int) -> str | None:
            """A session the model holds, chosen by a drawn number (so that what
            is drawn does not depend on what the clock let live)."""
            sids = sorted(self.held)
            return sids[index % len(sids)] if sids else None

        def seats_of(self, helds) -> set:
            """The seats some leases hold: one each, or one per user (seats per user)."""
            if seats.per_user:
                return {held.holder[0] for held in helds}
            return {id(held) for held in helds}

        def of_holder(self, holder) -> list[tuple[str, Held]]:
            return [(sid, held) for sid, held in self.held.items() if held.holder == holder]

        # --- rules ------------------------------------------------------------------

        @rule(
            user=st.sampled_from(USERS),
            machine=st.sampled_from(MACHINES),
            ttl=st.sampled_from([1, 60]),
            queue=st.booleans(),
        )
        def acquire(self, user, machine, ttl, queue):
            self.forget_gone()
            holder = (user, machine)
            before = self.now()
            mine = self.of_holder(holder)
            group = GROUP if user in MEMBERS else None
            try:
                result = seats.acquire(
                    machine, user_id=user, ttl=ttl, max_seats=self.max_seats, group=group, queue=queue
                )
            except QueueFull as full:
                assert queue and full.waiting >= QUEUE_MAX and holder not in self.tickets
                return
            except GroupLimitReached as refused:
                # Only the group's member, with its max held (or about to be).
                assert group == GROUP and refused.limit == GROUP_MAX and refused.held >= GROUP_MAX
                return
            except NoSeatsAvailable as refused:
                # Refused only when the seats (and overdraft) may all be taken:
                # leases, or per user the users holding one (never this user).
                # A refusal without a queue; a seat free may be the group's
                # reservation, or wait for a ticket ahead.
                assert not queue
                assert refused.used >= self.max_seats + OVERDRAFT or group is None or self.tickets
                assert not any(held.certainly_live(before) and not held.lingering for _, held in mine)
                if seats.per_user:
                    assert not any(
                        h.holder[0] == user and h.certainly_live(before) for h in self.held.values()
                    )
                return
            if isinstance(result, QueueTicket):
                # Queued: no seat in use of this holder's, and one ticket per holder.
                assert queue and 1 <= result.position <= result.waiting <= QUEUE_MAX
                assert not any(held.certainly_live(before) and not held.lingering for _, held in mine)
                if not result.created:
                    assert self.tickets.get(holder) == result.ticket_id
                self.tickets[holder] = result.ticket_id
                return
            lease = result.lease
            if result.ticket_id is not None:
                # A seat for a ticket goes to the holder who waited with it.
                assert self.tickets.get(holder) == result.ticket_id
            self.tickets.pop(holder, None)
            assert (lease.user_id, lease.fingerprint) == holder
            assert not lease.lingering
            in_use = [(sid, held) for sid, held in mine if held.certainly_live(before) and not held.lingering]
            if in_use:  # invariant 2: the holder's live lease comes back, no second seat
                assert not result.created and lease.session_id == in_use[0][0]
            # Per user, another of this user's machines may hold the seat already.
            others = [h for h in self.held.values() if h.holder[0] == user and h.holder != holder]
            shares = seats.per_user and any(h.certainly_live(before) for h in others)
            unsure = seats.per_user and any(
                not h.certainly_live(before) and not h.certainly_gone(before) for h in others
            )
            if result.created and not unsure and not result.reclaimed:
                # A new seat counts under the holder's group; a machine sharing
                # its user's seat, in none.
                assert lease.group == (None if shares else group)
            if result.created and not unsure:
                # A new seat only within the limit (a reclaimed one is a seat held already),
                # less the group's unused reservation for anyone outside it.
                assert result.reclaimed or shares or result.used <= self.max_seats + OVERDRAFT
                if shares:
                    assert not lease.overdraft
                else:
                    assert lease.overdraft == (result.used > self.max_seats) or result.reclaimed
            if result.created:
                for sid, held in mine:
                    if held.lingering:
                        assert result.reclaimed
                        del self.held[sid]
                assert lease.session_id not in self.held
                self.held[lease.session_id] = Held(holder, before + ttl)
            else:
                self.held[lease.session_id].expires = max(self.held[lease.session_id].expires, before + ttl)

        @rule(index=st.integers(min_value=0, max_value=99))
        def heartbeat(self, index):
            if (sid := self.pick(index)) is None:
                return
            held = self.held[sid]
            before = self.now()
            try:
                lease = seats.heartbeat(sid, ttl=60)
            except SessionNotFound:
                assert held.lingering or not held.certainly_live(before)
                if not held.lingering:  # a lingering lease still holds its seat
                    del self.held[sid]
                return
            assert not held.lingering and not held.certainly_gone(before)
            assert not lease.lingering
            held.expires = max(held.expires, before + 60)

        @rule(index=st.integers(min_value=0, max_value=99), operator=st.booleans())
        def release(self, index, operator):
            if (sid := self.pick(index)) is None:
                return
            held = self.held[sid]
            before = self.now()
            try:
                lease = seats.release(sid, linger=0 if operator else LINGER)
            except SessionNotFound:
                # Invariant 3: only a session that is not live (or lingers, to its client).
                assert (held.lingering and not operator) or not held.certainly_live(before)
                if not held.lingering or not held.certainly_live(before):
                    del self.held[sid]
                return
            assert not held.certainly_gone(before)
            if operator:
                del self.held[sid]
            else:
                assert not held.lingering and lease.lingering
                held.lingering, held.borrowed = True, False
                held.expires = before + LINGER

        @rule(index=st.integers(min_value=0, max_value=99))
        def borrow(self, index):
            if (sid := self.pick(index)) is None:
                return
            held = self.held[sid]
            before = self.now()
            try:
                lease = seats.borrow(sid, seconds=600, max_borrowed=BORROW_MAX)
            except SessionNotFound:
                assert held.lingering or not held.certainly_live(before)
                if not held.lingering:
                    del self.held[sid]
                return
            except BorrowLimitReached as full:
                assert full.borrowed >= BORROW_MAX and not held.borrowed
                return
            assert not held.lingering and lease.is_borrowed
            held.borrowed = True
            held.expires = max(held.expires, before + 600)

        @rule(reserve=st.integers(min_value=0, max_value=2))
        def change_the_group_rules(self, reserve):
            # The tenant admin moves the reservation; the limit stays.
            self.reserve = reserve
            seats.groups = (SeatGroup(GROUP, reserve=reserve, max=GROUP_MAX),)

        @rule(limit=st.integers(min_value=1, max_value=4))
        def change_the_seat_limit(self, limit):
            # Invariant 6: lowering it ends no live lease; acquire refuses until under.
            self.max_seats = limit
            self.limit_set(limit)

        @precondition(lambda self: self.waits < 2)
        @rule()
        def wait_past_the_short_leases(self):
            self.waits += 1
            time.sleep(1 + 2 * MARGIN)
            self.forget_gone()

        @rule()
        def restart_the_ledger(self):
            if seats.is_redis:
                # Restarted empty: this ledger's tests keep no borrow durably,
                # so every lease is gone with it (invariant 9 restores borrows
                # from PostgreSQL in production: test_ledger_redis_loss.py).
                seats.ledger.client.delete(*seats.ledger.keys(seats.license_id))
                self.held.clear()
                self.tickets.clear()  # the queue lives in the ledger, and goes with it
            # The database ledger's leases are rows: a restart loses nothing.

        # --- invariants -------------------------------------------------------------

        @invariant()
        def the_ledger_agrees_with_itself_and_the_model(self):
            now = self.now()
            live = seats.live()
            after = self.now()
            in_use = len({lease.user_id for lease in live}) if seats.per_user else len(live)
            assert seats.used() == in_use or any(
                abs(held.expires - now) < MARGIN for held in self.held.values()
            )
            # One live lease per holder (invariant 2, 10).
            holders = [(lease.user_id, lease.fingerprint) for lease in live]
            assert len(holders) == len(set(holders)), holders
            # Never oversold past what was allowed when each was granted.
            assert in_use <= max(4, self.max_seats) + OVERDRAFT
            # Every lease the ledger holds is one the model knows (no phantom
            # seat), and every lease the model is sure of is there, as it says.
            by_id = {lease.session_id: lease for lease in live}
            assert set(by_id) <= set(self.held), set(by_id) - set(self.held)
            for sid, held in self.held.items():
                if held.certainly_live(after):
                    assert sid in by_id, (sid, held)
                    assert by_id[sid].lingering == held.lingering
                if held.certainly_gone(now):
                    assert sid not in by_id
            borrowed = [lease for lease in live if lease.is_borrowed]
            assert len(borrowed) <= BORROW_MAX
            # The group never holds more than its max; the queue never more than its tickets.
            grouped = [lease for lease in live if lease.group == GROUP]
            assert len(self.seats_of_leases(grouped)) <= GROUP_MAX
            assert all(lease.user_id in MEMBERS for lease in grouped)
            assert seats.queued() <= QUEUE_MAX

        def seats_of_leases(self, leases) -> set:
            if seats.per_user:
                return {lease.user_id for lease in leases}
            return {lease.session_id for lease in leases}

    return LedgerModel


@pytest.mark.parametrize("per_user", [False, True], ids=["per-machine", "per-user"])
def test_random_sequences_of_every_operation_keep_every_invariant(make_seats, per_user):
    seats = make_seats(
        max_seats=3, overdraft=OVERDRAFT, linger=LINGER, per_user=per_user, queue_max=QUEUE_MAX, queue_ttl=60
    )
    machine = ledger_machine(seats)
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
            derandomize=os.environ.get("CODITECT_LEDGER_MODEL_EXAMPLES") is None,
        ),
    )
