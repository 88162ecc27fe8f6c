"""End to end: the real server (gunicorn, PostgreSQL, the Redis ledger) on a
loopback port, driven only through the SDK. Issue 5, items 1 to 8.

Licenses here have a 3-second lease (a heartbeat each second), so expiry and
recovery take seconds. Rows are committed (`committed_db`) so that the server
process sees them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from dataclasses import dataclass

import pytest
import requests
from django.conf import settings
from sdk_testkit import SigningKey

from coditect_license import (
    CacheTampered,
    ClockSetBack,
    IdleTimeout,
    KeyNotTrusted,
    LicenseClient,
    NoSeatsAvailable,
    PasswordLogin,
    QueueFull,
    RetryPolicy,
    TokenInvalid,
    fingerprint,
)
from coditect_license.cache import OfflineCache

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

TTL = 3  # seconds; the server hands out a heartbeat interval of TTL // 3
QUICK = RetryPolicy(attempts=3, base_delay=0.05, max_delay=0.2, deadline=2)


@dataclass
class Account:
    url: str
    key: str
    email: str
    password: str
    license_id: str


@pytest.fixture
def server(live_server_e2e):
    return live_server_e2e


@pytest.fixture
def account(server):
    def make(
        *,
        seats: int = 1,
        offline_grace: int = 3600,
        borrow_limit_hours: int = 0,
        lease_ttl: int = TTL,
        **floating,  # overdraft_seats, linger_seconds, idle_timeout: the license's own
    ) -> Account:
        from accounts.tests.factories import TEST_PASSWORD, TenantAdminFactory
        from licenses.models import Policy, Product
        from licenses.services import license_create
        from tenants.tests.factories import TenantFactory

        tenant = TenantFactory()
        admin = TenantAdminFactory(tenant=tenant)
        product, _ = Product.objects.get_or_create(slug="coditect-cad", defaults={"name": "CODITECT CAD"})
        policy, _ = Policy.objects.get_or_create(
            slug="cad", defaults={"name": "CAD", "product": product, "entitlements": {"cad": "CAD modules"}}
        )
        license, key = license_create(
            tenant=tenant,
            policy=policy,
            max_seats=seats,
            lease_ttl=lease_ttl,
            offline_grace=offline_grace,
            borrow_limit_hours=borrow_limit_hours,
            entitlements=["cad"],
            **floating,
        )
        return Account(server.url, key, admin.email, TEST_PASSWORD, str(license.id))

    return make


@pytest.fixture
def make_client(tmp_path, server):
    clients: list[LicenseClient] = []

    def make(
        account: Account, *, machine: str | None = None, url: str | None = None, **kwargs
    ) -> LicenseClient:
        kwargs.setdefault("cache_dir", tmp_path / (machine or "machine-a"))
        client = LicenseClient(
            url or account.url,
            account.key,
            PasswordLogin(account.email, account.password),
            fingerprint=fingerprint(raw_machine_id=machine or "machine-a", salt="e2e"),
            retry=QUICK,
            release_at_exit=False,
            # What an application built for this server ships: the key set root key, nothing else.
            **({} if "trusted_jwks" in kwargs else {"trusted_root_keys": server.keyset_root_jwks}),
            **kwargs,
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close(release=False)


def seats_used(client: LicenseClient) -> int:
    return client.status().seats_used


def wait_for(condition, timeout: float, step: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return condition()


def dead_url() -> str:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_1_acquire_heartbeats_and_release_take_the_seat_count_0_1_0(account, make_client):
    acct = account()
    app, observer = make_client(acct), make_client(acct, machine="observer")
    assert seats_used(observer) == 0

    lease = app.acquire()
    assert lease.created and lease.heartbeat_interval == TTL // 3
    assert lease.entitlements == {"cad": True}
    assert seats_used(observer) == 1

    # Outlive the lease's TTL on heartbeats alone.
    assert wait_for(lambda: app.heartbeats_sent >= TTL + 1, timeout=TTL + 3)
    assert seats_used(observer) == 1
    assert app.is_licensed()

    app.close()
    assert seats_used(observer) == 0


def test_an_idle_user_loses_the_seat_and_the_application_is_told(account, make_client):
    """The application reports its user's activity; when it stops, the
    heartbeats report the idle time, and past the license's idle timeout the
    server ends the seat: on_lost gets IdleTimeout and the seat is free."""
    acct = account(seats=1, idle_timeout=2)
    lost: list = []
    app = make_client(acct, machine="idle", on_lost=lost.append)
    app.acquire()
    app.report_activity()
    assert wait_for(lambda: lost, timeout=4 * TTL)
    assert isinstance(lost[0], IdleTimeout) and lost[0].details["idle_timeout"] == 2
    assert app.lease is None
    assert make_client(acct, machine="other").acquire().created


def test_an_application_that_reports_activity_keeps_its_seat(account, make_client):
    acct = account(seats=1, idle_timeout=2)
    lost: list = []
    app = make_client(acct, machine="busy", on_lost=lost.append)
    app.acquire()
    deadline = time.monotonic() + 2 * TTL
    while time.monotonic() < deadline:
        app.report_activity()
        time.sleep(0.2)
    assert lost == [] and app.heartbeats_sent >= 3 and app.lease is not None


def test_an_overdraft_seat_says_so_on_the_lease(account, make_client):
    acct = account(seats=1, overdraft_seats=1)
    assert make_client(acct, machine="one").acquire().overdraft is False
    assert make_client(acct, machine="two").acquire().overdraft is True


def test_a_client_waits_in_the_queue_with_its_place_shown_and_gets_the_seat(account, make_client):
    """acquire(wait=) on a full license that queues: the client reports its
    place while it waits, a later client queues behind it, and when the seat
    frees the first in the queue gets it; the second's wait runs out."""
    acct = account(seats=1, queue_max_tickets=5, queue_ticket_ttl=6)
    holder = make_client(acct, machine="holder")
    holder.acquire()
    places: dict[str, list] = {"first": [], "second": []}
    got: dict = {}

    def wait(name: str, seconds: float) -> None:
        client = make_client(acct, machine=name)
        try:
            got[name] = client.acquire(wait=seconds, on_queued=places[name].append)
        except NoSeatsAvailable as refused:
            got[name] = refused

    first = threading.Thread(target=wait, args=("first", 20))
    first.start()
    assert wait_for(lambda: places["first"], timeout=5)
    second = threading.Thread(target=wait, args=("second", 4))
    second.start()
    assert wait_for(lambda: places["second"], timeout=5)
    assert places["first"][0].position == 1 and places["second"][0].position == 2
    holder.release()
    first.join(timeout=15)
    second.join(timeout=15)
    assert got["first"].created and got["first"].seats_used == 1
    # The second waited its four seconds at place 1 behind the seat now taken.
    assert isinstance(got["second"], NoSeatsAvailable) and got["second"].details["waiting"] >= 1


