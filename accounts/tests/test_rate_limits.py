"""Rate limits: per address and per user, a sliding window shared by every
process, 429 in the error shape with Retry-After and RateLimit-* headers.

Each test speaks from an address of its own, so the session's shared Redis
namespace never carries one test's count into the next."""

import logging
import random
import time
import urllib.error
import urllib.request
import uuid

import pytest
from django.conf import settings as django_settings
from django.test import RequestFactory

from accounts import ratelimit
from coditect.testing import LiveServer, TcpProxy
from core.context import client_ip

pytestmark = pytest.mark.embedded

ANY_ROUTE = "/api/v1/auth/me"  # 401 without a token: cheap, and still counted


@pytest.fixture(
    params=[
        "database",
        pytest.param("redis", marks=pytest.mark.redis),
        # REDIS_URL a Redis Cluster of the session's own (coditect/redis_cluster_testing.py).
        pytest.param("redis-cluster", marks=pytest.mark.redis),
    ]
)
def backend(request, settings, monkeypatch):
    if request.param == "redis-cluster":
        if not settings.REDIS_URL:
            pytest.skip("needs Redis")  # the embedded pass, as the redis param
        settings.REDIS_URL = request.getfixturevalue("redis_cluster").url
        return _backend("redis", settings, monkeypatch)
    return _backend(request.param, settings, monkeypatch)


@pytest.fixture
def redis_backend(settings, monkeypatch):
    """The Redis store alone, for what only it can show (Redis away)."""
    return _backend("redis", settings, monkeypatch)


def _backend(name, settings, monkeypatch):
    if name == "redis" and not settings.REDIS_URL:
        pytest.skip("needs Redis")
    settings.RATE_LIMIT_BACKEND = name
    settings.RATE_LIMIT_PER_IP = 0
    settings.RATE_LIMIT_PER_USER = 0
    settings.RATE_LIMIT_WINDOW_SECONDS = 60
    monkeypatch.setattr(ratelimit, "_redis_down_until", 0.0)
    return name


@pytest.fixture
def address():
    return f"10.{random.randint(0, 255)}.{random.randint(0, 255)}.{random.randint(1, 254)}"


def get(client, address, path=ANY_ROUTE, **headers):
    return client.get(path, REMOTE_ADDR=address, headers=headers)


@pytest.mark.django_db
def test_request_n_plus_one_is_429_with_retry_after(backend, settings, client, address):
    settings.RATE_LIMIT_PER_IP = 3
    answers = [get(client, address) for _ in range(3)]
    assert [a.status_code for a in answers] == [401, 401, 401]
    assert [a.headers["RateLimit-Remaining"] for a in answers] == ["2", "1", "0"]
    assert all(a.headers["RateLimit-Limit"] == "3" for a in answers)
    assert 0 < int(answers[-1].headers["RateLimit-Reset"]) <= 60

    refused = get(client, address)
    assert refused.status_code == 429
    body = refused.json()["error"]
    assert body["code"] == "rate_limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert body["details"]["retry_after"] == int(refused.headers["Retry-After"])
    assert refused.headers["RateLimit-Remaining"] == "0"
    assert (
        get(client, "192.0.2.1" if backend == "database" else f"192.0.2.{random.randint(1, 254)}").status_code
        == 401
    )


@pytest.mark.django_db
def test_the_window_slides_and_lets_requests_through_again(backend, settings, client, address):
    settings.RATE_LIMIT_PER_IP = 3
    settings.RATE_LIMIT_WINDOW_SECONDS = 2
    start = time.monotonic()
    assert [get(client, address).status_code for _ in range(2)] == [401, 401]
    time.sleep(1.1)
    assert get(client, address).status_code == 401  # the third, one second later
    assert get(client, address).status_code == 429
    time.sleep(max(0, start + 2.15 - time.monotonic()))
    # The first two have left the window, the third has not: two get in, not three,
    # where a fixed window would have started again from zero.
    assert [get(client, address).status_code for _ in range(3)] == [401, 401, 429]


