"""The dashboard's Identity Platform door through Django's test client: the
sign-in page's SDK wiring and policy, and the ID token's check (firebase-admin's
real verification, Google's endpoints played by GoogleEdge). The browser test
is test_identity_sign_in_browser.py."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest
from django.test import Client

from accounts.models import Role, User
from accounts.tests.factories import TEST_PASSWORD
from accounts.tests.google_edge import GoogleEdge
from audit.models import AuditLog
from coditect.personas import tenant_admin, tenant_member
from core.middleware import content_security_policy_widened
from tenants.scope import operator_scope, tenant_scope
from tenants.tests.factories import TenantFactory

pytestmark = pytest.mark.embedded

PROJECT = "coditect-dashboard-test"


@pytest.fixture(autouse=True)
def quick_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def google(settings, monkeypatch, tmp_path):
    edge = GoogleEdge(PROJECT).install(monkeypatch)
    settings.IDENTITY_PLATFORM_PROJECT_ID = PROJECT
    settings.IDENTITY_PLATFORM_API_KEY = "AIza-test-web-api-key"
    settings.IDENTITY_PLATFORM_AUTH_DOMAIN = f"{PROJECT}.firebaseapp.com"
    settings.IDENTITY_PLATFORM_CREDENTIALS_FILE = edge.service_account_file(tmp_path)
    return edge


@pytest.fixture
def acme(committed_db):
    acme = TenantFactory(name="Acme", slug="acme")
    return {"tenant": acme, "admin": tenant_admin(acme).user, "member": tenant_member(acme).user}


def post_token(client: Client, token: str, **extra):
    return client.post("/dashboard/login/identity/", {"id_token": token, **extra})


def events(action: str, tenant=None) -> list[AuditLog]:
    if tenant is None:
        with operator_scope():
            return list(AuditLog.objects.filter(action=action, tenant_id=None))
    with tenant_scope(tenant.id):
        return list(AuditLog.objects.filter(action=action))


# --- the page ---------------------------------------------------------------------------


def test_without_identity_platform_the_page_has_no_sdk_and_the_sites_policy(db, settings):
    settings.IDENTITY_PLATFORM_API_KEY = ""
    response = Client().get("/dashboard/login/")
    assert response.status_code == 200
    assert b"importmap" not in response.content and b"data-provider" not in response.content
    assert response["Content-Security-Policy"] == settings.CONTENT_SECURITY_POLICY
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"
    assert Client().post("/dashboard/login/identity/", {"id_token": "x"}).status_code == 404


def test_the_page_runs_the_vendored_sdk_and_its_policy_allows_exactly_that(db, google, settings):
    response = Client().get("/dashboard/login/")
    html = response.content.decode()
    import_map = re.search(r'<script type="importmap">(.*?)</script>', html, re.S).group(1)
    assert (
        '"https://www.gstatic.com/firebasejs/13.2.0/firebase-auth.js":"/static/vendor/firebase/' in import_map
    )
    digest = base64.b64encode(hashlib.sha256(import_map.encode()).digest()).decode()
    policy = dict(part.split(None, 1) for part in response["Content-Security-Policy"].split("; "))
    assert policy["script-src"] == f"'self' 'sha256-{digest}' https://apis.google.com"
    assert "https://identitytoolkit.googleapis.com" in policy["connect-src"]
    assert policy["frame-src"] == f"'self' https://{PROJECT}.firebaseapp.com"
    assert policy["frame-ancestors"] == "'none'"  # the rest of the site's policy stays
    assert response["Cross-Origin-Opener-Policy"] == "same-origin-allow-popups"
    assert 'data-provider="google.com"' in html and 'data-provider="github.com"' in html
    assert 'name="password"' in html  # passwords are on too
    # The vendored files are served from our static files.
    for name in ("firebase-app.js", "firebase-auth.js"):
        path = re.search(rf'"(/static/vendor/firebase/13.2.0/{name})"', import_map).group(1)
        assert path.endswith(name)


def test_with_passwords_off_the_page_offers_only_the_providers(db, google, settings):
    settings.PASSWORD_LOGIN_ENABLED = False
    settings.IDENTITY_PLATFORM_PROVIDERS = ["github.com"]
    html = Client().get("/dashboard/login/").content.decode()
    assert 'name="password"' not in html and "Forgot your password" not in html
    assert 'data-provider="github.com"' in html and 'data-provider="google.com"' not in html


def test_with_passwords_off_and_no_identity_platform_the_page_says_sign_in_is_off(db, settings):
    settings.PASSWORD_LOGIN_ENABLED = False
    settings.IDENTITY_PLATFORM_API_KEY = ""
    assert "Sign-in is turned off on this server" in Client().get("/dashboard/login/").content.decode()


def test_the_policy_widening_keeps_the_rest_and_starts_a_missing_directive_from_default_src(settings):
    settings.CONTENT_SECURITY_POLICY = "default-src 'self'; script-src 'none'; img-src 'self'"
    widened = content_security_policy_widened({"script-src": ["a.test"], "frame-src": ["https://b.test"]})
    assert widened == "default-src 'self'; script-src a.test; img-src 'self'; frame-src 'self' https://b.test"
    settings.CONTENT_SECURITY_POLICY = ""
    assert content_security_policy_widened({"script-src": ["a.test"]}) == ""


# --- the ID token -------------------------------------------------------------------------


def test_an_admins_google_token_opens_a_dashboard_session(google, acme, settings):
    settings.PASSWORD_LOGIN_ENABLED = False
    client = Client()
    response = post_token(client, google.mint("uid-admin", email="admin@acme.test"), next="/dashboard/audit/")
    assert response.status_code == 302 and response["Location"] == "/dashboard/audit/"
    assert client.get("/dashboard/").status_code == 200
    (login,) = events("auth.login", acme["tenant"])
    assert login.details == {"method": "identity_platform"}
    with tenant_scope(acme["tenant"].id):  # linked by its verified email, once
        admin = User.objects.get(email="admin@acme.test")
    assert (admin.oauth_provider, admin.oauth_subject) == ("google.com", "uid-admin")


def test_a_plain_members_token_lands_on_their_own_page(google, acme, settings):
    settings.DASHBOARD_ADMIN_MFA_REQUIRED = True  # for tenant admins only
    client = Client()
    response = post_token(client, google.mint("uid-member", email="member@acme.test", provider="github.com"))
    assert response.status_code == 302 and response["Location"] == "/dashboard/me/"
    assert client.get("/dashboard/me/").status_code == 200
    assert client.get("/dashboard/").status_code == 403


def test_a_next_address_elsewhere_is_dropped(google, acme):
    response = post_token(
        Client(), google.mint("uid-admin", email="admin@acme.test"), next="https://evil.test/"
    )
    assert response["Location"] == "/dashboard/"


@pytest.mark.parametrize(
    ("who", "expected"),
    [
        ("stranger", "No account is linked to this sign-in"),
        ("deactivated", "This account is deactivated."),
        ("forged", "not valid"),
    ],
)
def test_tokens_the_dashboard_refuses(google, acme, who, expected):
    if who == "deactivated":
        with tenant_scope(acme["tenant"].id):
            User.objects.filter(pk=acme["admin"].pk).update(is_active=False)
    email = {"stranger": "x@elsewhere.test"}.get(who, "admin@acme.test")
    if who == "forged":
        from cryptography.hazmat.primitives.asymmetric import rsa

        other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        token = google.mint("uid-x", email=email, key=other)
    else:
        token = google.mint(f"uid-{who}", email=email)
    client = Client()
    response = post_token(client, token)
    assert response.status_code == 401
    assert expected in response.content.decode()
    assert client.get("/dashboard/").status_code == 302  # no session
    failures = events("auth.login_failed", None if who in ("stranger", "forged") else acme["tenant"])
    assert [f.details["method"] for f in failures] == ["dashboard_identity"]


@pytest.mark.parametrize(
    "claims",
    [
        {"email": "admin@acme.test\x00x"},
        {"firebase": "google.com"},
        {"firebase": {"sign_in_provider": "google.com", "sign_in_second_factor": {"totp": True}}},
    ],
    ids=["email-with-nul", "firebase-a-string", "second-factor-an-object"],
)
def test_a_google_signed_token_with_claims_of_the_wrong_kind_is_401_not_500(google, acme, settings, claims):
    settings.DASHBOARD_ADMIN_MFA_REQUIRED = True
    client = Client(raise_request_exception=False)
    response = post_token(client, google.mint("uid-admin", email="admin@acme.test", claims=claims))
    assert response.status_code == 401
    assert client.get("/dashboard/").status_code == 302  # no session


def test_a_user_id_with_a_nul_is_401_not_500(google, acme):
    client = Client(raise_request_exception=False)
    response = post_token(client, google.mint("uid-\x00-admin", email="admin@acme.test"))
    assert response.status_code == 401


def test_identity_platform_out_of_reach_is_503_with_retry_after(google, acme):
    google.down = True
    response = post_token(Client(), google.mint("uid-admin", email="admin@acme.test"))
    assert response.status_code == 503 and response["Retry-After"] == "5"
    assert "not reachable" in response.content.decode()


@pytest.mark.parametrize("token", ["", "é" * 10, "x" * 9000])
def test_a_missing_or_malformed_token_is_400_and_looks_nothing_up(google, acme, token):
    response = post_token(Client(), token)
    assert response.status_code == 400
    assert google.calls == []


def test_the_identity_door_takes_only_post(google):
    assert Client().get("/dashboard/login/identity/").status_code == 405


# --- a second factor for tenant admins ------------------------------------------------------


def test_with_mfa_required_an_admin_needs_a_token_with_its_second_factor(google, acme, settings):
    settings.DASHBOARD_ADMIN_MFA_REQUIRED = True
    response = post_token(Client(), google.mint("uid-admin", email="admin@acme.test"))
    assert response.status_code == 401 and "second factor" in response.content.decode()
    (failure,) = events("auth.login_failed", acme["tenant"])
    assert failure.details["reason"] == "second_factor_required"

    client = Client()
    response = post_token(client, google.mint("uid-admin", email="admin@acme.test", second_factor="totp"))
    assert response.status_code == 302 and client.get("/dashboard/").status_code == 200


def test_with_mfa_required_an_admins_password_is_not_enough(acme, settings):
    settings.DASHBOARD_ADMIN_MFA_REQUIRED = True
    response = Client().post("/dashboard/login/", {"email": "admin@acme.test", "password": TEST_PASSWORD})
    assert response.status_code == 401
    assert "second factor" in response.content.decode()


def promote(acme) -> None:
    with tenant_scope(acme["tenant"].id):
        User.objects.filter(pk=acme["member"].pk).update(role=Role.TENANT_ADMIN)


@pytest.mark.parametrize("door", ["password", "identity_platform"])
def test_with_mfa_required_a_member_promoted_after_signing_in_needs_a_second_factor(
    google, acme, settings, door
):
    """The second factor is asked of the session, not only of its sign-in: a
    member signed in without one and made a tenant admin afterwards does not
    reach the admin pages on that session, until a sign-in that shows one."""
    settings.DASHBOARD_ADMIN_MFA_REQUIRED = True
    client = Client()
    if door == "password":
        response = client.post("/dashboard/login/", {"email": "member@acme.test", "password": TEST_PASSWORD})
    else:
        response = post_token(client, google.mint("uid-member", email="member@acme.test"))
    assert response.status_code == 302 and response.url == "/dashboard/me/"
    promote(acme)

    for path in ("/dashboard/", "/dashboard/people/"):
        page = client.get(path)
        assert page.status_code == 403, path
        assert "showed no second factor" in page.content.decode()
    assert client.get("/dashboard/me/").status_code == 200  # their own page still opens

    response = post_token(client, google.mint("uid-member", email="member@acme.test", second_factor="totp"))
    assert response.status_code == 302 and client.get("/dashboard/").status_code == 200


def test_without_mfa_required_a_promoted_member_reaches_the_admin_pages_at_once(acme):
    client = Client()
    client.post("/dashboard/login/", {"email": "member@acme.test", "password": TEST_PASSWORD})
    assert client.get("/dashboard/").status_code == 403
    promote(acme)
    assert client.get("/dashboard/").status_code == 200
