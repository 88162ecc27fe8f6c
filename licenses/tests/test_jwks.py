"""GET /.well-known/jwks.json (and its twin under /api/v1)."""

from __future__ import annotations

import pytest

from core.keyring import jwk_thumbprint
from licenses.tests.signing_helpers import ed25519_key, rsa_key, write_pem

PATHS = ["/.well-known/jwks.json", "/api/v1/.well-known/jwks.json"]


@pytest.fixture
def two_keys(tmp_path, settings):
    settings.LICENSE_SIGNING_KEY_FILE = [write_pem(tmp_path / "current.pem", ed25519_key())]
    settings.LICENSE_VERIFY_KEYS_FILE = [write_pem(tmp_path / "retired.pub", rsa_key(), public=True)]
    settings.LICENSE_SIGNING_KMS_KEY = ""


@pytest.mark.embedded
@pytest.mark.parametrize("path", PATHS)
def test_anyone_can_read_the_current_and_retired_public_keys(client, two_keys, path):
    response = client.get(path)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    keys = response.json()["keys"]
    assert [key["kid"] for key in keys] == [
        jwk_thumbprint(ed25519_key().public_key()),
        jwk_thumbprint(rsa_key().public_key()),
    ]
    assert keys[0] | {} == {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": keys[0]["x"],
        "kid": keys[0]["kid"],
        "alg": "EdDSA",
        "use": "sig",
    }
    assert set(keys[1]) == {"kty", "n", "e", "kid", "alg", "use"}
    assert keys[1]["alg"] == "RS256"


@pytest.mark.embedded
def test_caches_may_keep_the_key_set_for_a_few_minutes(client, two_keys, settings):
    settings.LICENSE_JWKS_MAX_AGE = 240
    response = client.get(PATHS[0])
    assert response["Cache-Control"] == "public, max-age=240"


def test_a_bearer_header_is_neither_needed_nor_checked(client, two_keys):
    response = client.get(PATHS[0], HTTP_AUTHORIZATION="Bearer not-a-token")
    assert response.status_code == 200


def test_it_only_answers_get(client, two_keys):
    response = client.post(PATHS[0], {}, content_type="application/json")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_the_openapi_schema_documents_it(client, two_keys):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    assert "/api/v1/.well-known/jwks.json" in response.json()["paths"]
