"""One password check behind both doors: the API's login and the dashboard's
sign-in refuse the same people, each in its own words, and log each refusal
with its reason. Sign-in finds the user's tenant on the operator path, so
these tests commit their rows."""

from __future__ import annotations

import pytest

from accounts.models import Role, User
from accounts.services import (
    DashboardSignInFailed,
    auth_login_dashboard,
    auth_login_password,
)
from accounts.tests.factories import TEST_PASSWORD, UserFactory
from audit.models import AuditLog
from core.errors import ApplicationError
from tenants.models import Tenant
from tenants.scope import operator_scope, tenant_scope
from tenants.tests.factories import TenantFactory

pytestmark = pytest.mark.embedded


@pytest.fixture(autouse=True)
def quick_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def people(committed_db):
    acme, closed = TenantFactory(slug="acme"), TenantFactory(slug="closed")
    UserFactory(tenant=acme, role=Role.TENANT_ADMIN, email="admin@acme.test")
    UserFactory(tenant=acme, role=Role.USER, email="member@acme.test")
    UserFactory(tenant=acme, role=Role.TENANT_ADMIN, email="gone@acme.test", is_active=False)
    UserFactory(tenant=closed, role=Role.TENANT_ADMIN, email="admin@closed.test")
    with tenant_scope(closed.id):
        Tenant.objects.filter(pk=closed.pk).update(is_active=False)
    with operator_scope():
        User.objects.create_superuser("root@coditect.test", TEST_PASSWORD)
    return {"acme": acme, "closed": closed}


def last_failure(tenant) -> dict:
    if tenant is None:
        with operator_scope():
            row = AuditLog.objects.filter(action="auth.login_failed", tenant_id=None).order_by("-id").first()
    else:
        with tenant_scope(tenant.id):
            row = AuditLog.objects.filter(action="auth.login_failed").order_by("-id").first()
    return row.details


# (email, password, the tenant whose log records it, API reason, dashboard reason)
REFUSALS = [
    ("admin@acme.test", "wrong-password-1", "acme", "bad_password", "bad_password"),
    ("nobody@acme.test", TEST_PASSWORD, None, "unknown_email", "unknown_email"),
    ("root@coditect.test", TEST_PASSWORD, None, "operator_account", "operator_account"),
    # The dashboard has always logged a deactivated account as a wrong password.
    ("gone@acme.test", TEST_PASSWORD, "acme", "inactive_user", "bad_password"),
    ("admin@closed.test", TEST_PASSWORD, "closed", "tenant_inactive", "tenant_inactive"),
]


@pytest.mark.parametrize("email,password,tenant,api_reason,dashboard_reason", REFUSALS)
def test_both_doors_refuse_the_same_people_and_log_why(
    people, email, password, tenant, api_reason, dashboard_reason
):
    tenant = people[tenant] if tenant else None

    with pytest.raises(ApplicationError) as api_refusal:
        auth_login_password(email=email, password=password)
    assert last_failure(tenant) == {"reason": api_reason, "method": "password"}

    with pytest.raises(DashboardSignInFailed) as dashboard_refusal:
        auth_login_dashboard(email=email, password=password)
    assert last_failure(tenant) == {"reason": dashboard_reason, "method": "dashboard"}

    if api_reason == "tenant_inactive":
        assert api_refusal.value.code == "permission_denied"
        assert dashboard_refusal.value.message == "This tenant is deactivated."
    else:
        assert api_refusal.value.code == "not_authenticated"
        assert dashboard_refusal.value.message == "Wrong email or password."


def test_every_active_member_signs_in_at_the_api_and_at_the_dashboard(people):
    # The dashboard lets any member in: their own page is for everyone, the
    # tenant admin's pages refuse the others (analytics.dashboard).
    assert auth_login_password(email="member@acme.test", password=TEST_PASSWORD).access_token
    assert auth_login_dashboard(email="member@acme.test", password=TEST_PASSWORD).email == "member@acme.test"

    assert auth_login_dashboard(email=" Admin@Acme.test ", password=TEST_PASSWORD).email == "admin@acme.test"


def test_with_password_sign_in_off_neither_door_checks_a_password(people, settings):
    settings.PASSWORD_LOGIN_ENABLED = False
    with pytest.raises(ApplicationError) as api_refusal:
        auth_login_password(email="admin@acme.test", password=TEST_PASSWORD)
    assert api_refusal.value.details == {"password_login_enabled": False}
    with pytest.raises(DashboardSignInFailed, match="turned off"):
        auth_login_dashboard(email="admin@acme.test", password=TEST_PASSWORD)
    with tenant_scope(people["acme"].id):
        assert not AuditLog.objects.filter(action__startswith="auth.").exists()
