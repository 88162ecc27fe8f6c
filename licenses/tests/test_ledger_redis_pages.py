"""The Redis ledger's paging indexes (by_created, by_user): kept beside `live`
by every script, and rebuilt by the page script when they lag it."""

from __future__ import annotations

import time
import uuid

import pytest
from django.conf import settings

from licenses.ledger.redis import RedisSeatLedger

pytestmark = [
    pytest.mark.redis,
    pytest.mark.skipif(not settings.REDIS_URL, reason="needs Redis (REDIS_URL)"),
]

TENANT = uuid.uuid4()


@pytest.fixture
def ledger():
    ledger = RedisSeatLedger.from_settings()
    yield ledger
    ledger.client.connection_pool.disconnect()


def acquire(ledger, license_id, fingerprint, *, user_id="user-1", ttl=60):
    return ledger.acquire(
        license_id=license_id,
        tenant_id=TENANT,
        max_seats=10,
        fingerprint=fingerprint,
        user_id=user_id,
        ttl=ttl,
    ).lease


def indexes(ledger, license_id) -> tuple[list[str], list[str]]:
    by_created, by_user = ledger.keys(license_id)[4:6]
    return ledger.client.zrange(by_created, 0, -1), ledger.client.zrange(by_user, 0, -1)


def test_acquire_release_and_expiry_keep_the_paging_indexes_beside_live(ledger):
    license_id = uuid.uuid4()
    kept = acquire(ledger, license_id, "machine-kept", user_id="u-1")
    released = acquire(ledger, license_id, "machine-released", user_id="u-2")
    acquire(ledger, license_id, "machine-expiring", user_id=None, ttl=1)
    ledger.release(license_id=license_id, session_id=released.session_id)
    time.sleep(1.1)
    ledger.used(license_id=license_id)  # any script prunes first

    created_ms = round(kept.created_at.timestamp() * 1000)
    position = f"{created_ms:015d}:{kept.session_id}"
    assert indexes(ledger, license_id) == ([position], [f"u-1\0{position}"])


def test_the_page_script_rebuilds_indexes_that_lag_live(ledger):
    license_id = uuid.uuid4()
    for n in range(5):
        acquire(ledger, license_id, f"machine-{n}", user_id=f"u-{n % 2}")
    ledger.client.delete(*ledger.keys(license_id)[4:6])  # as leases written before the indexes existed
    # Oldest first, ties (one millisecond) by session id: as live_leases orders them.
    sessions = [lease.session_id for lease in ledger.live_leases(license_id=license_id)]
    theirs = {
        lease.session_id for lease in ledger.live_leases(license_id=license_id) if lease.user_id == "u-1"
    }

    leases, cursor = ledger.live_leases_page(license_id=license_id, cursor=None, limit=10)
    assert [lease.session_id for lease in leases] == sessions and cursor is None
    mine, _ = ledger.live_leases_page(license_id=license_id, cursor=None, limit=10, user_id="u-1")
    assert [lease.session_id for lease in mine] == [sid for sid in sessions if sid in theirs]
    assert len(indexes(ledger, license_id)[0]) == 5
