"""Sign-in that resists guessing: an account's failed sign-ins lock it, with a
backoff, whatever address they come from and whichever door (API, dashboard,
admin) they knock on; a locked account is refused before any password is
hashed, the right password too, until the lock ends or an operator lifts it.

Each store runs the same tests: the database (the embedded default) and Redis
(with every lock mirrored to the database, so it holds while Redis is away).
Time moves with the app clock, which both stores read."""

from __future__ import annotations

import json
import logging
import threading
from io import StringIO

import pytest
from django.contrib.auth import hashers
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from accounts import throttle
from accounts.models import LoginThrottle, Role, User
from accounts.tests.factories import TEST_PASSWORD, UserFactory
from audit.models import AuditLog
from tenants.scope import operator_scope, tenant_scope
from tenants.tests.factories import TenantFactory

pytestmark = pytest.mark.embedded

LOGIN = "/api/v1/auth/login"
WRONG = "wrong-password-guess"
N = 3  # failures before the throttle, in these tests


@pytest.fixture(
    params=[
        "database",
        pytest.param("redis", marks=pytest.mark.redis),
        # REDIS_URL a Redis Cluster of the session's own (coditect/redis_cluster_testing.py).
        pytest.param("redis-cluster", marks=pytest.mark.redis),
    ]
)
def store(request, settings, monkeypatch):
    if request.param != "redis-cluster":
        yield _store(request.param, settings, monkeypatch)
        return
    if not settings.REDIS_URL:
        pytest.skip("needs Redis")  # the embedded pass, as the redis param
    url = settings.REDIS_URL = request.getfixturevalue("redis_cluster").url
    yield _store("redis", settings, monkeypatch)
    # The personas' emails recur in every test: the next one starts unthrottled
    # (login_throttle_forgotten does the same on the shared Redis).
    client = throttle.redis_client(url)
    keys = list(client.scan_iter(f"{settings.REDIS_KEY_PREFIX}:login:*"))
    if keys:
        client.delete(*keys)


@pytest.fixture
def redis_store(settings, monkeypatch):
    """The Redis store alone, for what only it can show (Redis away)."""
    return _store("redis", settings, monkeypatch)


def _store(name, settings, monkeypatch):
    if name == "redis" and not settings.REDIS_URL:
        pytest.skip("needs Redis")
    settings.RATE_LIMIT_BACKEND = name
    settings.RATE_LIMIT_PER_IP = 0
    settings.LOGIN_FAILURES_BEFORE_THROTTLE = N
    settings.LOGIN_BACKOFF_BASE_SECONDS = 30
    settings.LOGIN_BACKOFF_MAX_SECONDS = 100
    settings.LOGIN_FAILURE_WINDOW_SECONDS = 3600
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    monkeypatch.setattr(throttle, "_redis_down_until", 0.0)
    return name


@pytest.fixture
def acme(committed_db):
    tenant = TenantFactory(slug="acme")
    UserFactory(tenant=tenant, role=Role.TENANT_ADMIN, email="admin@acme.test")
    UserFactory(tenant=tenant, role=Role.USER, email="member@acme.test")
    return tenant


def login(email, password, address="198.51.100.1"):
    return APIClient().post(LOGIN, {"email": email, "password": password}, format="json", REMOTE_ADDR=address)


def fail(email, times, **kwargs):
    answers = [login(email, WRONG, **kwargs) for _ in range(times)]
    assert [a.status_code for a in answers] == [401] * times
    return answers


def assert_throttled(response, retry_after):
    assert response.status_code == 429
    error = response.json()["error"]
    assert error["code"] == "login_throttled"
    assert error["details"] == {"retry_after": retry_after}
    assert response["Retry-After"] == str(retry_after)
    assert "try again in" in error["message"]


def events(tenant, action):
    if tenant is None:
        with operator_scope():
            return list(AuditLog.objects.filter(action=action, tenant_id=None).order_by("id"))
    with tenant_scope(tenant.id):
        return list(AuditLog.objects.filter(action=action).order_by("id"))


