"""Issue 4, test 7: a client holding ONLY the published JWKS verifies tokens
offline, as the SDK does, with PyJWT's own JWK support."""

from __future__ import annotations

from datetime import timedelta

import jwt
import pytest

from core.keyring import LocalSigner, jws_sign
from licenses.signing import license_token_issue
from licenses.tests.signing_helpers import (
    ed25519_key,
    lease_of,
    rsa_key,
    tampered,
    unsaved_license,
    utcnow,
    write_pem,
)

ISSUER = "coditect-license-server"


class Refused(Exception):
    pass


def offline_verify(token: str, jwks_document: dict) -> dict:
    """What a client does: pick the key by kid from the key set, accept only
    that key's own algorithm, require and check the times and the issuer."""
    key_set = jwt.PyJWKSet.from_dict(jwks_document)
    try:
        kid = jwt.get_unverified_header(token).get("kid")
        key = key_set[kid]
        return jwt.decode(
            token,
            key,
            algorithms=[key.algorithm_name],
            issuer=ISSUER,
            options={"require": ["exp", "nbf", "iat", "iss", "sub", "sid"]},
        )
    except (KeyError, jwt.PyJWTError) as exc:
        raise Refused(type(exc).__name__) from exc


def issue(*, now=None, expires_in=timedelta(hours=1)) -> str:
    now = now or utcnow()
    license = unsaved_license()
    return license_token_issue(license=license, lease=lease_of(license), expires_at=now + expires_in, now=now)


def published(client) -> dict:
    response = client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    return response.json()


@pytest.fixture(params=["ed25519", "rsa"])
def signing_key(request, tmp_path, settings):
    key = ed25519_key() if request.param == "ed25519" else rsa_key()
    settings.LICENSE_SIGNING_KEY_FILE = [write_pem(tmp_path / "signing.pem", key)]
    settings.LICENSE_VERIFY_KEYS_FILE = []
    settings.LICENSE_SIGNING_KMS_KEY = ""
    return key


@pytest.mark.embedded
def test_a_fresh_token_verifies_with_only_the_jwks(client, signing_key):
    token = issue()
    claims = offline_verify(token, published(client))
    assert claims["ent"] == {"pro": True, "seats_per_user": 2}


def test_a_tampered_token_is_refused(client, signing_key):
    with pytest.raises(Refused, match="InvalidSignatureError"):
        offline_verify(tampered(issue()), published(client))


def test_an_expired_token_is_refused(client, signing_key):
    token = issue(now=utcnow() - timedelta(hours=2))
    with pytest.raises(Refused, match="ExpiredSignatureError"):
        offline_verify(token, published(client))


def test_a_token_with_a_kid_outside_the_key_set_is_refused(client, signing_key):
    stranger = LocalSigner.from_private_key(ed25519_key(7), source="test")
    now = int(utcnow().timestamp())
    token = jws_sign(
        {"iss": ISSUER, "sub": "l", "tid": "t", "sid": "s", "iat": now, "nbf": now, "exp": now + 60}, stranger
    )
    with pytest.raises(Refused, match="KeyError"):
        offline_verify(token, published(client))


def test_a_retired_keys_tokens_verify_while_it_is_listed_and_not_after(client, tmp_path, settings):
    old = ed25519_key(5)
    settings.LICENSE_SIGNING_KEY_FILE = [write_pem(tmp_path / "old.pem", old)]
    old_token = issue()

    settings.LICENSE_SIGNING_KEY_FILE = [write_pem(tmp_path / "new.pem", rsa_key())]
    settings.LICENSE_VERIFY_KEYS_FILE = [write_pem(tmp_path / "old.pub", old, public=True)]
    document = published(client)
    assert offline_verify(old_token, document)
    assert offline_verify(issue(), document)

    settings.LICENSE_VERIFY_KEYS_FILE = []
    with pytest.raises(Refused, match="KeyError"):
        offline_verify(old_token, published(client))
