"""Attacks on the one membership rule (User.is_active_member) and the one
tenant creation: what a tenant's deactivation takes away from tokens and
sessions already handed out, a token that names an operator, and what
registering a tenant leaves in the audit log. Sign-in finds the user's
tenant on the operator path, so these tests commit their rows."""

from __future__ import annotations

import uuid

import pytest
from django.test import Client
from rest_framework.test import APIClient

from accounts.models import Role, User
from accounts.tests.factories import TEST_PASSWORD, UserFactory
from accounts.tokens import access_token_issue
from audit.events import Event
from audit.models import AuditLog
from coditect.personas import api_client
from tenants.models import Tenant
from tenants.scope import operator_scope, tenant_scope
from tenants.tests.factories import TenantFactory

pytestmark = pytest.mark.embedded


@pytest.fixture(autouse=True)
def quick_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def test_a_deactivated_tenants_tokens_and_dashboard_sessions_open_nothing(committed_db):
    acme = TenantFactory(slug="acme")
    UserFactory(tenant=acme, role=Role.TENANT_ADMIN, email="admin@acme.test")
    api = APIClient()
    pair = api.post(
        "/api/v1/auth/login", {"email": "admin@acme.test", "password": TEST_PASSWORD}, format="json"
    ).json()
    dashboard = Client()
    signed_in = dashboard.post("/dashboard/login/", {"email": "admin@acme.test", "password": TEST_PASSWORD})
    assert signed_in.status_code == 302
    assert dashboard.get("/dashboard/").status_code == 200
    assert api_client(token=pair["access_token"]).get("/api/v1/auth/me").status_code == 200

    with tenant_scope(acme.id):
        Tenant.objects.filter(pk=acme.pk).update(is_active=False)

    assert api_client(token=pair["access_token"]).get("/api/v1/auth/me").status_code == 401
    refreshed = api.post("/api/v1/auth/refresh", {"refresh_token": pair["refresh_token"]}, format="json")
    assert refreshed.status_code == 401
    assert dashboard.get("/dashboard/").status_code == 302
    again = api.post(
        "/api/v1/auth/login", {"email": "admin@acme.test", "password": TEST_PASSWORD}, format="json"
    )
    assert (again.status_code, again.json()["error"]["code"]) == (403, "permission_denied")
    refused = Client().post("/dashboard/login/", {"email": "admin@acme.test", "password": TEST_PASSWORD})
    assert "This tenant is deactivated." in refused.content.decode()


def test_a_real_token_naming_an_operator_in_a_tenant_opens_nothing(committed_db):
    """Even signed by our own key, a token whose subject is an operator (who
    belongs to no tenant) and whose tenant is Acme finds nobody there."""
    acme = TenantFactory(slug="acme")
    with operator_scope():
        operator = User.objects.create_superuser("root@coditect.test", TEST_PASSWORD)
    token = access_token_issue(
        user_id=operator.id, tenant_id=acme.id, role=Role.TENANT_ADMIN, family_id=uuid.uuid4()
    )
    client = api_client(token=token)
    assert client.get("/api/v1/auth/me").status_code == 401
    assert client.post("/api/v1/invites", {"role": "user"}, format="json").status_code == 401
    refused = APIClient().post(
        "/api/v1/auth/login", {"email": "root@coditect.test", "password": TEST_PASSWORD}, format="json"
    )
    assert refused.status_code == 401


def test_registering_a_tenant_records_it_with_its_first_admin_and_the_callers_request(committed_db):
    response = APIClient().post(
        "/api/v1/auth/register",
        {"email": "founder@initech.test", "password": "a-long-enough-passphrase-9", "tenant_name": "Initech"},
        format="json",
        headers={"X-Request-ID": "register-1"},
        REMOTE_ADDR="203.0.113.20",
    )
    assert response.status_code == 201, response.content
    tenant_id, user_id = response.json()["tenant"]["id"], response.json()["user"]["id"]
    with tenant_scope(tenant_id):
        rows = list(AuditLog.objects.order_by("id"))
    assert [(row.action, str(row.user_id), row.actor) for row in rows] == [
        (Event.TENANT_CREATED, user_id, "founder@initech.test"),
        (Event.USER_REGISTERED, user_id, "founder@initech.test"),
    ]
    assert rows[0].prev_hash == "" and rows[0].target_id == tenant_id
    assert {(row.request_id, row.ip_address) for row in rows} == {("register-1", "203.0.113.20")}

    # The same email again, with a new tenant: refused, and neither the tenant
    # nor its creation row is left anywhere.
    again = APIClient().post(
        "/api/v1/auth/register",
        {"email": "FOUNDER@initech.test", "password": "a-long-enough-passphrase-9", "tenant_name": "Shadow"},
        format="json",
    )
    assert again.status_code == 400
    with operator_scope():
        assert list(Tenant.objects.values_list("name", flat=True)) == ["Initech"]
        assert AuditLog.objects.filter(action=Event.TENANT_CREATED).count() == 1
