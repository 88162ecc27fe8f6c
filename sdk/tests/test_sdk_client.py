"""LicenseClient's own logic against a scripted stand-in of the license
endpoints (real tokens, signed with a local key). The end-to-end tests drive
the real server; these pin down timing, recovery and offline rules quickly."""

from __future__ import annotations

import itertools
import json
import logging
import socket
import subprocess
import sys
import threading
import time

import pytest
from sdk_testkit import SigningKey, error

from coditect_license import (
    BearerToken,
    CacheTampered,
    ClockSetBack,
    LicenseClient,
    LicenseSuspended,
    MachineBlocked,
    NotLicensed,
    PasswordLogin,
    RetryPolicy,
    TenantInactive,
    TokenExpired,
    TokenInvalid,
    UserBlocked,
    UserInactive,
)
from coditect_license.cache import OfflineCache

KEY = "CDT-AAAAA-BBBBB-CCCCC-DDDDD-EEEEE-FFFFF"
FP = "c0ffee" * 10 + "abcd"
FAST = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05, deadline=2)


def dead_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def write_json(path, document):
    path.write_text(json.dumps(document))
    return path


def wait_for(condition, timeout=5.0, step=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return condition()


@pytest.fixture
def make_client(fake_server, tmp_path):
    clients = []

    def make(url=None, **kwargs):
        kwargs.setdefault("fingerprint", FP)
        kwargs.setdefault("retry", FAST)
        kwargs.setdefault("cache_dir", tmp_path / "cache")
        kwargs.setdefault("release_at_exit", False)
        if not {"trusted_jwks", "trusted_root_keys", "insecure_trust_on_first_use"} & set(kwargs):
            kwargs.update(fake_server.trust)
        client = LicenseClient(url or fake_server.stub.url, KEY, BearerToken("user-access-token"), **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close(release=False)


def test_acquire_sends_the_key_and_the_fingerprint_and_returns_a_verified_lease(make_client, fake_server):
    lease = make_client().acquire()
    (call,) = fake_server.stub.calls("POST", "/api/v1/licenses/acquire")
    assert call.body["license_key"] == KEY and call.body["hardware_fingerprint"] == FP
    assert set(call.body["client_info"]) == {"sdk", "os"}
    assert call.headers["Authorization"] == "Bearer user-access-token"
    assert lease.created and lease.license_id == fake_server.license_id
    assert lease.entitlements == {"pro": True}
    assert lease.token not in repr(lease)


def test_heartbeats_come_at_the_servers_interval_with_jitter_that_only_shortens_it(make_client, fake_server):
    client = make_client()
    client.acquire()
    assert wait_for(lambda: client.heartbeats_sent >= 4)
    beats = fake_server.stub.calls("POST", "/api/v1/licenses/heartbeat")
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(beats)]
    assert min(gaps) >= 0.2 * 0.9 - 0.01, gaps  # never earlier than the jitter allows
    assert sorted(gaps)[len(gaps) // 2] <= 0.3, gaps  # and, load aside, not later than asked


def test_a_session_the_server_lost_is_acquired_again_and_the_application_told_once(make_client, fake_server):
    told = []
    client = make_client(on_reacquire=lambda old, new: told.append((old.session_id, new.session_id)))
    first = client.acquire()
    fake_server.forget_sessions()
    assert wait_for(lambda: told)
    time.sleep(0.5)
    assert len(told) == 1
    assert told[0][0] == first.session_id != told[0][1] == client.lease.session_id
    assert client.is_licensed()


def test_a_suspended_license_ends_the_lease_and_tells_the_application(make_client, fake_server):
    lost = []
    client = make_client(on_lost=lost.append)
    client.acquire()
    fake_server.stub.route("POST", "/api/v1/licenses/heartbeat", error(403, "license_suspended"))
    assert wait_for(lambda: lost)
    assert isinstance(lost[0], LicenseSuspended)
    assert client.lease is None and not client.is_licensed()


@pytest.mark.parametrize(
    "code, exception",
    [
        ("machine_blocked", MachineBlocked),
        ("user_blocked", UserBlocked),
        ("user_inactive", UserInactive),
        ("tenant_inactive", TenantInactive),
    ],
)
def test_a_blocked_or_deactivated_holder_loses_the_lease_and_does_not_acquire_again(
    make_client, fake_server, code, exception
):
    lost = []
    client = make_client(on_lost=lost.append)
    client.acquire()
    acquires = len(fake_server.stub.calls("POST", "/api/v1/licenses/acquire"))
    fake_server.stub.route("POST", "/api/v1/licenses/heartbeat", error(403, code))
    assert wait_for(lambda: lost)
    assert isinstance(lost[0], exception)
    assert client.lease is None and not client.is_licensed()
    assert len(fake_server.stub.calls("POST", "/api/v1/licenses/acquire")) == acquires


def test_the_token_is_renewed_before_exp_by_acquiring_again_into_the_same_session(make_client, fake_server):
    fake_server.token_lifetime = 1.2
    told = []
    client = make_client(on_reacquire=lambda old, new: told.append(new))
    first = client.acquire()
    past_first_exp = first.token_expires_at.timestamp() + 0.3
    assert wait_for(lambda: time.time() > past_first_exp)
    assert client.is_licensed()
    assert client.lease.session_id == first.session_id
    assert len(fake_server.stub.calls("POST", "/api/v1/licenses/acquire")) >= 2
    assert told == []


def test_with_acquires_and_leaving_releases(make_client, fake_server):
    with make_client() as client:
        assert client.is_licensed()
        assert fake_server.sessions
    assert not fake_server.sessions
    assert not client.is_licensed()


def test_release_is_idempotent(make_client, fake_server):
    client = make_client()
    client.acquire()
    assert client.release() is True
    assert client.release() is False


def test_while_the_server_is_unreachable_the_cached_token_answers_until_its_exp(make_client, fake_server):
    fake_server.token_lifetime = 600
    make_client().acquire()
    offline = make_client(dead_url())
    assert offline.is_licensed()
    assert offline.entitlements() == {"pro": True}
    lease = offline.acquire()
    assert lease.offline
    later = make_client(dead_url(), clock=lambda: time.time() + 601)
    with pytest.raises(TokenExpired):
        later.verify()
    assert later.entitlements() == {}


def test_heartbeats_resume_when_the_server_answers_again(make_client, fake_server):
    client = make_client()
    client.acquire()
    fake_server.stub.route("POST", "/api/v1/licenses/heartbeat", (503, {}, b"down"))
    assert wait_for(lambda: client.lease.offline)
    assert client.is_licensed()
    fake_server.stub.route("POST", "/api/v1/licenses/heartbeat", fake_server.heartbeat)
    assert wait_for(lambda: not client.lease.offline)


def flip_a_payload_character(token: str) -> str:
    header, payload, signature = token.split(".")
    middle = len(payload) // 2
    changed = "B" if payload[middle] != "B" else "C"
    return ".".join([header, payload[:middle] + changed + payload[middle + 1 :], signature])


def _edit_cache(path, change):
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_a_token_edited_in_the_cache_is_refused(make_client, fake_server):
    make_client().acquire()
    offline = make_client(dead_url())
    _edit_cache(offline._cache.path, lambda data: data.update(token=flip_a_payload_character(data["token"])))
    with pytest.raises(CacheTampered):
        offline.verify()
    assert not offline.is_licensed()


def test_a_swapped_public_key_is_refused_even_with_a_recomputed_cache(make_client, fake_server, tmp_path):
    make_client().acquire()
    attacker = SigningKey(kid=fake_server.key.kid)
    cache = OfflineCache(tmp_path / "cache", license_key=KEY, fingerprint=FP)
    stored = cache.load()
    import jwt

    claims = jwt.decode(stored.token, options={"verify_signature": False})
    claims["exp"] += 10 * 365 * 86400
    forged = type(stored)(**{**stored.__dict__, "token": attacker.token(**claims), "jwks": attacker.jwks})

    # Swapped by hand: the file's MAC no longer matches.
    _edit_cache(cache.path, lambda data: data.update(jwks=attacker.jwks, token=forged.token))
    assert not make_client(dead_url()).is_licensed()

    # Rewritten by someone who re-implemented the cache: pinned keys still refuse it.
    cache.store(forged)
    pinned = make_client(dead_url(), trusted_jwks=fake_server.key.jwks)
    with pytest.raises(TokenInvalid):
        pinned.verify()


def test_a_clock_set_back_is_refused(make_client, fake_server):
    make_client().acquire()
    before_issue = make_client(dead_url(), clock=lambda: time.time() - 3600)
    with pytest.raises(ClockSetBack):
        before_issue.verify()


def test_a_clock_set_back_below_the_last_seen_time_is_refused_across_restarts(make_client, fake_server):
    fake_server.token_lifetime = 30 * 86400
    make_client().acquire()
    ahead = make_client(dead_url(), clock=lambda: time.time() + 7 * 86400)
    assert ahead.is_licensed()  # and remembers having seen that day
    back = make_client(dead_url(), clock=lambda: time.time() + 86400)
    with pytest.raises(ClockSetBack):
        back.verify()


def test_a_borrowed_seat_is_kept_on_close_and_returned_by_release_from_another_run(make_client, fake_server):
    client = make_client()
    client.acquire()
    lease = client.borrow(2)
    assert lease.is_borrowed
    client.close()
    assert fake_server.sessions  # kept
    offline = make_client(dead_url(), clock=lambda: time.time() + 3600)
    assert offline.is_licensed()
    assert make_client().release() is True
    assert not fake_server.sessions
    assert not make_client(dead_url()).is_licensed()


def test_borrowing_needs_a_lease(make_client):
    with pytest.raises(NotLicensed):
        make_client().borrow(1)


def test_threads_sharing_one_client_see_one_consistent_lease(make_client, fake_server):
    client = make_client()
    failures = []

    def work():
        try:
            for _ in range(20):
                client.acquire()
                assert client.is_licensed()
                assert client.entitlements() == {"pro": True}
        except Exception as exc:  # pragma: no cover - reported below
            failures.append(exc)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert len(fake_server.sessions) == 1
    assert (
        len(
            {
                c.body["hardware_fingerprint"]
                for c in fake_server.stub.calls("POST", "/api/v1/licenses/acquire")
            }
        )
        == 1
    )


def test_tokens_and_keys_never_reach_the_logs(make_client, fake_server, caplog):
    caplog.set_level(logging.DEBUG)
    client = make_client()
    client.acquire()
    fake_server.forget_sessions()
    wait_for(lambda: fake_server.sessions)
    fake_server.stub.route("POST", "/api/v1/licenses/heartbeat", (503, {}, b"down"))
    wait_for(lambda: client.lease.offline)
    token = client.lease.token
    client.close()
    text = "\n".join(
        [record.getMessage() + " " + json.dumps(record.__dict__, default=str) for record in caplog.records]
    )
    assert "seat acquired" in text
    for secret in (token, token.split(".")[2], KEY, "user-access-token"):
        assert secret not in text


def test_a_stale_access_token_is_refreshed_once_through_login(stub, fake_server, tmp_path):
    logins = []

    def login(request):
        logins.append(request.body)
        return 200, {}, {"access_token": f"access-{len(logins)}", "refresh_token": "r", "expires_in": 3600}

    stub.route("POST", "/api/v1/auth/login", login)
    stub.route("POST", "/api/v1/auth/refresh", error(401, "not_authenticated"))
    original = fake_server.acquire
    stub.route(
        "POST",
        "/api/v1/licenses/acquire",
        lambda request: (
            original(request)
            if request.headers["Authorization"] == "Bearer access-2"
            else error(401, "not_authenticated")
        ),
    )
    client = LicenseClient(
        stub.url,
        KEY,
        PasswordLogin("ada@example.com", "pw"),
        fingerprint=FP,
        release_at_exit=False,
        **fake_server.trust,
    )
    try:
        assert client.acquire().session_id
        assert logins == [{"email": "ada@example.com", "password": "pw"}] * 2
    finally:
        client.close()


def test_interpreter_exit_releases_the_seat(fake_server, tmp_path):
    script = (
        "import sys; from coditect_license import LicenseClient, BearerToken\n"
        f"LicenseClient({fake_server.stub.url!r}, {KEY!r}, BearerToken('t'), fingerprint={FP!r},\n"
        f"              trusted_root_keys={fake_server.root.jwks!r}).acquire()\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=30)
    assert fake_server.stub.calls("DELETE", "/api/v1/licenses/release")
    assert not fake_server.sessions


def test_the_command_line_acquires_shows_status_and_releases_without_printing_secrets(
    fake_server, tmp_path, capsys
):
    from coditect_license.cli import main

    fake_server.stub.route(
        "GET",
        "/api/v1/licenses/status",
        (
            200,
            {},
            {
                "licenses": [
                    {
                        "id": fake_server.license_id,
                        "name": "Pro",
                        "key_prefix": "CDT-AAAAA",
                        "state": "active",
                        "expires_at": None,
                        "entitlements": {"pro": True},
                        "seats": {"used": 1, "max": 5},
                        "leases": [],
                    }
                ]
            },
        ),
    )
    environ = {
        "CODITECT_LICENSE_SERVER": fake_server.stub.url,
        "CODITECT_LICENSE_KEY": KEY,
        "CODITECT_LICENSE_TOKEN": "user-access-token",
        "CODITECT_LICENSE_CACHE_DIR": str(tmp_path),
        "CODITECT_LICENSE_TRUSTED_ROOT_KEY": str(write_json(tmp_path / "root.jwks", fake_server.root.jwks)),
    }
    assert main(["--fingerprint", FP, "acquire"], environ) == 0
    acquired = json.loads(capsys.readouterr().out)
    assert acquired["session_id"] in fake_server.sessions.values()
    assert main(["--fingerprint", FP, "status"], environ) == 0
    status = capsys.readouterr().out
    assert json.loads(status)["offline"]["licensed"] is True
    assert json.loads(status)["server"]["seats"] == {"used": 1, "max": 5}
    assert main(["--fingerprint", FP, "release"], environ) == 0
    assert json.loads(capsys.readouterr().out) == {"released": True}
    assert not fake_server.sessions
    fake_server.stub.route("POST", "/api/v1/licenses/acquire", error(409, "no_seats_available"))
    assert main(["--fingerprint", FP, "borrow", "1"], environ) == 1
    assert json.loads(capsys.readouterr().err)["error"]["code"] == "no_seats_available"


def test_the_command_line_waits_in_the_queue_showing_its_place_and_queues_again_if_the_ticket_is_lost(
    fake_server, tmp_path, capsys
):
    """`acquire --wait`: 202 answers show the place on stderr, a poll whose
    ticket the server lost queues again without it, then the seat comes."""
    from coditect_license.cli import main

    answers = iter(["queued-3", "queued-1", "lost", "queued-2", "seat"])
    sent: list[dict] = []

    def acquire(request):
        sent.append(dict(request.body))
        step = next(answers)
        if step == "lost":
            return error(404, "ticket_not_found")
        if step.startswith("queued"):
            position = int(step[-1])
            ticket = {"ticket_id": "t1", "ticket": f"ticket-{position}", "position": position, "waiting": 3}
            return 202, {}, {**ticket, "poll_after": 0, "expires_at": None, "queued_at": None}
        return fake_server.acquire(request)

    fake_server.stub.route("POST", "/api/v1/licenses/acquire", acquire)
    environ = {
        "CODITECT_LICENSE_SERVER": fake_server.stub.url,
        "CODITECT_LICENSE_KEY": KEY,
        "CODITECT_LICENSE_TOKEN": "user-access-token",
        "CODITECT_LICENSE_CACHE_DIR": str(tmp_path),
        "CODITECT_LICENSE_TRUSTED_ROOT_KEY": str(write_json(tmp_path / "root.jwks", fake_server.root.jwks)),
    }
    assert main(["--fingerprint", FP, "acquire", "--wait", "30"], environ) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["session_id"] in fake_server.sessions.values()
    assert "waiting for a seat: place 3 of 3" in out.err and "place 1 of 3" in out.err
    # The first asks to queue, each poll sends the ticket it was given, and
    # after the lost one the client queues again without a ticket.
    assert [(body.get("queue"), body.get("ticket")) for body in sent] == [
        (True, None),
        (None, "ticket-3"),
        (None, "ticket-1"),
        (True, None),
        (None, "ticket-2"),
    ]
