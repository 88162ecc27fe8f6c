"""An unmigrated database answers, but is not ready: /ready says which
migrations are missing, and a request that meets a missing table is told the
database is not migrated, never that it does not answer."""

import logging
import os

import pytest
from django.db import connections

from coditect import health
from coditect.testing import TEST_ADMIN_URL, _test_roles

pytestmark = pytest.mark.embedded


@pytest.fixture
def unmigrated_database(django_db_setup, django_db_blocker, tmp_path, monkeypatch):
    """Every database alias pointed at a database that has never been migrated
    (a new SQLite file, or a new PostgreSQL database the roles may use)."""
    monkeypatch.setattr(health, "_migrations_seen_applied", False)
    default = connections["default"]
    if default.vendor == "postgresql":
        from tenants.dbroles import drop_database, ensure_database

        name = f"coditect_test_unmigrated_{os.getpid()}"
        drop_database(TEST_ADMIN_URL, name)
        ensure_database(TEST_ADMIN_URL, name, _test_roles())
    else:
        name = str(tmp_path / "unmigrated.sqlite3")
    originals = {}
    with django_db_blocker.unblock():
        for alias in connections.settings:
            connection = connections[alias]
            originals[alias] = dict(connection.settings_dict)
            connection.close()
            connection.settings_dict["NAME"] = name
        try:
            yield
        finally:
            for alias, original in originals.items():
                connections[alias].close()
                connections[alias].settings_dict.clear()
                connections[alias].settings_dict.update(original)
            if default.vendor == "postgresql":
                drop_database(TEST_ADMIN_URL, name)


def test_ready_is_503_naming_the_unapplied_migrations_on_an_unmigrated_database(
    unmigrated_database, client, caplog
):
    with caplog.at_level(logging.ERROR, logger="coditect.health"):
        response = client.get("/ready")
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "service_unavailable"
    assert error["details"]["failed"] == {"migrations": "MigrationsUnapplied"}
    assert "not migrated" in error["message"]
    assert "manage.py migrate" in error["message"]
    assert "does not answer" not in error["message"]
    unapplied = error["details"]["unapplied_migrations"]
    assert "accounts.0001_initial" in unapplied
    assert "licenses.0001_initial" in unapplied
    assert unapplied[0] in error["message"]
    assert any("migrations unapplied" in record.getMessage() for record in caplog.records)


def test_a_request_meeting_a_missing_table_is_told_the_database_is_not_migrated(
    unmigrated_database, client, caplog
):
    with caplog.at_level(logging.INFO):
        response = client.post(
            "/api/v1/auth/login",
            {"email": "ada@example.com", "password": "a long passphrase"},
            content_type="application/json",
        )
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "service_unavailable"
    assert error["details"] == {"reason": "migrations_unapplied"}
    assert "not migrated" in error["message"]
    assert "does not answer" not in error["message"]
    logged = [record for record in caplog.records if record.levelno == logging.ERROR]
    assert any("schema is behind the code" in record.getMessage() for record in logged)
    # The one 503 line of the request names the cause as well.
    warnings = [record for record in caplog.records if record.getMessage() == "service unavailable"]
    assert warnings and getattr(warnings[0], "reason", None) == "migrations_unapplied"


@pytest.mark.django_db(databases="__all__")
def test_ready_has_the_migrations_check_on_a_migrated_database(client, monkeypatch):
    monkeypatch.setattr(health, "_migrations_seen_applied", False)
    response = client.get("/ready")
    assert response.status_code == 200
    assert "migrations" in response.json()["checks"]
    assert health._migrations_seen_applied