def test_after_n_failures_the_right_password_is_refused_until_the_backoff_ends(store, acme, app_clock):
    fail("admin@acme.test", N)
    assert_throttled(login("admin@acme.test", TEST_PASSWORD), 30)

    (locked,) = events(acme, "user.login_throttled")
    assert locked.details == {"failures": N, "retry_after": 30, "method": "password"}
    assert locked.actor == "admin@acme.test"
    # A refusal is not an attempt: no row each, so a flood writes nothing.
    assert len(events(acme, "auth.login_failed")) == N

    app_clock(29)
    assert_throttled(login("admin@acme.test", TEST_PASSWORD), 1)
    app_clock(31)
    assert login("admin@acme.test", TEST_PASSWORD).status_code == 200
    # The success ended the run: the next mistake is the first again.
    app_clock(32)
    fail("admin@acme.test", N - 1)
    assert login("admin@acme.test", TEST_PASSWORD).status_code == 200


def test_each_failure_past_the_threshold_doubles_the_lock_up_to_the_longest(store, acme, app_clock):
    fail("admin@acme.test", N)
    app_clock(31)
    fail("admin@acme.test", 1)
    assert_throttled(login("admin@acme.test", TEST_PASSWORD), 60)
    app_clock(92)
    fail("admin@acme.test", 1)
    assert_throttled(login("admin@acme.test", TEST_PASSWORD), 100)  # 120, capped
    assert [e.details["retry_after"] for e in events(acme, "user.login_throttled")] == [30, 60, 100]


def test_failures_are_forgotten_a_window_after_the_last(store, acme, app_clock, settings):
    fail("admin@acme.test", N - 1)
    app_clock(settings.LOGIN_FAILURE_WINDOW_SECONDS + 1)
    fail("admin@acme.test", N - 1)
    assert login("admin@acme.test", TEST_PASSWORD).status_code == 200


def test_guesses_spread_over_many_addresses_lock_the_account_all_the_same(store, acme, settings):
    settings.RATE_LIMIT_PER_IP = 2  # each address is far inside its own limit
    settings.TRUSTED_PROXY_COUNT = 1
    for n in range(N):
        answer = APIClient().post(
            LOGIN,
            {"email": "admin@acme.test", "password": WRONG},
            format="json",
            REMOTE_ADDR="10.0.0.2",
            HTTP_X_FORWARDED_FOR=f"203.0.113.{n + 1}",
        )
        assert answer.status_code == 401
    fresh = APIClient().post(
        LOGIN,
        {"email": "Admin@Acme.test ", "password": TEST_PASSWORD},
        format="json",
        REMOTE_ADDR="10.0.0.2",
        HTTP_X_FORWARDED_FOR="192.0.2.200",
    )
    assert_throttled(fresh, 30)
    # Another account is not touched.
    assert login("member@acme.test", TEST_PASSWORD).status_code == 200


def test_an_unknown_email_is_throttled_exactly_as_a_real_one(store, acme):
    real = fail("admin@acme.test", N)
    unknown = fail("nobody@acme.test", N)
    assert [a.json() for a in real] == [a.json() for a in unknown]
    assert_throttled(login("nobody@acme.test", TEST_PASSWORD), 30)
    assert_throttled(login("admin@acme.test", TEST_PASSWORD), 30)
    (locked,) = events(None, "user.login_throttled")
    assert (locked.actor, locked.details["method"]) == ("nobody@acme.test", "password")


def test_a_locked_account_is_refused_before_any_password_is_hashed(store, acme, monkeypatch):
    fail("admin@acme.test", N)
    fail("nobody@acme.test", N)
    hashed = []
    for name in ("encode", "verify"):
        real = getattr(hashers.MD5PasswordHasher, name)
        monkeypatch.setattr(
            hashers.MD5PasswordHasher,
            name,
            lambda self, *args, _real=real, _name=name: hashed.append(_name) or _real(self, *args),
        )
    for email in ("admin@acme.test", "nobody@acme.test"):
        assert login(email, TEST_PASSWORD).status_code == 429
    assert hashed == []
    assert login("member@acme.test", WRONG).status_code == 401
    assert hashed[0] == "verify"  # a door that is not locked checks the password


