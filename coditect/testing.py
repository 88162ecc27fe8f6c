"""The shared test base: databases, roles, Redis namespace, clocks, live servers
(the people the tests act as are in coditect/personas.py).

On PostgreSQL the suite builds its own database and roles as they are in
production: tables owned by an owner role that ran the migrations, requests
served as an app role that row-level security applies to, and an operator
role with BYPASSRLS. Nothing depends on state left by hand.
"""

from __future__ import annotations

import logging
import os
import re
import uuid
from pathlib import Path

import pytest
from django.conf import settings

TEST_ADMIN_URL = os.environ.get("TEST_DATABASE_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def _test_roles():
    from tenants.dbroles import RoleNames

    return RoleNames(
        owner="coditect_test_owner",
        app="coditect_test_app",
        operator="coditect_test_operator",
        readonly="coditect_test_readonly",
    )


def _worker() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


@pytest.fixture(scope="session")
def django_db_setup(django_db_blocker):
    from django.core.management import call_command
    from django.db import connections
    from django.test.utils import setup_databases, teardown_databases

    if connections["default"].vendor == "sqlite":
        # A file, not :memory:, so that threads racing in tests share one database.
        test_name = str(settings.VAR_DIR / f"test-{_worker()}-{os.getpid()}.sqlite3")
        connections.settings["default"]["TEST"]["NAME"] = test_name
        with django_db_blocker.unblock():
            old_config = setup_databases(verbosity=0, interactive=False, aliases={"default"})
        yield
        with django_db_blocker.unblock():
            teardown_databases(old_config, verbosity=0)
        return

    from tenants.dbroles import drop_database, ensure_database, ensure_roles

    roles = _test_roles()
    name = f"coditect_test_{_worker()}_{os.getpid()}"
    ensure_roles(TEST_ADMIN_URL, roles)
    drop_database(TEST_ADMIN_URL, name)
    ensure_database(TEST_ADMIN_URL, name, roles)

    aliases = {"default": roles.app}
    if "operator" in connections.settings:
        aliases["operator"] = roles.operator
    for alias, role in aliases.items():
        connections[alias].close()
        connections.settings[alias].update(NAME=name, USER=role, PASSWORD="")
        connections[alias].settings_dict.update(NAME=name, USER=role, PASSWORD="")
    _replica_alias_configured(roles.readonly)

    with django_db_blocker.unblock():
        # Migrations run as the owner role, as in production.
        default = connections["default"]
        default.settings_dict["USER"] = roles.owner
        call_command("migrate", verbosity=0, interactive=False)
        default.close()
        default.settings_dict["USER"] = roles.app
        connections.settings["default"]["USER"] = roles.app
    yield
    for alias in [*aliases, "replica"]:
        connections[alias].close()
    drop_database(TEST_ADMIN_URL, name)


def _replica_alias_configured(role: str) -> None:
    """The `replica` alias as production has it, on the test database: the
    readonly role, every transaction read-only (a replica with no lag). It is
    a TEST MIRROR of default, so test cases neither wrap it in their
    transaction nor flush it (the role may not). The suite reads analytics
    from the primary, where a test's uncommitted rows are; a test turns the
    replica on with `analytics_on_replica`, over committed rows."""
    import copy

    from django.db import connections

    from coditect.settings import read_only_connection

    config = copy.deepcopy(connections.settings["default"])
    config.update(USER=role, PASSWORD="")
    if not getattr(settings, "DATABASE_POOLER", ""):  # a pooler refuses startup options
        read_only_connection(config)
    config["TEST"]["MIRROR"] = "default"
    if "replica" in connections.settings:  # DATABASE_REPLICA_URL was set
        connections["replica"].close()
        connections.settings["replica"].clear()
        connections.settings["replica"].update(config)
    else:
        connections.settings["replica"] = config
    settings.REPLICA_DATABASE = "default"


@pytest.fixture
def analytics_on_replica(settings, committed_db):
    """For one test, the analytics reads (tenants.scope.replica_scope) go to
    the `replica` alias, connected as the readonly role (PostgreSQL only).
    Rows must be committed for that connection to see them (committed_db).
    Gives the replica's connection."""
    from django.db import connections

    assert "replica" in connections.settings, "the replica alias is made on PostgreSQL (django_db_setup)"
    settings.REPLICA_DATABASE = "replica"
    yield connections["replica"]


@pytest.fixture(scope="session", autouse=True)
def _redis_namespace():
    """Each test session keeps its Redis keys apart from any other's."""
    settings.REDIS_KEY_PREFIX = f"coditect-test-{uuid.uuid4().hex[:8]}"
    yield
    if settings.REDIS_URL:
        from core.redis_clients import redis_connect

        # Through the app's own client: on a Redis Cluster, SCAN runs on every primary.
        client = redis_connect(settings.REDIS_URL, socket_timeout=settings.REDIS_SOCKET_TIMEOUT)
        for key in client.scan_iter(f"*{settings.REDIS_KEY_PREFIX}*", count=1000):
            client.delete(key)
        client.close()


@pytest.fixture(autouse=True)
def login_throttle_forgotten():
    """Each test starts with no account throttled: the sign-in throttle keys by
    email, the personas' emails recur in every test, and Redis (unlike the
    database) keeps what a test wrote."""
    yield
    if settings.REDIS_URL:
        from accounts.throttle import redis_client
        from core.redis_clients import REDIS_ERRORS

        try:
            client = redis_client(settings.REDIS_URL)
            keys = list(client.scan_iter(f"{settings.REDIS_KEY_PREFIX}:login:*", count=1000))
            if keys:
                client.delete(*keys)  # on a cluster, one DEL per slot
        except REDIS_ERRORS:
            pass  # a test's own Redis, already stopped


def owner_connection_url() -> str:
    """A libpq URL for the test database as its owner (for checks the app role must fail)."""
    from django.db import connections

    params = connections["default"].settings_dict
    host = params.get("HOST") or "127.0.0.1"
    port = params.get("PORT") or 5432
    return f"postgresql://{_test_roles().owner}@{host}:{port}/{params['NAME']}"


def admin_connection_url() -> str:
    from django.db import connections

    params = connections["default"].settings_dict
    host = params.get("HOST") or "127.0.0.1"
    port = params.get("PORT") or 5432
    user = os.environ.get("TEST_DATABASE_ADMIN_USER", "postgres")
    return f"postgresql://{user}@{host}:{port}/{params['NAME']}"


@pytest.fixture
def committed_db(django_db_setup, django_db_blocker):
    """Real commits, for tests whose threads or processes must see each other's
    writes. Every table is emptied afterwards through a superuser connection,
    because the app role rightly holds no TRUNCATE, and the default policy the
    migrations made is made again."""
    from django.db import connections

    with django_db_blocker.unblock():
        yield
        for conn in connections.all():
            conn.close()
        if connections["default"].vendor == "postgresql":
            import psycopg

            with psycopg.connect(admin_connection_url(), autocommit=True) as conn:
                tables = [
                    row[0]
                    for row in conn.execute(
                        # What migrate itself fills (content types, permissions) stays.
                        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename NOT IN "
                        "('django_migrations', 'django_content_type', 'auth_permission')"
                    )
                ]
                if tables:
                    conn.execute(
                        "TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE"
                    )
        else:
            from django.core.management import call_command

            call_command("flush", verbosity=0, interactive=False, inhibit_post_migrate=False)
        # What the migrations made that the next test counts on, as they made it:
        # the default policy (a license made without one points to it).
        from licenses.models import Policy

        Policy.default()
        for conn in connections.all():
            conn.close()


@pytest.fixture
def eager_tasks():
    """Tasks run in the caller, as on the embedded default (no broker)."""
    from coditect.celery import app as celery_app

    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous


@pytest.fixture
def app_clock(monkeypatch):
    """Moves this process's wall clock: `app_clock(600)` is ten minutes later,
    as `time.time()`, Django's `timezone.now()` and PyJWT's checks see it (the
    ledgers' own clocks, Redis TIME and the database's now(), do not move)."""
    import datetime as real_datetime
    import time

    import jwt.api_jwt
    from django.utils import timezone

    real_time, real_now = time.time, timezone.now

    def shift(seconds: float) -> None:
        class ShiftedDatetime(real_datetime.datetime):
            @classmethod
            def now(cls, tz=None):
                return real_datetime.datetime.now(tz) + real_datetime.timedelta(seconds=seconds)

        monkeypatch.setattr(time, "time", lambda: real_time() + seconds)
        monkeypatch.setattr(timezone, "now", lambda: real_now() + real_datetime.timedelta(seconds=seconds))
        monkeypatch.setattr(jwt.api_jwt, "datetime", ShiftedDatetime)

    return shift


@pytest.fixture
def cache_clock(monkeypatch):
    """Moves the per-process caches' clock (core.cache, on time.monotonic):
    `cache_clock(5)` is five seconds later for every cached value's age."""
    from core import cache

    now = [cache.time.monotonic()]
    monkeypatch.setattr(cache.time, "monotonic", lambda: now[0])

    def advance(seconds: float) -> None:
        now[0] += seconds

    return advance


class TcpProxy:
    """A loopback TCP forwarder a test can cut and restore, to make a real
    dependency (PostgreSQL, Redis) unreachable from the app and bring it back,
    or hang and resume, to make it stop answering as a stopped server does."""

    def __init__(self, target_host: str, target_port: int) -> None:
        import socket
        import threading

        self.target = (target_host, target_port)
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = self._listener.getsockname()[1]
        self._connections: list = []
        self._lock = threading.Lock()
        self.accepting = True
        self._flowing = threading.Event()
        self._flowing.set()
        threading.Thread(target=self._accept_loop, daemon=True).start()

    def _accept_loop(self) -> None:
        import socket
        import threading

        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if not self.accepting:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            # The timeout was for connecting: an idle or hung connection stays open.
            upstream.settimeout(None)
            with self._lock:
                self._connections += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    def _pipe(self, src, dst) -> None:
        try:
            while data := src.recv(65536):
                self._flowing.wait()
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                try:
                    sock.close()
                except OSError:
                    pass

    def cut(self) -> None:
        """Refuse new connections and break the open ones."""
        import socket

        self.accepting = False
        with self._lock:
            for sock in self._connections:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                    sock.close()
                except OSError:
                    pass
            self._connections.clear()

    def restore(self) -> None:
        self.accepting = True

    def hang(self) -> None:
        """Keep every connection open, accept new ones, and forward nothing:
        to the app the server is there (TCP acknowledges) but never answers,
        as a stopped (SIGSTOP) PostgreSQL or Redis is."""
        self._flowing.clear()

    def resume(self) -> None:
        """Forward again, what was held first."""
        self._flowing.set()

    def close(self) -> None:
        self.cut()
        self.resume()
        self._listener.close()


@pytest.fixture
def redis_ledger_cut(settings, monkeypatch):
    """The Redis seat ledger, reached through a TcpProxy: call the fixture's
    value to cut it (the ledger stops answering, within its half-second
    socket timeout) for the rest of the test; the proxy closes after it."""
    from urllib.parse import urlsplit

    from licenses import ledger as ledgers
    from licenses.ledger.redis import RedisSeatLedger

    if not settings.REDIS_URL:
        pytest.skip("needs Redis")
    redis_url = urlsplit(settings.REDIS_URL)
    proxy = TcpProxy(redis_url.hostname or "127.0.0.1", redis_url.port or 6379)
    settings.SEAT_LEDGER = "redis"
    monkeypatch.setitem(
        ledgers._ledgers,
        "redis",
        RedisSeatLedger.from_url(f"redis://127.0.0.1:{proxy.port}/0", socket_timeout=0.5),
    )
    yield proxy.cut
    proxy.close()


class LiveServer:
    """The real server started as production starts it (gunicorn with
    deploy/gunicorn.conf.py, PostgreSQL as the app and operator roles, the
    Redis seat ledger) on a free loopback port, for end-to-end tests that may
    only speak HTTP to it. `stop()` and `start()` take it down and bring it
    back on the same port; the test database must be filled through
    `committed_db` for the server to see the rows."""

    def __init__(self, workdir) -> None:
        import socket
        from pathlib import Path

        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
        from django.db import connections

        self.workdir = Path(workdir)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        keys = {}
        for name in ("license", "auth", "keyset-root"):
            private = ed25519.Ed25519PrivateKey.generate()
            pem = private.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            keys[name] = self.workdir / f"{name}-signing.pem"
            keys[name].write_bytes(pem)
            if name == "keyset-root":
                from core.keyring import VerificationKey

                # What an application built for this server pins (the SDK's trusted_root_keys).
                root = VerificationKey.from_public_key(private.public_key(), source=str(keys[name]))
                self.keyset_root_jwks = {"keys": [dict(root.jwk)]}
        params = connections["default"].settings_dict
        host, port, name = params.get("HOST") or "127.0.0.1", params.get("PORT") or 5432, params["NAME"]
        roles = _test_roles()
        # The server's Redis keys live under a prefix of their own, removed on close.
        self.redis_key_prefix = f"{settings.REDIS_KEY_PREFIX}-e2e-{uuid.uuid4().hex[:8]}"
        self.env = {
            **os.environ,
            "DEBUG": "1",
            "SECRET_KEY": "e2e-only-not-secret",
            "SECURE_SSL_REDIRECT": "0",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DATABASE_URL": f"postgresql://{roles.app}@{host}:{port}/{name}",
            "DATABASE_OPERATOR_URL": f"postgresql://{roles.operator}@{host}:{port}/{name}",
            "REDIS_URL": settings.REDIS_URL or "",
            "SEAT_LEDGER": "redis",
            "REDIS_KEY_PREFIX": self.redis_key_prefix,
            "CODITECT_VAR_DIR": str(self.workdir / "var"),
            "LICENSE_SIGNING_KEY_FILE": str(keys["license"]),
            "AUTH_SIGNING_KEY_FILE": str(keys["auth"]),
            "LICENSE_KEYSET_ROOT_KEY_FILE": str(keys["keyset-root"]),
            # The Stripe webhook configured, so what it is sent is verified (and refused: 400).
            "STRIPE_WEBHOOK_SECRET": "whsec_e2e_only_not_secret",
            # End-to-end tests beat every second from one address: rate limits have their own tests.
            "RATE_LIMIT_PER_IP": "0",
            "RATE_LIMIT_PER_USER": "0",
            "GUNICORN_BIND": f"127.0.0.1:{self.port}",
            "GUNICORN_WORKERS": "2",
            "GUNICORN_THREADS": "4",
            "GUNICORN_GRACEFUL_TIMEOUT": "2",
            "GUNICORN_WORKER_TMP_DIR": str(self.workdir),
            "PROMETHEUS_MULTIPROC_DIR": str(self.workdir / "prometheus"),
        }
        self.log_path = self.workdir / "server.log"
        self._log_scanned = 0
        self.process = None

    def start(self, timeout: float = 30) -> None:
        import subprocess
        import sys
        import time
        from pathlib import Path
        from urllib.error import URLError
        from urllib.request import urlopen

        base_dir = Path(settings.BASE_DIR)
        gunicorn = str(Path(sys.executable).with_name("gunicorn"))
        config = base_dir / "deploy" / "gunicorn.conf.py"
        if config.exists():
            argv = [gunicorn, "--config", str(config), "coditect.wsgi:application"]
        else:
            argv = [gunicorn, "coditect.wsgi:application", "--bind", f"127.0.0.1:{self.port}"]
            argv += ["--workers", "2", "--threads", "4", "--worker-class", "gthread"]
        (self.workdir / "prometheus").mkdir(exist_ok=True)
        log = open(self.log_path, "ab")  # the child keeps its own copy of the descriptor
        self.process = subprocess.Popen(argv, cwd=base_dir, env=self.env, stdout=log, stderr=log)  # noqa: S603 - our own argv
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                with urlopen(f"{self.url}/ready", timeout=2) as response:  # noqa: S310 - our own http URL
                    if response.status == 200:
                        return
            except (URLError, OSError):
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the server was not ready within {timeout} s:\n{self.log_tail()}")

    def stop(self) -> None:
        import signal
        import subprocess

        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log_scan()

    def _log_scan(self) -> None:
        """The server's log lines since the last scan go to the run's log
        check (no_secret_in_any_log_line), as this process's own lines do."""
        if _leak_catcher is None:
            return
        try:
            with open(self.log_path, "rb") as log:
                log.seek(self._log_scanned)
                text = log.read()
        except OSError:
            return
        self._log_scanned += len(text)
        for line in text.decode(errors="replace").splitlines():
            _leak_catcher.scan(line)

    def forget_redis_keys(self) -> None:
        if not settings.REDIS_URL:
            return
        from core.redis_clients import redis_connect

        client = redis_connect(settings.REDIS_URL, socket_timeout=settings.REDIS_SOCKET_TIMEOUT)
        try:
            for key in client.scan_iter(f"{self.redis_key_prefix}*", count=1000):
                client.delete(key)
        finally:
            client.close()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@pytest.fixture(scope="session")
def live_server_process(django_db_setup, tmp_path_factory):
    """One real server per test session (see LiveServer); a test that stops it
    should start it again, and the fixture restarts it if one did not."""
    server = LiveServer(tmp_path_factory.mktemp("live-server"))
    try:
        server.start()
        yield server
    finally:
        server.stop()
        server.forget_redis_keys()


@pytest.fixture
def live_server_e2e(live_server_process, committed_db):
    if not live_server_process.running:
        live_server_process.start()
    yield live_server_process
    if not live_server_process.running:
        live_server_process.start()


# Events that only the audit log's own tests write (chain mechanics, not a
# business event), declared for the tests that ask for them.
TEST_EVENTS = {
    "test.event": frozenset({"n"}),
    "test.race": frozenset({"thread", "i"}),
    "test.one": frozenset({"a", "b"}),
    "test.two": frozenset(),
    "test.alone": frozenset({"n"}),
    "test.rolled_back": frozenset(),
    "test.kept": frozenset(),
    "test.after": frozenset(),
    # The audit export's tests (the export copies rows whatever their action).
    "test.yesterday": frozenset(),
    "test.first": frozenset({"n"}),
    "test.second": frozenset({"n"}),
    "test.other_tenant": frozenset(),
    "test.tomorrow": frozenset(),
    "test.operator": frozenset(),
    "test.acme": frozenset(),
    "test.globex": frozenset(),
}


@pytest.fixture
def test_events(monkeypatch):
    from audit import events

    for name, fields in TEST_EVENTS.items():
        monkeypatch.setitem(events.DETAIL_FIELDS, name, fields)


def settings_in_a_new_process(env: dict[str, str], read: str = "None"):
    """The settings loaded by a fresh interpreter whose environment is only
    PATH, the settings module, no .env file and `env` (so nothing of this
    process's own configuration leaks in): a CompletedProcess whose last line
    of stdout is `json.dumps(<read>)`, `read` a Python expression over
    `settings`. For what a configuration does at startup, refusals included
    (they exit non-zero, saying why on stderr)."""
    import subprocess
    import sys

    code = (
        "import json, django; django.setup(); from django.conf import settings; "
        f"print(json.dumps({read}, default=str))"
    )
    return subprocess.run(  # noqa: S603 - this interpreter, the test's own code
        [sys.executable, "-c", code],
        cwd=Path(__file__).resolve().parent.parent,
        env={
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "DJANGO_SETTINGS_MODULE": "coditect.settings",
            "CODITECT_ENV_FILE": os.devnull,
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )


def settings_read(env: dict[str, str], read: str):
    """What `read` is under `env`'s settings (settings_in_a_new_process), which must load."""
    import json

    result = settings_in_a_new_process(env, read)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """A redis-server of the test's own, on a free port, keeping nothing on
    disk (a restart brings it back empty), for tests that stop, restart or
    misconfigure Redis: they never touch the shared one."""

    def __init__(self, directory, *options: str) -> None:
        self.port = free_port()
        self.directory = directory
        self.options = options
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = None
        self.start()

    @property
    def client(self):
        import redis

        return redis.Redis(port=self.port)

    def start(self) -> None:
        import subprocess
        import time

        import redis

        # A test's own server, by its name on PATH, with the test's options.
        self.process = subprocess.Popen(  # noqa: S603
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",  # noqa: S607
             "--dir", str(self.directory), *self.options],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
        assert client.dbsize() == 0, "a (re)started redis-server must come up empty"
        client.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def restart_empty(self) -> None:
        self.stop()
        self.start()


@pytest.fixture
def redis_servers(tmp_path):
    """`start(*options)` a RedisServer of the test's own; all stop at teardown."""
    started: list[RedisServer] = []

    def start(*options: str) -> RedisServer:
        server = RedisServer(tmp_path, *options)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


# --- No secret in any log line of the run ------------------------------------------------
# Every record that reaches the root logger during the test run is formatted as
# production formats it (the request-id filter and the JSON formatter) and
# searched for what must never be logged. The run fails at its end if one was.

LOG_LEAK_PATTERNS = {
    # licenses.keys: CDT- and six groups of five; the display prefix (CDT-XXXXX) alone is fine.
    "a license key": re.compile(r"\bCDT-[0-9A-Z]{5}(?:-[0-9A-Z]{5}){2,}", re.IGNORECASE),
    "a token (JWS)": re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
    "a password": re.compile(r"""(?i)\bpass(?:word|wd)\\?["']?\s*[:=]\s*\\?["']?(?!\*)[^\s"'\\,}]+"""),
    "a query string in a logged path": re.compile(r"""(?:^|[\s"'(])/[^\s"'?]*\?[^\s"']*="""),
}


class LogLeakCatcher(logging.Handler):
    """Formats each record as the console handler would and keeps those that
    match a LOG_LEAK_PATTERNS entry (the first 400 characters of each)."""

    def __init__(self) -> None:
        from core.logging import JsonFormatter, RequestIdFilter

        super().__init__(level=logging.DEBUG)
        self.addFilter(RequestIdFilter())
        self.setFormatter(JsonFormatter())
        self.lines = 0
        self.leaks: list[tuple[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:  # a record that cannot be formatted is another test's business
            return
        self.scan(line)

    def scan(self, line: str) -> None:
        """One line as written (this process's, or a server's log file's)."""
        self.lines += 1
        self.leaks += [
            (what, line[:400]) for what, pattern in LOG_LEAK_PATTERNS.items() if pattern.search(line)
        ]


# The run's catcher, for the servers the tests start as processes of their
# own (LiveServer): their log files are read into it as each one stops.
_leak_catcher: LogLeakCatcher | None = None


@pytest.fixture(scope="session", autouse=True)
def no_secret_in_any_log_line():
    global _leak_catcher
    catcher = LogLeakCatcher()
    root = logging.getLogger()
    root.addHandler(catcher)
    _leak_catcher = catcher
    try:
        yield catcher
    finally:
        root.removeHandler(catcher)
        _leak_catcher = None
    if catcher.leaks:
        shown = "\n".join(f"- {what}: {line}" for what, line in catcher.leaks[:20])
        pytest.fail(
            f"{len(catcher.leaks)} of {catcher.lines} log lines of this run carry a secret or a query string:\n"
            f"{shown}",
            pytrace=False,
        )


# --- a browser ------------------------------------------------------------------------------

CHROMIUM = "/usr/bin/chromium"  # Debian's, which `make test` installs; never a downloaded one
# What this machine's closed network needs: no background connections, no updates, no sync.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_context(profile_dir, *, args=(), **options):
    """Debian's Chromium under Playwright, headless, on a fresh profile in
    `profile_dir`: a context manager giving the browser context. `args` adds
    flags; `options` go to launch_persistent_context."""
    from contextlib import contextmanager
    from pathlib import Path

    @contextmanager
    def launched():
        assert Path(CHROMIUM).exists(), "Debian's chromium is missing: `make test` installs it"
        from playwright.sync_api import sync_playwright

        with sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                str(profile_dir),
                executable_path=CHROMIUM,
                headless=True,
                args=[*CHROMIUM_FLAGS, *args],
                viewport={"width": 1280, "height": 900},
                **options,
            )
            try:
                yield context
            finally:
                context.close()

    return launched()


# axe-core (vendored from npm, coditect/tests/vendor/; bin/vendor-frontend) runs
# in the page: an init script, so the page's own content security policy, which
# rightly refuses any script but ours, does not stop the check.
AXE_CORE = Path(__file__).resolve().parent / "tests" / "vendor" / "axe-core" / "4.14.1" / "axe.min.js"
# WCAG 2.1 A and AA, and axe's best practices.
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]


def axe_install(context) -> None:
    context.add_init_script(path=str(AXE_CORE))


def axe_serious_violations(page) -> list[str]:
    """The page's serious and critical accessibility violations, as readable
    lines (rule, impact, the first offending elements)."""
    result = page.evaluate(
        "tags => axe.run(document, {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']})",
        AXE_TAGS,
    )
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at "
        + ", ".join(" ".join(node["target"]) for node in v["nodes"][:3])
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]
