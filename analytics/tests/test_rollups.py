"""Usage rollups from scripted events over two days, against hand-computed figures."""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime, timedelta

import pytest

from accounts.models import Role
from accounts.tests.factories import UserFactory
from analytics.models import DailyUsage, HourlyUsage, UsageRollup
from analytics.services import usage_rollup_license
from analytics.tests.conftest import EventScript
from licenses.leases import lease_acquire, lease_release
from licenses.tests.factories import LicenseFactory
from tenants.scope import tenant_scope

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]

DAY1 = datetime(2026, 3, 2, tzinfo=UTC)
DAY2 = DAY1 + timedelta(days=1)


def at(day: datetime, hhmm: str) -> datetime:
    hours, minutes = hhmm.split(":")
    return day + timedelta(hours=int(hours), minutes=int(minutes))


def figures(model, license) -> dict:
    with tenant_scope(license.tenant_id):
        return {
            row.period_start: {name: getattr(row, name) for name in UsageRollup.FIGURES}
            for row in model.objects.filter(license=license).order_by("period_start")
        }


def row(
    peak=0, acq=0, denials=None, users=0, machines=0, ended=0, seconds=0.0, over_peak=0, over_seconds=0.0
) -> dict:
    denials = denials or {}
    return {
        "peak_seats": peak,
        "acquisitions": acq,
        "denials": sum(denials.values()),
        "denials_by_code": denials,
        "distinct_users": users,
        "distinct_machines": machines,
        "sessions_ended": ended,
        "session_seconds": float(seconds),
        "overdraft_peak": over_peak,
        "overdraft_seconds": float(over_seconds),
        "queued_acquisitions": 0,
        "queue_wait_seconds": 0.0,
        "queue_wait_max": 0.0,
    }


@pytest.fixture
def scene(acme, globex):
    license = LicenseFactory(tenant=acme, max_seats=2)
    other = LicenseFactory(tenant=acme, max_seats=2)
    u1, u2, u3 = (UserFactory(tenant=acme, role=Role.USER) for _ in range(3))
    return license, other, u1, u2, u3


def script_day1_morning(script, u1, u2, u3):
    script.acquire(at(DAY1, "09:10"), "S1", u1, "m1")
    script.acquire(at(DAY1, "09:20"), "S2", u2, "m2")
    script.deny(at(DAY1, "09:30"), "no_seats_available", u3, "m3")
    script.acquire(at(DAY1, "09:40"), "S1", u1, "m1", created=False)  # a renewal, not an acquisition
    script.end(at(DAY1, "09:50"), "lease.released", "S1", u1, "m1", at(DAY1, "09:10"))
    script.acquire(at(DAY1, "10:05"), "S3", u3, "m3")


def script_the_rest(script, u1, u2, u3):
    # S2 stopped beating: it expired at 10:30; the sweep recorded it at 10:45.
    script.expire(at(DAY1, "10:45"), "S2", u2, "m2", at(DAY1, "09:20"), at(DAY1, "10:30"))
    script.deny(at(DAY1, "11:00"), "license_suspended", u1, "m1")
    script.acquire(at(DAY1, "23:30"), "S4", u1, "m1")
    script.end(
        at(DAY2, "00:15"), "lease.ended", "S3", u3, "m3", at(DAY1, "10:05"), reason="license_suspended"
    )
    script.end(at(DAY2, "01:00"), "lease.force_released", "S4", u1, "m1", at(DAY1, "23:30"))
    script.acquire(at(DAY2, "02:00"), "S5", u2, "m2")
    script.deny(at(DAY2, "02:00"), "fingerprint_not_allowed", u3, "m9")
    script.deny(at(DAY2, "02:30"), "license_not_found", u3, "m9", license=False)  # names no license
    script.end(at(DAY2, "03:00"), "lease.released", "S5", u2, "m2", at(DAY2, "02:00"))


