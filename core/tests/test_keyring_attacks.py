"""Attacks on the keyring that both token kinds now share: one kind's token
passed off as the other's (even with one key file configured for both, and
after the first was remembered as verified), headers of unexpected types,
and the verified-token memo answering for options it was not verified under."""

from __future__ import annotations

import base64
import json
import time

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from django.conf import settings

from accounts.tokens import InvalidToken, access_token_issue, access_token_verify
from core.keyring import Keyring, TokenRejected
from licenses.signing import InvalidLicenseToken, license_token_verify, signing_keys

pytestmark = pytest.mark.embedded


def pem(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def segment(value) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


@pytest.fixture
def one_key_for_both(settings, tmp_path):
    """The misconfiguration the docs warn of: the auth key ring and the license
    key ring read the same Ed25519 key."""
    path = tmp_path / "shared.pem"
    path.write_bytes(pem(ed25519.Ed25519PrivateKey.generate()))
    settings.AUTH_SIGNING_KEY_FILE = [str(path)]
    settings.LICENSE_SIGNING_KEY_FILE = [str(path)]
    settings.LICENSE_SIGNING_KMS_KEY = ""
    settings.LICENSE_VERIFY_KEYS_FILE = []


def license_shaped(now: int) -> dict:
    return {
        "iss": settings.LICENSE_TOKEN_ISSUER,
        "sub": "11111111-1111-1111-1111-111111111111",
        "tid": "22222222-2222-2222-2222-222222222222",
        "sid": "session",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
    }


def test_with_one_key_in_both_rings_neither_kind_passes_for_the_other(one_key_for_both):
    now = int(time.time())
    license_token = signing_keys().sign(license_shaped(now))
    assert license_token_verify(license_token)  # remembered as verified by the license ring
    with pytest.raises(InvalidToken):
        access_token_verify(license_token)

    # A license token dressed as an access token: still not one, for want of
    # the audience and the claims an access token carries.
    dressed = signing_keys().sign(license_shaped(now), typ="at+jwt")
    with pytest.raises(InvalidToken):
        access_token_verify(dressed)

    access = access_token_issue(
        user_id="33333333-3333-3333-3333-333333333333",
        tenant_id="22222222-2222-2222-2222-222222222222",
        role="user",
        family_id="44444444-4444-4444-4444-444444444444",
    )
    assert access_token_verify(access)  # remembered by the auth ring
    with pytest.raises(InvalidLicenseToken):
        license_token_verify(access)


@pytest.mark.parametrize(
    "header",
    [
        {"alg": "EdDSA", "kid": ["a", "b"], "typ": "JWT"},
        {"alg": "EdDSA", "kid": {"k": 1}, "typ": "JWT"},
        {"alg": ["EdDSA"], "typ": "JWT"},
        {"alg": "EdDSA", "typ": {"t": "JWT"}},
    ],
    ids=["kid-list", "kid-object", "alg-list", "typ-object"],
)
def test_a_header_of_unexpected_types_is_a_refusal_not_an_error(header, one_key_for_both):
    if "kid" not in header:
        header = {**header, "kid": signing_keys().signer.key.kid}
    token = f"{segment(header)}.{segment({'sub': 's'})}.c2ln"
    with pytest.raises(InvalidLicenseToken):
        license_token_verify(token)
    with pytest.raises(InvalidToken):
        access_token_verify(token)


@pytest.fixture
def ring(settings, tmp_path):
    path = tmp_path / "gadget.pem"
    path.write_bytes(pem(ed25519.Ed25519PrivateKey.generate()))
    settings.GADGET_KEY_FILE = [str(path)]
    settings.GADGET_DEV_KEY_FILE = None
    return Keyring(
        name="gadget signing key",
        tokens="gadget tokens",
        algorithms=("EdDSA",),
        key_files_setting="GADGET_KEY_FILE",
        dev_key_file_setting="GADGET_DEV_KEY_FILE",
        missing="No gadget signing key.",
    )


def test_a_token_remembered_as_verified_is_not_passed_for_options_it_was_never_checked_against(
    ring,
):
    now = int(time.time())
    token = ring.keys().sign({"iss": "gadgets", "iat": now, "nbf": now, "exp": now + 600}, typ="JWT")
    options = {"issuer": "gadgets", "leeway": 0, "required": ["exp", "nbf", "iat", "iss"]}
    assert ring.keys().verify(token, **options)
    with pytest.raises(TokenRejected):
        ring.keys().verify(token, **options, typ="at+jwt")
