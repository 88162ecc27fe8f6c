"""Access tokens: a real one opens the API; every kind of forgery or misuse is
the same 401 in the error shape."""

import base64
import hashlib
import hmac
import json
import time
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from django.conf import settings

from accounts.tests.conftest import bearer
from accounts.tests.factories import UserFactory
from accounts.tokens import ACCESS_TOKEN_TYPE, CLOCK_SKEW_LEEWAY_SECONDS, auth_keys

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]

ME = "/api/v1/auth/me"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segment(value: dict) -> str:
    return b64(json.dumps(value, separators=(",", ":")).encode())


def claims_for(user, **changes) -> dict:
    now = int(time.time())
    claims = {
        "iss": settings.AUTH_TOKEN_ISSUER,
        "aud": settings.AUTH_TOKEN_AUDIENCE,
        "sub": str(user.id),
        "tid": str(user.tenant_id),
        "sid": str(uuid.uuid4()),
        "role": user.role,
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": uuid.uuid4().hex,
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def signed(claims: dict, *, key=None, kid=None, typ=ACCESS_TOKEN_TYPE) -> str:
    signer = auth_keys().signer
    return jwt.encode(
        claims,
        key or signer.private_key,
        algorithm="EdDSA",
        headers={"kid": kid or signer.key.kid, "typ": typ},
    )


def get_me(api, token: str):
    return api.get(ME, headers={"Authorization": f"Bearer {token}"})


def assert_refused(response):
    assert response.status_code == 401, response.content
    assert response.json()["error"]["code"] == "not_authenticated"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.fixture
def user(tenant_a):
    return UserFactory(tenant=tenant_a)


def test_a_real_access_token_opens_the_api(api, user):
    response = api.get(ME, headers=bearer(user))
    assert response.status_code == 200
    assert response.json()["user"] == {"id": str(user.id), "email": user.email, "role": "user"}
    assert response.json()["tenant"]["slug"] == "acme"


def test_no_token_is_401(api, user):
    assert_refused(api.get(ME))


def test_it_refuses_a_token_with_a_bad_signature(api, user):
    token = signed(claims_for(user))
    head, payload, signature = token.split(".")
    forged_payload = segment(claims_for(user, role="admin"))
    assert_refused(get_me(api, f"{head}.{forged_payload}.{signature}"))
    flipped = signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")
    assert_refused(get_me(api, f"{head}.{payload}.{flipped}"))


def test_it_refuses_alg_none(api, user):
    header = {"alg": "none", "typ": ACCESS_TOKEN_TYPE, "kid": auth_keys().signer.key.kid}
    assert_refused(get_me(api, f"{segment(header)}.{segment(claims_for(user))}."))


def test_it_refuses_hs256_signed_with_the_public_key(api, user):
    public = auth_keys().signer.key.public_key
    header = {"alg": "HS256", "typ": ACCESS_TOKEN_TYPE, "kid": auth_keys().signer.key.kid}
    signing_input = f"{segment(header)}.{segment(claims_for(user))}".encode()
    for secret in (
        public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
        public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw),
    ):
        signature = b64(hmac.new(secret, signing_input, hashlib.sha256).digest())
        assert_refused(get_me(api, f"{signing_input.decode()}.{signature}"))


def test_it_refuses_a_key_it_does_not_know(api, user):
    stranger = ed25519.Ed25519PrivateKey.generate()
    assert_refused(get_me(api, signed(claims_for(user), key=stranger, kid="not-a-key-of-ours")))
    # Claiming our kid does not help a stranger's key either.
    assert_refused(get_me(api, signed(claims_for(user), key=stranger)))


def test_it_refuses_an_expired_token(api, user):
    long_ago = int(time.time()) - 7200
    assert_refused(get_me(api, signed(claims_for(user, iat=long_ago, nbf=long_ago, exp=long_ago + 3600))))


def test_it_refuses_a_token_without_exp(api, user):
    assert_refused(get_me(api, signed(claims_for(user, exp=None))))


def test_a_token_of_ours_without_its_sign_in_is_refused(api, user):
    # Tokens issued before access tokens named their sign-in (`sid`) cannot be
    # ended by a logout, so they are not taken: their holders refresh.
    assert get_me(api, signed(claims_for(user))).status_code == 200
    assert_refused(get_me(api, signed(claims_for(user, sid=None))))
    assert_refused(get_me(api, signed(claims_for(user, sid="not-a-uuid"))))


def test_it_refuses_a_token_not_yet_valid(api, user):
    assert_refused(get_me(api, signed(claims_for(user, nbf=int(time.time()) + 600))))


def test_it_refuses_the_wrong_issuer_or_audience(api, user):
    assert_refused(get_me(api, signed(claims_for(user, iss="https://evil.example"))))
    assert_refused(get_me(api, signed(claims_for(user, aud="some-other-api"))))
    assert_refused(get_me(api, signed(claims_for(user, aud=None))))


def test_it_refuses_a_token_of_another_type(api, user):
    assert_refused(get_me(api, signed(claims_for(user), typ="JWT")))


def test_a_token_naming_a_user_of_another_tenant_finds_nobody(api, user, tenant_b):
    # Even correctly signed, the user is looked up inside the token's tenant only.
    assert_refused(get_me(api, signed(claims_for(user, tid=str(tenant_b.id)))))


def test_a_deactivated_user_is_refused(api, user):
    from tenants.scope import tenant_scope

    with tenant_scope(user.tenant_id):
        user.is_active = False
        user.save(update_fields=["is_active"])
    assert_refused(api.get(ME, headers=bearer(user)))


def test_the_role_comes_from_the_database_not_the_token(api, user):
    response = get_me(api, signed(claims_for(user, role="admin")))
    assert response.json()["user"]["role"] == "user"


def test_garbage_is_refused(api, user):
    for token in ("garbage", "a.b.c", "Bearer", "é"):
        response = api.get(ME, HTTP_AUTHORIZATION=f"Bearer {token}")
        assert response.status_code == 401
    assert api.get(ME, HTTP_AUTHORIZATION="Bearer two tokens").status_code == 401


def test_a_token_used_before_is_refused_once_it_expires(api, user, app_clock):
    token = signed(claims_for(user))  # ten minutes
    assert get_me(api, token).status_code == 200
    assert get_me(api, token).status_code == 200  # remembered
    app_clock(600 + CLOCK_SKEW_LEEWAY_SECONDS + 1)
    assert_refused(get_me(api, token))


def test_a_token_used_before_is_refused_when_the_audience_changes(api, user, settings):
    token = signed(claims_for(user))
    assert get_me(api, token).status_code == 200
    settings.AUTH_TOKEN_AUDIENCE = "another-api"
    assert_refused(get_me(api, token))


def test_a_user_deactivated_after_the_token_was_used_is_refused_at_once(api, user):
    """Remembering a verified token never remembers the user: the account is
    read on every call."""
    from tenants.scope import tenant_scope

    token = signed(claims_for(user))
    assert get_me(api, token).status_code == 200
    with tenant_scope(user.tenant_id):
        user.is_active = False
        user.save(update_fields=["is_active"])
    assert_refused(get_me(api, token))