EXPECTED_HOURS = {
    at(DAY1, "09:00"): row(
        peak=2, acq=2, denials={"no_seats_available": 1}, users=2, machines=2, ended=1, seconds=2400
    ),
    at(DAY1, "10:00"): row(peak=2, acq=1, users=2, machines=2, ended=1, seconds=4200),
    at(DAY1, "11:00"): row(peak=1, denials={"license_suspended": 1}, users=1, machines=1),
    **{at(DAY1, f"{hour}:00"): row(peak=1, users=1, machines=1) for hour in range(12, 23)},
    at(DAY1, "23:00"): row(peak=2, acq=1, users=2, machines=2),
    at(DAY2, "00:00"): row(peak=2, users=2, machines=2, ended=1, seconds=51000),
    # S4 ended exactly at 01:00: it held no seat in this hour, but ended in it.
    at(DAY2, "01:00"): row(ended=1, seconds=5400),
    at(DAY2, "02:00"): row(peak=1, acq=1, denials={"fingerprint_not_allowed": 1}, users=1, machines=1),
    at(DAY2, "03:00"): row(ended=1, seconds=3600),
}
EXPECTED_DAYS = {
    DAY1: row(
        peak=2,
        acq=4,
        denials={"license_suspended": 1, "no_seats_available": 1},
        users=3,
        machines=3,
        ended=2,
        seconds=2400 + 4200,
    ),
    DAY2: row(
        peak=2,
        acq=1,
        denials={"fingerprint_not_allowed": 1},
        users=3,
        machines=3,
        ended=3,
        seconds=51000 + 5400 + 3600,
    ),
}


def rollup(license, now):
    return usage_rollup_license(
        license_id=license.id, tenant_id=license.tenant_id, start=DAY1, end=DAY2 + timedelta(days=1), now=now
    )


def test_two_days_of_events_roll_up_to_the_hand_computed_figures(scene):
    license, other, u1, u2, u3 = scene
    script = EventScript(license)
    script_day1_morning(script, u1, u2, u3)
    script_the_rest(script, u1, u2, u3)
    # Another license's events count for that license only.
    EventScript(other).acquire(at(DAY1, "09:15"), "X1", u1, "m1")

    rollup(license, now=DAY2 + timedelta(days=1, hours=1))

    assert figures(HourlyUsage, license) == EXPECTED_HOURS
    assert figures(DailyUsage, license) == EXPECTED_DAYS
    with tenant_scope(license.tenant_id):
        assert DailyUsage.objects.get(license=license, period_start=DAY2).avg_session_seconds == 20000.0


def test_running_the_rollup_twice_changes_nothing(scene):
    license, _, u1, u2, u3 = scene
    script = EventScript(license)
    script_day1_morning(script, u1, u2, u3)
    script_the_rest(script, u1, u2, u3)
    now = DAY2 + timedelta(days=1, hours=1)

    rollup(license, now=now)
    with tenant_scope(license.tenant_id):
        first_ids = sorted(HourlyUsage.objects.values_list("id", flat=True))
    first = (figures(HourlyUsage, license), figures(DailyUsage, license))
    rollup(license, now=now)

    assert (figures(HourlyUsage, license), figures(DailyUsage, license)) == first
    with tenant_scope(license.tenant_id):
        assert sorted(HourlyUsage.objects.values_list("id", flat=True)) == first_ids


def test_a_rollup_run_again_later_corrects_what_it_could_not_know_yet(scene):
    license, _, u1, u2, u3 = scene
    script = EventScript(license)
    script_day1_morning(script, u1, u2, u3)

    # At 10:40 S2 has stopped beating but its expiry is not on record yet.
    rollup(license, now=at(DAY1, "10:40"))
    early = figures(HourlyUsage, license)
    assert early[at(DAY1, "10:00")]["sessions_ended"] == 0

    script_the_rest(script, u1, u2, u3)
    rollup(license, now=DAY2 + timedelta(days=1, hours=1))

    assert figures(HourlyUsage, license) == EXPECTED_HOURS
    assert figures(DailyUsage, license) == EXPECTED_DAYS


