"""What both token kinds share: the unverified header that picks the key,
the claims of tokens already verified in full, and the keyring itself (key
sources, rotation, retired keys, the JWKS document)."""

import base64
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from core.keyring import Keyring, TokenRejected, VerifiedTokens, jwk_thumbprint, jws_header

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.embedded


def segment(value) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


def test_the_header_of_a_compact_jws_is_read():
    assert jws_header(f"{segment({'alg': 'EdDSA', 'kid': 'k1'})}.e30.c2ln") == {"alg": "EdDSA", "kid": "k1"}


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(None, id="not a string"),
        pytest.param("", id="empty"),
        pytest.param("abc", id="one segment"),
        pytest.param(f"{segment({'alg': 'EdDSA'})}.e30", id="two segments"),
        pytest.param(f"{segment({'alg': 'EdDSA'})}.e30.c2ln.c2ln", id="four segments"),
        pytest.param(".e30.c2ln", id="empty header"),
        pytest.param(f"{segment({'alg': 'EdDSA'})}=.e30.c2ln", id="padding"),
        pytest.param("eyJhbGciOiJFZERTQSJ9!.e30.c2ln", id="outside the alphabet"),
        pytest.param("e+JhbGciOiJFZERTQSJ9.e30.c2ln", id="standard base64, not url-safe"),
        pytest.param(f"{segment(['alg'])}.e30.c2ln", id="a JSON array"),
        pytest.param(f"{segment('alg')}.e30.c2ln", id="a JSON string"),
        pytest.param("bm90IGpzb24.e30.c2ln", id="not JSON"),
        pytest.param("_w.e30.c2ln", id="not UTF-8"),
        pytest.param("abcde.e30.c2ln", id="impossible length"),
        pytest.param(f"{segment({'alg': 'x' * 2000})}.e30.c2ln", id="too long"),
    ],
)
def test_anything_else_is_a_value_error(token):
    with pytest.raises(ValueError):
        jws_header(token)


def claims(**times) -> dict:
    now = int(time.time())
    return {"sub": "s", "iat": now, "nbf": now, "exp": now + 60, **times}


def test_a_verified_token_is_remembered_by_its_whole_string():
    verified = VerifiedTokens()
    verified.put("a.b.c", claims())
    assert verified.get("a.b.c", leeway=0)["sub"] == "s"
    assert verified.get("a.b.d", leeway=0) is None


def test_a_remembered_token_whose_times_no_longer_hold_is_forgotten():
    now = int(time.time())
    verified = VerifiedTokens()
    verified.put("expired", claims(exp=now - 20))
    verified.put("in-leeway", claims(exp=now - 5))
    verified.put("not-yet", claims(nbf=now + 60))
    verified.put("issued-ahead", claims(iat=now + 60))
    assert verified.get("expired", leeway=10) is None
    assert verified.get("expired", leeway=30) is None  # forgotten, not kept for a kinder caller
    assert verified.get("in-leeway", leeway=10) is not None
    assert verified.get("not-yet", leeway=10) is None
    assert verified.get("issued-ahead", leeway=10) is None


def test_callers_get_a_copy():
    verified = VerifiedTokens()
    verified.put("t", claims())
    verified.get("t", leeway=0)["sub"] = "mallory"
    assert verified.get("t", leeway=0)["sub"] == "s"


def test_it_is_bounded():
    verified = VerifiedTokens(max_entries=3)
    for n in range(10):
        verified.put(f"t{n}", claims())
    assert len(verified._entries) <= 3
    assert verified.get("t9", leeway=0) is not None


# --- the keyring: sources, rotation, retired keys, the JWKS document ---------------


def private_pem(*keys) -> bytes:
    return b"".join(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        for key in keys
    )


def public_pem(*keys) -> bytes:
    return b"".join(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        for key in keys
    )


@pytest.fixture
def ring(settings, tmp_path):
    """A key ring of a made-up token kind, on settings of its own."""
    settings.WIDGET_KEY_FILE = []
    settings.WIDGET_VERIFY_KEYS_FILE = []
    settings.WIDGET_KMS_KEY = ""
    settings.WIDGET_KMS_TIMEOUT = 1.0
    settings.WIDGET_DEV_KEY_FILE = None
    settings.WIDGET_ISSUER = "widgets"
    return Keyring(
        name="widget signing key",
        tokens="widget tokens",
        algorithms=("EdDSA",),
        key_files_setting="WIDGET_KEY_FILE",
        verify_files_setting="WIDGET_VERIFY_KEYS_FILE",
        kms_key_setting="WIDGET_KMS_KEY",
        kms_timeout_setting="WIDGET_KMS_TIMEOUT",
        dev_key_file_setting="WIDGET_DEV_KEY_FILE",
        missing="No widget signing key: set WIDGET_KEY_FILE.",
        decided_by=("WIDGET_ISSUER",),
    )


def key_file(tmp_path, name: str, data: bytes) -> str:
    (tmp_path / name).write_bytes(data)
    return str(tmp_path / name)


def widget(ring, **changes) -> str:
    return ring.keys().sign(claims(iss=settings.WIDGET_ISSUER, **changes))


