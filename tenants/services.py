from __future__ import annotations

import uuid

from django.db import IntegrityError, transaction
from django.utils.text import slugify

from tenants.models import Tenant
from tenants.scope import tenant_scope


def _slug_candidates(name: str):
    base = slugify(name)[:60] or "tenant"
    yield base
    while True:
        yield f"{base}-{uuid.uuid4().hex[:6]}"


def tenant_create(*, name: str, slug: str | None = None) -> Tenant:
    """Create a tenant. The row is written inside its own scope, as RLS demands
    (WITH CHECK id = current tenant). A taken slug is retried with a suffix,
    unless the caller asked for that exact slug."""
    name = name.strip()
    if not name:
        raise ValueError("a tenant needs a name")
    tenant_id = uuid.uuid4()
    candidates = [slug] if slug else _slug_candidates(name)
    for candidate in candidates:
        try:
            with tenant_scope(tenant_id), transaction.atomic():
                return Tenant.objects.create(id=tenant_id, name=name, slug=candidate)
        except IntegrityError:
            if slug:
                raise
    raise AssertionError("unreachable")
