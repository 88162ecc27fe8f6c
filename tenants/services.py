from __future__ import annotations

import uuid
from typing import Any

from django.db import IntegrityError, router, transaction
from django.utils.text import slugify

from tenants.models import Tenant, tenant_name_normalized
from tenants.scope import tenant_scope
from tenants.signals import tenant_created


def _slug_candidates(name: str):
    base = slugify(name)[:60] or "tenant"
    yield base
    while True:
        yield f"{base}-{uuid.uuid4().hex[:6]}"


def tenant_create(*, name: str, slug: str | None = None, actor: Any = None) -> Tenant:
    """Create a tenant: the one way every caller does (registration, the
    admin, `create_tenant`, the demo). The row is written inside its own
    scope, as RLS demands (WITH CHECK id = current tenant), and `tenant_created`
    is sent in the same transaction, so its audit row commits with it. A taken
    slug is retried with a suffix, unless the caller asked for that exact slug.
    `actor` is the user who creates it (None from the shell)."""
    name = tenant_name_normalized(name)
    if not name:
        raise ValueError("a tenant needs a name")
    tenant_id = uuid.uuid4()
    candidates = [slug] if slug else _slug_candidates(name)
    for candidate in candidates:
        try:
            # On the alias the row is written to (the operator path in the
            # admin), so a taken slug rolls back its own savepoint only.
            with tenant_scope(tenant_id), transaction.atomic(using=router.db_for_write(Tenant)):
                tenant = Tenant.objects.create(id=tenant_id, name=name, slug=candidate)
                tenant_created.send(sender=Tenant, tenant=tenant, actor=actor)
                return tenant
        except IntegrityError:
            if slug:
                raise
    raise AssertionError("unreachable")
