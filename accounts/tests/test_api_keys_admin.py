"""API keys in the operator console: made with the key shown once (post,
redirect, get; a reload does not show it again), listed with scope and last
use, revoked (then refused by the API), never deleted; each change audited."""

from __future__ import annotations

import re

import pytest
from rest_framework.test import APIClient

from accounts.models import ApiKey
from audit.models import AuditLog
from licenses.tests import test_admin
from tenants.scope import operator_scope
from tenants.tests.factories import TenantFactory

pytestmark = pytest.mark.postgres

fresh_content_types = test_admin.fresh_content_types
quick_password_hashing = test_admin.quick_password_hashing
operator = test_admin.operator
console = test_admin.console

ADMIN = "/admin/accounts/apikey/"


def test_a_key_is_made_shown_once_listed_and_revoked(console):
    tenant = TenantFactory(name="Acme", slug="acme")
    response = console.post(
        f"{ADMIN}add/", {"name": "billing backend", "tenant": str(tenant.id), "_save": "Save"}
    )
    assert response.status_code == 303, response.content[:500]
    page = console.get(response["Location"])
    assert page.status_code == 200 and "no-store" in page["Cache-Control"]
    key = re.search(r"cdt_pk_[A-Za-z0-9_-]{43}", page.content.decode()).group(0)
    again = console.get(response["Location"])
    assert again.status_code == 410 and key not in again.content.decode()

    with operator_scope():
        api_key = ApiKey.objects.get(name="billing backend")
        row = str(ApiKey.objects.values().get(pk=api_key.pk))
    assert api_key.tenant_id == tenant.id and key.startswith(api_key.key_prefix)
    assert key not in row

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert client.get("/api/v1/provisioning/licenses").status_code == 200
    listing = console.get(ADMIN).content.decode()
    assert api_key.key_prefix in listing and "tenant Acme" in listing

    revoke = console.post(ADMIN, {"action": "revoke_selected", "_selected_action": [str(api_key.pk)]})
    assert revoke.status_code == 302
    assert client.get("/api/v1/provisioning/licenses").status_code == 401
    with operator_scope():
        actions = list(
            AuditLog.objects.filter(target_id=str(api_key.pk)).order_by("id").values_list("action", "actor")
        )
    assert [action for action, _ in actions] == ["api_key.created", "api_key.revoked"]
    assert all(actor == "ops@coditect.test" for _, actor in actions)
    # Keys are revoked, never deleted.
    assert console.post(f"{ADMIN}{api_key.pk}/delete/", {"post": "yes"}).status_code == 403


def test_an_operator_wide_key_is_made_without_a_tenant(console):
    response = console.post(f"{ADMIN}add/", {"name": "ops backend", "tenant": "", "_save": "Save"})
    assert response.status_code == 303
    with operator_scope():
        assert ApiKey.objects.get(name="ops backend").tenant_id is None
    assert "operator-wide" in console.get(ADMIN).content.decode()
