"""A dependency that hangs (the server is there, TCP acknowledges, nothing
answers, as a SIGSTOPped PostgreSQL or Redis) costs a request at most its
deadline and answers 503 service_unavailable; once it answers again,
everything works without restarting anything (DESIGN.md invariant 13).

The bounds below are deadlines, not benchmarks: the configured timeout plus
one second."""

from __future__ import annotations

import time

import pytest
from django.db import connections

from coditect.personas import api_client, tenant_member
from coditect.settings import postgresql_deadline_options
from coditect.testing import TcpProxy
from licenses import ledger as ledger_module
from licenses.tests.conftest import acquire, error_code
from licenses.tests.factories import LicenseFactory
from tenants.tests.factories import TenantFactory

pytestmark = pytest.mark.slow

STATEMENT_TIMEOUT = 2.0  # seconds: libpq's connect_timeout is whole seconds, 2 at least
DEADLINE = postgresql_deadline_options(STATEMENT_TIMEOUT, "")["deadline"]
REDIS_SOCKET_TIMEOUT = 1.0


def timed(request):
    started = time.monotonic()
    response = request()
    return response, time.monotonic() - started


@pytest.fixture
def postgresql_behind_a_proxy(committed_db):
    """Both database aliases reach PostgreSQL through one proxy, with
    STATEMENT_TIMEOUT as DATABASE_STATEMENT_TIMEOUT."""
    default = connections["default"]
    if default.vendor != "postgresql":
        pytest.skip("needs PostgreSQL")
    host = default.settings_dict.get("HOST") or "127.0.0.1"
    proxy = TcpProxy(host, int(default.settings_dict.get("PORT") or 5432))
    aliases = [alias for alias in ("default", "operator") if alias in connections.settings]
    saved = {}
    for alias in aliases:
        connection = connections[alias]
        connection.close()
        saved[alias] = {**connection.settings_dict, "OPTIONS": dict(connection.settings_dict["OPTIONS"])}
        options = {**connection.settings_dict["OPTIONS"], "connect_timeout": int(STATEMENT_TIMEOUT)}
        options.update(postgresql_deadline_options(STATEMENT_TIMEOUT, ""))
        connection.settings_dict.update(HOST="127.0.0.1", PORT=str(proxy.port), OPTIONS=options)
    yield proxy
    proxy.resume()
    for alias in aliases:
        connection = connections[alias]
        connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(saved[alias])
    proxy.close()


@pytest.mark.postgres
@pytest.mark.parametrize("seat_ledger", ["redis", "database"])
def test_acquire_answers_503_within_the_deadline_while_postgresql_hangs_and_works_after(
    postgresql_behind_a_proxy, settings, seat_ledger
):
    if seat_ledger == "redis" and not settings.REDIS_URL:
        pytest.skip("needs Redis")
    settings.SEAT_LEDGER = seat_ledger
    tenant = TenantFactory()
    member = tenant_member(tenant)
    license = LicenseFactory(tenant=tenant, max_seats=3)
    assert acquire(member, license, "machine-0001").status_code == 201

    postgresql_behind_a_proxy.hang()
    # The hang met on an open connection; at once after it, the thread that
    # gave up does not try again; a while later, a new connection the hung
    # server never answers.
    for fingerprint, wait_first in (("machine-0002", 0), ("machine-0003", 0), ("machine-0003", DEADLINE)):
        time.sleep(wait_first)
        response, took = timed(lambda fp=fingerprint: acquire(member, license, fp))
        assert (response.status_code, error_code(response)) == (503, "service_unavailable")
        assert response["Retry-After"]
        assert took < STATEMENT_TIMEOUT + 1, took

    postgresql_behind_a_proxy.resume()
    after = acquire(member, license, "machine-0002")
    assert after.status_code == 201, after.content
    assert after.json()["seats"]["used"] == 2  # nothing the 503s abandoned holds a seat
    assert member.client.get("/api/v1/licenses/status").status_code == 200


@pytest.fixture
def redis_behind_a_proxy(settings):
    """The seat ledger and the rate limiter reach Redis through a proxy, with
    REDIS_SOCKET_TIMEOUT as theirs."""
    if not settings.REDIS_URL:
        pytest.skip("needs Redis")
    from accounts import ratelimit

    proxy = TcpProxy("127.0.0.1", 6379)
    settings.REDIS_URL = f"redis://127.0.0.1:{proxy.port}/0"
    settings.REDIS_SOCKET_TIMEOUT = REDIS_SOCKET_TIMEOUT
    settings.SEAT_LEDGER = "redis"
    saved = ledger_module._ledgers.pop("redis", None)
    yield proxy
    proxy.resume()
    ledger_module._ledgers.pop("redis", None)
    if saved is not None:
        ledger_module._ledgers["redis"] = saved
    ratelimit._redis_scripts.forget(settings.REDIS_URL)
    ratelimit._redis_down_until = 0.0
    proxy.close()


