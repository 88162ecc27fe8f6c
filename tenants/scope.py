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
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

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
def operator_scope() -> Iterator[None]:
    """Operator and system work that sees every tenant, on the operator alias."""
    token = _operator.set(True)
    tenant_token = _current_tenant.set(None)
    try:
        yield
    finally:
        _current_tenant.reset(tenant_token)
        _operator.reset(token)
