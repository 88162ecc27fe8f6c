"""Tenant, and the base every tenant-owned model stands on.

The scoped manager is the ORM half of tenant isolation: `Model.objects`
returns only the current tenant's rows, and nothing at all when no tenant is in
scope (fail closed), so a view cannot forget the filter. `Model.unscoped` is
the loudly named escape hatch for operator code; on PostgreSQL the app role
still sees only what row-level security lets through.
"""

from __future__ import annotations

import unicodedata
import uuid
from typing import Any

from django.db import connections, models, router

from tenants.scope import ScopeError, current_tenant_id, in_operator_scope


class TenantScopedQuerySet(models.QuerySet):
    pass


class TenantScopedManager(models.Manager.from_queryset(TenantScopedQuerySet)):
    tenant_field = "tenant_id"

    def scope_lookups(self) -> dict[str, uuid.UUID] | None:
        """The one scope rule both reads (`get_queryset` and `fetch`) apply: no
        lookup on the operator path (every tenant's rows), the current tenant's
        id otherwise, and None (nothing visible) when no tenant is in scope."""
        if in_operator_scope():
            return {}
        tenant_id = current_tenant_id()
        if tenant_id is None:
            return None
        return {self.tenant_field: tenant_id}

    def get_queryset(self):
        queryset = super().get_queryset()
        lookups = self.scope_lookups()
        if lookups is None:
            return queryset.none()
        return queryset.filter(**lookups) if lookups else queryset

    def fetch(self, *, related: str | None = None, **equals: Any):
        """The one row in scope whose fields equal `equals`, or None.

        The hot paths' equivalent of `get_queryset().filter(**equals).first()`
        for unique lookups, under the same scope rule: the current tenant's row
        only, none at all without a tenant, every tenant's on the operator path.
        `related` names a foreign key to load in the same statement, as
        `select_related` would; it is an inner join, and a tenant-owned related
        row is held to the same scope. The statement and its column converters
        are built once per model, lookup and connection: compiling a queryset
        costs more CPU on every call than the query itself does in PostgreSQL.
        Values are compared with `=`: None matches nothing.
        """
        if not equals:
            raise TypeError("fetch() needs at least one field to look up")
        scope = self.scope_lookups()
        if scope is None:
            return None
        lookups = [((False, name), value) for name, value in equals.items()]
        # ANDed with the caller's lookups, never replacing one of them.
        lookups += [((False, name), value) for name, value in scope.items()]
        if related is not None:
            manager = self.model._meta.get_field(related).related_model._default_manager
            if isinstance(manager, TenantScopedManager):
                lookups += [((True, name), value) for name, value in manager.scope_lookups().items()]
        using = self._db or router.db_for_read(self.model)
        connection = connections[using]
        statement = _fetch_statement(self.model, related, tuple(key for key, _ in lookups), connection)
        params = [
            field.get_db_prep_value(value, connection)
            for field, (_, value) in zip(statement.lookup_fields, lookups, strict=True)
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
        count = len(statement.attnames)
        instance = self.model.from_db(using, statement.attnames, values[:count])
        if statement.related_field is not None:
            related_model = statement.related_field.related_model
            row = related_model.from_db(using, statement.related_attnames, values[count:])
            statement.related_field.set_cached_value(instance, row)
        return instance


class _FetchStatement:
    def __init__(
        self,
        model: type[models.Model],
        related: str | None,
        lookups: tuple[tuple[bool, str], ...],
        connection,
    ) -> None:
        quote = connection.ops.quote_name
        self.related_field = model._meta.get_field(related) if related else None
        tables = [model] + ([self.related_field.related_model] if self.related_field else [])
        if len({table._meta.db_table for table in tables}) != len(tables):
            raise ValueError("fetch() cannot join a table to itself")
        columns, self.converters, attnames = [], [], []
        for table in tables:
            meta = table._meta
            attnames.append([field.attname for field in meta.concrete_fields])
            for field in meta.concrete_fields:
                column = field.get_col(meta.db_table)
                converters = connection.ops.get_db_converters(column) + column.get_db_converters(connection)
                if converters:
                    self.converters.append((len(columns), converters, column))
                columns.append(f"{quote(meta.db_table)}.{quote(field.column)}")
        self.attnames = attnames[0]
        self.related_attnames = attnames[1] if self.related_field else []
        self.lookup_fields, where = [], []
        for on_related, name in lookups:
            meta = tables[1 if on_related else 0]._meta
            field = meta.pk if name == "pk" else meta.get_field(name)
            self.lookup_fields.append(field)
            where.append(f"{quote(meta.db_table)}.{quote(field.column)} = %s")
        source = quote(model._meta.db_table)
        if self.related_field:
            target = quote(self.related_field.related_model._meta.db_table)
            source += (
                f" JOIN {target} ON {target}.{quote(self.related_field.target_field.column)}"
                f" = {quote(model._meta.db_table)}.{quote(self.related_field.column)}"
            )
        # Identifiers from the models' own metadata, quoted; values are parameters.
        self.sql = f"SELECT {', '.join(columns)} FROM {source} WHERE {' AND '.join(where)} LIMIT 2"  # noqa: S608


def _fetch_statement(
    model: type[models.Model], related: str | None, lookups: tuple[tuple[bool, str], ...], connection
) -> _FetchStatement:
    # Kept on the connection object (one per thread and alias): the backend's
    # converters are bound to it.
    cache = connection.__dict__.setdefault("_coditect_fetch_statements", {})
    key = (model, related, lookups)
    statement = cache.get(key)
    if statement is None:
        statement = cache[key] = _FetchStatement(model, related, lookups, connection)
    return statement


class TenantManager(TenantScopedManager):
    tenant_field = "id"


class Tenant(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=80, unique=True)
    is_active = models.BooleanField(default=True)
    # Deleted softly (the provisioning API): inactive, gone from its lists, its rows kept.
    deleted_at = models.DateTimeField(null=True, blank=True)
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
        self.name = tenant_name_normalized(self.name)
        super().save(*args, **kwargs)


def tenant_name_normalized(name: str) -> str:
    """A tenant's name on one line: control characters and line or paragraph
    separators become spaces and runs of white space one space (the name is
    an email's subject and a page's title; a newline there cut the subject)."""
    spaced = "".join(" " if unicodedata.category(ch) in {"Cc", "Zl", "Zp"} else ch for ch in (name or ""))
    return " ".join(spaced.split())


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
