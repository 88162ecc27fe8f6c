"""The tenant scope: which tenant the current code runs for.

One mechanism serves both isolation layers. `activate_tenant` records the
tenant in a context variable (read by the scoped managers, the ORM layer) and,
on PostgreSQL, in the transaction-local setting `app.current_tenant` that the
row-level security policies read. The setting is made with
`set_config(..., true)`, so it ends with the transaction and a pooled
connection never carries it to the next request.

Operator work (the admin site, sweeps over every tenant) runs inside
`operator_scope()`, which routes queries to the separately named `operator`
database alias; nothing a request sends can turn it on.

The analytics reads (the usage API, the dashboard's charts) run inside
`replica_scope()`, on the `replica` alias when DATABASE_REPLICA_URL names
one: the readonly role, under the same policies, with the current tenant set
in a transaction of that connection in the same way.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from django.conf import settings
from django.db import connections, transaction

_current_tenant: ContextVar[uuid.UUID | None] = ContextVar("coditect_tenant", default=None)
_operator: ContextVar[bool] = ContextVar("coditect_operator", default=False)

DEFAULT_DB = "default"


class ScopeError(RuntimeError):
    """Tenant-owned data was touched outside a matching tenant scope."""


def current_tenant_id() -> uuid.UUID | None:
    return _current_tenant.get()


def in_operator_scope() -> bool:
    return _operator.get()


def _as_uuid(value: uuid.UUID | str) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def _set_database_tenant(tenant_id: uuid.UUID | None, using: str) -> None:
    connection = connections[using]
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT set_config('app.current_tenant', %s, true)",
            [str(tenant_id) if tenant_id else ""],
        )


def _database_tenant(using: str) -> uuid.UUID | None:
    if connections[using].vendor != "postgresql":
        return None
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT nullif(current_setting('app.current_tenant', true), '')")
        (value,) = cursor.fetchone()
    return _as_uuid(value) if value else None


def activate_tenant(tenant_id: uuid.UUID | str, *, using: str = DEFAULT_DB) -> uuid.UUID:
    """Scope the rest of the current transaction to one tenant.

    Must run inside `transaction.atomic()` and inside a `scope_boundary()`
    (the tenant-safe API view provides both), so the scope cannot outlive the
    request.
    """
    if not connections[using].in_atomic_block:
        raise ScopeError("activate_tenant() needs an open transaction")
    tid = _as_uuid(tenant_id)
    _set_database_tenant(tid, using)
    _current_tenant.set(tid)
    return tid


@contextmanager
def scope_boundary() -> Iterator[None]:
    """Whatever scope is activated inside is gone on exit, even after an error."""
    tenant_token = _current_tenant.set(None)
    operator_token = _operator.set(False)
    try:
        yield
    finally:
        _operator.reset(operator_token)
        _current_tenant.reset(tenant_token)


@contextmanager
def scoped_transaction(*, using: str = DEFAULT_DB) -> Iterator[None]:
    """A transaction whose tenant is activated inside it (after authentication).

    Nested in an outer transaction (a service called from a request, or a
    test), it gives the outer transaction its tenant back on the way out; after
    an error the savepoint's rollback restores the setting by itself.
    """
    outer = _current_tenant.get()
    nested = connections[using].in_atomic_block
    with scope_boundary(), transaction.atomic(using=using):
        yield
        # After an error the savepoint's rollback restores the setting by itself
        # (and the broken transaction could not run the query anyway).
        if nested and _current_tenant.get() != outer and not connections[using].needs_rollback:
            _set_database_tenant(outer, using)


@contextmanager
def tenant_scope(tenant_id: uuid.UUID | str, *, using: str = DEFAULT_DB) -> Iterator[uuid.UUID]:
    """Run a block in one transaction scoped to one tenant (services, tasks, tests)."""
    with scoped_transaction(using=using):
        yield activate_tenant(tenant_id, using=using)


@contextmanager
def replica_scope() -> Iterator[str]:
    """Reads of the analytics path (the usage API, the dashboard's charts)
    under the current scope; yields the alias to read with (`.using(alias)`).

    With a replica (settings.REPLICA_DATABASE is `replica`), the reads run in
    a transaction of that connection, the readonly role's, with the current
    tenant set in it by `set_config(..., true)` as on the primary: it ends with
    that transaction, and no tenant in scope sets none (zero rows). Without
    one, it is the primary's connection and the caller's transaction. Operator
    work stays on the operator path: the readonly role has no BYPASSRLS.
    Nothing may be written inside: the replica refuses it.
    """
    if in_operator_scope():
        yield settings.OPERATOR_DATABASE
        return
    alias = settings.REPLICA_DATABASE
    if alias == DEFAULT_DB:
        yield alias
        return
    connection = connections[alias]
    nested = connection.in_atomic_block
    with transaction.atomic(using=alias):
        outer = _database_tenant(alias) if nested else None
        _set_database_tenant(current_tenant_id(), alias)
        yield alias
        # Nested (a test's transaction), the outer one gets its tenant back;
        # after an error the savepoint's rollback restores it by itself.
        if nested and not connection.needs_rollback:
            _set_database_tenant(outer, alias)


@contextmanager
def operator_scope() -> Iterator[None]:
    """Operator and system work that sees every tenant, on the operator alias."""
    token = _operator.set(True)
    tenant_token = _current_tenant.set(None)
    try:
        yield
    finally:
        _current_tenant.reset(tenant_token)
        _operator.reset(token)
