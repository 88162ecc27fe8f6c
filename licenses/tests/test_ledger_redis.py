"""What only the Redis ledger has: its keys, its scripts, and Redis going away."""

from __future__ import annotations

import json
import re
import socket
import time
import uuid
from urllib.parse import urlsplit

import pytest
from django.conf import settings

from coditect.testing import TcpProxy
from licenses.ledger import LedgerEvent, LedgerUnavailable, NoSeatsAvailable, SessionNotFound
from licenses.ledger.redis import KEY_NAMES, SCRIPT_DIR, SCRIPT_NAMES, RedisSeatLedger

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


def acquire(ledger, license_id, fingerprint="machine-a", *, ttl=60, max_seats=5, user_id="user-1"):
    return ledger.acquire(
        license_id=license_id,
        tenant_id=TENANT,
        max_seats=max_seats,
        fingerprint=fingerprint,
        user_id=user_id,
        ttl=ttl,
    )


def crc16(data: bytes) -> int:
    """CRC16-CCITT (XMODEM), the checksum Redis Cluster shards keys by."""
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def key_slot(key: str) -> int:
    """The cluster slot of a key, hash tags included (the Redis Cluster spec)."""
    start = key.find("{")
    if start != -1:
        end = key.find("}", start + 1)
        if end > start + 1:
            key = key[start + 1 : end]
    return crc16(key.encode()) % 16384


def test_the_slot_rule_matches_the_redis_cluster_spec():
    assert crc16(b"123456789") == 0x31C3
    assert key_slot("{user1000}.following") == key_slot("{user1000}.followers") == key_slot("user1000")
    assert key_slot("foo{}{bar}") == crc16(b"foo{}{bar}") % 16384  # an empty tag is no tag
    assert key_slot("foo{{bar}}zap") == key_slot("{bar")


def test_every_script_touches_only_keys_of_one_cluster_slot(ledger):
    calls: list[tuple[str, list[str]]] = []
    for name, script in list(ledger.scripts.items()):

        def recording(keys=None, args=None, client=None, name=name, script=script):
            calls.append((name, list(keys)))
            return script(keys=keys, args=args, client=client)

        ledger.scripts[name] = recording

    for license_id in (uuid.uuid4(), uuid.uuid4()):
        lease = acquire(ledger, license_id).lease
        acquire(ledger, license_id)
        ledger.heartbeat(license_id=license_id, session_id=lease.session_id, ttl=60)
        ledger.heartbeat(license_id=license_id, session_id=lease.session_id, ttl=60)
        borrow = LedgerEvent(action="lease.borrowed")
        borrowed = ledger.borrow(license_id=license_id, session_id=lease.session_id, seconds=60, event=borrow)
        ledger.borrow_undo(borrowed=borrowed, borrow_id=borrow.event_id, reason="request_failed")
        ledger.live_leases(license_id=license_id)
        ledger.live_leases_page(license_id=license_id, cursor=None, limit=10)
        ledger.used(license_id=license_id)
        ledger.queued(license_id=license_id)
        ledger.tickets_drop(license_id=license_id, user_id="nobody")
        ledger.release(license_id=license_id, session_id=lease.session_id)
        ledger.expired_pending(license_id=license_id)
        ledger.expired_ack(license_id=license_id, session_ids=["gone"])
        ledger.events_pending(license_id=license_id)
        ledger.events_ack(license_id=license_id, stream_ids=[])

        mine = [(name, keys) for name, keys in calls if str(license_id) in keys[0]]
        assert {name for name, _ in mine} == set(SCRIPT_NAMES)
        for name, keys in mine:
            assert len(keys) == len(KEY_NAMES), name
            assert {key_slot(key) for key in keys} == {key_slot(str(license_id))}, (name, keys)


def test_scripts_name_no_key_but_the_ones_they_are_given():
    # On a cluster a script may only touch the keys passed in KEYS: every
    # redis.call names one of the locals bound to KEYS (or loops over KEYS).
    allowed = {
        "live",
        "leases",
        "holders",
        "expired",
        "by_created",
        "by_user",
        "events",
        "borrows",
        "users",
        "queue",
        "tickets",
        "deadlines",
        "groups",
        "key",
    }
    for path in SCRIPT_DIR.glob("*.lua"):
        source = path.read_text()
        for command, first in re.findall(r"redis\.call\('(\w+)'(?:,\s*([\w.\[\]]+))?", source):
            if command == "TIME":
                continue
            assert first in allowed, f"{path.name}: redis.call('{command}', {first}, ...)"


