"""The auth signing key: from configuration, rotated by kid, a development key
only with DEBUG on, and no start at all without one otherwise."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from django.core.exceptions import ImproperlyConfigured

from accounts.tokens import (
    InvalidToken,
    access_token_issue,
    access_token_verify,
    auth_keys,
    auth_keys_startup_check,
)

pytestmark = pytest.mark.embedded

ROOT = Path(__file__).resolve().parents[2]


def pem(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def issue() -> str:
    import uuid

    return access_token_issue(
        user_id=uuid.uuid4(), tenant_id=uuid.uuid4(), role="user", family_id=uuid.uuid4()
    )


def test_the_first_key_signs_and_the_others_still_verify(settings, tmp_path):
    old, new = ed25519.Ed25519PrivateKey.generate(), ed25519.Ed25519PrivateKey.generate()
    (tmp_path / "old.pem").write_bytes(pem(old))
    settings.AUTH_SIGNING_KEY_FILE = [str(tmp_path / "old.pem")]
    before_rotation = issue()
    old_kid = auth_keys().signer.key.kid

    (tmp_path / "both.pem").write_bytes(pem(new) + pem(old))
    settings.AUTH_SIGNING_KEY_FILE = [str(tmp_path / "both.pem")]
    assert auth_keys().signer.key.kid != old_kid
    assert access_token_verify(before_rotation)
    assert access_token_verify(issue())

    (tmp_path / "new.pem").write_bytes(pem(new))
    settings.AUTH_SIGNING_KEY_FILE = [str(tmp_path / "new.pem")]
    with pytest.raises(InvalidToken, match="unknown kid"):
        access_token_verify(before_rotation)


def test_only_ed25519_keys_sign_access_tokens(settings, tmp_path):
    (tmp_path / "rsa.pem").write_bytes(pem(rsa.generate_private_key(public_exponent=65537, key_size=2048)))
    settings.AUTH_SIGNING_KEY_FILE = [str(tmp_path / "rsa.pem")]
    with pytest.raises(ImproperlyConfigured, match="Ed25519"):
        auth_keys_startup_check()
    settings.AUTH_SIGNING_KEY_FILE = [str(tmp_path / "missing.pem")]
    with pytest.raises(ImproperlyConfigured, match="cannot be read"):
        auth_keys_startup_check()


def test_the_development_key_is_made_once_outside_the_repository(settings, tmp_path):
    settings.AUTH_SIGNING_KEY_FILE = []
    settings.AUTH_SIGNING_DEV_KEY_FILE = tmp_path / "var" / "auth-dev.pem"
    kid = auth_keys().signer.key.kid
    assert (settings.AUTH_SIGNING_DEV_KEY_FILE.stat().st_mode & 0o777) == 0o600
    settings.AUTH_SIGNING_DEV_KEY_FILE = tmp_path / "var" / "auth-dev.pem"  # a fresh load reads the same file
    assert auth_keys().signer.key.kid == kid


def test_without_a_key_and_debug_off_there_is_no_development_key(settings):
    settings.AUTH_SIGNING_KEY_FILE = []
    settings.AUTH_SIGNING_DEV_KEY_FILE = None
    with pytest.raises(ImproperlyConfigured, match="AUTH_SIGNING_KEY_FILE"):
        auth_keys_startup_check()


def test_the_server_refuses_to_start_with_debug_off_and_no_auth_key(tmp_path):
    license_key = tmp_path / "license.pem"
    license_key.write_bytes(pem(ed25519.Ed25519PrivateKey.generate()))
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DATABASE", "REDIS", "SEAT_", "AUTH_", "LICENSE_", "DEBUG"))
    }
    env.update(
        DEBUG="0",
        SECRET_KEY="not-a-secret",
        CODITECT_VAR_DIR=str(tmp_path / "var"),
        LICENSE_SIGNING_KEY_FILE=str(license_key),
    )
    started = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": "coditect.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert started.returncode != 0
    assert "set AUTH_SIGNING_KEY_FILE" in started.stderr


def test_an_access_token_is_byte_for_byte_the_jws_pyjwt_makes(settings, tmp_path):
    """The key ring signs access tokens itself now (as it does license tokens);
    what goes on the wire is what jwt.encode made before."""
    import jwt

    key = ed25519.Ed25519PrivateKey.generate()
    (tmp_path / "k.pem").write_bytes(pem(key))
    settings.AUTH_SIGNING_KEY_FILE = [str(tmp_path / "k.pem")]
    token = issue()
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert header == {"alg": "EdDSA", "kid": auth_keys().signer.key.kid, "typ": "at+jwt"}
    assert token == jwt.encode(
        claims, key, algorithm="EdDSA", headers={"kid": header["kid"], "typ": "at+jwt"}
    )
