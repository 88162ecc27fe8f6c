"""setup_database_roles runs on a bare machine: only the admin URL, no
SECRET_KEY, no signing keys, no DEBUG; role names are options."""

import os
import subprocess
import sys

import psycopg
import pytest
from django.conf import settings
from django.db import connections
from psycopg import sql

from coditect.testing import TEST_ADMIN_URL
from tenants.dbroles import drop_database

ROLES = ("owner", "app", "operator", "readonly")


@pytest.fixture
def throwaway_names():
    suffix = f"{os.getpid()}"
    names = {
        "database": f"coditect_roles_test_{suffix}",
        "owner": f"roles_test_owner_{suffix}",
        "app": f"roles_test_app_{suffix}",
        "operator": f"roles_test_operator_{suffix}",
        "readonly": f"roles_test_readonly_{suffix}",
    }
    yield names
    drop_database(TEST_ADMIN_URL, names["database"])
    with psycopg.connect(TEST_ADMIN_URL, autocommit=True) as conn:
        for role in ROLES:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(names[role])))


def setup_database_roles(names: dict, **env) -> subprocess.CompletedProcess:
    # Nothing but the admin URL: no DEBUG, no SECRET_KEY, no signing keys, no DATABASE_URL.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "DATABASE_ADMIN_URL": TEST_ADMIN_URL, **env}
    result = subprocess.run(
        [sys.executable, "manage.py", "setup_database_roles", "--database", names["database"]]
        + [f"--{role}={names[role]}" for role in ROLES],
        cwd=settings.BASE_DIR,
        env={**env, "CODITECT_VAR_DIR": "/nonexistent-var-dir-is-never-made"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result


def test_setup_database_roles_needs_only_the_admin_url(django_db_setup, throwaway_names):
    if connections["default"].vendor != "postgresql":
        pytest.skip("needs PostgreSQL")
    names = throwaway_names
    result = setup_database_roles(names, DATABASE_READONLY_PASSWORD="readonly-test-only")
    assert names["app"] in result.stdout and names["readonly"] in result.stdout
    with psycopg.connect(TEST_ADMIN_URL) as conn:
        rows = {
            name: rest
            for name, *rest in conn.execute(
                "SELECT rolname, rolbypassrls, rolsuper, rolcanlogin FROM pg_roles WHERE rolname = ANY(%s)",
                [[names[role] for role in ROLES]],
            ).fetchall()
        }
        owner = conn.execute(
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", [names["database"]]
        ).fetchone()
        readonly_password, readonly_config = conn.execute(
            "SELECT a.rolpassword IS NOT NULL, r.rolconfig FROM pg_authid a JOIN pg_roles r USING (oid) "
            "WHERE a.rolname = %s",
            [names["readonly"]],
        ).fetchone()
    assert {name: bypass for name, (bypass, _, _) in rows.items()} == {
        names["owner"]: False,
        names["app"]: False,
        names["operator"]: True,
        names["readonly"]: False,
    }
    assert all(not superuser and login for _, superuser, login in rows.values())
    assert owner == (names["owner"],)
    assert readonly_password
    # Read-only sessions however it connects (a pooler refuses the client's option).
    assert "default_transaction_read_only=on" in readonly_config


@pytest.mark.postgres
def test_the_readonly_role_gets_select_on_the_usage_rollups_already_there(django_db_setup, throwaway_names):
    """An install that upgrades runs the command again: the readonly role
    reads the usage rollups and nothing else, not another table under
    row-level security (and loses a grant it had on one)."""
    names = throwaway_names
    setup_database_roles(names)
    database_url = psycopg.conninfo.make_conninfo(TEST_ADMIN_URL, dbname=names["database"])
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(names["owner"])))
        for table in ("usage_daily", "users"):
            conn.execute(sql.SQL("CREATE TABLE {} (tenant_id uuid)").format(sql.Identifier(table)))
            conn.execute(sql.SQL("ALTER TABLE {} ENABLE ROW LEVEL SECURITY").format(sql.Identifier(table)))
        conn.execute("CREATE TABLE plain_things (secret text)")
        # As an earlier version of the command granted it.
        conn.execute(sql.SQL("GRANT SELECT ON users TO {}").format(sql.Identifier(names["readonly"])))
    setup_database_roles(names)
    readonly = names["readonly"]
    with psycopg.connect(database_url) as conn:
        held = dict(
            conn.execute(
                "SELECT t, array_remove(ARRAY["
                "CASE WHEN has_table_privilege(%(r)s, t, 'SELECT') THEN 'SELECT' END, "
                "CASE WHEN has_table_privilege(%(r)s, t, 'INSERT') THEN 'INSERT' END, "
                "CASE WHEN has_table_privilege(%(r)s, t, 'UPDATE') THEN 'UPDATE' END, "
                "CASE WHEN has_table_privilege(%(r)s, t, 'DELETE') THEN 'DELETE' END, "
                "CASE WHEN has_table_privilege(%(r)s, t, 'TRUNCATE') THEN 'TRUNCATE' END], NULL) "
                "FROM unnest(ARRAY['usage_daily', 'users', 'plain_things']) AS t",
                {"r": readonly},
            ).fetchall()
        )
        (recorded,) = conn.execute("SHOW coditect.readonly_role").fetchone()
    assert held == {"usage_daily": ["SELECT"], "users": [], "plain_things": []}
    # What migrate reads to grant the tables it makes later (tenants.apps).
    assert recorded == readonly


def test_other_commands_still_ask_for_secret_key_without_debug():
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "CODITECT_VAR_DIR": str(settings.VAR_DIR)}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr
