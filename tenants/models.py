"""Tenant, and the base every tenant-owned model stands on.

The scoped manager is the ORM half of tenant isolation: `Model.objects`
returns only the current tenant's rows, and nothing at all when no tenant is in
scope (fail closed), so a view cannot forget the filter. `Model.unscoped` is
the loudly named escape hatch for operator code; on PostgreSQL the app role
still sees only what row-level security lets through.
"""

from __future__ import annotations

import uuid

from django.db import models

from tenants.scope import ScopeError, current_tenant_id, in_operator_scope


class TenantScopedQuerySet(models.QuerySet):
    pass


class TenantScopedManager(models.Manager.from_queryset(TenantScopedQuerySet)):
    tenant_field = "tenant_id"

    def get_queryset(self):
        queryset = super().get_queryset()
        if in_operator_scope():
            return queryset
        tenant_id = current_tenant_id()
        if tenant_id is None:
            return queryset.none()
        return queryset.filter(**{self.tenant_field: tenant_id})


class TenantManager(TenantScopedManager):
    tenant_field = "id"


class Tenant(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=80, unique=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TenantManager()
    unscoped = models.Manager()

    class Meta:
        db_table = "tenants"
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.slug})"

    def save(self, *args, **kwargs):
        check_write_scope(self.id)
        super().save(*args, **kwargs)


def check_write_scope(tenant_id: uuid.UUID | None) -> None:
    """The ORM mirror of the RLS `WITH CHECK` clause (it holds on SQLite too)."""
    if in_operator_scope():
        return
    current = current_tenant_id()
    if current is None or tenant_id != current:
        raise ScopeError(f"write for tenant {tenant_id} outside its scope (current: {current})")


class TenantOwnedModel(models.Model):
    """Base for every model that belongs to one tenant: scoped, RLS-protected."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")

    objects = TenantScopedManager()
    unscoped = models.Manager()

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        if self.tenant_id is None and current_tenant_id() is not None:
            self.tenant_id = current_tenant_id()
        check_write_scope(self.tenant_id)
        super().save(*args, **kwargs)
