"""Settings read from the environment: the cases a misconfiguration would hurt."""

import json

from coditect.testing import settings_in_a_new_process, settings_read


def settings_in_subprocess(**env) -> dict:
    return settings_read(
        {"DEBUG": "1", **env}, "{'db': settings.DATABASES['default'], 'ledger': settings.SEAT_LEDGER}"
    )


def test_a_sqlite_url_gets_the_serialised_sqlite_backend(tmp_path):
    got = settings_in_subprocess(
        DATABASE_URL=f"sqlite:///{tmp_path}/db.sqlite3", CODITECT_VAR_DIR=str(tmp_path)
    )
    assert got["db"]["ENGINE"] == "core.sqlite_backend"
    assert got["db"]["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    assert got["ledger"] == "database"


def test_no_settings_mean_the_embedded_default(tmp_path):
    got = settings_in_subprocess(CODITECT_VAR_DIR=str(tmp_path))
    assert got["db"]["NAME"] == str(tmp_path / "coditect.sqlite3")
    assert got["ledger"] == "database"


def _settings_in_a_new_process(names: list[str], env: dict[str, str]) -> dict:
    return settings_read(env, f"{{n: str(getattr(settings, n)) for n in {names!r}}}")


def test_a_dot_env_file_is_read_and_the_environment_wins_over_it(tmp_path):
    dot_env = tmp_path / ".env"
    dot_env.write_text(
        "# as .env.example writes it\nDEBUG=1\nADMIN_URL=ops-console/\nLOG_LEVEL=WARNING\nREGISTRATION_OPEN=false\n"
    )
    read = _settings_in_a_new_process(
        ["DEBUG", "ADMIN_URL", "LOG_LEVEL", "REGISTRATION_OPEN"],
        {"CODITECT_ENV_FILE": str(dot_env), "LOG_LEVEL": "ERROR", "CODITECT_VAR_DIR": str(tmp_path / "var")},
    )
    assert read == {
        "DEBUG": "True",
        "ADMIN_URL": "ops-console/",
        "LOG_LEVEL": "ERROR",
        "REGISTRATION_OPEN": "False",
    }


def test_without_a_dot_env_file_nothing_is_read(tmp_path):
    read = _settings_in_a_new_process(
        ["DEBUG"],
        {"CODITECT_ENV_FILE": str(tmp_path / "missing.env"), "DEBUG": "1", "CODITECT_VAR_DIR": str(tmp_path)},
    )
    assert read == {"DEBUG": "True"}


def _databases_in_a_new_process(tmp_path, **env):
    return settings_in_a_new_process(
        {"DEBUG": "1", "CODITECT_VAR_DIR": str(tmp_path), **env},
        "{'aliases': sorted(settings.DATABASES), 'replica': settings.REPLICA_DATABASE, "
        "'options': {a: c.get('OPTIONS', {}) for a, c in settings.DATABASES.items()}}",
    )


def test_without_a_replica_url_the_analytics_reads_are_the_primarys(tmp_path):
    result = _databases_in_a_new_process(tmp_path)
    assert result.returncode == 0, result.stderr
    read = json.loads(result.stdout)
    assert (read["aliases"], read["replica"]) == (["default"], "default")


def test_a_replica_url_is_a_replica_alias_whose_transactions_are_read_only(tmp_path):
    result = _databases_in_a_new_process(
        tmp_path,
        DATABASE_URL="postgresql://coditect_app@db.internal:5432/coditect",
        DATABASE_OPERATOR_URL="postgresql://coditect_operator@db.internal:5432/coditect",
        DATABASE_REPLICA_URL="postgresql://coditect_readonly@replica.internal:5432/coditect",
    )
    assert result.returncode == 0, result.stderr
    read = json.loads(result.stdout)
    assert (read["aliases"], read["replica"]) == (["default", "operator", "replica"], "replica")
    replica = read["options"]["replica"]["options"]
    assert "-c default_transaction_read_only=on" in replica
    # The same deadlines as the primary's connections.
    assert "-c statement_timeout=5000" in replica
    assert "default_transaction_read_only" not in read["options"]["default"]["options"]


def test_a_replica_url_that_is_not_postgresql_is_refused(tmp_path):
    result = _databases_in_a_new_process(
        tmp_path, DATABASE_REPLICA_URL=f"sqlite:///{tmp_path}/replica.sqlite3"
    )
    assert result.returncode != 0
    assert "DATABASE_REPLICA_URL needs PostgreSQL" in result.stderr
