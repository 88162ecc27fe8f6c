"""With DEBUG off and no signing key, neither a management command nor
gunicorn starts; the message says which variable to set."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from core.keyring import jwk_thumbprint
from licenses.tests.signing_helpers import ed25519_key, write_pem

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def production_env(tmp_path, **extra) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(
            ("LICENSE_", "AUTH_", "DATABASE_", "REDIS_", "SEAT_LEDGER", "PYTEST", "DJANGO_")
        )
    }
    env.update(DEBUG="0", SECRET_KEY="startup-test-not-secret", CODITECT_VAR_DIR=str(tmp_path / "var"))
    # The access-token key has its own startup check (accounts); it is not what these tests are about.
    env["AUTH_SIGNING_KEY_FILE"] = write_pem(tmp_path / "auth-signing.pem", ed25519_key(8))
    env.update(extra)
    return env


def run(args, env) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def test_a_management_command_refuses_to_start_without_a_signing_key(tmp_path):
    result = run([sys.executable, "manage.py", "check"], production_env(tmp_path))
    assert result.returncode != 0
    assert "LICENSE_SIGNING_KEY_FILE" in result.stderr
    assert "LICENSE_SIGNING_KMS_KEY" in result.stderr
    assert not (tmp_path / "var" / "license-signing-dev-ed25519.pem").exists()


def test_gunicorn_refuses_to_start_without_a_signing_key(tmp_path):
    result = run(
        [str(BIN / "gunicorn"), "coditect.wsgi:application", "--bind", "127.0.0.1:0", "--workers", "1"],
        production_env(tmp_path),
    )
    assert result.returncode != 0
    assert "LICENSE_SIGNING_KEY_FILE" in result.stderr


def test_with_a_key_file_the_process_starts_and_signs_with_it(tmp_path):
    key_file = write_pem(tmp_path / "signing.pem", ed25519_key())
    script = "from licenses.signing import signing_keys; print(signing_keys().signer.key.kid)"
    result = run(
        [sys.executable, "manage.py", "shell", "-c", script],
        production_env(tmp_path, LICENSE_SIGNING_KEY_FILE=key_file),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == jwk_thumbprint(ed25519_key().public_key())


def test_an_unreadable_key_file_stops_the_start_naming_the_file(tmp_path):
    result = run(
        [sys.executable, "manage.py", "check"],
        production_env(tmp_path, LICENSE_SIGNING_KEY_FILE=str(tmp_path / "missing.pem")),
    )
    assert result.returncode != 0
    assert "missing.pem" in result.stderr