def test_attempts_that_arrive_together_let_only_n_through(store, acme):
    results: list[str] = []
    barrier = threading.Barrier(12)

    def attempt():
        barrier.wait()
        try:
            throttle.login_attempt_begin(email="admin@acme.test")
            results.append("let through")
        except throttle.LoginThrottled:
            results.append("refused")

    threads = [threading.Thread(target=attempt) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count("let through") == N
    assert results.count("refused") == 12 - N


def test_the_dashboard_shares_the_lock_and_answers_429_with_retry_after(store, acme):
    fail("admin@acme.test", N - 1)
    dashboard = Client()
    wrong = dashboard.post("/dashboard/login/", {"email": "admin@acme.test", "password": WRONG})
    assert wrong.status_code == 401
    refused = dashboard.post("/dashboard/login/", {"email": "admin@acme.test", "password": TEST_PASSWORD})
    assert refused.status_code == 429
    assert refused["Retry-After"] == "30"
    assert b"Too many failed sign-ins for this account" in refused.content
    assert "_auth_user_id" not in dashboard.session
    (locked,) = events(acme, "user.login_throttled")
    assert locked.details["method"] == "dashboard"


def test_the_current_password_of_a_password_change_is_guessed_against_the_same_lock(store, acme):
    """A stolen access token is no way around the throttle: wrong current
    passwords count as failed sign-ins, and the lock refuses both doors."""
    token = login("member@acme.test", TEST_PASSWORD).json()["access_token"]
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")

    def change(current):
        body = {"current_password": current, "new_password": "a different long passphrase 77"}
        return api.post("/api/v1/auth/password", body, format="json", REMOTE_ADDR="198.51.100.9")

    for _ in range(N):
        wrong = change(WRONG)
        assert wrong.status_code == 400
        assert wrong.json()["error"]["details"]["fields"] == {
            "current_password": ["The current password is not correct."]
        }
    assert_throttled(change(TEST_PASSWORD), 30)
    assert_throttled(login("member@acme.test", TEST_PASSWORD), 30)
    (locked,) = events(acme, "user.login_throttled")
    assert locked.details["method"] == "password_change"
    with tenant_scope(acme.id):
        assert User.objects.get(email="member@acme.test").check_password(TEST_PASSWORD), "unchanged"


@pytest.fixture
def operator(committed_db):
    from django.apps import apps
    from django.contrib.contenttypes.management import create_contenttypes
    from django.contrib.contenttypes.models import ContentType

    # committed_db empties content types after each test; the admin needs them.
    ContentType.objects.clear_cache()
    for app_config in apps.get_app_configs():
        create_contenttypes(app_config, verbosity=0)
    with operator_scope():
        return User.objects.create_superuser("root@coditect.test", TEST_PASSWORD)


def admin_login(email, password):
    return Client().post(reverse("admin:login"), {"username": email, "password": password, "next": "/admin/"})


def test_the_admin_login_is_throttled_and_says_so(store, operator, app_clock):
    for _ in range(N):
        answer = admin_login("root@coditect.test", WRONG)
        assert answer.status_code == 200
        assert b"Please enter the correct" in answer.content
    refused = admin_login("root@coditect.test", TEST_PASSWORD)
    assert refused.status_code == 200
    assert b"Too many failed sign-ins for this account. Try again in 30 seconds." in refused.content
    (locked,) = events(None, "user.login_throttled")
    assert locked.details == {"failures": N, "retry_after": 30, "method": "admin"}
    assert locked.target_id == str(operator.id)
    # The API's door counts against the same account.
    assert_throttled(login("root@coditect.test", TEST_PASSWORD), 30)
    app_clock(31)
    assert admin_login("root@coditect.test", TEST_PASSWORD).status_code == 302


def test_an_operator_unlocks_an_account_from_the_admin(store, acme, operator):
    fail("admin@acme.test", N)
    with operator_scope():
        user = User.objects.get(email="admin@acme.test")
    console = Client()
    with operator_scope():
        console.force_login(operator)
    page = console.get(reverse("admin:accounts_user_change", args=[user.pk]))
    assert b"locked for 30 more seconds after 3 failed sign-ins" in page.content
    response = console.post(
        reverse("admin:accounts_user_changelist"),
        {"action": "unlock_sign_in", "_selected_action": [str(user.pk)]},
    )
    assert response.status_code == 302
    assert login("admin@acme.test", TEST_PASSWORD).status_code == 200
    (unlocked,) = events(acme, "user.unlocked")
    assert unlocked.details == {"failures": N, "via": "admin"}
    assert (unlocked.actor, unlocked.target_id) == ("root@coditect.test", str(user.pk))


def test_an_operator_unlocks_an_account_from_the_shell(store, acme):
    fail("admin@acme.test", N)
    out = StringIO()
    call_command("unlock_login", "--email", "admin@acme.test", "--show", stdout=out)
    assert json.loads(out.getvalue()) == {"email": "admin@acme.test", "failures": N, "locked_for": 30}
    out = StringIO()
    call_command("unlock_login", "--email", " Admin@acme.test", stdout=out)
    assert json.loads(out.getvalue()) == {"email": "admin@acme.test", "cleared_failures": N}
    assert login("admin@acme.test", TEST_PASSWORD).status_code == 200
    (unlocked,) = events(acme, "user.unlocked")
    assert (unlocked.actor, unlocked.details) == ("command", {"failures": N, "via": "command"})


def test_with_the_threshold_at_zero_nothing_is_throttled(store, acme, settings):
    settings.LOGIN_FAILURES_BEFORE_THROTTLE = 0
    fail("admin@acme.test", 10)
    assert login("admin@acme.test", TEST_PASSWORD).status_code == 200
    assert not LoginThrottle.objects.exists()


# --- the limiter's store away --------------------------------------------------------------


@pytest.mark.redis
def test_while_redis_is_away_a_locked_account_stays_locked_and_the_database_counts(
    redis_store, acme, settings, redis_servers, caplog
):
    own = redis_servers()
    settings.REDIS_URL = own.url
    fail("admin@acme.test", N)  # locked in Redis, and mirrored
    own.stop()

    with caplog.at_level(logging.WARNING, logger="accounts.throttle"):
        # No Redis call is needed to refuse it: the mirror answers first.
        assert_throttled(login("admin@acme.test", TEST_PASSWORD), 30)
        # Another account's failures are counted in the database meanwhile.
        fail("member@acme.test", N)
        assert_throttled(login("member@acme.test", TEST_PASSWORD), 30)
    assert any("counting failed sign-ins in the database" in r.getMessage() for r in caplog.records)

    # Redis back, and empty: the locks held in the database still hold.
    own.start()
    throttle._redis_down_until = 0.0
    assert_throttled(login("admin@acme.test", TEST_PASSWORD), 30)
    assert_throttled(login("member@acme.test", TEST_PASSWORD), 30)
    assert login("nobody-yet@acme.test", WRONG).status_code == 401


@pytest.mark.redis
def test_while_redis_is_away_an_account_that_is_not_locked_still_signs_in(
    redis_store, acme, settings, redis_servers
):
    own = redis_servers()
    settings.REDIS_URL = own.url
    own.stop()
    assert login("admin@acme.test", TEST_PASSWORD).status_code == 200


# --- Argon2 ------------------------------------------------------------------------------------


@pytest.fixture
def argon2_first(settings):
    settings.PASSWORD_HASHERS = [
        "accounts.hashers.Argon2PasswordHasher",
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
        "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    ]
    settings.PASSWORD_ARGON2_MEMORY_KIB = 1024  # the format, not the cost, is under test
    settings.PASSWORD_ARGON2_TIME_COST = 1
    settings.RATE_LIMIT_PER_IP = 0


def test_a_pbkdf2_user_signs_in_and_is_upgraded_to_argon2(argon2_first, acme, settings):
    with tenant_scope(acme.id):
        user = User.objects.get(email="member@acme.test")
        user.password = hashers.make_password(TEST_PASSWORD, hasher="pbkdf2_sha256")
        user.save(update_fields=["password"])
    assert login("member@acme.test", TEST_PASSWORD).status_code == 200
    with tenant_scope(acme.id):
        upgraded = User.objects.get(email="member@acme.test").password
    assert upgraded.startswith("argon2$argon2id$")
    assert hashers.identify_hasher(upgraded).algorithm == "argon2"
    # and it still signs in, now against the Argon2 hash.
    assert login("member@acme.test", TEST_PASSWORD).status_code == 200


def test_the_configured_hashers_put_argon2_first_with_pbkdf2_after_it():
    from django.conf import settings as project

    # The project's settings (tests shrink them only inside a fixture).
    assert project.PASSWORD_HASHERS[0] == "accounts.hashers.Argon2PasswordHasher"
    assert "django.contrib.auth.hashers.PBKDF2PasswordHasher" in project.PASSWORD_HASHERS[1:]


def test_an_unknown_email_costs_one_argon2_hash_like_a_real_check(argon2_first, acme, monkeypatch):
    from accounts.hashers import Argon2PasswordHasher

    used = []
    for cls in (Argon2PasswordHasher, hashers.PBKDF2PasswordHasher):
        real = cls.encode
        monkeypatch.setattr(
            cls, "encode", lambda self, *a, _real=real: used.append(self.algorithm) or _real(self, *a)
        )
    assert login("nobody@acme.test", WRONG).status_code == 401
    assert used == ["argon2"]


def test_a_deactivated_account_costs_one_hash_like_a_real_check(argon2_first, acme, monkeypatch):
    """Answered as fast as no check at all, a refusal would tell a deactivated
    account from the others."""
    from accounts.hashers import Argon2PasswordHasher

    with tenant_scope(acme.id):
        User.objects.filter(email="member@acme.test").update(is_active=False)
    used = []
    real = Argon2PasswordHasher.encode
    monkeypatch.setattr(
        Argon2PasswordHasher, "encode", lambda self, *a: used.append(self.algorithm) or real(self, *a)
    )
    assert login("member@acme.test", TEST_PASSWORD).status_code == 401
    assert used == ["argon2"]


# --- password checks at once, per host ------------------------------------------------------


def test_with_every_check_slot_taken_a_sign_in_is_refused_at_once_and_counts_nothing(store, acme, settings):
    settings.LOGIN_CONCURRENT_CHECKS = 1
    with throttle.login_check_slot():  # another worker is hashing
        busy = login("admin@acme.test", WRONG)
        dashboard = Client().post("/dashboard/login/", {"email": "admin@acme.test", "password": WRONG})
        admin_page = admin_login("admin@acme.test", WRONG)
    assert busy.status_code == 429
    assert busy.json()["error"] == {
        "code": "rate_limited",
        "message": "Too many sign-ins at once on this server; try again in a second.",
        "details": {"retry_after": 1},
    }
    assert busy["Retry-After"] == "1"
    assert (dashboard.status_code, dashboard["Retry-After"]) == (429, "1")
    assert b"Too many sign-ins at once" in admin_page.content
    # Nothing was checked, so nothing counts towards the account's throttle.
    assert throttle.login_throttle_state(email="admin@acme.test").failures == 0
    assert events(acme, "auth.login_failed") == []
    # The slot is free again: the sign-in goes through.
    assert login("admin@acme.test", TEST_PASSWORD).status_code == 200


def test_a_slot_whose_holder_died_is_free_again(store, acme, settings):
    import subprocess
    import sys

    settings.LOGIN_CONCURRENT_CHECKS = 1
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time\n"
            "fd = os.open(sys.argv[1], os.O_CREAT | os.O_RDWR)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "print('held', flush=True)\n"
            "time.sleep(60)\n",
            str(throttle.login_check_slot_path(0)),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        assert login("admin@acme.test", TEST_PASSWORD).status_code == 429
    finally:
        holder.kill()
        holder.wait()
    assert login("admin@acme.test", TEST_PASSWORD).status_code == 200


def test_slots_are_per_deployment(settings, tmp_path):
    settings.LOGIN_CHECK_SLOT_DIR = str(tmp_path)
    ours = throttle.login_check_slot_path(0)
    settings.REDIS_KEY_PREFIX = "another-deployment"
    assert throttle.login_check_slot_path(0) != ours
    assert ours.parent == tmp_path
