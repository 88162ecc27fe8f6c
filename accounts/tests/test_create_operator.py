"""The first operator of a production install: `create_operator` run as
production runs it (DEBUG off, PostgreSQL as the app and operator roles),
then a sign-in to the admin site. `createsuperuser` goes the same way."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connections

from accounts.models import User
from tenants.scope import operator_scope

PASSWORD = "the first operator's passphrase"


def production_environment(workdir: Path) -> dict[str, str]:
    """The environment of a production process: DEBUG off, a SECRET_KEY,
    signing keys of its own, and the database the test runs on, through the
    same roles the server uses (the app role and the operator role)."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("DATABASE", "DEBUG", "REDIS", "SEAT_LEDGER", "OPERATOR_PASSWORD"))
    }
    keys = {}
    for name in ("LICENSE_SIGNING_KEY_FILE", "AUTH_SIGNING_KEY_FILE", "LICENSE_KEYSET_ROOT_KEY_FILE"):
        pem = ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        keys[name] = workdir / f"{name.lower()}.pem"
        keys[name].write_bytes(pem)
        env[name] = str(keys[name])
    env.update(SECRET_KEY="production-like-test-secret", CODITECT_VAR_DIR=str(workdir / "var"))
    for alias, variable in (("default", "DATABASE_URL"), ("operator", "DATABASE_OPERATOR_URL")):
        if alias not in connections.settings:
            continue
        params = connections[alias].settings_dict
        if connections[alias].vendor == "postgresql":
            host, port = params.get("HOST") or "127.0.0.1", params.get("PORT") or 5432
            env[variable] = f"postgresql://{params['USER']}@{host}:{port}/{params['NAME']}"
        else:
            env[variable] = f"sqlite:///{params['NAME']}"
    return env


def manage(env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=settings.BASE_DIR,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.embedded
def test_create_operator_in_production_settings_then_the_operator_signs_in_to_the_admin(
    committed_db, tmp_path, client
):
    env = production_environment(tmp_path)
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD + "\n")
    result = manage(
        env, "create_operator", "--email", "First.Op@Example.com", "--password-file", str(password_file)
    )
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed["email"] == "first.op@example.com"
    assert "Traceback" not in result.stderr

    with operator_scope():
        operator = User.objects.get(email="first.op@example.com")
    assert operator.is_staff and operator.is_superuser and operator.tenant_id is None
    assert operator.password != PASSWORD  # hashed

    response = client.post(
        f"/{settings.ADMIN_URL}login/?next=/{settings.ADMIN_URL}",
        {"username": "first.op@example.com", "password": PASSWORD, "next": f"/{settings.ADMIN_URL}"},
    )
    assert response.status_code == 302, response.content[:500]
    assert response["Location"] == f"/{settings.ADMIN_URL}"
    page = client.get(f"/{settings.ADMIN_URL}")
    assert page.status_code == 200
    assert b"first.op@example.com" in page.content.lower() or b"log out" in page.content.lower()


@pytest.mark.embedded
def test_create_operator_takes_the_password_from_the_environment_and_refuses_a_second_of_one_email(
    committed_db, tmp_path
):
    env = production_environment(tmp_path)
    env["OPERATOR_PASSWORD"] = PASSWORD
    assert manage(env, "create_operator", "--email", "op@example.com").returncode == 0
    again = manage(env, "create_operator", "--email", "OP@example.com")
    assert again.returncode != 0
    assert "already exists" in again.stderr
    assert "Traceback" not in again.stderr


@pytest.mark.embedded
def test_create_operator_refuses_a_weak_or_missing_password_and_creates_nothing(committed_db, tmp_path):
    env = production_environment(tmp_path)
    env["OPERATOR_PASSWORD"] = "short"
    weak = manage(env, "create_operator", "--email", "weak@example.com")
    assert weak.returncode != 0 and "refused" in weak.stderr
    del env["OPERATOR_PASSWORD"]
    missing = manage(env, "create_operator", "--email", "none@example.com", stdin="")
    assert missing.returncode != 0 and "No password" in missing.stderr
    with operator_scope():
        assert not User.objects.filter(email__in=["weak@example.com", "none@example.com"]).exists()


@pytest.mark.embedded
def test_createsuperuser_makes_an_operator_on_the_operator_path_without_a_scope_error(committed_db, tmp_path):
    env = production_environment(tmp_path)
    env["DJANGO_SUPERUSER_PASSWORD"] = PASSWORD
    result = manage(env, "createsuperuser", "--noinput", "--email", "super@example.com")
    assert result.returncode == 0, result.stderr
    assert "ScopeError" not in result.stderr
    with operator_scope():
        operator = User.objects.get(email="super@example.com")
    assert operator.is_staff and operator.tenant_id is None


@pytest.mark.django_db(databases="__all__")
def test_create_operator_in_process_writes_through_the_operator_scope(tmp_path):
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD)
    call_command("create_operator", email="inproc@example.com", password_file=str(password_file))
    with operator_scope():
        assert User.objects.filter(email="inproc@example.com", tenant__isnull=True, is_staff=True).exists()
    with pytest.raises(CommandError, match="cannot be read"):
        call_command("create_operator", email="x@example.com", password_file=str(tmp_path / "nope"))
