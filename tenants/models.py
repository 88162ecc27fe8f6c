"""Tenant, and the base every tenant-owned model stands on.

The scoped manager is the ORM half of tenant isolation: `Model.objects`
returns only the current tenant's rows, and nothing at all when no tenant is in
scope (fail closed), so a view cannot forget the filter. `Model.unscoped` is
the loudly named escape hatch for operator code; on PostgreSQL the app role
still sees only what row-level security lets through.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.db import connections, models, router

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

    def fetch(self, **equals: Any):
        """The one row in scope whose fields equal `equals`, or None.

        The hot paths' equivalent of `get_queryset().filter(**equals).first()`
        for unique lookups, under the same scope rule: the current tenant's row
        only, none at all without a tenant, every tenant's on the operator path.
        The statement and its column converters are built once per model,
        lookup and connection: compiling a queryset costs more CPU on every
        call than the query itself does in PostgreSQL. Values are compared
        with `=`: None matches nothing.
        """
        if not equals:
            raise TypeError("fetch() needs at least one field to look up")
        lookups = list(equals.items())
        if not in_operator_scope():
            tenant_id = current_tenant_id()
            if tenant_id is None:
                return None
            lookups.append((self.tenant_field, tenant_id))  # ANDed with the caller's, never replacing it
        using = self._db or router.db_for_read(self.model)
        connection = connections[using]
        statement = _fetch_statement(self.model, tuple(name for name, _ in lookups), connection)
        params = [
            field.get_db_prep_value(value, connection)
            for (_, field), (_, value) in zip(statement.lookups, lookups, strict=True)
        ]
        with connection.cursor() as cursor:
            cursor.execute(statement.sql, params)
            rows = cursor.fetchmany(2)
        if not rows:
            return None
        if len(rows) > 1:
            raise self.model.MultipleObjectsReturned(
                f"{self.model.__name__}.fetch() matched more than one row"
            )
        values = list(rows[0])
        for position, converters, column in statement.converters:
            for converter in converters:
                values[position] = converter(values[position], column, connection)
        return self.model.from_db(using, statement.attnames, values)


class _FetchStatement:
    def __init__(self, model: type[models.Model], names: tuple[str, ...], connection) -> None:
        meta, quote = model._meta, connection.ops.quote_name
        fields = meta.concrete_fields
        self.lookups = [(name, meta.pk if name == "pk" else meta.get_field(name)) for name in names]
        where = " AND ".join(f"{quote(field.column)} = %s" for _, field in self.lookups)
        # Identifiers from the model's own metadata, quoted; values are parameters.
        self.sql = (
            f"SELECT {', '.join(quote(field.column) for field in fields)} "  # noqa: S608
            f"FROM {quote(meta.db_table)} WHERE {where} LIMIT 2"
        )
        self.attnames = [field.attname for field in fields]
        self.converters = []
        for position, field in enumerate(fields):
            column = field.get_col(meta.db_table)
            converters = connection.ops.get_db_converters(column) + column.get_db_converters(connection)
            if converters:
                self.converters.append((position, converters, column))


def _fetch_statement(model: type[models.Model], names: tuple[str, ...], connection) -> _FetchStatement:
    # Kept on the connection object (one per thread and alias): the backend's
    # converters are bound to it.
    cache = connection.__dict__.setdefault("_coditect_fetch_statements", {})
    key = (model, names)
    statement = cache.get(key)
    if statement is None:
        statement = cache[key] = _FetchStatement(model, names, connection)
    return statement


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
