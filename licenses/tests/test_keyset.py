"""The signed key set (issue 13, item 1): GET /.well-known/coditect-keyset.jws,
its root key setting and start-up check, and manage.py license_trust_anchors.
The SDK's own verifier checks what the server serves, so the two cannot drift."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command

from coditect_license import KeySetInvalid, load_keys_file, verify_signed_keyset
from coditect_license.tokens import KeySet as SdkKeySet
from core.keyring import jwk_thumbprint
from licenses.keyset import keyset_startup_check, root_jwks, signed_keyset
from licenses.signing import jwks
from licenses.tests.signing_helpers import ed25519_key, lease_of, rsa_key, unsaved_license, utcnow, write_pem

PATHS = ["/.well-known/coditect-keyset.jws", "/api/v1/.well-known/coditect-keyset.jws"]
ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@pytest.fixture
def keys(tmp_path, settings):
    settings.LICENSE_SIGNING_KEY_FILE = [write_pem(tmp_path / "signing.pem", ed25519_key(1))]
    settings.LICENSE_VERIFY_KEYS_FILE = [write_pem(tmp_path / "retired.pub", rsa_key(), public=True)]
    settings.LICENSE_SIGNING_KMS_KEY = ""
    settings.LICENSE_KEYSET_ENABLED = True
    settings.LICENSE_KEYSET_ROOT_KEY_FILE = write_pem(tmp_path / "root.pem", ed25519_key(2))
    settings.LICENSE_KEYSET_LIFETIME = 7 * 86400
    return settings


def pinned_root() -> SdkKeySet:
    """What an application pins: the command's output, read as the SDK reads it."""
    out = StringIO()
    call_command("license_trust_anchors", stdout=out)
    return SdkKeySet(json.loads(out.getvalue()))


def payload_of(token: str) -> dict:
    segment = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


@pytest.mark.embedded
@pytest.mark.parametrize("path", PATHS)
def test_the_signed_key_set_lists_the_jwks_keys_under_the_pinned_root(client, keys, path):
    response = client.get(path, HTTP_ACCEPT="application/jose")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/jose"
    signed = verify_signed_keyset(
        pinned_root(), response.content.decode(), now=time.time(), issuer=keys.LICENSE_TOKEN_ISSUER
    )
    assert [jwk["kid"] for jwk in signed.keys.jwks["keys"]] == [jwk["kid"] for jwk in jwks()["keys"]]
    assert signed.expires_at - signed.issued_at == 7 * 86400
    assert abs(signed.issued_at - time.time()) < 120


def test_any_accept_header_gets_the_jws_and_caches_may_keep_it_briefly(client, keys):
    keys.LICENSE_JWKS_MAX_AGE = 120
    for accept in ("application/json", "*/*", "text/html", None):
        extra = {"HTTP_ACCEPT": accept} if accept else {}
        response = client.get(PATHS[0], **extra)
        assert response.status_code == 200 and response["Content-Type"] == "application/jose"
    assert response["Cache-Control"] == "public, max-age=120"


def test_a_token_signed_after_a_rotation_verifies_through_the_signed_set_alone(client, keys, tmp_path):
    from licenses.signing import license_token_issue

    root = pinned_root()  # taken at the application's build, before the rotation
    keys.LICENSE_SIGNING_KEY_FILE = [
        write_pem(tmp_path / "new.pem", ed25519_key(3)),
        write_pem(tmp_path / "signing-old.pem", ed25519_key(1)),
    ]
    license = unsaved_license()
    now = utcnow()
    token = license_token_issue(
        license=license, lease=lease_of(license), expires_at=now + timedelta(hours=1), now=now
    )
    signed = verify_signed_keyset(root, client.get(PATHS[0]).content.decode(), now=time.time())
    assert jwk_thumbprint(ed25519_key(3).public_key()) in signed.keys
    claims = signed.keys.verify(token, now=time.time(), issuer=keys.LICENSE_TOKEN_ISSUER)
    assert claims.license_id == str(license.id)


def test_a_set_signed_by_another_root_or_edited_is_refused_by_the_sdk(client, keys, tmp_path):
    root = pinned_root()
    served = client.get(PATHS[0]).content.decode()
    keys.LICENSE_KEYSET_ROOT_KEY_FILE = write_pem(tmp_path / "other-root.pem", ed25519_key(4))
    with pytest.raises(KeySetInvalid, match="not signed by a root key"):
        verify_signed_keyset(root, client.get(PATHS[0]).content.decode(), now=time.time())
    header, _payload, signature = served.split(".")
    edited = payload_of(served)
    edited["exp"] += 365 * 86400
    body = base64.urlsafe_b64encode(json.dumps(edited).encode()).rstrip(b"=").decode()
    with pytest.raises(KeySetInvalid, match="does not verify"):
        verify_signed_keyset(root, f"{header}.{body}.{signature}", now=time.time())


