"""Check 4: `manage.py check --deploy` is clean under production settings; and
the TLS settings for PostgreSQL and Redis reach the clients."""

from __future__ import annotations

import json
import ssl
import sys

from deploy.tests.production import production_env
from deploy.tests.tools import REPO, run


def _manage(env: dict, *args: str):
    return run(sys.executable, str(REPO / "manage.py"), *args, cwd=REPO, env=env, check=False, timeout=120)


def _settings(env: dict, code: str) -> dict:
    result = run(
        sys.executable, "-c", "import django; django.setup()\n" + code, cwd=REPO, env=env, timeout=60
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_check_deploy_passes_with_production_settings(tmp_path):
    env = production_env(
        tmp_path,
        DATABASE_URL="postgresql://coditect_app@db.internal:5432/coditect",
        DATABASE_OPERATOR_URL="postgresql://coditect_operator@db.internal:5432/coditect",
        REDIS_URL="rediss://:auth-string@redis.internal:6378/0",
    )
    # Every security check, at every level: nothing at all to report.
    security = _manage(env, "check", "--deploy", "--tag", "security", "--fail-level", "DEBUG")
    assert security.returncode == 0, security.stdout + security.stderr
    assert "System check identified no issues" in security.stdout
    # And the whole of `check --deploy` passes (other apps' warnings, such as
    # the API schema's, are theirs to settle and do not fail it).
    everything = _manage(env, "check", "--deploy")
    assert everything.returncode == 0, everything.stdout + everything.stderr
    assert "security." not in everything.stdout + everything.stderr


def test_check_deploy_is_not_vacuous_it_fails_with_debug_on(tmp_path):
    env = production_env(tmp_path, DEBUG="1")
    result = _manage(env, "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode != 0
    assert "security.W018" in result.stdout + result.stderr


def test_the_server_refuses_to_start_without_a_secret_key_when_debug_is_off(tmp_path):
    env = production_env(tmp_path)
    del env["SECRET_KEY_FILE"]
    result = _manage(env, "check")
    assert result.returncode != 0
    assert "Set SECRET_KEY" in result.stderr


def test_postgresql_tls_options_reach_both_database_aliases(tmp_path):
    ca = tmp_path / "cloudsql-server-ca.pem"
    env = production_env(
        tmp_path,
        DATABASE_URL="postgresql://coditect_app:pw@10.0.0.5:5432/coditect",
        DATABASE_OPERATOR_URL="postgresql://coditect_operator:pw@10.0.0.5:5432/coditect",
        DATABASE_SSLMODE="verify-ca",
        DATABASE_SSLROOTCERT=str(ca),
    )
    options = _settings(
        env,
        "from django.conf import settings; import json\n"
        "print(json.dumps({a: settings.DATABASES[a]['OPTIONS'] for a in ('default', 'operator')}))",
    )
    for alias in ("default", "operator"):
        assert options[alias]["sslmode"] == "verify-ca"
        assert options[alias]["sslrootcert"] == str(ca)


def test_a_rediss_url_verifies_the_server_for_every_redis_client(tmp_path):
    ca = tmp_path / "redis-server-ca.pem"
    env = production_env(tmp_path, REDIS_URL="rediss://:auth@10.0.0.7:6378/0", REDIS_SSL_CA_CERTS=str(ca))
    seen = _settings(
        env,
        "from django.conf import settings; import json, ssl, redis\n"
        "pool = redis.ConnectionPool.from_url(settings.REDIS_URL)\n"
        "from coditect.celery import app\n"
        "print(json.dumps({'kwargs': {k: str(v) for k, v in pool.connection_kwargs.items()},\n"
        "  'cls': pool.connection_class.__name__, 'cache': settings.CACHES['default']['LOCATION'],\n"
        "  'broker_ssl': {k: str(v) for k, v in app.conf.broker_use_ssl.items()},\n"
        "  'broker': app.conf.broker_url}))",
    )
    assert seen["cls"] == "SSLConnection"
    assert seen["kwargs"]["ssl_cert_reqs"] == "required"
    assert seen["kwargs"]["ssl_ca_certs"] == str(ca)
    assert seen["kwargs"]["ssl_check_hostname"] == "True"
    assert seen["cache"] == seen["broker"]
    assert "ssl_ca_certs=" in seen["cache"]
    assert seen["broker_ssl"] == {
        "ssl_cert_reqs": str(int(ssl.CERT_REQUIRED)),
        "ssl_ca_certs": str(ca),
        "ssl_check_hostname": "True",
    }
