"""A lease belongs to one user on one machine (DESIGN.md invariant 10), over
HTTP on both ledgers: two users of one tenant on one fingerprint hold two
leases, and neither can heartbeat, borrow or release the other's."""

from __future__ import annotations

import pytest

from coditect.personas import api_client
from licenses.signing import license_token_verify
from licenses.tests.conftest import acquire, error_code, live_sessions

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]

SHARED_MACHINE = "shared-workstation-01"


def test_two_users_on_one_machine_hold_two_leases_and_each_gets_back_only_their_own(
    ledger, admin, member, license
):
    mine = acquire(member, license, SHARED_MACHINE)
    theirs = acquire(admin, license, SHARED_MACHINE)

    assert (mine.status_code, theirs.status_code) == (201, 201), theirs.content
    assert mine.json()["session_id"] != theirs.json()["session_id"]
    assert theirs.json()["seats"] == {"used": 2, "max": 2}
    for answer in (mine, theirs):
        claims = license_token_verify(answer.json()["token"])
        assert (claims["sid"], claims["fp"]) == (answer.json()["session_id"], SHARED_MACHINE)

    for persona, first in ((member, mine), (admin, theirs)):
        again = acquire(persona, license, SHARED_MACHINE)
        assert again.status_code == 200
        assert again.json()["session_id"] == first.json()["session_id"]
        assert license_token_verify(again.json()["token"])["sid"] == first.json()["session_id"]
    assert live_sessions(ledger, license) == sorted([mine.json()["session_id"], theirs.json()["session_id"]])


def test_each_users_token_heartbeats_borrows_and_releases_their_own_lease_only(
    ledger, admin, member, license
):
    mine = acquire(member, license, SHARED_MACHINE).json()
    theirs = acquire(admin, license, SHARED_MACHINE).json()
    my_seat, their_seat = api_client(token=mine["token"]), api_client(token=theirs["token"])

    for seat, checkout in ((my_seat, mine), (their_seat, theirs)):
        beat = seat.post("/api/v1/licenses/heartbeat")
        assert (beat.status_code, beat.json()["session_id"]) == (200, checkout["session_id"])
    borrowed = my_seat.post("/api/v1/licenses/borrow", {"hours": 2}, format="json")
    assert (borrowed.status_code, borrowed.json()["session_id"]) == (200, mine["session_id"])

    released = my_seat.delete("/api/v1/licenses/release")
    assert released.json() == {"session_id": mine["session_id"], "released": True, "linger_until": None}
    assert live_sessions(ledger, license) == [theirs["session_id"]]
    # The other user's lease is untouched: it still beats, and their token
    # is the only one that acts on it.
    assert their_seat.post("/api/v1/licenses/heartbeat").json()["session_id"] == theirs["session_id"]
    for call in (
        lambda: my_seat.post("/api/v1/licenses/heartbeat"),
        lambda: my_seat.post("/api/v1/licenses/borrow", {"hours": 2}, format="json"),
        lambda: my_seat.delete("/api/v1/licenses/release"),
    ):
        response = call()
        assert (response.status_code, error_code(response)) == (404, "session_not_found")
    assert live_sessions(ledger, license) == [theirs["session_id"]]

    # Without a license token, a user's own sign-in touches no session at all.
    for response in (
        member.client.post("/api/v1/licenses/heartbeat"),
        member.client.delete("/api/v1/licenses/release"),
    ):
        assert response.status_code == 401, response.content
    assert live_sessions(ledger, license) == [theirs["session_id"]]


def test_status_shows_each_user_their_own_lease_on_a_shared_machine(ledger, admin, member, license):
    mine = acquire(member, license, SHARED_MACHINE).json()
    theirs = acquire(admin, license, SHARED_MACHINE).json()

    (as_member,) = member.client.get("/api/v1/licenses/status", {"license_id": str(license.id)}).json()[
        "licenses"
    ]
    (as_admin,) = admin.client.get("/api/v1/licenses/status", {"license_id": str(license.id)}).json()[
        "licenses"
    ]

    assert as_member["seats"] == as_admin["seats"] == {"used": 2, "max": 2}
    assert [(lease["session_id"], lease["user_id"]) for lease in as_member["leases"]] == [
        (mine["session_id"], str(member.user.pk))
    ]
    assert sorted((lease["session_id"], lease["user_id"]) for lease in as_admin["leases"]) == sorted(
        [(mine["session_id"], str(member.user.pk)), (theirs["session_id"], str(admin.user.pk))]
    )
