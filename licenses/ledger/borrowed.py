"""What the Redis ledger keeps in PostgreSQL so that losing Redis never
oversells (DESIGN.md invariant 9).

A Redis that restarts empty, fails over to a replica that missed writes, or
evicts, forgets every lease it held. The leases a client keeps alive by
heartbeating come back by themselves (the heartbeat answers
session_not_found, the SDK acquires again); a borrowed seat does not, since
its machine is offline for up to the borrow's length, and a Redis that
forgot it would sell the seat a second time. So each borrow is also a row of
`licenses_borrowed_leases` (licenses.models.BorrowedLease, under RLS), and a
Redis that lacks the license's generation marker (prelude.lua) is handed
those rows back (restore.lua) before it grants anything.

The leases that were live and not borrowed are gone for good: the audit log
says which they were (acquired, never ended), and each gets `lease.lost`, so
no lease vanishes in silence and the usage rollups see its end.

Every method runs in the tenant's scope, a transaction of its own unless the
caller already holds that tenant's.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from django.db import connections, router
from django.utils import timezone

from audit.events import LEASE_ENDING_EVENTS, Detail, Event
from audit.models import AuditLog
from audit.services import audit_record
from licenses.ledger.base import Lease, lease_from_row
from licenses.models import BorrowedLease
from tenants.scope import tenant_scope


@dataclass(frozen=True)
class OpenSession:
    """A lease the audit log shows acquired and not ended."""

    session_id: str
    fingerprint: str
    user_id: str | None
    acquired_at: datetime


@dataclass(frozen=True)
class RestoreSources:
    borrowed: list[Lease]
    open_sessions: dict[str, OpenSession]


def _events(license_id: uuid.UUID):
    return AuditLog.objects.filter(target_type="licenses.license", target_id=str(license_id))


class BorrowedLeaseStore:
    def reachable(self) -> None:
        """DatabaseError now, before Redis is touched, if PostgreSQL does not
        answer: a borrow it cannot hold durably is refused with nothing
        changed (a 503 that has not happened), not made and undone."""
        with connections[router.db_for_write(BorrowedLease)].cursor() as cursor:
            cursor.execute("SELECT 1")

    def keep(self, lease: Lease) -> None:
        """Hold a borrowed lease durably until its borrow ends (a borrow made
        longer or shorter again moves its end)."""
        with tenant_scope(lease.tenant_id):
            BorrowedLease.objects.update_or_create(
                session_id=lease.session_id,
                defaults={
                    "tenant_id": lease.tenant_id,
                    "license_id": lease.license_id,
                    "fingerprint": lease.fingerprint,
                    "user_id": lease.user_id,
                    "client_info": lease.client_info,
                    "created_at": lease.created_at,
                    "borrowed_until": lease.borrowed_until,
                    "overdraft": lease.overdraft,
                    "seat_group": lease.group or "",
                },
            )
            # The license's ended borrows go with the next borrow: a row that
            # has ended is never restored, only kept from growing the table.
            BorrowedLease.objects.filter(
                license_id=lease.license_id, borrowed_until__lt=timezone.now()
            ).delete()

    def forget(self, lease: Lease) -> None:
        with tenant_scope(lease.tenant_id):
            BorrowedLease.objects.filter(session_id=lease.session_id).delete()

    def restore_sources(
        self, *, license_id: uuid.UUID, tenant_id: uuid.UUID, since: datetime
    ) -> RestoreSources:
        """The license's borrows not yet ended, and the sessions the audit log
        shows as open (acquired since `since`, with no event that ends them).

        `since` bounds the read, which every license makes at once after a
        loss of Redis; an end is recorded no earlier than its acquire."""
        with tenant_scope(tenant_id):
            borrowed = [
                lease_from_row(row, expires_at=row.borrowed_until)
                for row in BorrowedLease.objects.filter(
                    license_id=license_id, borrowed_until__gt=timezone.now()
                )
            ]
            recorded_session_id = f"details__{Detail.SESSION_ID}"
            ended = set(
                _events(license_id)
                .filter(action__in=list(LEASE_ENDING_EVENTS), created_at__gte=since)
                .values_list(recorded_session_id, flat=True)
            )
            open_sessions: dict[str, OpenSession] = {}
            acquired = (
                _events(license_id).filter(action=Event.LEASE_ACQUIRED, created_at__gte=since).order_by("id")
            )
            for details, user_id, created_at in acquired.values_list("details", "user_id", "created_at"):
                session_id = (details or {}).get(Detail.SESSION_ID)
                if not session_id or session_id in ended or session_id in open_sessions:
                    continue
                open_sessions[session_id] = OpenSession(
                    session_id=session_id,
                    fingerprint=details.get(Detail.FINGERPRINT) or "",
                    user_id=str(user_id) if user_id else None,
                    acquired_at=created_at,
                )
        return RestoreSources(borrowed=borrowed, open_sessions=open_sessions)

    def record_lost(self, *, license_id: uuid.UUID, tenant_id: uuid.UUID, lost: list[OpenSession]) -> None:
        if not lost:
            return
        with tenant_scope(tenant_id):
            for session in lost:
                audit_record(
                    action=Event.LEASE_LOST,
                    tenant_id=tenant_id,
                    target_type="licenses.license",
                    target_id=str(license_id),
                    details={
                        Detail.SESSION_ID: session.session_id,
                        Detail.FINGERPRINT: session.fingerprint,
                        Detail.USER_ID: session.user_id,
                        Detail.ACQUIRED_AT: session.acquired_at.isoformat(),
                    },
                )
