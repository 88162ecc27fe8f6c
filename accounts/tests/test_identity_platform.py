"""Identity Platform sign-in through the real firebase-admin verification code;
only Google's HTTP endpoints are played here (see google_edge.py)."""

import time

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from accounts.models import User
from accounts.tests.factories import UserFactory
from accounts.tests.google_edge import CERT_PATH, GoogleEdge
from audit.models import AuditLog
from coditect.personas import call
from tenants.scope import operator_scope
from tenants.tests.factories import TenantFactory

pytestmark = pytest.mark.embedded

PROJECT = "coditect-test"


@pytest.fixture
def google(settings, monkeypatch, tmp_path):
    edge = GoogleEdge(PROJECT).install(monkeypatch)
    settings.IDENTITY_PLATFORM_PROJECT_ID = PROJECT
    settings.IDENTITY_PLATFORM_CREDENTIALS_FILE = edge.service_account_file(tmp_path)
    return edge


@pytest.fixture
def linked(committed_db):
    """A member already linked to Identity Platform user `uid-ada`."""
    return UserFactory(
        tenant=TenantFactory(), email="ada@acme.test", oauth_provider="google.com", oauth_subject="uid-ada"
    )


def login(api, id_token):
    return call(api, "POST", "/api/v1/auth/login", {"id_token": id_token})


def refused(response, status=401):
    assert response.status_code == status, response.content
    return response.json()["error"]


def test_a_linked_user_signs_in_with_an_id_token(api, google, linked):
    response = login(api, google.mint("uid-ada", email="ada@acme.test"))
    assert response.status_code == 200, response.content
    assert response.json()["token_type"] == "Bearer"
    me = call(api, "GET", "/api/v1/auth/me", token=response.json()["access_token"])
    assert me.json()["user"]["id"] == str(linked.id)
    # The real code fetched the certificates and asked whether the token was revoked.
    assert ("GET", f"www.googleapis.com{CERT_PATH}") in google.calls
    assert ("POST", f"identitytoolkit.googleapis.com/v1/projects/{PROJECT}/accounts:lookup") in google.calls


def test_an_id_token_opens_the_api_as_a_bearer_token(api, google, linked):
    token = google.mint("uid-ada", email="ada@acme.test")
    me = call(api, "GET", "/api/v1/auth/me", token=token)
    assert me.status_code == 200, me.content
    assert me.json()["user"]["email"] == "ada@acme.test"


def test_a_verified_email_links_an_existing_account_once(api, google, committed_db):
    ada = UserFactory(tenant=TenantFactory(), email="ada@acme.test")
    assert login(api, google.mint("uid-new", email="ada@acme.test", provider="github.com")).status_code == 200
    with operator_scope():
        ada = User.objects.get(pk=ada.pk)
        assert (ada.oauth_provider, ada.oauth_subject) == ("github.com", "uid-new")
        assert AuditLog.objects.filter(action="user.identity_linked").count() == 1
    # Later sign-ins find the link.
    assert login(api, google.mint("uid-new", email="ada@acme.test", provider="github.com")).status_code == 200
    with operator_scope():
        assert AuditLog.objects.filter(action="user.identity_linked").count() == 1


def test_an_unverified_email_links_nothing(api, google, committed_db):
    UserFactory(tenant=TenantFactory(), email="ada@acme.test")
    error = refused(login(api, google.mint("uid-mallory", email="ada@acme.test", email_verified=False)))
    assert error["code"] == "not_authenticated"
    assert "No account" in error["message"]


def test_an_email_linked_to_another_identity_is_not_taken_over(api, google, linked):
    refused(login(api, google.mint("uid-other", email="ada@acme.test")))


