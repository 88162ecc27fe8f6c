"""The audit service: the one way anything writes to the audit log.

Call it inside the transaction of the change it records, so the two commit or
vanish together; an event whose change is not in this database (the Redis
ledger's) is `audit_record_standalone`, a transaction of its own. Rows form a
hash chain per tenant (the null tenant is the operator chain): each row's
`hash` covers its content and the previous row's hash, so an edited or
deleted row breaks the chain where `audit_verify` looks.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.db import connections, router, transaction
from django.utils import timezone

from audit.events import event_check
from audit.hooks import audit_hooks_run, audit_hooks_want
from audit.models import AuditLog
from core.context import current_context
from tenants.models import check_write_scope
from tenants.scope import current_tenant_id, in_operator_scope, operator_scope, tenant_scope


def audit_row_fields(row: AuditLog) -> dict[str, Any]:
    """A row's content as exported: every column the chain covers."""
    return {
        "tenant_id": str(row.tenant_id) if row.tenant_id else None,
        "user_id": str(row.user_id) if row.user_id else None,
        "actor": row.actor,
        "action": row.action,
        "target_type": row.target_type,
        "target_id": row.target_id,
        "details": row.details,
        "ip_address": row.ip_address,
        "request_id": row.request_id,
        "created_at": row.created_at.isoformat(),
        "prev_hash": row.prev_hash,
    }


def audit_content_digest(row: AuditLog) -> str:
    """SHA-256 of the row's content (everything but the link), as canonical JSON."""
    fields = audit_row_fields(row)
    del fields["prev_hash"]
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def audit_link_hash(prev_hash: str, content_digest: str) -> str:
    """A row's `hash`: SHA-256 of "<previous row's hash>:<content digest>".

    The database computes the same in `audit_append()` (migration 0003), so a
    row's link is made under the chain's lock without a round trip back here.
    """
    return hashlib.sha256(f"{prev_hash}:{content_digest}".encode()).hexdigest()


def audit_row_hash(row: AuditLog) -> str:
    return audit_link_hash(row.prev_hash, audit_content_digest(row))