@pytest.mark.redis
def test_acquire_and_heartbeat_answer_503_within_the_socket_timeout_while_redis_hangs(
    committed_db, redis_behind_a_proxy
):
    # Committed rows, as in production: a test transaction around the requests
    # would be left broken by the 503 that abandons the request's work.
    tenant = TenantFactory()
    member = tenant_member(tenant)
    license = LicenseFactory(tenant=tenant, max_seats=3)
    first = acquire(member, license, "machine-0001")
    assert first.status_code == 201
    seat = api_client(token=first.json()["token"])

    redis_behind_a_proxy.hang()
    for request in (
        lambda: acquire(member, license, "machine-0002"),
        lambda: seat.post("/api/v1/licenses/heartbeat"),
    ):
        response, took = timed(request)
        assert (response.status_code, error_code(response)) == (503, "service_unavailable")
        assert took < REDIS_SOCKET_TIMEOUT + 1, took

    redis_behind_a_proxy.resume()
    assert seat.post("/api/v1/licenses/heartbeat").status_code == 200
    # 200 or 201: the acquire that was answered 503 was still held in the
    # proxy, as it would be in a stopped Redis's socket, and ran on resume.
    assert acquire(member, license, "machine-0002").status_code in (200, 201)


@pytest.mark.redis
@pytest.mark.django_db
def test_the_rate_limiter_lets_requests_through_within_the_socket_timeout_while_redis_hangs(
    redis_behind_a_proxy, settings
):
    from accounts.ratelimit import rate_limit_hit

    settings.RATE_LIMIT_BACKEND = "redis"
    assert rate_limit_hit(key="hung-redis", limit=10).allowed

    redis_behind_a_proxy.hang()
    decision, took = timed(lambda: rate_limit_hit(key="hung-redis", limit=10))
    assert decision is None  # no decision: the request goes through
    assert took < REDIS_SOCKET_TIMEOUT + 1, took


@pytest.mark.postgres
@pytest.mark.django_db(databases="__all__")
def test_every_postgresql_connection_carries_the_server_side_timeouts(settings):
    expected = str(int(settings.DATABASE_STATEMENT_TIMEOUT * 1000))
    aliases = [alias for alias in connections if connections[alias].vendor == "postgresql"]
    if not aliases:
        pytest.skip("needs PostgreSQL")
    for alias in aliases:
        with connections[alias].cursor() as cursor:
            cursor.execute(
                "SELECT name, setting FROM pg_settings WHERE name IN ('statement_timeout', 'lock_timeout')"
            )
            assert dict(cursor.fetchall()) == {"statement_timeout": expected, "lock_timeout": expected}
        assert connections[alias].connection.deadline == settings.DATABASE_STATEMENT_TIMEOUT + 0.5


def test_a_statement_timeout_of_zero_sets_no_deadline():
    assert postgresql_deadline_options(0, "-c search_path=public") == {}
    options = postgresql_deadline_options(1.5, "-c search_path=public")
    assert options["options"] == "-c search_path=public -c statement_timeout=1500 -c lock_timeout=1500"
    assert options["keepalives"] == 1 and options["tcp_user_timeout"] == 1500


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.parametrize("fault", ["hang", "cut"])
def test_heartbeats_keep_answering_on_the_redis_ledger_while_postgresql_hangs_or_is_down(
    postgresql_behind_a_proxy, settings, fault
):
    """Heartbeats need only Redis (invariant 13): the license and the holder's
    standing last read serve while PostgreSQL does not answer, and one
    heartbeat per period at most waits on it."""
    if not settings.REDIS_URL:
        pytest.skip("needs Redis")
    settings.SEAT_LEDGER = "redis"
    settings.LICENSE_CACHE_SECONDS = 0.5
    tenant = TenantFactory()
    member = tenant_member(tenant)
    license = LicenseFactory(tenant=tenant, max_seats=1)
    checkout = acquire(member, license, "machine-0001").json()
    seat = api_client(token=checkout["token"])
    assert seat.post("/api/v1/licenses/heartbeat").status_code == 200

    getattr(postgresql_behind_a_proxy, fault)()
    slow = 0
    deadline = time.monotonic() + 3 * DEADLINE
    while time.monotonic() < deadline:
        response, took = timed(lambda: seat.post("/api/v1/licenses/heartbeat"))
        assert response.status_code == 200, response.content
        assert response.json()["session_id"] == checkout["session_id"]
        slow += took > 0.5
        time.sleep(0.2)
    # Only a reload after the cache's age waits on PostgreSQL, and then serves
    # what was last read.
    assert slow <= 3 * DEADLINE / settings.LICENSE_CACHE_SECONDS

    {"hang": postgresql_behind_a_proxy.resume, "cut": postgresql_behind_a_proxy.restore}[fault]()
    assert seat.post("/api/v1/licenses/heartbeat").status_code == 200
    assert seat.delete("/api/v1/licenses/release").status_code == 200