@pytest.mark.parametrize(
    "changes",
    [
        {"audience": "someone-elses-project"},
        {"issuer": "https://securetoken.google.com/someone-elses-project"},
        {"issuer": "https://accounts.google.com"},
        {"issued_at": int(time.time()) - 7200},  # expired an hour ago
        {"key": rsa.generate_private_key(public_exponent=65537, key_size=2048)},  # not Google's key
        {"kid": "unknown-kid"},
        # Signed by Google's key, but with claims no Identity Platform token has:
        # each is refused as a token, never a 500 from the lookup it would feed.
        {"claims": {"email": "ada@acme.test\x00x"}},
        {"claims": {"email": ["ada@acme.test"]}},
        {"claims": {"firebase": "google.com"}},
        {"claims": {"firebase": {"sign_in_provider": ["google.com"]}}},
        {"claims": {"name": {"first": "Ada"}}},
    ],
    ids=[
        "wrong-audience",
        "wrong-issuer-project",
        "wrong-issuer",
        "expired",
        "forged",
        "unknown-kid",
        "email-with-nul",
        "email-a-list",
        "firebase-a-string",
        "provider-a-list",
        "name-an-object",
    ],
)
def test_a_bad_id_token_is_refused_at_login_and_on_the_api(api, google, linked, changes):
    token = google.mint("uid-ada", email="ada@acme.test", **changes)
    assert refused(login(api, token))["code"] == "not_authenticated"
    assert refused(call(api, "GET", "/api/v1/auth/me", token=token))["code"] == "not_authenticated"


def test_a_revoked_id_token_is_refused(api, google, linked):
    token = google.mint("uid-ada", email="ada@acme.test")
    assert login(api, token).status_code == 200
    google.revoke_sessions("uid-ada")
    refused(login(api, token))
    refused(call(api, "GET", "/api/v1/auth/me", token=token))
    # A token issued after the revocation is fine again.
    time.sleep(1.01)
    assert (
        login(api, google.mint("uid-ada", email="ada@acme.test", issued_at=int(time.time()))).status_code
        == 200
    )


def test_a_disabled_identity_platform_user_is_refused(api, google, linked):
    google.add_user("uid-ada", disabled=True)
    refused(login(api, google.mint("uid-ada", email="ada@acme.test")))


def test_identity_platform_down_is_503_not_401_or_500(api, google, linked):
    google.down = True
    response = login(api, google.mint("uid-ada", email="ada@acme.test"))
    error = refused(response, status=503)
    assert error["code"] == "service_unavailable"
    assert response["Retry-After"] == "5"


def test_register_a_new_tenant_with_an_id_token(api, google, committed_db):
    token = google.mint("uid-zed", email="Zed@New.test")
    created = call(api, "POST", "/api/v1/auth/register", {"id_token": token, "tenant_name": "New Co"})
    assert created.status_code == 201, created.content
    assert created.json()["user"] == {**created.json()["user"], "email": "zed@new.test", "role": "admin"}
    assert login(api, google.mint("uid-zed", email="zed@new.test")).status_code == 200
    # One identity, one account.
    again = call(api, "POST", "/api/v1/auth/register", {"id_token": token, "tenant_name": "Again"})
    assert again.status_code == 400
    with operator_scope():
        user = User.objects.get(email="zed@new.test")
    assert not user.has_usable_password()


def test_register_with_an_id_token_needs_a_verified_email(api, google, committed_db):
    token = google.mint("uid-zed", email="zed@new.test", email_verified=False)
    response = call(api, "POST", "/api/v1/auth/register", {"id_token": token, "tenant_name": "New Co"})
    assert response.status_code == 400
    assert "id_token" in response.json()["error"]["details"]["fields"]


def test_an_identity_without_an_account_is_told_to_register(api, google, committed_db):
    error = refused(login(api, google.mint("uid-nobody", email="nobody@new.test")))
    assert "Register" in error["message"]


def test_id_tokens_are_refused_when_identity_platform_is_not_configured(api, google, linked, settings):
    settings.IDENTITY_PLATFORM_PROJECT_ID = ""
    refused(login(api, google.mint("uid-ada", email="ada@acme.test")))
    assert google.calls == []
