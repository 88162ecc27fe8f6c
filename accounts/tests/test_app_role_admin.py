"""SQL run as the app role reaches no operator: it can set a tenant in scope
and write that tenant's rows (row-level security follows a setting the role
sets itself; docs/operations.md), but a tenant's member is never let into the
admin site, whatever flags its row says, and no row it can write is an
operator (staff without a tenant)."""

from __future__ import annotations

import psycopg
import pytest
from django.conf import settings
from django.db import transaction
from django.test import Client
from django.urls import reverse

from accounts.models import User
from accounts.tests.factories import TEST_PASSWORD
from accounts.tests.test_sessions_app_role import app_role_sql
from coditect.personas import tenant_admin, tenant_member
from tenants.scope import operator_scope
from tenants.tests.factories import TenantFactory

pytestmark = pytest.mark.postgres


@pytest.fixture(autouse=True)
def quick_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def tenants(committed_db):
    acme, globex = TenantFactory(name="Acme", slug="acme"), TenantFactory(name="Globex", slug="globex")
    member = tenant_member(acme)
    tenant_admin(globex)
    with operator_scope(), transaction.atomic(using=settings.OPERATOR_DATABASE):
        User.objects.create_user("ops@coditect.test", TEST_PASSWORD, is_staff=True, is_superuser=True)
    return acme, globex, member


def test_a_member_made_staff_by_app_role_sql_is_not_let_into_the_admin(tenants):
    acme, _, member = tenants
    with app_role_sql() as sql:
        sql.execute("SELECT set_config('app.current_tenant', %s, false)", [str(acme.id)])
        sql.execute(
            "UPDATE users SET is_staff = true, is_superuser = true WHERE email = %s", [member.user.email]
        )
        assert sql.rowcount == 1
    client = Client()
    response = client.post(
        reverse("admin:login"), {"username": member.user.email, "password": TEST_PASSWORD, "next": "/admin/"}
    )
    assert response.status_code == 200 and b"correct email and password" in response.content
    assert client.get("/admin/tenants/tenant/").status_code == 302, "sent to the sign-in page"

    # Nor does a session it already had open the admin: the site asks for an operator.
    with operator_scope():
        client.force_login(User.objects.get(email=member.user.email))
    assert client.get("/admin/tenants/tenant/").status_code == 302


def test_app_role_sql_cannot_make_a_row_an_operator(tenants):
    acme, _, member = tenants
    with app_role_sql() as sql:
        sql.execute("SELECT set_config('app.current_tenant', %s, false)", [str(acme.id)])
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            sql.execute(
                "UPDATE users SET tenant_id = NULL, is_staff = true WHERE email = %s", [member.user.email]
            )


def test_the_real_operator_still_signs_in(tenants):
    client = Client()
    client.post(reverse("admin:login"), {"username": "ops@coditect.test", "password": TEST_PASSWORD})
    assert client.get("/admin/tenants/tenant/").status_code == 200
