"""The whole sign-up and sign-in story over HTTP, as a client lives it."""

import pytest

from accounts.tests.factories import TEST_PASSWORD, UserFactory
from coditect.personas import call
from tenants.tests.factories import TenantFactory

pytestmark = pytest.mark.embedded

PASSWORD = "a long enough passphrase 42"


def register(api, **body):
    return call(api, "POST", "/api/v1/auth/register", body)


def login(api, email, password=PASSWORD):
    response = call(api, "POST", "/api/v1/auth/login", {"email": email, "password": password})
    assert response.status_code == 200, response.content
    return response.json()


def test_register_invite_join_login_refresh_and_logout(committed_db, api):
    created = register(api, email="Ada@Acme.test", password=PASSWORD, tenant_name="Acme Corp")
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["user"]["email"] == "ada@acme.test"
    assert body["user"]["role"] == "admin"
    assert body["tenant"]["name"] == "Acme Corp"
    assert body["tenant"]["slug"] == "acme-corp"
    assert set(body["user"]) == {"id", "email", "role"}

    ada = login(api, "ada@acme.test")
    assert ada["token_type"] == "Bearer"
    assert ada["expires_in"] == 3600

    invite = call(api, "POST", "/api/v1/invites", {"role": "user"}, token=ada["access_token"])
    assert invite.status_code == 201, invite.content
    code = invite.json()["code"]
    assert invite.json()["status"] == "pending"

    joined = register(api, email="bob@acme.test", password=PASSWORD, invite_code=code)
    assert joined.status_code == 201, joined.content
    assert joined.json()["user"]["role"] == "user"
    assert joined.json()["tenant"] == body["tenant"]

    bob = login(api, "bob@acme.test")
    me = call(api, "GET", "/api/v1/auth/me", token=bob["access_token"])
    assert me.status_code == 200
    assert me.json()["user"]["email"] == "bob@acme.test"

    refreshed = call(api, "POST", "/api/v1/auth/refresh", {"refresh_token": bob["refresh_token"]})
    assert refreshed.status_code == 200, refreshed.content
    rotated = refreshed.json()
    assert rotated["refresh_token"] != bob["refresh_token"]
    assert call(api, "GET", "/api/v1/auth/me", token=rotated["access_token"]).status_code == 200

    out = call(api, "POST", "/api/v1/auth/logout", {"refresh_token": rotated["refresh_token"]})
    assert out.status_code == 204
    after = call(api, "POST", "/api/v1/auth/refresh", {"refresh_token": rotated["refresh_token"]})
    assert after.status_code == 401
    assert after.json()["error"]["code"] == "not_authenticated"

    # Bob's logout is his alone: Ada's session goes on.
    assert (
        call(api, "POST", "/api/v1/auth/refresh", {"refresh_token": ada["refresh_token"]}).status_code == 200
    )
    # The invite was single-use.
    again = register(api, email="eve@acme.test", password=PASSWORD, invite_code=code)
    assert again.status_code == 400
    assert "invite_code" in again.json()["error"]["details"]["fields"]
    listed = call(api, "GET", "/api/v1/invites", token=ada["access_token"]).json()["results"]
    assert [i["status"] for i in listed] == ["used"]
    assert "code" not in listed[0]


def test_a_taken_email_is_a_clear_400(committed_db, api):
    assert register(api, email="ada@acme.test", password=PASSWORD, tenant_name="Acme").status_code == 201
    again = register(api, email="ADA@acme.test", password=PASSWORD, tenant_name="Other")
    assert again.status_code == 400
    error = again.json()["error"]
    assert error["code"] == "invalid_request"
    assert error["details"]["fields"]["email"] == ["An account with this email already exists."]
    # Nothing was left behind: not the second tenant either.
    from tenants.models import Tenant
    from tenants.scope import operator_scope

    with operator_scope():
        assert list(Tenant.objects.values_list("name", flat=True)) == ["Acme"]


@pytest.mark.django_db
def test_passwords_go_through_the_validators(api):
    weak = register(api, email="ada@acme.test", password="password", tenant_name="Acme")
    assert weak.status_code == 400
    assert "password" in weak.json()["error"]["details"]["fields"]
    similar = register(api, email="ada.lovelace@acme.test", password="ada.lovelace", tenant_name="Acme")
    assert similar.status_code == 400


@pytest.mark.django_db
def test_register_needs_exactly_one_of_tenant_name_and_invite(api):
    neither = register(api, email="ada@acme.test", password=PASSWORD)
    both = register(api, email="ada@acme.test", password=PASSWORD, tenant_name="A", invite_code="x")
    assert neither.status_code == both.status_code == 400
    assert register(api, email="ada@acme.test", tenant_name="Acme").status_code == 400
    assert register(api, email="not-an-email", password=PASSWORD, tenant_name="Acme").status_code == 400


