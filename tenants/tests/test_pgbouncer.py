"""Tenant isolation and the API through PgBouncer in transaction mode.

Debian's `pgbouncer` (1.18 on Debian 12; `make test` installs it) runs with
the sidecar's own pgbouncer.ini (deploy/k8s/components/pgbouncer), changed
only where the file marks "tests:", in front of the test database. Django's
`default` and `operator` connections are configured for it as
DATABASE_POOLER=pgbouncer configures them. Its pools are one or two server
connections, so the clients (threads, gunicorn workers) certainly take turns
on the same server sessions: whatever a transaction left in one would reach
the next client.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import threading
import time
import uuid
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, OperationalError, connections, transaction
from django.db.utils import load_backend

from audit.services import audit_record_standalone
from coditect import settings as project_settings
from coditect.testing import TEST_ADMIN_URL, LiveServer, _test_roles, free_port, settings_in_a_new_process
from licenses.models import License
from tenants.dbroles import ensure_statement_bounds
from tenants.models import Tenant
from tenants.scope import operator_scope, tenant_scope
from tenants.tests.factories import TenantFactory
from tenants.tests.test_rls import FACTORIES, tables, tenant_owned_models

pytestmark = pytest.mark.postgres

PGBOUNCER = "/usr/sbin/pgbouncer"  # Debian's, which `make test` installs
SIDECAR_INI = Path(settings.BASE_DIR) / "deploy" / "k8s" / "components" / "pgbouncer" / "pgbouncer.ini"
TENANT_SETTING = "app.current_tenant"


def sidecar_ini(*, include: Path, **values: str) -> str:
    """The sidecar's pgbouncer.ini with its own lines for `values` and the
    databases file replaced; each must be a line the file has."""
    text = SIDECAR_INI.read_text()
    text, count = re.subn(r"^%include .*$", f"%include {include}", text, flags=re.MULTILINE)
    assert count == 1, "the sidecar's ini includes its databases file once"
    for key, value in values.items():
        text, count = re.subn(rf"^{key} = .*$", f"{key} = {value}", text, flags=re.MULTILINE)
        assert count == 1, f"the sidecar's ini has no line `{key} = ...` to replace"
    return text


class PgBouncer:
    """Debian's pgbouncer on a free loopback port, pooling the test database
    for the test roles, which sign in to it with SCRAM and these passwords
    (PostgreSQL itself trusts loopback here)."""

    def __init__(self, workdir: Path, *, pool_size: int) -> None:
        params = connections.settings["default"]
        self.database = params["NAME"]
        roles = _test_roles()
        self.passwords = {role: f"pgbouncer-test-{uuid.uuid4().hex}" for role in (roles.app, roles.operator)}
        self.port = free_port()
        workdir.mkdir(parents=True, exist_ok=True)
        databases = workdir / "databases.ini"
        databases.write_text(
            f"{self.database} = host={params.get('HOST') or '127.0.0.1'} port={params.get('PORT') or 5432} "
            f"dbname={self.database}\n"
        )
        userlist = workdir / "userlist.txt"
        userlist.write_text("".join(f'"{role}" "{password}"\n' for role, password in self.passwords.items()))
        ini = workdir / "pgbouncer.ini"
        ini.write_text(
            sidecar_ini(
                include=databases,
                listen_port=str(self.port),
                default_pool_size=str(pool_size),
                auth_file=str(userlist),
                server_tls_sslmode="disable",
                server_tls_ca_file="",
            )
        )
        # PgBouncer refuses to run as root; it reads its files before it drops to `nobody`.
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        self.log_path = workdir / "pgbouncer.log"
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen([PGBOUNCER, *user, str(ini)], stdout=log, stderr=log)
        deadline = time.monotonic() + 10
        while True:
            assert self.process.poll() is None, f"pgbouncer exited:\n{self.log_path.read_text()}"
            try:
                psycopg.connect(self.url(roles.app), connect_timeout=2).close()
                break
            except psycopg.OperationalError:
                assert time.monotonic() < deadline, f"pgbouncer did not start:\n{self.log_path.read_text()}"
                time.sleep(0.05)

    def url(self, role: str) -> str:
        return f"postgresql://{role}:{self.passwords[role]}@127.0.0.1:{self.port}/{self.database}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


def _repoint(alias: str, config: dict) -> None:
    """Replace an alias's settings in place: every thread's connection reads this one dict."""
    connections[alias].close()
    current = connections.settings[alias]
    merged = {**current, **config}
    current.clear()
    current.update(merged)


@contextmanager
def django_through(bouncer: PgBouncer):
    """`default` and `operator` through `bouncer`, configured as DATABASE_POOLER=pgbouncer does."""
    saved = {}
    for alias in ("default", "operator"):
        saved[alias] = {
            **connections.settings[alias],
            "OPTIONS": dict(connections.settings[alias]["OPTIONS"]),
        }
        role = connections.settings[alias]["USER"]
        _repoint(alias, project_settings._database(bouncer.url(role), pooler="pgbouncer"))
    try:
        yield
    finally:
        for alias, config in saved.items():
            _repoint(alias, config)


@pytest.fixture
def role_bounds(django_db_setup):
    """`role_bounds(seconds)` bounds the test database's roles as
    setup_database_roles does (at DATABASE_STATEMENT_TIMEOUT to begin with); lifted afterwards."""
    database = connections.settings["default"]["NAME"]

    def bound(seconds: float) -> None:
        ensure_statement_bounds(TEST_ADMIN_URL, database, _test_roles(), seconds)

    bound(settings.DATABASE_STATEMENT_TIMEOUT)
    yield bound
    bound(0)


@pytest.fixture
def pgbouncers(committed_db, role_bounds, tmp_path):
    """`pgbouncers(pool_size)` starts a PgBouncer (its server connections open
    with the roles' bounds as they are then); each stops at teardown."""
    started: list[PgBouncer] = []

    def start(pool_size: int) -> PgBouncer:
        bouncer = PgBouncer(tmp_path / f"pgbouncer-{len(started)}", pool_size=pool_size)
        started.append(bouncer)
        return bouncer

    yield start
    for bouncer in started:
        bouncer.stop()


@pytest.fixture
def through_pgbouncer(pgbouncers):
    """Django's connections through a PgBouncer with two server connections per role."""
    bouncer = pgbouncers(2)
    with django_through(bouncer):
        yield bouncer


@pytest.fixture
def through_one_server_connection(pgbouncers):
    """...and through one: each client's transaction runs on the same server session."""
    bouncer = pgbouncers(1)
    with django_through(bouncer):
        yield bouncer


class Client(threading.Thread):
    """A thread with Django connections of its own, so a PgBouncer client of
    its own; `result()` waits for it and gives back what it returned or raised."""

    def __init__(self, function, *args) -> None:
        super().__init__(daemon=True)
        self.function, self.args = function, args
        self.value = self.error = None

    def run(self) -> None:
        try:
            self.value = self.function(*self.args)
        except BaseException as exc:
            self.error = exc
        finally:
            connections.close_all()

    def result(self, timeout: float = 120):
        self.join(timeout=timeout)
        assert not self.is_alive(), f"{self.function.__name__} did not finish"
        if self.error is not None:
            raise self.error
        return self.value


def in_thread(function, *args):
    client = Client(function, *args)
    client.start()
    return client.result()


def fetch(sql: str, params=(), *, using: str = "default") -> list[tuple]:
    with connections[using].cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def server_session() -> tuple[int, str | None]:
    """The PostgreSQL backend this transaction runs on, and the tenant it has set."""
    ((pid, tenant),) = fetch("SELECT pg_backend_pid(), current_setting(%s, true)", [TENANT_SETTING])
    return pid, tenant or None


# --- the configuration -------------------------------------------------------------------


def test_the_sidecar_pools_by_transaction_and_lets_no_startup_option_through():
    ini = SIDECAR_INI.read_text()
    assert re.search(r"^pool_mode = transaction$", ini, flags=re.MULTILINE)
    assert re.search(r"^listen_addr = 127\.0\.0\.1$", ini, flags=re.MULTILINE)
    # Were `options` ignored, a client's statement_timeout would vanish without a word.
    assert not re.search(r"^ignore_startup_parameters", ini, flags=re.MULTILINE)


def test_behind_pgbouncer_nothing_is_kept_in_a_server_session_and_the_client_deadline_stays():
    url = "postgresql://coditect_app:pw@127.0.0.1:6432/coditect"
    direct = project_settings._database(url, pooler="")
    pooled = project_settings._database(url, pooler="pgbouncer")

    assert "statement_timeout" in direct["OPTIONS"]["options"]
    assert "options" not in pooled["OPTIONS"]
    assert pooled["DISABLE_SERVER_SIDE_CURSORS"] is True
    assert pooled["OPTIONS"]["prepare_threshold"] is None
    # What the client enforces itself is the same either way.
    for name in ("deadline", "tcp_user_timeout", "keepalives_idle", "connect_timeout"):
        assert pooled["OPTIONS"][name] == direct["OPTIONS"][name], name
    # PgBouncer 1.21 or newer, with max_prepared_statements, may have them back.
    newer = project_settings._database(f"{url}?prepare_threshold=5", pooler="pgbouncer")
    assert newer["OPTIONS"]["prepare_threshold"] == 5
    with pytest.raises(ImproperlyConfigured, match="refuses the `options` startup parameter"):
        project_settings._database(f"{url}?options=-c%20work_mem%3D64MB", pooler="pgbouncer")


def test_an_unknown_pooler_stops_the_server_from_starting():
    result = settings_in_a_new_process({"DEBUG": "1", "DATABASE_POOLER": "pgpool"})
    assert result.returncode != 0
    assert "DATABASE_POOLER must be empty (direct connections) or 'pgbouncer'" in result.stderr


def test_pgbouncer_refuses_a_direct_connections_startup_options(pgbouncers):
    bouncer = pgbouncers(1)
    role = _test_roles().app
    for pooler, works in (("", False), ("pgbouncer", True)):
        config = {
            **connections.settings["default"],
            **project_settings._database(bouncer.url(role), pooler=pooler),
        }
        probe = load_backend(config["ENGINE"]).DatabaseWrapper(config, "probe")
        try:
            if works:
                probe.ensure_connection()
                with probe.cursor() as cursor:
                    cursor.execute("SELECT 1")
            else:
                with pytest.raises(OperationalError, match="unsupported startup parameter: options"):
                    probe.ensure_connection()
        finally:
            probe.close()


def test_setup_database_roles_bounds_the_roles_that_serve_and_lifts_the_bound_with_zero(django_db_setup):
    from django.core.management import call_command

    from tenants.dbroles import drop_database

    suffix = f"{os.getpid()}_{uuid.uuid4().hex[:6]}"
    names = {role: f"bounds_test_{role}_{suffix}" for role in ("owner", "app", "operator", "readonly")}
    database = f"coditect_bounds_test_{suffix}"

    def bounds() -> dict[str, set[str]]:
        with psycopg.connect(TEST_ADMIN_URL) as conn:
            rows = conn.execute(
                "SELECT r.rolname, s.setconfig FROM pg_db_role_setting s "
                "JOIN pg_roles r ON r.oid = s.setrole JOIN pg_database d ON d.oid = s.setdatabase "
                "WHERE d.datname = %s",
                [database],
            ).fetchall()
        return {role: set(config) for role, config in rows}

    def run(*extra: str) -> str:
        out = io.StringIO()
        call_command(
            "setup_database_roles",
            f"--admin-url={TEST_ADMIN_URL}",
            f"--database={database}",
            *(f"--{role}={name}" for role, name in names.items()),
            *extra,
            stdout=out,
        )
        return out.getvalue()

    try:
        output = run("--statement-timeout=2.5")
        assert names["readonly"] in output
        bounded = {"statement_timeout=2500ms", "lock_timeout=2500ms"}
        assert bounds() == {names["app"]: bounded, names["operator"]: bounded, names["readonly"]: bounded}
        # A connection as the app role starts with them, without any option of its own.
        app_url = psycopg.conninfo.make_conninfo(TEST_ADMIN_URL, user=names["app"], dbname=database)
        with psycopg.connect(app_url) as conn:
            assert conn.execute("SHOW statement_timeout").fetchone() == ("2500ms",)
        run("--statement-timeout=0")
        assert bounds() == {}
    finally:
        drop_database(TEST_ADMIN_URL, database)
        with psycopg.connect(TEST_ADMIN_URL, autocommit=True) as conn:
            for name in names.values():
                conn.execute(psycopg.sql.SQL("DROP ROLE IF EXISTS {}").format(psycopg.sql.Identifier(name)))


# --- tenant isolation through the pool ------------------------------------------------------


TENANTS = 6
ROUNDS = 4


def test_each_tenant_sees_only_its_rows_while_the_pool_mixes_them(through_pgbouncer):
    tenants = [TenantFactory() for _ in range(TENANTS)]
    for tenant in tenants:
        for factory in FACTORIES.values():
            factory(tenant=tenant)
    owned = tables()
    barrier = threading.Barrier(TENANTS + 1)
    errors: list[str] = []
    served: dict[int, set] = defaultdict(set)  # server backend -> tenants (None: no tenant) it served
    lock = threading.Lock()

    def as_tenant(tenant_id) -> None:
        for _ in range(ROUNDS):
            barrier.wait(timeout=30)
            with tenant_scope(tenant_id):
                pid, setting = server_session()
                with lock:
                    served[pid].add(tenant_id)
                if setting != str(tenant_id):
                    errors.append(f"{tenant_id}: the transaction's tenant was {setting}")
                for table in owned:
                    owners = {row[0] for row in fetch(f'SELECT DISTINCT tenant_id FROM "{table}"')}
                    if owners != {tenant_id}:
                        errors.append(f"{tenant_id} saw {table} rows of {owners}")
                if {row[0] for row in fetch("SELECT id FROM tenants")} != {tenant_id}:
                    errors.append(f"{tenant_id} saw other tenants")
                # The ORM's scope agrees with the database's.
                if set(License.objects.values_list("tenant_id", flat=True)) != {tenant_id}:
                    errors.append(f"{tenant_id}: the ORM saw other tenants' licenses")

    def with_no_tenant() -> None:
        for _ in range(ROUNDS):
            barrier.wait(timeout=30)
            with transaction.atomic():
                pid, setting = server_session()
                with lock:
                    served[pid].add(None)
                if setting is not None:
                    errors.append(f"a transaction with no tenant found {setting} set")
                for table in [*owned, "tenants"]:
                    if fetch(f'SELECT count(*) FROM "{table}"') != [(0,)]:
                        errors.append(f"a transaction with no tenant saw rows of {table}")

    clients = [Client(as_tenant, t.id) for t in tenants] + [Client(with_no_tenant)]
    for client in clients:
        client.start()
    for client in clients:
        client.result()

    assert not errors, "\n".join(errors[:20])
    assert set().union(*served.values()) == {t.id for t in tenants} | {None}, "a client did not run"
    # Seven clients, two server connections: the pool really mixed them.
    assert len(served) <= 2
    assert max(len(t) for t in served.values()) >= 2


def test_row_level_security_refuses_writes_for_another_tenant_through_the_pool(through_pgbouncer):
    mine, theirs = TenantFactory(), TenantFactory()
    for model in tenant_owned_models():
        row = FACTORIES[model].build(tenant=theirs)
        with pytest.raises(DatabaseError, match="row-level security"), tenant_scope(mine.id):
            # bulk_create skips the ORM's own scope check: only RLS stands in the way.
            model.objects.bulk_create([row])
    with pytest.raises(DatabaseError, match="row-level security"), tenant_scope(mine.id):
        fetch(
            "INSERT INTO tenants (id, name, slug, is_active, created_at, updated_at) "
            "VALUES (gen_random_uuid(), 'Evil', 'evil', true, now(), now()) RETURNING id"
        )
    with tenant_scope(mine.id):
        assert fetch("SELECT count(*) FROM tenants WHERE id = %s", [theirs.id]) == [(0,)]


def test_the_tenant_never_reaches_the_next_transaction_on_the_same_server_connection(
    through_one_server_connection, test_events
):
    acme, globex = TenantFactory(), TenantFactory()
    for tenant in (acme, globex):
        FACTORIES[License](tenant=tenant)

    def scoped(tenant_id):
        with tenant_scope(tenant_id):
            return server_session()

    def unscoped():
        with transaction.atomic():
            return server_session(), fetch("SELECT count(*) FROM licenses")[0][0]

    def failed(tenant_id):
        with pytest.raises(RuntimeError), tenant_scope(tenant_id):
            assert fetch("SELECT count(*) FROM licenses") == [(1,)]
            raise RuntimeError("the request fails after the tenant was set")

    pid, tenant = in_thread(scoped, acme.id)
    assert tenant == str(acme.id)
    # Another client, next on that very server session: no tenant, no rows.
    assert in_thread(unscoped) == ((pid, None), 0)
    # Nor after a transaction that failed and rolled back ...
    in_thread(failed, acme.id)
    assert in_thread(unscoped) == ((pid, None), 0)
    # ... nor after the one-statement audit append of the license-token endpoints,
    # which sets the tenant inside its own function (autocommit).
    in_thread(lambda: audit_record_standalone(tenant_id=acme.id, action="test.event", details={"n": 1}))
    assert in_thread(unscoped) == ((pid, None), 0)
    # And the next tenant there sees its own, not the last one's.
    assert in_thread(scoped, globex.id) == (pid, str(globex.id))

    # A control: a session-level setting does reach the next client on that
    # server session, so the checks above would have seen a leak.
    def session_level(tenant_id):
        fetch("SELECT set_config(%s, %s, false)", [TENANT_SETTING, str(tenant_id)])

    in_thread(session_level, acme.id)
    assert in_thread(unscoped) == ((pid, str(acme.id)), 1)


def test_prepared_statements_stay_off_behind_pgbouncer(through_one_server_connection):
    tenant = TenantFactory()
    FACTORIES[License](tenant=tenant)

    def count_often(_):
        # Far past psycopg's threshold (5 runs of a query) for preparing it.
        for _ in range(12):
            with tenant_scope(tenant.id):
                assert License.objects.filter(max_seats__gt=0).count() == 1

    # Clients that take turns on the one server session; neither prepares anything.
    for turn in range(3):
        in_thread(count_often, turn)
        in_thread(count_often, turn)
    assert connections["default"].settings_dict["OPTIONS"]["prepare_threshold"] is None

    # A control: with psycopg's prepared statements on, the second client finds
    # the first one's statement in the session it was lent.
    bouncer = through_one_server_connection
    role = _test_roles().app
    first = psycopg.connect(bouncer.url(role), prepare_threshold=0, autocommit=True)
    second = psycopg.connect(bouncer.url(role), prepare_threshold=0, autocommit=True)
    try:
        first.execute("SELECT 1")
        with pytest.raises(psycopg.errors.DuplicatePreparedStatement):
            second.execute("SELECT 1")
    finally:
        first.close()
        second.close()


def test_an_iterator_outside_a_transaction_needs_no_server_side_cursor(through_one_server_connection):
    tenants = [TenantFactory() for _ in range(3)]

    def every_tenant():
        with operator_scope():
            # Autocommit: a holdable server-side cursor would outlive its server session.
            return sorted(str(t.id) for t in Tenant.objects.order_by("id").iterator(chunk_size=1))

    assert connections["operator"].settings_dict["DISABLE_SERVER_SIDE_CURSORS"] is True
    assert in_thread(every_tenant) == sorted(str(t.id) for t in tenants)


# --- statements are bounded behind PgBouncer ------------------------------------------------


def test_statements_and_lock_waits_stay_bounded_behind_pgbouncer(pgbouncers, role_bounds):
    # The roles' own bound, which is all the server enforces behind the pooler.
    role_bounds(1)
    bouncer = pgbouncers(2)
    with django_through(bouncer):
        tenant = TenantFactory()
        license = FACTORIES[License](tenant=tenant)

        def sleep_past_the_bound(using: str):
            started = time.monotonic()
            with pytest.raises(OperationalError, match="canceling statement due to statement timeout"):
                with transaction.atomic(using=using):
                    fetch("SELECT pg_sleep(4)", using=using)
            elapsed = time.monotonic() - started
            # The server cancelled it, cleanly: the client's connection is still good.
            return elapsed, fetch("SHOW statement_timeout", using=using)

        for alias in ("default", "operator"):
            elapsed, shown = in_thread(sleep_past_the_bound, alias)
            assert elapsed < 2.5, (alias, elapsed)
            assert shown == [("1s",)], alias

        holding = threading.Event()
        done = threading.Event()

        def hold_the_row():
            with tenant_scope(tenant.id):
                License.objects.select_for_update().get(id=license.id)
                holding.set()
                done.wait(timeout=30)

        def wait_for_the_row():
            started = time.monotonic()
            # Whichever bound ends the wait first: the two are equal, as on a direct connection.
            with pytest.raises(
                OperationalError, match=r"canceling statement due to (lock|statement) timeout"
            ):
                with tenant_scope(tenant.id):
                    License.objects.filter(id=license.id).update(max_seats=9)
            return time.monotonic() - started

        holder = Client(hold_the_row)
        holder.start()
        assert holding.wait(timeout=30)
        try:
            assert in_thread(wait_for_the_row) < 2.5
        finally:
            done.set()
            holder.result()


# --- the API through PgBouncer --------------------------------------------------------------

API_TENANTS = 4


@pytest.mark.slow
def test_the_api_serves_several_tenants_at_once_through_pgbouncer(pgbouncers, tmp_path):
    import requests

    from accounts.tests.factories import TEST_PASSWORD, TenantAdminFactory
    from audit.models import AuditLog
    from licenses.models import Lease
    from licenses.services import license_create

    bouncer = pgbouncers(2)
    roles = _test_roles()
    (tmp_path / "server").mkdir()
    server = LiveServer(tmp_path / "server")
    server.env.update(
        DATABASE_URL=bouncer.url(roles.app),
        DATABASE_OPERATOR_URL=bouncer.url(roles.operator),
        DATABASE_POOLER="pgbouncer",
        SEAT_LEDGER="database",
    )
    accounts = []
    for _ in range(API_TENANTS):
        tenant = TenantFactory()
        admin = TenantAdminFactory(tenant=tenant)
        license, key = license_create(tenant=tenant, max_seats=2, lease_ttl=600)
        accounts.append((tenant, admin, license, key))
    barrier = threading.Barrier(API_TENANTS)
    errors: list[str] = []

    def check(what: str, response, status: int) -> dict:
        if response.status_code != status:
            errors.append(f"{what}: {response.status_code} {response.text[:300]}")
            return {}
        return response.json()

    def one_tenant(index: int, access: dict) -> None:
        tenant, _admin, license, key = accounts[index]
        others_key = accounts[(index + 1) % API_TENANTS][3]
        url = server.url + "/api/v1"
        barrier.wait(timeout=60)
        seats = []
        for n in range(2):
            body = {"license_key": key, "hardware_fingerprint": f"{tenant.slug}-machine-{n}"}
            seats.append(
                check(
                    "acquire",
                    requests.post(f"{url}/licenses/acquire", json=body, headers=access, timeout=30),
                    201,
                )
            )
        full = requests.post(
            f"{url}/licenses/acquire",
            json={"license_key": key, "hardware_fingerprint": f"{tenant.slug}-machine-2"},
            headers=access,
            timeout=30,
        )
        if check("a third acquire", full, 409).get("error", {}).get("code") != "no_seats_available":
            errors.append(f"a third acquire: {full.text[:300]}")
        # Another tenant's key is as unknown as a made-up one.
        foreign = requests.post(
            f"{url}/licenses/acquire",
            json={"license_key": others_key, "hardware_fingerprint": f"{tenant.slug}-machine-0"},
            headers=access,
            timeout=30,
        )
        check("another tenant's key", foreign, 404)
        for seat in seats:
            token = {"Authorization": f"Bearer {seat.get('token')}"}
            check("heartbeat", requests.post(f"{url}/licenses/heartbeat", headers=token, timeout=30), 200)
        status = check("status", requests.get(f"{url}/licenses/status", headers=access, timeout=30), 200)
        shown = status.get("licenses", [])
        if [entry["id"] for entry in shown] != [str(license.id)]:
            errors.append(f"{tenant.slug} was shown licenses {[entry['id'] for entry in shown]}")
        elif sorted(lease["session_id"] for lease in shown[0]["leases"]) != sorted(
            seat.get("session_id") for seat in seats
        ) or shown[0]["seats"] != {"used": 2, "max": 2}:
            errors.append(f"{tenant.slug}'s status: {shown[0]}")
        for seat in seats:
            token = {"Authorization": f"Bearer {seat.get('token')}"}
            check("release", requests.delete(f"{url}/licenses/release", headers=token, timeout=30), 200)

    server.start()
    try:
        # One by one: the server checks two passwords at a time (LOGIN_CONCURRENT_CHECKS).
        signed_in = []
        for _tenant, admin, _license, _key in accounts:
            login = requests.post(
                f"{server.url}/api/v1/auth/login",
                json={"email": admin.email, "password": TEST_PASSWORD},
                timeout=30,
            )
            assert login.status_code == 200, login.text
            signed_in.append({"Authorization": f"Bearer {login.json()['access_token']}"})
        clients = [Client(one_tenant, i, signed_in[i]) for i in range(API_TENANTS)]
        for client in clients:
            client.start()
        for client in clients:
            client.result()
    finally:
        server.stop()
    log = server.log_tail(200)
    assert not errors, "\n".join(errors[:20]) + "\n" + log
    assert "unsupported startup parameter" not in log

    for tenant, _admin, license, _key in accounts:
        with tenant_scope(tenant.id):
            actions = list(AuditLog.objects.values_list("action", flat=True))
            assert actions.count("lease.acquired") == 2, (tenant.slug, actions)
            assert actions.count("lease.released") == 2, (tenant.slug, actions)
            assert not Lease.objects.filter(license_id=license.id).exists()