def test_a_license_that_does_not_queue_refuses_a_waiting_client_at_once(account, make_client):
    acct = account(seats=1)
    make_client(acct, machine="holder").acquire()
    with pytest.raises(QueueFull):
        make_client(acct, machine="waiter").acquire(wait=30)


def test_2_a_full_license_refuses_with_the_typed_exception_until_a_seat_is_given_back(account, make_client):
    acct = account(seats=1)
    first, second = make_client(acct, machine="one"), make_client(acct, machine="two")
    first.acquire()
    with pytest.raises(NoSeatsAvailable) as refused:
        second.acquire()
    assert refused.value.details == {"used": 1, "max": 1}
    first.close()
    assert second.acquire().created


def test_3_a_ledger_that_lost_the_session_is_recovered_and_the_application_told_once(
    server, account, make_client
):
    import redis

    acct = account()
    told = []
    app = make_client(acct, on_reacquire=lambda old, new: told.append((old.session_id, new.session_id)))
    first = app.acquire()

    ledger = redis.Redis.from_url(settings.REDIS_URL)
    try:
        keys = list(ledger.scan_iter(f"{server.redis_key_prefix}:seats:*{acct.license_id}*"))
        assert keys
        ledger.delete(*keys)  # only this license's keys: other runs share this Redis
    finally:
        ledger.close()

    assert wait_for(lambda: told, timeout=3 * TTL)
    time.sleep(2 * TTL // 3)  # a few more beats: no second callback
    assert len(told) == 1
    assert told[0][0] == first.session_id != told[0][1]
    assert app.lease.session_id == told[0][1]
    assert app.is_licensed()
    assert seats_used(app) == 1


def test_4_with_the_server_down_the_cache_answers_until_exp_and_the_sdk_recovers_after(
    server, account, make_client
):
    acct = account(offline_grace=4)
    app = make_client(acct)
    app.acquire()
    assert wait_for(lambda: app.heartbeats_sent >= 1, timeout=3)

    server.stop()
    assert app.is_licensed()
    token_exp = app.verify().expires_at
    assert wait_for(lambda: time.time() >= token_exp - 0.5, timeout=6)
    assert app.is_licensed()
    assert wait_for(lambda: time.time() >= token_exp + 0.1, timeout=2)
    assert not app.is_licensed()
    assert app.entitlements() == {}

    # A restarted application, still offline, is refused too.
    assert not make_client(acct, url=dead_url()).is_licensed()

    server.start()
    assert wait_for(app.is_licensed, timeout=4 * TTL)
    assert not app.lease.offline
    assert seats_used(app) == 1


def test_5_a_process_killed_without_release_frees_its_seat_within_the_lease_ttl(
    server, account, make_client, tmp_path
):
    acct = account()
    script = textwrap.dedent(
        """
        import json, os, time
        from coditect_license import LicenseClient, PasswordLogin
        client = LicenseClient(os.environ["URL"], os.environ["KEY"],
                               PasswordLogin(os.environ["EMAIL"], os.environ["PASSWORD"]),
                               fingerprint="killed-process-fingerprint",
                               trusted_root_keys=json.loads(os.environ["ROOT"]))
        client.acquire()
        print("acquired", flush=True)
        time.sleep(120)
        """
    )
    env = {
        **os.environ,
        "URL": acct.url,
        "KEY": acct.key,
        "EMAIL": acct.email,
        "PASSWORD": acct.password,
        "ROOT": json.dumps(server.keyset_root_jwks),
    }
    child = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "acquired"
        observer = make_client(acct, machine="observer")
        assert seats_used(observer) == 1
        time.sleep(1.5)  # a heartbeat or so, so that the seat was kept alive by beats
        child.kill()
        killed_at = time.monotonic()
        child.wait()
        assert wait_for(lambda: seats_used(observer) == 0, timeout=TTL + 2, step=0.2)
        assert time.monotonic() - killed_at <= TTL + 2
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_6_a_tampered_token_a_swapped_key_and_a_clock_set_back_are_each_refused(
    account, make_client, tmp_path
):
    acct = account(seats=2)
    app = make_client(acct)
    app.acquire()
    cache_file = app._cache.path
    original = cache_file.read_bytes()

    def offline(**kwargs) -> LicenseClient:
        return make_client(acct, url=dead_url(), **kwargs)

    assert offline().is_licensed()

    # A token edited by hand.
    data = json.loads(original)
    header, payload, signature = data["token"].split(".")
    middle = len(payload) // 2
    data["token"] = ".".join(
        [header, payload[:middle] + chr(ord(payload[middle]) ^ 1) + payload[middle + 1 :], signature]
    )
    cache_file.write_text(json.dumps(data))
    with pytest.raises(CacheTampered):
        offline().verify()

    # A swapped public key, with a token re-signed by it: by hand, and through the
    # SDK's own cache writer (what issue 13's attacker did), against the default
    # options (the root key only) and against a client that pins the license keys.
    import jwt

    attacker = SigningKey()
    claims = jwt.decode(json.loads(original)["token"], options={"verify_signature": False})
    claims["exp"] += 365 * 86400
    data = json.loads(original)
    data.update(token=attacker.token(**claims), jwks=attacker.jwks)
    cache_file.write_text(json.dumps(data))
    with pytest.raises(CacheTampered):
        offline().verify()
    cache = OfflineCache(cache_file.parent, license_key=acct.key, fingerprint=app.fingerprint)
    cache_file.write_bytes(original)
    stored = cache.load()
    cache.store(type(stored)(**{**stored.__dict__, "token": attacker.token(**claims), "jwks": attacker.jwks}))
    with pytest.raises(KeyNotTrusted):
        offline().verify()
    assert not offline().is_licensed()
    server_keys = requests.get(f"{acct.url}/.well-known/jwks.json", timeout=5).json()
    with pytest.raises(TokenInvalid):
        offline(trusted_jwks=server_keys).verify()

    # The clock set back before the token was issued: offline, and online too.
    cache_file.write_bytes(original)
    assert offline().is_licensed()
    with pytest.raises(ClockSetBack):
        offline(clock=lambda: time.time() - 3600).verify()
    with pytest.raises(ClockSetBack):
        make_client(acct, machine="machine-b", clock=lambda: time.time() - 3600).acquire()


def test_7_a_borrowed_seat_stays_taken_offline_until_returned(server, account, make_client):
    acct = account(seats=1, borrow_limit_hours=1)
    app = make_client(acct)
    app.acquire()
    lease = app.borrow(1)
    assert lease.is_borrowed
    borrow_end = lease.token_expires_at.timestamp()
    assert borrow_end - time.time() > 3500
    app.close()  # a borrowed seat is kept

    server.stop()
    time.sleep(TTL + 1)  # past any heartbeat-kept lease
    assert make_client(acct, url=dead_url(), clock=lambda: time.time() + 1800).is_licensed()
    assert not make_client(acct, url=dead_url(), clock=lambda: borrow_end + 1).is_licensed()
    server.start()

    other = make_client(acct, machine="machine-b")
    assert seats_used(other) == 1
    with pytest.raises(NoSeatsAvailable):
        other.acquire()

    assert make_client(acct).release() is True  # returned early, from a new run of the app
    assert seats_used(other) == 0
    assert other.acquire().created


def test_8_threads_sharing_a_client_and_clients_sharing_a_process_keep_apart(account, make_client):
    acct = account(seats=2)
    shared = make_client(acct, machine="shared")
    failures: list[BaseException] = []
    sessions: set[str] = set()

    def work() -> None:
        try:
            for _ in range(8):
                sessions.add(shared.acquire().session_id)
                assert shared.is_licensed()
                assert shared.entitlements() == {"cad": True}
                assert shared.status().seats_used == 1
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert len(sessions) == 1

    other = make_client(acct, machine="other")
    other_lease = other.acquire()
    assert other_lease.session_id not in sessions
    assert seats_used(other) == 2
    shared.close()
    beats = other.heartbeats_sent
    assert wait_for(lambda: other.heartbeats_sent >= beats + 2, timeout=3 * TTL)
    assert other.is_licensed() and other.lease.session_id == other_lease.session_id
    assert seats_used(other) == 1
    other.close()
    assert seats_used(make_client(acct, machine="observer")) == 0


def test_the_command_line_speaks_to_the_real_server(server, account, tmp_path):
    # Each command is a new Python process; on a loaded machine two of them can
    # take longer than the short TTL the heartbeat tests use, and the seat would
    # expire between `acquire` and `status`.
    acct = account(lease_ttl=120)
    env = {
        **os.environ,
        "CODITECT_LICENSE_SERVER": acct.url,
        "CODITECT_LICENSE_KEY": acct.key,
        "CODITECT_LICENSE_EMAIL": acct.email,
        "CODITECT_LICENSE_PASSWORD": acct.password,
        "CODITECT_LICENSE_CACHE_DIR": str(tmp_path / "cli"),
        "CODITECT_LICENSE_MACHINE_ID": f"cli-{uuid.uuid4()}",
        "CODITECT_LICENSE_TRUSTED_ROOT_KEY": str(tmp_path / "root.jwks"),
    }
    (tmp_path / "root.jwks").write_text(json.dumps(server.keyset_root_jwks))
    cli = str(os.path.join(os.path.dirname(sys.executable), "coditect-license"))

    def run(*args: str) -> dict:
        done = subprocess.run([cli, *args], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert acct.key not in done.stdout + done.stderr
        return json.loads(done.stdout)

    acquired = run("acquire")
    assert "token" not in acquired
    status = run("status")
    assert status["offline"]["licensed"] is True
    assert status["server"]["seats"] == {"used": 1, "max": 1}
    assert run("release") == {"released": True}
    assert run("status")["server"]["seats"]["used"] == 0

    # A cache forged with the SDK's own writer and the attacker's key: not licensed.
    import jwt

    acquired = run("acquire")
    [cache_file] = (tmp_path / "cli").glob("lease-*.json")
    original = cache_file.read_bytes()
    stored = json.loads(original)
    attacker = SigningKey()
    claims = jwt.decode(stored["token"], options={"verify_signature": False})
    claims["exp"] += 10 * 365 * 86400
    cache = OfflineCache(cache_file.parent, license_key=acct.key, fingerprint=claims["fp"])
    entry = cache.load()
    cache.store(type(entry)(**{**entry.__dict__, "token": attacker.token(**claims), "jwks": attacker.jwks}))
    env["CODITECT_LICENSE_SERVER"] = dead_url()
    assert run("status")["offline"] == {"licensed": False, "reason": "key_not_trusted"}
    env["CODITECT_LICENSE_SERVER"] = acct.url
    cache_file.write_bytes(original)
    assert run("release")["released"] is True
    assert acquired["session_id"]
