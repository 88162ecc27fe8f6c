"""Writes for accounts: tenants as seen from their members, users."""

from __future__ import annotations

from django.db import transaction

from audit.services import audit_record
from tenants.models import Tenant
from tenants.scope import tenant_scope
from tenants.services import tenant_create


def tenant_create_with_audit(*, name: str, slug: str | None = None, actor=None) -> Tenant:
    tenant = tenant_create(name=name, slug=slug)
    with tenant_scope(tenant.id), transaction.atomic():
        audit_record(action="tenant.created", tenant_id=tenant.id, user=actor, target=tenant)
    return tenant
