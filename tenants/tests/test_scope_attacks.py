"""Attacks on the one scope rule (TenantScopedManager.scope_lookups): a
caller's own tenant lookup never replaces the scope, in either read."""

from __future__ import annotations

import pytest

from licenses.models import License
from licenses.tests.factories import LicenseFactory
from tenants.models import Tenant
from tenants.scope import tenant_scope

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]


def test_naming_another_tenant_in_the_lookup_finds_nothing_in_either_read(tenant_a, tenant_b):
    theirs = LicenseFactory(tenant=tenant_b)
    LicenseFactory(tenant=tenant_a)
    with tenant_scope(tenant_a.id):
        assert License.objects.fetch(tenant_id=tenant_b.id) is None
        assert License.objects.fetch(id=theirs.id, tenant_id=tenant_b.id) is None
        assert License.objects.fetch(key_digest=theirs.key_digest, tenant_id=tenant_b.id) is None
        assert list(License.objects.filter(tenant_id=tenant_b.id)) == []
        assert list(License.objects.filter(id=theirs.id)) == []
        assert Tenant.objects.fetch(id=tenant_b.id) is None
        assert Tenant.objects.fetch(slug=tenant_b.slug) is None
        assert list(Tenant.objects.filter(id=tenant_b.id)) == []