@pytest.mark.django_db
def test_a_forged_expired_or_revoked_invite_is_refused(api, tenant_a):
    from datetime import timedelta

    from django.utils import timezone

    from accounts.tests.factories import InviteFactory

    expired = InviteFactory(tenant=tenant_a, expires_at=timezone.now() - timedelta(seconds=1))
    revoked = InviteFactory(tenant=tenant_a, revoked_at=timezone.now())
    for_someone_else = InviteFactory(tenant=tenant_a, email="carol@acme.test")
    forged = f"{tenant_a.id}.{'A' * 43}"
    for code in (expired.code, revoked.code, for_someone_else.code, forged, "nonsense"):
        response = register(api, email="eve@acme.test", password=PASSWORD, invite_code=code)
        assert response.status_code == 400, code
        assert response.json()["error"]["details"]["fields"]["invite_code"]


def test_wrong_password_and_unknown_email_give_the_same_401(committed_db, api):
    UserFactory(tenant=TenantFactory(), email="ada@acme.test")
    wrong_password = call(
        api, "POST", "/api/v1/auth/login", {"email": "ada@acme.test", "password": "nope" * 3}
    )
    unknown_email = call(
        api, "POST", "/api/v1/auth/login", {"email": "who@acme.test", "password": "nope" * 3}
    )
    assert wrong_password.status_code == unknown_email.status_code == 401
    assert wrong_password.json() == unknown_email.json()
    assert wrong_password.json()["error"]["code"] == "not_authenticated"
    # And the right password works (the factory's).
    assert login(api, "ada@acme.test", TEST_PASSWORD)["access_token"]


def test_an_operator_cannot_sign_in_to_the_tenant_api(committed_db, api):
    from accounts.models import User
    from tenants.scope import operator_scope

    with operator_scope():
        User.objects.create_superuser("root@coditect.test", TEST_PASSWORD)
    response = call(
        api, "POST", "/api/v1/auth/login", {"email": "root@coditect.test", "password": TEST_PASSWORD}
    )
    assert response.status_code == 401


@pytest.mark.django_db
def test_a_disabled_password_login_says_so(api, settings):
    settings.PASSWORD_LOGIN_ENABLED = False
    response = call(api, "POST", "/api/v1/auth/login", {"email": "ada@acme.test", "password": PASSWORD})
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "permission_denied"
    assert "Password sign-in is turned off" in error["message"]
    assert error["details"] == {"password_login_enabled": False}
    # Nor can an account be made that could never sign in.
    made = register(api, email="ada@acme.test", password=PASSWORD, tenant_name="Acme")
    assert made.status_code == 403
    assert made.json()["error"]["code"] == "permission_denied"


def test_a_reused_refresh_token_revokes_the_family(committed_db, api):
    UserFactory(tenant=TenantFactory(), email="ada@acme.test")
    stolen = login(api, "ada@acme.test", TEST_PASSWORD)["refresh_token"]
    # The owner refreshes first; the thief then replays the old token.
    owner = call(api, "POST", "/api/v1/auth/refresh", {"refresh_token": stolen}).json()["refresh_token"]
    thief = call(api, "POST", "/api/v1/auth/refresh", {"refresh_token": stolen})
    assert thief.status_code == 401
    assert call(api, "POST", "/api/v1/auth/refresh", {"refresh_token": owner}).status_code == 401
    # A separate sign-in is another family, untouched.
    other = login(api, "ada@acme.test", TEST_PASSWORD)["refresh_token"]
    assert call(api, "POST", "/api/v1/auth/refresh", {"refresh_token": other}).status_code == 200


def test_the_thief_refreshing_first_also_kills_the_family(committed_db, api):
    UserFactory(tenant=TenantFactory(), email="ada@acme.test")
    stolen = login(api, "ada@acme.test", TEST_PASSWORD)["refresh_token"]
    thief = call(api, "POST", "/api/v1/auth/refresh", {"refresh_token": stolen}).json()["refresh_token"]
    owner = call(api, "POST", "/api/v1/auth/refresh", {"refresh_token": stolen})
    assert owner.status_code == 401
    assert call(api, "POST", "/api/v1/auth/refresh", {"refresh_token": thief}).status_code == 401


@pytest.mark.django_db
def test_malformed_refresh_tokens_are_401(api, tenant_a):
    for token in ("x", f"{tenant_a.id}.short", f"{tenant_a.id}.{'B' * 43}", "not-a-uuid." + "C" * 43):
        response = call(api, "POST", "/api/v1/auth/refresh", {"refresh_token": token})
        assert response.status_code == 401, token
    assert call(api, "POST", "/api/v1/auth/logout", {"refresh_token": "x"}).status_code == 204
