"""No answer contradicts the state (DESIGN.md invariant 8, issue 12): on the
Redis ledger, with PostgreSQL cut or hung, an answer of 2xx has happened and
its audit event reaches the log once PostgreSQL is back and the drainer ran;
an answer of 503 changed nothing in the ledger; the chain verifies.

Each round answers every kind of call the seat endpoints make while
PostgreSQL is away: heartbeats of live leases (200), releases (200), a heartbeat of a released
lease (404, whose refusal is an event too), a borrow, which must hold the
seat durably in PostgreSQL (503, nothing changed), and an acquire, which
must read the license and the user (503).

Then the real server (gunicorn) with one of its workers SIGKILLed while
releases are in flight: a release that got no answer may or may not have
happened, but the ledger and the audit log agree on which."""

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
        assert released and refused, self.calls  # the rounds did answer while PostgreSQL was away
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
            assert borrow == 503  # a borrow is held in PostgreSQL (invariant 9)
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


# --- a worker killed mid-request ------------------------------------------------------------

KILL_ROUNDS = 4
RELEASES_PER_ROUND = 8


def gunicorn_workers(server) -> list[int]:
    pid = server.process.pid
    with open(f"/proc/{pid}/task/{pid}/children") as children:
        return [int(child) for child in children.read().split()]


def wait_for_workers(server, count: int) -> None:
    import requests

    deadline = time.monotonic() + 30
    while (
        len(gunicorn_workers(server)) < count
        or requests.get(f"{server.url}/ready", timeout=5).status_code != 200
    ):
        assert time.monotonic() < deadline, server.log_tail()
        time.sleep(0.2)


@pytest.fixture
def the_servers_ledger(live_server_e2e, settings):
    """This process reads and drains the live server's Redis ledger (its keys
    have a prefix of their own)."""
    from licenses import ledger as ledger_module
    from licenses.ledger.redis import RedisSeatLedger

    settings.SEAT_LEDGER = "redis"
    saved = ledger_module._ledgers.pop("redis", None)
    ledger_module._ledgers["redis"] = RedisSeatLedger.from_url(
        settings.REDIS_URL, socket_timeout=2, key_prefix=live_server_e2e.redis_key_prefix
    )
    yield
    ledger_module._ledgers.pop("redis", None)
    if saved is not None:
        ledger_module._ledgers["redis"] = saved


def test_every_2xx_has_its_audit_event_when_a_worker_is_killed_mid_request(
    live_server_e2e, the_servers_ledger, settings
):
    import os
    import random
    import signal
    import threading

    import requests

    from accounts.tests.factories import TEST_PASSWORD, TenantAdminFactory
    from licenses.services import license_create

    if not settings.REDIS_URL:
        pytest.skip("needs Redis")
    server = live_server_e2e
    tenant = TenantFactory()
    admin = TenantAdminFactory(tenant=tenant)
    license, key = license_create(tenant=tenant, max_seats=RELEASES_PER_ROUND * KILL_ROUNDS, lease_ttl=600)
    workers = len(gunicorn_workers(server))
    login = requests.post(
        f"{server.url}/api/v1/auth/login", json={"email": admin.email, "password": TEST_PASSWORD}, timeout=10
    )
    assert login.status_code == 200, login.text
    access = {"Authorization": f"Bearer {login.json()['access_token']}"}
    answered: dict[str, int | None] = {}  # session id -> the release's status, None: no answer
    killed = 0

    for round_number in range(KILL_ROUNDS):
        seats = []
        for n in range(RELEASES_PER_ROUND):
            body = {"license_key": key, "hardware_fingerprint": f"machine-{round_number}-{n}"}
            response = requests.post(
                f"{server.url}/api/v1/licenses/acquire", json=body, headers=access, timeout=10
            )
            assert response.status_code == 201, response.text
            seats.append((response.json()["session_id"], response.json()["token"]))

        def release(session_id: str, token: str) -> None:
            try:
                response = requests.delete(
                    f"{server.url}/api/v1/licenses/release",
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=10,
                )
                answered[session_id] = response.status_code
            except requests.RequestException:
                answered[session_id] = None

        threads = [threading.Thread(target=release, args=seat) for seat in seats]
        for thread in threads:
            thread.start()
        time.sleep(random.uniform(0, 0.02))
        os.kill(random.choice(gunicorn_workers(server)), signal.SIGKILL)
        killed += 1
        for thread in threads:
            thread.join(timeout=30)
        wait_for_workers(server, workers)

    assert killed == KILL_ROUNDS
    drain_ledger_events(license)
    still_live = live(license)
    released_rows = [row[Detail.SESSION_ID] for row in audit_rows(license, Event.LEASE_RELEASED)]
    assert len(released_rows) == len(set(released_rows)), "an event recorded twice"
    for session_id, status in answered.items():
        assert status in (200, 503, None), (session_id, status)
        if status == 200:
            assert session_id not in still_live and session_id in released_rows
        if status == 503:
            assert session_id in still_live and session_id not in released_rows
        # No answer: whichever way it went, the ledger and the log agree.
        assert (session_id in still_live) == (session_id not in released_rows), session_id
    report = audit_chain_verify(tenant_id=tenant.id)
    assert report.ok, report
