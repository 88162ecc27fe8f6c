"""Issue 13, item 5: an access token ends with its sign-in, at once, not an
hour later. A sign-in ends on logout, on a refresh token presented twice, on
a new password (through the API or any other door), and when the user or the
tenant is deactivated; a reactivation does not bring it back. Run on both
passes: PostgreSQL (with Redis configured, which this check does not use) and
the embedded default."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.db import transaction

from accounts.models import User
from accounts.tests.factories import TEST_PASSWORD, UserFactory
from audit.events import Event
from audit.models import AuditLog
from coditect.personas import access_token, call, tenant_admin
from tenants.models import Tenant
from tenants.scope import operator_scope, tenant_scope
from tenants.tests.factories import TenantFactory

pytestmark = [pytest.mark.embedded]

ME = "/api/v1/auth/me"
NEW_PASSWORD = "a different long passphrase 77"


@pytest.fixture(autouse=True)
def quick_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def acme(committed_db):
    return TenantFactory(name="Acme", slug="acme")


@pytest.fixture
def ada(acme) -> User:
    return tenant_admin(acme).user


def sign_in(api, email="admin@acme.test", password=TEST_PASSWORD) -> dict:
    response = call(api, "POST", "/api/v1/auth/login", {"email": email, "password": password})
    assert response.status_code == 200, response.content
    return response.json()


def opens(api, pair: dict) -> bool:
    response = call(api, "GET", ME, token=pair["access_token"])
    if response.status_code == 401:
        assert response.json()["error"]["code"] == "not_authenticated"
        return False
    assert response.status_code == 200, response.content
    return True


def refreshes(api, pair: dict) -> dict | None:
    response = call(api, "POST", "/api/v1/auth/refresh", {"refresh_token": pair["refresh_token"]})
    return response.json() if response.status_code == 200 else None


def change_password(api, pair: dict, current=TEST_PASSWORD, new=NEW_PASSWORD):
    body = {"current_password": current, "new_password": new}
    return call(api, "POST", "/api/v1/auth/password", body, token=pair["access_token"])


def events(action: str, tenant_id) -> list[dict]:
    with tenant_scope(tenant_id):
        return [row.details for row in AuditLog.objects.filter(action=action).order_by("id")]


def test_logout_ends_that_sign_ins_access_token_at_once_and_no_other(api, ada):
    laptop, phone = sign_in(api), sign_in(api)
    assert opens(api, laptop) and opens(api, phone)
    assert (
        call(api, "POST", "/api/v1/auth/logout", {"refresh_token": laptop["refresh_token"]}).status_code
        == 204
    )
    assert not opens(api, laptop)
    assert opens(api, phone)


def test_logout_ends_the_access_tokens_of_every_refresh_of_the_sign_in(api, ada):
    first = sign_in(api)
    second = refreshes(api, first)
    # A refresh rotates the refresh token; the access token it replaced lives on
    # until its expiry, as the sign-in does.
    assert opens(api, first) and opens(api, second)
    call(api, "POST", "/api/v1/auth/logout", {"refresh_token": second["refresh_token"]})
    assert not opens(api, first)
    assert not opens(api, second)


def test_a_refresh_token_presented_twice_ends_the_access_tokens_of_its_family(api, ada):
    owner = sign_in(api)
    other = sign_in(api)
    rotated = refreshes(api, owner)
    assert refreshes(api, owner) is None  # the thief (or the owner) replays the used one
    assert not opens(api, owner)
    assert not opens(api, rotated)
    assert refreshes(api, rotated) is None
    assert opens(api, other)


def test_a_new_password_ends_every_sign_in_and_the_answer_is_a_new_one(api, ada):
    laptop, phone = sign_in(api), sign_in(api)
    response = change_password(api, laptop)
    assert response.status_code == 200, response.content
    fresh = response.json()
    assert set(fresh) == {"access_token", "refresh_token", "expires_in", "token_type"}
    for old in (laptop, phone):
        assert not opens(api, old)
        assert refreshes(api, old) is None
    assert opens(api, fresh)
    assert refreshes(api, fresh) is not None
    failed = call(api, "POST", "/api/v1/auth/login", {"email": ada.email, "password": TEST_PASSWORD})
    assert failed.status_code == 401
    sign_in(api, password=NEW_PASSWORD)
    assert [e["reason"] for e in events(Event.AUTH_SIGN_INS_ENDED, ada.tenant_id)] == ["password_changed"]
    (changed,) = events(Event.AUTH_PASSWORD_CHANGED, ada.tenant_id)
    assert set(changed) == {"family_id"}


@pytest.mark.parametrize(
    ("current", "new", "field"),
    [
        ("not the password", NEW_PASSWORD, "current_password"),
        ("", NEW_PASSWORD, "current_password"),
        (TEST_PASSWORD, "short", "new_password"),
        (TEST_PASSWORD, TEST_PASSWORD, "new_password"),
    ],
)
def test_a_password_change_that_cannot_be_made_is_a_400_and_changes_nothing(api, ada, current, new, field):
    pair = sign_in(api)
    response = change_password(api, pair, current=current, new=new)
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "invalid_request"
    assert field in response.json()["error"]["details"]["fields"]
    assert opens(api, pair)
    sign_in(api)  # the old password still works


def test_an_account_without_a_password_has_none_to_change(api, acme):
    user = UserFactory(tenant=acme, email="idp@acme.test", password=None)
    with tenant_scope(acme.id):
        User.objects.filter(pk=user.pk).update(password=make_password(None))
    pair = {"access_token": access_token(user)}
    response = change_password(api, pair, current="")
    assert response.status_code == 400
    assert "current_password" in response.json()["error"]["details"]["fields"]


def test_with_password_sign_in_turned_off_there_is_no_password_to_change(api, ada, settings):
    pair = sign_in(api)
    settings.PASSWORD_LOGIN_ENABLED = False
    response = change_password(api, pair)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"


def test_a_password_set_by_another_door_ends_every_sign_in_too(api, ada):
    """The admin's "change password" form, the shell's `changepassword` and
    the dashboard all end in set_password() and save()."""
    in_tenant, on_operator_path = sign_in(api), sign_in(api)
    with tenant_scope(ada.tenant_id):
        user = User.objects.get(pk=ada.pk)
        user.set_password(NEW_PASSWORD)
        user.save()
    assert not opens(api, in_tenant)
    assert refreshes(api, in_tenant) is None
    assert not opens(api, on_operator_path)

    again = sign_in(api, password=NEW_PASSWORD)
    with operator_scope(), transaction.atomic(using=settings.OPERATOR_DATABASE):
        user = User.objects.get(pk=ada.pk)  # as the admin site loads it
        user.set_password(TEST_PASSWORD)
        user.save()
    assert not opens(api, again)
    assert refreshes(api, again) is None


def test_a_password_hash_upgraded_at_sign_in_ends_nothing(api, ada, settings):
    before = sign_in(api)
    # A stronger hasher now comes first: the next sign-in re-hashes the same password.
    settings.PASSWORD_HASHERS = [
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
        "django.contrib.auth.hashers.MD5PasswordHasher",
    ]
    sign_in(api)
    with tenant_scope(ada.tenant_id):
        assert User.objects.get(pk=ada.pk).password.startswith("pbkdf2_sha256$")
    assert opens(api, before)
    assert refreshes(api, before) is not None


def test_deactivating_the_user_ends_their_sign_ins_for_good(api, ada):
    pair = sign_in(api)
    with tenant_scope(ada.tenant_id):
        user = User.objects.get(pk=ada.pk)
        user.is_active = False
        user.save()
    assert not opens(api, pair)
    with tenant_scope(ada.tenant_id):
        user.is_active = True
        user.save()
    # Back in, but only through a new sign-in.
    assert not opens(api, pair)
    assert refreshes(api, pair) is None
    assert opens(api, sign_in(api))
    assert [e["reason"] for e in events(Event.AUTH_SIGN_INS_ENDED, ada.tenant_id)] == ["user_deactivated"]


def test_deactivating_the_tenant_ends_every_members_sign_ins_for_good(api, acme, ada):
    globex = TenantFactory(name="Globex", slug="globex")
    tenant_admin(globex)
    pair, foreign = sign_in(api), sign_in(api, email="admin@globex.test")
    with operator_scope(), transaction.atomic(using=settings.OPERATOR_DATABASE):
        tenant = Tenant.objects.get(pk=acme.pk)  # as the admin site changes it
        tenant.is_active = False
        tenant.save()
    assert not opens(api, pair)
    with operator_scope(), transaction.atomic(using=settings.OPERATOR_DATABASE):
        tenant.is_active = True
        tenant.save()
    assert not opens(api, pair)
    assert refreshes(api, pair) is None
    assert opens(api, sign_in(api))
    # Another tenant's sign-ins are not touched.
    assert opens(api, foreign)
    assert [e["reason"] for e in events(Event.AUTH_SIGN_INS_ENDED, acme.id)] == ["tenant_deactivated"]