def audit_row_hash_before_0003(row: AuditLog) -> str:
    """The link of rows written before migration audit/0003: SHA-256 of the
    row's fields and `prev_hash` as one canonical JSON document. Verification
    still accepts it, so chains begun earlier verify whole."""
    canonical = json.dumps(audit_row_fields(row), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


_captured: ContextVar[list[AuditLog] | None] = ContextVar("audit_captured", default=None)


@contextmanager
def audit_capture() -> Iterator[list[AuditLog]]:
    """Collect the rows written inside the block (so a caller that records a
    change in general, like the admin site, can tell a service already did)."""
    rows: list[AuditLog] = []
    token = _captured.set(rows)
    try:
        yield rows
    finally:
        _captured.reset(token)


def audit_record(
    *,
    action: str,
    tenant_id: uuid.UUID | str | None = None,
    user: Any = None,
    user_id: uuid.UUID | str | None = None,
    actor: str = "",
    target: Any = None,
    target_type: str = "",
    target_id: str = "",
    details: dict[str, Any] | None = None,
) -> AuditLog:
    """Append one event. `target` may be a model instance (its type and pk are
    kept); the actor is `user` (a User) or, for an event recorded later than
    its change (the Redis ledger's), the `user_id` and `actor` it kept."""
    if tenant_id is not None and not isinstance(tenant_id, uuid.UUID):
        tenant_id = uuid.UUID(str(tenant_id))
    row = _new_row(
        action=action,
        tenant_id=tenant_id,
        user=user,
        user_id=user_id,
        actor=actor,
        target=target,
        target_type=target_type,
        target_id=target_id,
        details=details,
    )
    if tenant_id is None:
        # Events of no tenant belong to the operator chain, which only the
        # operator path can write (the app role cannot insert a null tenant).
        with operator_scope(), transaction.atomic(using=router.db_for_write(AuditLog)):
            return _append(row)
    check_write_scope(tenant_id)
    # A transaction even when the caller has none: the chain's lock lasts as long
    # as it. Inside the caller's transaction no savepoint: the row stands or
    # falls with the change it records (and two round trips are saved).
    with transaction.atomic(using=router.db_for_write(AuditLog), savepoint=False):
        return _append(row)


def _new_row(
    *,
    action: str,
    tenant_id: uuid.UUID | None,
    user: Any = None,
    user_id: uuid.UUID | str | None = None,
    actor: str = "",
    target: Any = None,
    target_type: str = "",
    target_id: str = "",
    details: dict[str, Any] | None = None,
) -> AuditLog:
    event_check(action, details or {})
    context = current_context()
    if target is not None:
        target_type = target_type or target._meta.label_lower
        target_id = target_id or str(target.pk)
    row = AuditLog(
        tenant_id=tenant_id,
        user_id=getattr(user, "pk", None)
        if user is not None
        else (uuid.UUID(str(user_id)) if user_id else None),
        actor=actor or (getattr(user, "email", "") if user is not None else ""),
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        details=details or {},
        ip_address=context.client_ip,
        request_id=context.request_id,
        created_at=timezone.now(),
    )
    return row


def audit_record_standalone(*, tenant_id: uuid.UUID | str, **event: Any) -> AuditLog:
    """Record an event of one tenant from code that holds no transaction (the
    license-token endpoints, whose change is in the Redis ledger, not in this
    database): the row is a transaction of its own. On PostgreSQL that is one
    statement, `audit_append()` setting the tenant for itself, instead of
    BEGIN, the tenant's `set_config`, the append and COMMIT. Inside a
    transaction it is `audit_record` in the tenant's scope."""
    tenant_id = tenant_id if isinstance(tenant_id, uuid.UUID) else uuid.UUID(str(tenant_id))
    using = router.db_for_write(AuditLog)
    connection = connections[using]
    if (
        connection.vendor != "postgresql"
        or connection.in_atomic_block
        or in_operator_scope()
        # A hook (an outbound webhook's outbox) writes with the row: one transaction.
        or audit_hooks_want(event["action"], tenant_id)
    ):
        if connection.in_atomic_block and current_tenant_id() == tenant_id:
            return audit_record(tenant_id=tenant_id, **event)
        with tenant_scope(tenant_id):
            return audit_record(tenant_id=tenant_id, **event)
    return _append(_new_row(tenant_id=tenant_id, **event), own_transaction=True)


def _append(row: AuditLog, *, own_transaction: bool = False) -> AuditLog:
    using = router.db_for_write(AuditLog)
    digest = audit_content_digest(row)
    connection = connections[using]
    if connection.vendor == "postgresql":
        # One round trip: the function takes the chain's advisory lock (held to
        # commit), reads the previous hash and inserts, as the calling role,
        # under row-level security.
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT id, prev_hash, hash FROM audit_append("
                "%s, %s, %s, %s, %s, %s, %s::jsonb, %s::inet, %s, %s, %s, %s)",
                [
                    row.tenant_id,
                    row.user_id,
                    row.actor,
                    row.action,
                    row.target_type,
                    row.target_id,
                    json.dumps(row.details),
                    row.ip_address,
                    row.request_id,
                    row.created_at,
                    digest,
                    own_transaction,
                ],
            )
            row.id, row.prev_hash, row.hash = cursor.fetchone()
        row._state.adding, row._state.db = False, using
    else:
        # SQLite: the IMMEDIATE transaction already serialises every writer.
        previous = (
            AuditLog.unscoped.using(using)
            .filter(tenant_id=row.tenant_id)
            .order_by("-id")
            .values_list("hash", flat=True)
            .first()
        )
        row.prev_hash = previous or ""
        row.hash = audit_link_hash(row.prev_hash, digest)
        row.save(using=using, force_insert=True)
    if not own_transaction:
        # In the row's transaction (audit_record_standalone takes the one-statement
        # path only when no hook wants the event).
        audit_hooks_run(row)
    captured = _captured.get()
    if captured is not None:
        captured.append(row)
    return row