@pytest.mark.django_db(databases="__all__")
def test_probes_are_not_limited(backend, settings, client, address):
    settings.RATE_LIMIT_PER_IP = 1
    for path in ("/health", "/health", "/ready", "/ready"):
        response = get(client, address, path)
        assert response.status_code == 200, path
        assert "RateLimit-Limit" not in response.headers
    assert get(client, address).status_code == 401
    assert get(client, address).status_code == 429


@pytest.mark.django_db
def test_the_per_user_limit_counts_each_user_apart(backend, settings, address, member, viewer):
    settings.RATE_LIMIT_PER_USER = 2
    assert [get(member.client, address).status_code for _ in range(2)] == [200, 200]
    refused = get(member.client, address)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    assert int(refused.headers["Retry-After"]) >= 1
    assert get(viewer.client, address).status_code == 200


@pytest.mark.django_db
def test_the_tighter_limit_speaks_in_the_headers(backend, settings, address, member):
    settings.RATE_LIMIT_PER_IP = 50
    settings.RATE_LIMIT_PER_USER = 5
    response = get(member.client, address)
    assert (response.headers["RateLimit-Limit"], response.headers["RateLimit-Remaining"]) == ("5", "4")


@pytest.mark.django_db
def test_a_forwarded_for_header_is_ignored_unless_proxies_are_trusted(backend, settings, client, address):
    settings.RATE_LIMIT_PER_IP = 1
    assert get(client, address).status_code == 401
    spoofed = get(client, address, **{"X-Forwarded-For": "203.0.113.9"})
    assert spoofed.status_code == 429


def test_client_ip_takes_the_hop_our_outermost_proxy_wrote(settings):
    def ip(remote, forwarded=None):
        meta = {"REMOTE_ADDR": remote}
        if forwarded is not None:
            meta["HTTP_X_FORWARDED_FOR"] = forwarded
        return client_ip(RequestFactory().get("/", **meta))

    settings.TRUSTED_PROXY_COUNT = 0
    assert ip("10.0.0.2", "198.51.100.7") == "10.0.0.2"
    settings.TRUSTED_PROXY_COUNT = 1
    assert ip("10.0.0.2", "6.6.6.6, 198.51.100.7") == "198.51.100.7"
    assert ip("10.0.0.2") == "10.0.0.2"
    assert ip("10.0.0.2", "not-an-address") == "10.0.0.2"
    settings.TRUSTED_PROXY_COUNT = 2  # e.g. Google's load balancer: "<client>, <lb>"
    assert ip("10.0.0.2", "6.6.6.6, 198.51.100.7, 130.211.0.1") == "198.51.100.7"
    assert ip("10.0.0.2", "130.211.0.1") == "10.0.0.2"
    assert ip("0:0:0:0:0:0:0:1") == "::1"


@pytest.mark.redis
@pytest.mark.django_db
def test_redis_down_lets_requests_through_with_a_warning(redis_backend, settings, client, address, caplog):
    host, port = settings.REDIS_URL.split("//", 1)[1].split("/", 1)[0].split(":")
    proxy = TcpProxy(host, int(port))
    try:
        settings.REDIS_URL = f"redis://127.0.0.1:{proxy.port}/0"
        settings.RATE_LIMIT_PER_IP = 2
        assert get(client, address).status_code == 401
        proxy.cut()
        with caplog.at_level(logging.WARNING, logger="accounts.ratelimit"):
            assert [get(client, address).status_code for _ in range(3)] == [401, 401, 401]
        assert "cannot reach Redis" in caplog.text
        proxy.restore()
        ratelimit._redis_down_until = 0.0
        assert [get(client, address).status_code for _ in range(2)] == [401, 429]
    finally:
        proxy.close()


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.mark.redis
@pytest.mark.postgres
def test_two_app_processes_share_one_limit_through_redis(django_db_setup, settings, tmp_path):
    if not settings.REDIS_URL:
        pytest.skip("needs Redis")
    servers = []
    try:
        for name in ("a", "b"):
            (tmp_path / name).mkdir()
            server = LiveServer(tmp_path / name)
            server.env.update(
                GUNICORN_WORKERS="1",
                RATE_LIMIT_PER_IP="4",
                RATE_LIMIT_WINDOW_SECONDS="60",
                REDIS_KEY_PREFIX=f"{settings.REDIS_KEY_PREFIX}:two-processes-{uuid.uuid4().hex[:6]}",
            )
            servers.append(server)
        servers[1].env["REDIS_KEY_PREFIX"] = servers[0].env["REDIS_KEY_PREFIX"]
        for server in servers:
            server.start()
        a, b = (f"{server.url}{ANY_ROUTE}" for server in servers)
        assert [_status(url) for url in (a, b, a, b)] == [401, 401, 401, 401]
        assert [_status(a), _status(b)] == [429, 429]
    finally:
        for server in servers:
            server.stop()


