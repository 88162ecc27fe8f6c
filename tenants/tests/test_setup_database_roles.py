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


@pytest.fixture
def throwaway_names():
    suffix = f"{os.getpid()}"
    names = {
        "database": f"coditect_roles_test_{suffix}",
        "owner": f"roles_test_owner_{suffix}",
        "app": f"roles_test_app_{suffix}",
        "operator": f"roles_test_operator_{suffix}",
    }
    yield names
    drop_database(TEST_ADMIN_URL, names["database"])
    with psycopg.connect(TEST_ADMIN_URL, autocommit=True) as conn:
        for role in ("owner", "app", "operator"):
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(names[role])))


def test_setup_database_roles_needs_only_the_admin_url(django_db_setup, throwaway_names):
    if connections["default"].vendor != "postgresql":
        pytest.skip("needs PostgreSQL")
    names = throwaway_names
    # Nothing but the admin URL: no DEBUG, no SECRET_KEY, no signing keys, no DATABASE_URL.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "DATABASE_ADMIN_URL": TEST_ADMIN_URL}
    result = subprocess.run(
        [sys.executable, "manage.py", "setup_database_roles", "--database", names["database"]]
        + [f"--{role}={names[role]}" for role in ("owner", "app", "operator")],
        cwd=settings.BASE_DIR,
        env={**env, "CODITECT_VAR_DIR": "/nonexistent-var-dir-is-never-made"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert names["app"] in result.stdout
    with psycopg.connect(TEST_ADMIN_URL) as conn:
        rows = dict(
            conn.execute(
                "SELECT rolname, rolbypassrls FROM pg_roles WHERE rolname = ANY(%s)",
                [[names["owner"], names["app"], names["operator"]]],
            ).fetchall()
        )
        owner = conn.execute(
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", [names["database"]]
        ).fetchone()
    assert rows == {names["owner"]: False, names["app"]: False, names["operator"]: True}
    assert owner == (names["owner"],)


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
