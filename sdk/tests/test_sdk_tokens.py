"""Local verification of license tokens against a key set (no server)."""

from __future__ import annotations

import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from sdk_testkit import ISSUER, SigningKey, b64url, claims_for

from coditect_license import ClockSetBack, KeyNotTrusted, KeySet, TokenExpired, TokenInvalid

FP = "f" * 64


@pytest.fixture
def key():
    return SigningKey()


def test_a_token_signed_by_a_key_in_the_set_verifies_with_its_claims(key):
    claims = claims_for(fingerprint=FP, entitlements={"seats": 3})
    verified = KeySet(key.jwks).verify(key.token(**claims), now=time.time(), fingerprint=FP, issuer=ISSUER)
    assert verified.session_id == claims["sid"]
    assert verified.license_id == claims["sub"]
    assert verified.entitlements == {"seats": 3}


def test_it_refuses_a_token_whose_payload_was_edited(key):
    token = key.token(**claims_for(fingerprint=FP))
    header, payload, signature = token.split(".")
    claims = json.loads(jwt.utils.base64url_decode(payload))
    claims["ent"] = {"enterprise": True}
    forged = ".".join([header, b64url(json.dumps(claims).encode()), signature])
    with pytest.raises(TokenInvalid):
        KeySet(key.jwks).verify(forged, now=time.time(), fingerprint=FP)


def test_it_refuses_a_token_signed_by_another_key_under_the_same_kid(key):
    impostor = SigningKey(kid=key.kid)
    with pytest.raises(TokenInvalid):
        KeySet(key.jwks).verify(impostor.token(**claims_for(fingerprint=FP)), now=time.time())


def test_it_refuses_an_unknown_kid(key):
    with pytest.raises(KeyNotTrusted, match="does not trust"):
        KeySet(key.jwks).verify(key.token(kid="other", **claims_for(fingerprint=FP)), now=time.time())


def test_it_refuses_alg_none_and_hs256_made_with_the_public_key(key):
    claims = claims_for(fingerprint=FP)
    unsigned = jwt.encode(claims, None, algorithm="none", headers={"kid": key.kid})
    hmac_with_public = jwt.encode(claims, key.jwk["x"], algorithm="HS256", headers={"kid": key.kid})
    for token in (unsigned, hmac_with_public):
        with pytest.raises(TokenInvalid):
            KeySet(key.jwks).verify(token, now=time.time())


def test_it_refuses_a_token_for_another_machine(key):
    with pytest.raises(TokenInvalid, match="another machine"):
        KeySet(key.jwks).verify(
            key.token(**claims_for(fingerprint=FP)), now=time.time(), fingerprint="e" * 64
        )


def test_it_refuses_a_token_missing_a_required_claim(key):
    claims = claims_for(fingerprint=FP)
    del claims["exp"]
    with pytest.raises(TokenInvalid):
        KeySet(key.jwks).verify(key.token(**claims), now=time.time())


def test_a_token_holds_until_its_exp_and_not_after(key):
    now = time.time()
    token = key.token(**claims_for(fingerprint=FP, now=now, lifetime=60))
    keys = KeySet(key.jwks)
    assert keys.verify(token, now=now + 59)
    with pytest.raises(TokenExpired):
        keys.verify(token, now=now + 61)


def test_a_clock_set_back_before_the_tokens_issue_time_is_refused(key):
    now = time.time()
    token = key.token(**claims_for(fingerprint=FP, now=now))
    with pytest.raises(ClockSetBack):
        KeySet(key.jwks).verify(token, now=now - 3600, leeway=300)


def test_a_clock_set_back_before_a_time_already_seen_is_refused(key):
    now = time.time()
    token = key.token(**claims_for(fingerprint=FP, now=now - 7200, lifetime=86400))
    with pytest.raises(ClockSetBack):
        KeySet(key.jwks).verify(token, now=now - 3600, last_seen=now, leeway=300)


def test_rsa_keys_are_pinned_to_rs256():
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key()))
    jwk.update(kid="rsa-1", alg="RS256", use="sig")
    claims = claims_for(fingerprint=FP)
    token = jwt.encode(claims, private, algorithm="RS256", headers={"kid": "rsa-1"})
    assert KeySet({"keys": [jwk]}).verify(token, now=time.time()).session_id == claims["sid"]
    ps256 = jwt.encode(claims, private, algorithm="PS256", headers={"kid": "rsa-1"})
    with pytest.raises(TokenInvalid, match="algorithm"):
        KeySet({"keys": [jwk]}).verify(ps256, now=time.time())


def test_keys_of_other_types_or_declared_algorithms_are_left_out(key):
    odd = dict(key.jwk, kid="odd", alg="HS256")
    secret = {"kty": "oct", "k": "c2VjcmV0", "kid": "sym"}
    keys = KeySet({"keys": [key.jwk, odd, secret]})
    assert keys.kids == [key.kid]