def test_a_live_lease_counts_from_the_ledger(acme, member, license_signing_key):
    license = LicenseFactory(tenant=acme, max_seats=3)
    with tenant_scope(acme.id):
        checkout = lease_acquire(user=member.user, license_key=license.key, fingerprint="machine-live-1")
        lease_acquire(user=member.user, license_key=license.key, fingerprint="machine-live-2")
        # The Redis ledger stamps its release in whole milliseconds, the audit
        # row of an acquire in microseconds: a release in the same millisecond
        # as the second acquire would be recorded before it.
        time.sleep(0.002)
        lease_release(claims={"sub": str(license.id), "tid": str(acme.id), "sid": checkout.lease.session_id})

    from django.utils import timezone

    now = timezone.now() + timedelta(seconds=1)
    usage_rollup_license(
        license_id=license.id, tenant_id=acme.id, start=now - timedelta(hours=1), end=now, now=now
    )

    (day,) = figures(DailyUsage, license).values()
    assert (day["acquisitions"], day["peak_seats"], day["sessions_ended"]) == (2, 2, 1)
    assert (day["distinct_users"], day["distinct_machines"]) == (1, 2)


@pytest.fixture
def ledger_that_does_not_answer(settings, monkeypatch):
    """A Redis seat ledger whose port nobody listens on any more."""
    from licenses import ledger as ledgers
    from licenses.ledger.redis import RedisSeatLedger

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.SEAT_LEDGER = "redis"
    monkeypatch.setitem(
        ledgers._ledgers, "redis", RedisSeatLedger.from_url(f"redis://127.0.0.1:{port}/0", socket_timeout=0.5)
    )


def test_a_rollup_of_the_past_does_not_need_the_ledger(scene, ledger_that_does_not_answer, caplog):
    license, _, u1, u2, u3 = scene
    script = EventScript(license)
    script_day1_morning(script, u1, u2, u3)
    script_the_rest(script, u1, u2, u3)

    rollup(license, now=DAY2 + timedelta(days=1, hours=1))

    assert figures(HourlyUsage, license) == EXPECTED_HOURS
    assert figures(DailyUsage, license) == EXPECTED_DAYS
    assert "the seat ledger does not answer" in caplog.text


def test_overdraft_is_the_seats_held_past_the_limit_whatever_the_marks_say():
    """Max 1 seat: A 10:00-10:40, B 10:10-10:20 (granted past the limit), C
    10:30-10:50 (granted past it too: A still held its seat). At most one
    seat past the limit at once, for 10 + 10 minutes."""
    from analytics.services import Session, Sources, usage_figures

    day = datetime(2026, 3, 2, tzinfo=UTC)
    sessions = [
        Session("a", start=at(day, "10:00"), end=at(day, "10:40")),
        Session("b", start=at(day, "10:10"), end=at(day, "10:20")),
        Session("c", start=at(day, "10:30"), end=at(day, "10:50")),
    ]
    sources = Sources(sessions=sessions, acquisitions=[], denials=[])
    hour = usage_figures(sources, at(day, "10:00"), at(day, "11:00"), at(day, "12:00"), max_seats=1)
    assert (hour["peak_seats"], hour["overdraft_peak"], hour["overdraft_seconds"]) == (2, 1, 1200.0)
    roomy = usage_figures(sources, at(day, "10:00"), at(day, "11:00"), at(day, "12:00"), max_seats=2)
    assert (roomy["overdraft_peak"], roomy["overdraft_seconds"]) == (0, 0.0)
    # An open session runs to `now`: the hour in progress counts up to it.
    live = Sources(
        sessions=[*sessions[:1], Session("d", start=at(day, "10:30"))], acquisitions=[], denials=[]
    )
    now = usage_figures(live, at(day, "10:00"), at(day, "11:00"), at(day, "10:45"), max_seats=1)
    assert now["overdraft_seconds"] == 600.0