def test_concurrent_requests_never_slip_past_the_limit(committed_db, settings):
    """Racing processes' threads on one key: exactly `limit` get in, on either store."""
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connections

    from accounts.ratelimit import rate_limit_hit

    backends = ["database"] + (["redis"] if settings.REDIS_URL else [])
    for store in backends:
        settings.RATE_LIMIT_BACKEND = store
        key = f"race-{store}-{uuid.uuid4().hex[:8]}"

        def hit(_):
            try:
                return rate_limit_hit(key=key, limit=5, window=60).allowed
            finally:
                connections.close_all()

        with ThreadPoolExecutor(max_workers=8) as pool:
            allowed = list(pool.map(hit, range(24)))
        assert allowed.count(True) == 5, store


# --- the operator console and the pages ----------------------------------------------------

CONSOLE_PAGES = ["/admin/", "/admin/licenses/license/", "/admin/tenants/tenant/", "/admin/accounts/user/"]
BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


def _signed_in(client, **fields):
    """`client` signed in to the admin site's session as a new staff user."""
    from django.conf import settings as django_settings
    from django.db import transaction

    from accounts.models import User
    from tenants.scope import operator_scope

    with operator_scope(), transaction.atomic(using=django_settings.OPERATOR_DATABASE):
        user = User.objects.create_user(
            f"ops-{uuid.uuid4().hex[:6]}@coditect.test", "a console passphrase", is_staff=True, **fields
        )
    with operator_scope():
        client.force_login(user)
    return user


def _assert_html_refusal(response):
    assert response.status_code == 429
    assert response["Content-Type"].startswith("text/html")
    assert 1 <= int(response["Retry-After"]) <= 60
    assert response["RateLimit-Remaining"] == "0"
    text = response.content.decode()
    assert "Too many requests" in text and "rate_limited" not in text
    assert "script-src" in response["Content-Security-Policy"]  # a page like the others


def test_a_signed_in_operators_console_pages_are_not_counted(
    backend, settings, committed_db, client, address
):
    settings.RATE_LIMIT_PER_IP = 3
    _signed_in(client, is_superuser=True)
    answers = [get(client, address, CONSOLE_PAGES[n % len(CONSOLE_PAGES)], **BROWSER) for n in range(150)]
    assert [a.status_code for a in answers] == [200] * 150
    assert all("RateLimit-Limit" not in a.headers for a in answers)
    # None of them was counted: the address still has its whole allowance for the API,
    # where the operator's session cookie counts for nothing.
    assert [get(client, address).status_code for _ in range(4)] == [401, 401, 401, 429]


def test_an_anonymous_console_request_past_the_limit_gets_an_html_page(
    backend, settings, committed_db, client, address
):
    settings.RATE_LIMIT_PER_IP = 3
    assert [get(client, address, "/admin/", **BROWSER).status_code for _ in range(3)] == [302, 302, 302]
    _assert_html_refusal(get(client, address, "/admin/", **BROWSER))
    # The sign-in form too (it also has the sign-in throttle, per account).
    _assert_html_refusal(get(client, address, "/admin/login/", **BROWSER))


def test_a_signed_in_operators_sign_in_attempts_are_counted(backend, settings, committed_db, client, address):
    """A session is no licence to try passwords: the admin's sign-in form,
    POSTed from an operator's session, counts against the address."""
    settings.RATE_LIMIT_PER_IP = 3
    _signed_in(client, is_superuser=True)

    def attempt(n):
        return client.post(
            "/admin/login/",
            {"username": f"user{n}@acme.test", "password": "wrong"},
            REMOTE_ADDR=address,
            headers=BROWSER,
        )

    answers = [attempt(n) for n in range(5)]
    assert [a.status_code for a in answers[:3]] == [200, 200, 200]
    _assert_html_refusal(answers[3])
    # The operator's own pages are still not counted.
    assert get(client, address, "/admin/", **BROWSER).status_code == 200


