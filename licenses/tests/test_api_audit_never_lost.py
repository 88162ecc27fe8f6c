"""No answer contradicts the state (DESIGN.md invariant 8, issue 12): on the
Redis ledger, with PostgreSQL cut or hung, an answer of 2xx has happened and
its audit event reaches the log once PostgreSQL is back and the drainer ran;
an answer of 503 changed nothing in the ledger; the chain verifies.

Each round answers every kind of call the seat endpoints make while
PostgreSQL is away: heartbeats of live leases (200), borrows and releases (200), a
heartbeat of a released lease (404, whose refusal is an event too) and an
acquire, which must read the license and the user (503)."""

from __future__ import annotations

import time

import pytest
from django.db import OperationalError, connections

from audit.events import Detail, Event
from audit.models import AuditLog
from audit.selectors import audit_chain_verify
from coditect.personas import api_client, tenant_member
from licenses.ledger.gateway import seat_ledger
from licenses.tests.conftest import acquire, drain_ledger_events
from licenses.tests.factories import LicenseFactory
from licenses.tests.test_api_hung_dependencies import postgresql_behind_a_proxy  # noqa: F401 - a fixture
from tenants.scope import tenant_scope
from tenants.tests.factories import TenantFactory

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

ROUNDS = 3
SEATS_PER_ROUND = 2


def live(license) -> set[str]:
    # Redis alone: the ledger's state is read while PostgreSQL is away.
    return {
        lease.session_id
        for lease in seat_ledger().live_leases(license_id=license.id, tenant_id=license.tenant_id)
    }


def audit_rows(license, action) -> list[dict]:
    with tenant_scope(license.tenant_id):
        return list(
            AuditLog.objects.filter(action=action, target_id=str(license.id)).values_list(
                "details", flat=True
            )
        )


def drain_when_back(license) -> int:
    """The drainer's next runs, until PostgreSQL answers it (after a hang this
    thread waits out one deadline before it reconnects)."""
    deadline = time.monotonic() + 30
    while True:
        # The connection the fault broke is dropped, as a task's end would.
        connections.close_all()
        try:
            return drain_ledger_events(license)
        except OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


class Answers:
    """Every answer given while PostgreSQL was away, with the ledger around it."""

    def __init__(self, license) -> None:
        self.license = license
        self.calls: list[tuple[str, str, int, set[str], set[str]]] = []

    def call(self, kind: str, session_id: str, request) -> int:
        before = live(self.license)
        status = request().status_code
        self.calls.append((kind, session_id, status, before, live(self.license)))
        return status

    def check(self) -> None:
        released = [sid for kind, sid, status, *_ in self.calls if kind == "release" and status == 200]
        borrowed = [sid for kind, sid, status, *_ in self.calls if kind == "borrow" and status == 200]
        refused = [sid for kind, sid, status, *_ in self.calls if kind == "heartbeat" and status == 404]
        for kind, sid, status, before, after in self.calls:
            assert status in (200, 404, 503), (kind, status)
            if status == 503:
                assert after == before, f"a 503 {kind} changed the ledger"
            if kind == "release" and status == 200:
                assert sid in before and sid not in after
        assert released and refused and borrowed, (
            self.calls
        )  # the rounds did answer while PostgreSQL was away
        # Exactly one row per answer: none lost, none twice.
        released_rows = [row[Detail.SESSION_ID] for row in audit_rows(self.license, Event.LEASE_RELEASED)]
        assert sorted(released_rows) == sorted(released)
        refused_rows = [
            row[Detail.SESSION_ID] for row in audit_rows(self.license, Event.LEASE_HEARTBEAT_REJECTED)
        ]
        assert sorted(refused_rows) == sorted(refused)
        borrowed_rows = [row[Detail.SESSION_ID] for row in audit_rows(self.license, Event.LEASE_BORROWED)]
        assert sorted(borrowed_rows) == sorted(borrowed)
        report = audit_chain_verify(tenant_id=self.license.tenant_id)
        assert report.ok, report


@pytest.mark.parametrize("fault", ["cut", "hang"])
def test_every_2xx_while_postgresql_is_away_has_its_audit_event_once_it_is_back(
    postgresql_behind_a_proxy,  # noqa: F811 - the fixture imported above
    settings,
    fault,
):
    if not settings.REDIS_URL:
        pytest.skip("needs Redis")
    settings.SEAT_LEDGER = "redis"
    # The license and the holder's standing come from the per-process caches,
    # as between two reads in production; with them cold, every call is 503.
    settings.LICENSE_CACHE_SECONDS = 600
    proxy = postgresql_behind_a_proxy
    tenant = TenantFactory()
    member = tenant_member(tenant)
    license = LicenseFactory(tenant=tenant, max_seats=SEATS_PER_ROUND + 1, borrow_limit_hours=24)
    answers = Answers(license)

    for round_number in range(ROUNDS):
        seats = []
        for n in range(SEATS_PER_ROUND):
            response = acquire(member, license, f"machine-{round_number}-{n}")
            assert response.status_code == 201, response.content
            seat = api_client(token=response.json()["token"])
            assert seat.post("/api/v1/licenses/heartbeat").status_code == 200  # the caches are warm
            seats.append((response.json()["session_id"], seat))

        away, back = (proxy.cut, proxy.restore) if fault == "cut" else (proxy.hang, proxy.resume)
        away()
        for session_id, seat in seats:
            beat = answers.call(
                "heartbeat", session_id, lambda seat=seat: seat.post("/api/v1/licenses/heartbeat")
            )
            assert beat == 200
            borrow = answers.call(
                "borrow",
                session_id,
                lambda seat=seat: seat.post("/api/v1/licenses/borrow", {"hours": 1}, format="json"),
            )
            assert borrow == 200
            assert (
                answers.call("release", session_id, lambda seat=seat: seat.delete("/api/v1/licenses/release"))
                == 200
            )
            again = answers.call(
                "heartbeat", session_id, lambda seat=seat: seat.post("/api/v1/licenses/heartbeat")
            )
            assert again == 404
        assert (
            answers.call("acquire", "", lambda: acquire(member, license, f"machine-{round_number}-new"))
            == 503
        )
        back()

        drain_when_back(license)
        assert drain_ledger_events(license) == 0  # a second drain finds nothing to record twice

    answers.check()