def test_disabled_it_answers_not_found_in_the_error_shape(client, keys):
    keys.LICENSE_KEYSET_ENABLED = False
    response = client.get(PATHS[0])
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    keyset_startup_check()  # and nothing is required at start-up


def test_it_only_answers_get(client, keys):
    response = client.post(PATHS[0], {}, content_type="application/json")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_the_openapi_schema_documents_it(client, keys):
    paths = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()["paths"]
    operation = paths["/api/v1/.well-known/coditect-keyset.jws"]["get"]
    assert "application/jose" in operation["responses"]["200"]["content"]
    assert "404" in operation["responses"]


# --- the root key: settings, start-up, the command ---------------------------------------------


def test_the_command_prints_the_root_public_key_as_jwks_and_pem_and_the_license_jwks(keys, tmp_path):
    root_public = ed25519_key(2).public_key()
    printed = json.loads(_command())
    assert printed == root_jwks()
    assert printed["keys"][0]["kid"] == jwk_thumbprint(root_public)
    assert "d" not in printed["keys"][0]  # public only

    pem = _command("--pem")
    assert pem.startswith("-----BEGIN PUBLIC KEY-----") and "PRIVATE" not in pem
    (tmp_path / "root.pem").write_text(pem)
    assert load_keys_file(tmp_path / "root.pem")["keys"][0]["kid"] == jwk_thumbprint(root_public)

    assert json.loads(_command("--jwks")) == jwks()


def test_the_command_refuses_when_no_key_set_is_served(keys):
    keys.LICENSE_KEYSET_ENABLED = False
    with pytest.raises(CommandError, match="LICENSE_KEYSET_ENABLED"):
        _command()


def test_with_debug_on_a_development_root_key_is_made_and_kept(keys, tmp_path):
    keys.LICENSE_KEYSET_ROOT_KEY_FILE = ""
    keys.LICENSE_KEYSET_ROOT_DEV_KEY_FILE = tmp_path / "var" / "root-dev.pem"
    keyset_startup_check()
    assert not keys.LICENSE_KEYSET_ROOT_DEV_KEY_FILE.exists()  # made on first use only
    first = root_jwks()
    assert keys.LICENSE_KEYSET_ROOT_DEV_KEY_FILE.exists()
    assert first["keys"][0]["kid"] != jwk_thumbprint(ed25519_key(1).public_key())
    assert verify_signed_keyset(SdkKeySet(first), signed_keyset(), now=time.time())


def test_with_debug_off_and_no_root_key_the_start_up_check_refuses_naming_the_settings(keys):
    keys.LICENSE_KEYSET_ROOT_KEY_FILE = ""
    keys.LICENSE_KEYSET_ROOT_DEV_KEY_FILE = None
    with pytest.raises(ImproperlyConfigured) as caught:
        keyset_startup_check()
    assert "LICENSE_KEYSET_ROOT_KEY_FILE" in str(caught.value)
    assert "LICENSE_KEYSET_ENABLED" in str(caught.value)


def test_a_root_key_that_is_a_license_signing_key_is_refused(keys):
    keys.LICENSE_KEYSET_ROOT_KEY_FILE = keys.LICENSE_SIGNING_KEY_FILE[0]
    with pytest.raises(ImproperlyConfigured, match="root key must be a key of its own"):
        keyset_startup_check()


@pytest.mark.parametrize("lifetime", [0, -1])
def test_a_key_set_lifetime_must_be_positive(keys, lifetime):
    keys.LICENSE_KEYSET_LIFETIME = lifetime
    with pytest.raises(ImproperlyConfigured, match="LICENSE_KEYSET_LIFETIME"):
        keyset_startup_check()


def test_gunicorn_refuses_to_start_without_a_root_key_but_migrate_does_not_need_it(tmp_path):
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(
            ("LICENSE_", "AUTH_", "DATABASE_", "REDIS_", "SEAT_LEDGER", "PYTEST", "DJANGO_")
        )
    }
    env.update(
        DEBUG="0",
        SECRET_KEY="startup-test-not-secret",
        CODITECT_VAR_DIR=str(tmp_path / "var"),
        LICENSE_SIGNING_KEY_FILE=write_pem(tmp_path / "signing.pem", ed25519_key(1)),
        AUTH_SIGNING_KEY_FILE=write_pem(tmp_path / "auth.pem", ed25519_key(5)),
    )
    served = subprocess.run(
        [str(BIN / "gunicorn"), "coditect.wsgi:application", "--bind", "127.0.0.1:0", "--workers", "1"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert served.returncode != 0
    assert "LICENSE_KEYSET_ROOT_KEY_FILE" in served.stderr
    checked = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stderr


def _command(*args: str) -> str:
    out = StringIO()
    call_command("license_trust_anchors", *args, stdout=out)
    return out.getvalue()
