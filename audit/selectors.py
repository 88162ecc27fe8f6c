"""Reads of the audit log."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q, QuerySet

from audit.models import AuditLog
from audit.services import audit_row_hash, audit_row_hash_before_0003
from tenants.models import Tenant
from tenants.scope import operator_scope


@dataclass(frozen=True)
class ChainReport:
    tenant_id: uuid.UUID | None  # None: the operator chain (events of no tenant)
    rows: int
    broken_at: int | None = None  # id of the first row whose link does not hold
    problem: str = ""

    @property
    def ok(self) -> bool:
        return self.broken_at is None


def audit_chain_verify(*, tenant_id: uuid.UUID | None) -> ChainReport:
    """Walk one tenant's chain, oldest first, and stop at the first row whose
    hash does not cover its content or whose `prev_hash` is not the previous
    row's hash (an edited row names itself; a deleted one names the row after
    it). Reads every tenant's rows, so it runs on the operator path."""
    previous = ""
    count = 0
    with operator_scope():
        rows = AuditLog.objects.filter(tenant_id=tenant_id).order_by("id").iterator(chunk_size=2000)
        for row in rows:
            count += 1
            if row.prev_hash != previous:
                return ChainReport(tenant_id, count, row.id, "prev_hash does not match the previous row")
            if row.hash not in (audit_row_hash(row), audit_row_hash_before_0003(row)):
                return ChainReport(tenant_id, count, row.id, "hash does not match the row's content")
            previous = row.hash
    return ChainReport(tenant_id, count)


def audit_chain_ids() -> list[uuid.UUID | None]:
    """Every chain there is: each tenant's, and the operator chain."""
    with operator_scope():
        tenants = list(Tenant.objects.order_by("created_at").values_list("id", flat=True))
    return [*tenants, None]


def audit_rows_filtered(
    *,
    action: str = "",
    user_id: uuid.UUID | None = None,
    email: str = "",
    start: datetime | None = None,
    end: datetime | None = None,
) -> QuerySet[AuditLog]:
    """The caller's tenant's audit rows (the scoped manager), narrowed by
    what is given: one action; one person (`user_id` and/or `email`: rows
    they did, rows about them, the seats they held, and rows that name the
    email as actor, e.g. failed sign-ins or an account since deleted); a time
    range [start, end). Unordered: the caller pages it by id."""
    rows = AuditLog.objects.all()
    if action:
        rows = rows.filter(action=action)
    if user_id is not None or email:
        person = Q()
        if user_id is not None:
            person |= Q(user_id=user_id)
            person |= Q(target_type="accounts.user", target_id=str(user_id))
            person |= Q(details__user_id=str(user_id))
        if email:
            person |= Q(actor__iexact=email)
        rows = rows.filter(person)
    if start is not None:
        rows = rows.filter(created_at__gte=start)
    if end is not None:
        rows = rows.filter(created_at__lt=end)
    return rows