def verify(ring, token, **options):
    options = {"issuer": settings.WIDGET_ISSUER, "leeway": 0, "required": ["exp", "iss"], **options}
    return ring.keys().verify(token, **options)


def test_the_first_key_signs_and_the_others_verify_until_removed(ring, settings, tmp_path):
    old, new = ed25519.Ed25519PrivateKey.generate(), ed25519.Ed25519PrivateKey.generate()
    settings.WIDGET_KEY_FILE = [key_file(tmp_path, "old.pem", private_pem(old))]
    old_token = widget(ring)

    settings.WIDGET_KEY_FILE = [key_file(tmp_path, "both.pem", private_pem(new, old))]
    assert ring.keys().signer.key.kid == jwk_thumbprint(new.public_key())
    assert verify(ring, old_token)["sub"] == "s"
    assert [key["kid"] for key in ring.keys().jwks["keys"]] == [
        jwk_thumbprint(new.public_key()),
        jwk_thumbprint(old.public_key()),
    ]

    settings.WIDGET_KEY_FILE = [key_file(tmp_path, "new.pem", private_pem(new))]
    with pytest.raises(TokenRejected, match="unknown kid"):
        verify(ring, old_token)


def test_a_retired_key_verifies_and_is_published_but_never_signs(ring, settings, tmp_path):
    retired, current = ed25519.Ed25519PrivateKey.generate(), ed25519.Ed25519PrivateKey.generate()
    settings.WIDGET_KEY_FILE = [key_file(tmp_path, "retired.pem", private_pem(retired))]
    old_token = widget(ring)

    settings.WIDGET_KEY_FILE = [key_file(tmp_path, "current.pem", private_pem(current))]
    settings.WIDGET_VERIFY_KEYS_FILE = [key_file(tmp_path, "retired.pub", public_pem(retired))]
    assert verify(ring, old_token)
    assert jws_header(widget(ring))["kid"] == jwk_thumbprint(current.public_key())
    assert [key["kid"] for key in ring.keys().jwks["keys"]] == [
        jwk_thumbprint(current.public_key()),
        jwk_thumbprint(retired.public_key()),
    ]


def test_a_key_of_a_kind_the_tokens_do_not_allow_is_refused_at_load(ring, settings, tmp_path):
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    settings.WIDGET_KEY_FILE = [key_file(tmp_path, "rsa.pem", private_pem(rsa_key))]
    with pytest.raises(ImproperlyConfigured, match="cannot sign widget tokens; use Ed25519"):
        ring.startup_check()


def test_each_key_accepts_its_own_algorithm_and_the_kinds_type_only(ring, settings, tmp_path):
    settings.WIDGET_KEY_FILE = [
        key_file(tmp_path, "k.pem", private_pem(ed25519.Ed25519PrivateKey.generate()))
    ]
    token = widget(ring)
    with pytest.raises(TokenRejected, match="type"):
        verify(ring, token, typ="at+jwt")
    assert verify(ring, token, typ="JWT")
    _header, payload, signature = token.split(".")
    relabelled = f"{segment({**jws_header(token), 'alg': 'RS256'})}.{payload}.{signature}"
    with pytest.raises(TokenRejected, match="algorithm"):
        verify(ring, relabelled)


def test_a_setting_that_decides_verification_forgets_the_tokens_verified_before(ring, settings, tmp_path):
    settings.WIDGET_KEY_FILE = [
        key_file(tmp_path, "k.pem", private_pem(ed25519.Ed25519PrivateKey.generate()))
    ]
    token = widget(ring)
    assert verify(ring, token)
    keyset = ring.keys()
    settings.WIDGET_ISSUER = "someone-else"
    assert ring.keys() is not keyset
    with pytest.raises(TokenRejected):
        verify(ring, token)


def test_key_files_and_a_kms_key_together_are_refused(ring, settings, tmp_path):
    settings.WIDGET_KEY_FILE = [
        key_file(tmp_path, "k.pem", private_pem(ed25519.Ed25519PrivateKey.generate()))
    ]
    settings.WIDGET_KMS_KEY = "projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1"
    with pytest.raises(ImproperlyConfigured, match="Set WIDGET_KEY_FILE or WIDGET_KMS_KEY, not both"):
        ring.startup_check()


def test_without_a_key_or_a_development_key_it_refuses_with_its_own_message(ring):
    with pytest.raises(ImproperlyConfigured, match="No widget signing key"):
        ring.startup_check()
    with pytest.raises(ImproperlyConfigured, match="No widget signing key"):
        ring.keys()


def test_with_a_development_key_path_the_key_is_made_on_first_use_only(ring, settings, tmp_path):
    settings.WIDGET_DEV_KEY_FILE = tmp_path / "var" / "widget-dev.pem"
    ring.startup_check()
    assert not settings.WIDGET_DEV_KEY_FILE.exists()
    kid = ring.keys().signer.key.kid
    assert settings.WIDGET_DEV_KEY_FILE.exists()
    ring.reset()
    assert ring.keys().signer.key.kid == kid


def test_the_keyring_imports_google_cloud_kms_only_when_a_kms_key_is_configured():
    script = "import sys, core.keyring; print('google.cloud.kms' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
