"""Retries with backoff and jitter, Retry-After, and typed errors, against a
tiny local HTTP server that answers what each test scripts."""

from __future__ import annotations

import random
import socket
import threading
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from sdk_testkit import error

from coditect_license import errors
from coditect_license.transport import HttpApi, Interrupted, RetryPolicy, parse_retry_after

FAST = RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05, deadline=5)
OK = (200, {}, {"ok": True})


def api(url, policy=FAST):
    return HttpApi(url, retry=policy, rng=random.Random(7), timeout=(1, 2))


def test_503_and_500_are_tried_again_until_an_answer_comes(stub):
    stub.route("POST", "/x", [error(503, "service_unavailable"), (500, {}, b"<html>oops</html>"), OK])
    assert api(stub.url).request("POST", "/x", json={}).body == {"ok": True}
    assert len(stub.calls("POST", "/x")) == 3


def test_429_waits_at_least_what_retry_after_asks(stub):
    stub.route("GET", "/x", [error(429, "rate_limited", {"Retry-After": "1"}), OK])
    started = time.monotonic()
    api(stub.url).request("GET", "/x")
    first, second = stub.calls("GET", "/x")
    assert second.at - first.at >= 1.0
    assert time.monotonic() - started < 2.5


def test_a_retry_after_beyond_the_deadline_ends_the_call_at_once_with_it(stub):
    stub.route("GET", "/x", error(503, "service_unavailable", {"Retry-After": "120"}))
    started = time.monotonic()
    with pytest.raises(errors.ServiceUnavailable) as raised:
        api(stub.url).request("GET", "/x")
    assert raised.value.retry_after == 120
    assert time.monotonic() - started < 1
    assert len(stub.calls("GET", "/x")) == 1


def test_it_gives_up_after_the_attempts_the_policy_allows(stub):
    stub.route("GET", "/x", error(503, "service_unavailable"))
    with pytest.raises(errors.ServiceUnavailable):
        api(stub.url).request("GET", "/x")
    assert len(stub.calls("GET", "/x")) == FAST.attempts


def test_a_refusal_is_not_tried_again_and_comes_back_typed_with_its_details(stub):
    stub.route("POST", "/x", error(409, "no_seats_available", {"X-Request-ID": "r-1"}, used=2, max=2))
    with pytest.raises(errors.NoSeatsAvailable) as raised:
        api(stub.url).request("POST", "/x", json={})
    assert raised.value.details == {"used": 2, "max": 2}
    assert raised.value.status == 409
    assert raised.value.request_id == "r-1"
    assert len(stub.calls("POST", "/x")) == 1


def test_an_unreachable_server_is_tried_again_then_reported_as_connection_failed():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    with pytest.raises(errors.ConnectionFailed):
        api(f"http://127.0.0.1:{port}").request("GET", "/x")


def test_a_stop_request_cuts_the_wait_between_tries_short(stub):
    stub.route("GET", "/x", error(503, "service_unavailable", {"Retry-After": "3"}))
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    started = time.monotonic()
    with pytest.raises(Interrupted):
        api(stub.url, RetryPolicy(deadline=10)).request("GET", "/x", interrupt=stop)
    assert time.monotonic() - started < 1.5


def test_backoff_grows_exponentially_under_a_cap_with_full_jitter():
    policy = RetryPolicy(base_delay=0.5, max_delay=4)
    rng = random.Random(1)
    samples = [[policy.backoff(attempt, rng) for _ in range(200)] for attempt in range(6)]
    assert max(samples[0]) <= 0.5
    assert max(samples[2]) <= 2.0
    assert max(samples[5]) <= 4.0
    assert min(samples[5]) < 1.0  # full jitter: anywhere from zero


def test_retry_after_may_be_seconds_or_an_http_date():
    now = time.time()
    moment = datetime.fromtimestamp(now, UTC) + timedelta(seconds=30)
    assert parse_retry_after("7") == 7
    assert 28 <= parse_retry_after(format_datetime(moment, usegmt=True), now=now) <= 31
    assert parse_retry_after("soon") is None


@pytest.mark.parametrize("code", sorted(errors.SERVER_ERRORS))
def test_every_error_code_of_the_contract_has_its_own_class_under_one_base(code):
    raised = errors.error_from_response(400, {"error": {"code": code, "message": "m", "details": {"a": 1}}})
    assert type(raised) is errors.SERVER_ERRORS[code]
    assert isinstance(raised, errors.LicenseError)
    assert raised.code == code and raised.details == {"a": 1}


def test_an_unknown_code_keeps_its_name_on_the_base_class():
    raised = errors.error_from_response(418, {"error": {"code": "teapot", "message": "m", "details": {}}})
    assert type(raised) is errors.LicenseError and raised.code == "teapot"


def test_the_contracts_codes_are_all_there():
    assert set(errors.SERVER_ERRORS) == {
        "invalid_request",
        "not_authenticated",
        "permission_denied",
        "license_not_found",
        "license_expired",
        "license_suspended",
        "fingerprint_not_allowed",
        "no_seats_available",
        "session_not_found",
        "rate_limited",
        "service_unavailable",
        "user_inactive",
        "tenant_inactive",
        "machine_blocked",
        "user_blocked",
        "idle_timeout",
        "request_too_large",
        "group_limit_reached",
        "queue_full",
        "ticket_not_found",
        "not_assigned",
        "borrow_limit_reached",
    }