def test_a_license_keeps_four_keys_under_its_hash_tag_that_expire_after_the_retention(ledger):
    ledger.retention_seconds = 600
    license_id = uuid.uuid4()
    lease = acquire(ledger, license_id, ttl=60).lease

    # `events` exists only while events wait for the drainer (below).
    live, leases, holders, expired, *paging_indexes, events = ledger.keys(license_id)
    tag = f"{settings.REDIS_KEY_PREFIX}:seats:{{{license_id}}}"
    assert [live, leases, holders, expired, *paging_indexes, events] == [
        f"{tag}:{name}" for name in KEY_NAMES
    ]
    client = ledger.client
    assert client.zrange(live, 0, -1) == [lease.session_id]
    assert json.loads(client.hget(leases, lease.session_id))["fp"] == "machine-a"
    assert client.hgetall(holders) == {"user-1\nmachine-a": lease.session_id}
    for key in (live, leases, holders):
        assert 655_000 < client.pttl(key) <= 660_000, key  # lease expiry + retention

    ledger.borrow(license_id=license_id, session_id=lease.session_id, seconds=3600)
    assert 4_195_000 < client.pttl(live) <= 4_200_000, "a borrow keeps the keys alive as long"


def test_an_expired_lease_leaves_the_sorted_set_and_its_record_waits_for_the_sweep(ledger):
    ledger.expired_cap = 2
    license_id = uuid.uuid4()
    leases_made = []
    for n in range(3):
        leases_made.append(acquire(ledger, license_id, f"machine-{n}", ttl=1).lease)
        time.sleep(0.005)  # distinct expiries: the scripts' clock ticks in milliseconds
    first, *later = leases_made
    kept = acquire(ledger, license_id, "machine-kept", ttl=60).lease
    time.sleep(1.1)

    assert ledger.used(license_id=license_id) == 1  # any script prunes first
    live, leases, holders, expired, *_ = ledger.keys(license_id)
    client = ledger.client
    assert client.zrange(live, 0, -1) == [kept.session_id]
    assert client.hgetall(holders) == {"user-1\nmachine-kept": kept.session_id}
    # At most `expired_cap` records wait; the oldest went first.
    assert sorted(client.zrange(expired, 0, -1)) == sorted(lease.session_id for lease in later)
    assert not client.hexists(leases, first.session_id)
    record = json.loads(client.hget(leases, later[0].session_id))
    assert record["x"] == client.zscore(expired, later[0].session_id)
    # Created by the prune, after the last acquire set the keys' expiry: it
    # still gets one, and it lasts the retention, for the sweep.
    assert client.pttl(expired) > (ledger.retention_seconds - 5) * 1000


def file_under_the_fingerprint_alone(ledger, license_id, lease) -> None:
    """What the scripts left before holders named the user: a live lease's
    holder entry keyed by its fingerprint alone, as Redis holds it at deploy."""
    holders = ledger.keys(license_id)[2]
    ledger.client.hdel(holders, f"{lease.user_id}\n{lease.fingerprint}")
    ledger.client.hset(holders, lease.fingerprint, lease.session_id)


def test_a_lease_filed_under_its_fingerprint_alone_comes_back_to_its_own_user_refiled(ledger):
    license_id = uuid.uuid4()
    lease = acquire(ledger, license_id, "shared-pc", user_id="alice").lease
    file_under_the_fingerprint_alone(ledger, license_id, lease)

    again = acquire(ledger, license_id, "shared-pc", user_id="alice")
    assert (again.created, again.lease.session_id, again.used) == (False, lease.session_id, 1)
    holders = ledger.keys(license_id)[2]
    assert ledger.client.hgetall(holders) == {"alice\nshared-pc": lease.session_id}


def test_a_lease_filed_under_its_fingerprint_alone_stays_its_users_when_another_user_acquires(ledger):
    license_id = uuid.uuid4()
    alice = acquire(ledger, license_id, "shared-pc", user_id="alice").lease
    file_under_the_fingerprint_alone(ledger, license_id, alice)

    bob = acquire(ledger, license_id, "shared-pc", user_id="bob")
    assert bob.created and bob.lease.session_id != alice.session_id and bob.used == 2
    holders = ledger.keys(license_id)[2]
    assert ledger.client.hgetall(holders) == {
        "shared-pc": alice.session_id,
        "bob\nshared-pc": bob.lease.session_id,
    }
    assert acquire(ledger, license_id, "shared-pc", user_id="alice").lease.session_id == alice.session_id
    assert acquire(ledger, license_id, "shared-pc", user_id="bob").lease.session_id == bob.lease.session_id
    assert ledger.used(license_id=license_id) == 2