@pytest.mark.parametrize(
    "answered_before_any_view", ["/admin/login/?a=%00", "/admin/?q=CDT-AAAAA-BBBBB-CCCCC-DDDDD-EEEEE"]
)
def test_a_console_request_answered_before_its_view_is_counted(
    backend, settings, committed_db, client, address, answered_before_any_view
):
    settings.RATE_LIMIT_PER_IP = 3
    client.cookies[django_settings.SESSION_COOKIE_NAME] = "not-a-session"  # counted after its answer
    for _ in range(3):
        assert get(client, address, answered_before_any_view, **BROWSER).status_code in (302, 400)
    _assert_html_refusal(get(client, address, "/admin/login/", **BROWSER))
    del client.cookies[django_settings.SESSION_COOKIE_NAME]  # counted before its answer
    _assert_html_refusal(get(client, address, answered_before_any_view, **BROWSER))


def test_staff_of_a_tenant_is_no_operator_and_is_counted(backend, settings, committed_db, client, address):
    """The admin site lets no tenant's member in, whatever is_staff says; nor does the limit."""
    from tenants.tests.factories import TenantFactory

    settings.RATE_LIMIT_PER_IP = 2
    _signed_in(client, tenant=TenantFactory(slug=f"staff-{uuid.uuid4().hex[:6]}"))
    assert [get(client, address, "/admin/", **BROWSER).status_code for _ in range(2)] == [302, 302]
    _assert_html_refusal(get(client, address, "/admin/", **BROWSER))


@pytest.mark.django_db
def test_the_api_past_the_limit_keeps_the_json_error_for_a_browser_too(backend, settings, client, address):
    settings.RATE_LIMIT_PER_IP = 1
    assert get(client, address, **BROWSER).status_code == 401
    for path in (ANY_ROUTE, "/api/v1/nope", "/.well-known/jwks.json"):
        refused = get(client, address, path, **BROWSER)
        assert refused.status_code == 429, path
        assert refused["Content-Type"] == "application/json"
        assert refused.json()["error"]["code"] == "rate_limited"
        assert refused.json()["error"]["details"]["retry_after"] == int(refused["Retry-After"])


@pytest.mark.django_db
def test_the_dashboard_past_the_limit_gets_an_html_page(backend, settings, client, address):
    settings.RATE_LIMIT_PER_IP = 1
    assert get(client, address, "/dashboard/login/", **BROWSER).status_code == 200
    refused = get(client, address, "/dashboard/login/", **BROWSER)
    _assert_html_refusal(refused)
    assert "operator" not in refused.content.decode()


def test_the_refusal_page_says_nothing_of_who_is_not_counted(
    backend, settings, committed_db, client, address
):
    settings.RATE_LIMIT_PER_IP = 1
    get(client, address, "/admin/", **BROWSER)
    refused = get(client, address, "/admin/login/", **BROWSER)
    _assert_html_refusal(refused)
    assert "operator" not in refused.content.decode() and "signed in" not in refused.content.decode()


def test_an_api_request_never_reads_the_session(backend, settings, committed_db, client, address):
    """The console's exemption costs the API nothing: the session (a query) is
    read for the admin site only."""
    from contextlib import ExitStack

    from django.db import connections
    from django.test.utils import CaptureQueriesContext

    settings.RATE_LIMIT_PER_IP = 100
    _signed_in(client)

    def session_reads(path, status):
        with ExitStack() as stack:
            captured = [stack.enter_context(CaptureQueriesContext(c)) for c in connections.all()]
            assert get(client, address, path).status_code == status
        return [q["sql"] for queries in captured for q in queries if "django_session" in q["sql"]]

    assert session_reads(ANY_ROUTE, 401) == []
    # The admin site reads it once, for its view and the limit together.
    assert len(session_reads("/admin/", 200)) == 1