def test_release_and_expiry_forget_a_holder_filed_under_the_fingerprint_alone(ledger):
    license_id = uuid.uuid4()
    released = acquire(ledger, license_id, "machine-r").lease
    expiring = acquire(ledger, license_id, "machine-x", ttl=1).lease
    for lease in (released, expiring):
        file_under_the_fingerprint_alone(ledger, license_id, lease)

    ledger.release(license_id=license_id, session_id=released.session_id)
    time.sleep(1.1)
    assert ledger.used(license_id=license_id) == 0
    assert ledger.client.hgetall(ledger.keys(license_id)[2]) == {}


def test_a_user_id_with_a_newline_is_refused_before_it_reaches_the_holders_key(ledger):
    with pytest.raises(ValueError):
        acquire(ledger, uuid.uuid4(), user_id="alice\nshared-pc")


def test_a_script_that_redis_forgot_is_loaded_again(ledger):
    license_id = uuid.uuid4()
    ledger.scripts["acquire"].sha = "0" * 40  # as after a restart or failover: NOSCRIPT
    assert acquire(ledger, license_id).created
    assert ledger.scripts["acquire"].sha != "0" * 40


def test_the_ledger_is_unavailable_at_once_while_redis_is_cut_off_and_back_after():
    target = urlsplit(settings.REDIS_URL)
    proxy = TcpProxy(target.hostname, target.port or 6379)
    ledger = RedisSeatLedger.from_url(redis_url_through(proxy), socket_timeout=1.0)
    license_id = uuid.uuid4()
    try:
        lease = acquire(ledger, license_id).lease

        proxy.cut()
        calls = [
            lambda: acquire(ledger, license_id, "machine-b"),
            lambda: ledger.heartbeat(license_id=license_id, session_id=lease.session_id, ttl=60),
            lambda: ledger.release(license_id=license_id, session_id=lease.session_id),
            lambda: ledger.used(license_id=license_id),
            lambda: ledger.live_leases(license_id=license_id),
        ]
        for call in calls:
            started = time.monotonic()
            with pytest.raises(LedgerUnavailable):
                call()
            assert time.monotonic() - started < 0.5

        proxy.restore()
        assert ledger.heartbeat(license_id=license_id, session_id=lease.session_id, ttl=60)
    finally:
        proxy.close()
        ledger.client.connection_pool.disconnect()


def test_a_redis_that_never_answers_is_unavailable_after_the_socket_timeout_not_a_hang():
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # the kernel completes the connection; nobody ever answers
    ledger = RedisSeatLedger.from_url(f"redis://127.0.0.1:{silent.getsockname()[1]}/0", socket_timeout=0.5)
    try:
        started = time.monotonic()
        with pytest.raises(LedgerUnavailable):
            acquire(ledger, uuid.uuid4())
        assert time.monotonic() - started < 1.5  # one timeout, no retry after it
    finally:
        silent.close()
        ledger.client.connection_pool.disconnect()


def test_the_ledger_takes_its_timeouts_and_pool_from_settings(ledger):
    pool = ledger.client.connection_pool
    assert pool.max_connections == settings.SEAT_LEDGER_REDIS_MAX_CONNECTIONS
    assert pool.connection_kwargs["socket_timeout"] == settings.REDIS_SOCKET_TIMEOUT
    assert pool.connection_kwargs["socket_connect_timeout"] == settings.REDIS_SOCKET_TIMEOUT
    assert ledger.retention_seconds == settings.SEAT_LEDGER_REDIS_RETENTION


def test_an_unknown_session_is_not_found_and_a_full_license_says_how_full(ledger):
    license_id = uuid.uuid4()
    acquire(ledger, license_id, "machine-a", max_seats=1)
    with pytest.raises(NoSeatsAvailable) as refused:
        acquire(ledger, license_id, "machine-b", max_seats=1)
    assert (refused.value.used, refused.value.max_seats) == (1, 1)
    with pytest.raises(SessionNotFound):
        ledger.heartbeat(license_id=license_id, session_id="nope", ttl=60)


def redis_url_through(proxy: TcpProxy) -> str:
    return urlsplit(settings.REDIS_URL)._replace(netloc=f"127.0.0.1:{proxy.port}").geturl()
