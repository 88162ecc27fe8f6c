"""The one way in to the seat ledger: `seat_ledger()`.

Services, the admin, the dashboard, the rollups and the seat metrics call the
ledger through this gateway and nothing else. Each call:
- runs in the scope its backend asks for (`SeatLedger.call_scope`): the
  database ledger in the license's tenant scope (joining the caller's when it
  already holds it), the Redis ledger in none, so a heartbeat on Redis opens no
  database transaction;
- is timed and its failures counted (`coditect_ledger_*`, by backend and
  operation);
- turns a store that does not answer into `ServiceUnavailable` (503 with
  Retry-After), so that no caller maps it its own way. The ledger's business
  answers (NoSeatsAvailable, SessionNotFound) pass through for the caller's
  rule to turn into its own error.

The gateway has the backend's methods, each also naming the license's tenant.
"""

from __future__ import annotations

import uuid
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from core.errors import ServiceUnavailable
from licenses.ledger import get_seat_ledger
from licenses.ledger.base import (
    AcquireResult,
    ExpiredLease,
    Lease,
    LedgerEvent,
    LedgerUnavailable,
    PendingEvent,
    QueueRequest,
    QueueTicket,
    SeatGroup,
    SeatLedger,
)
from licenses.ledger.metrics import observe_ledger
from tenants.scope import ScopeError, current_tenant_id, in_operator_scope

# How long a client is told to wait before it tries a ledger that did not answer.
RETRY_AFTER_SECONDS = 5


def seat_ledger(name: str | None = None) -> SeatLedgerGateway:
    """The gateway to the configured backend (or to the one named)."""
    return SeatLedgerGateway(get_seat_ledger(name))


class SeatLedgerGateway:
    def __init__(self, ledger: SeatLedger) -> None:
        self.ledger = ledger

    @property
    def records_events(self) -> bool:
        """Whether the backend keeps a change's audit event with the change
        (SeatLedger.records_events); if not, the caller records it."""
        return self.ledger.records_events

    def scope(self, tenant_id: uuid.UUID) -> AbstractContextManager:
        """The scope a ledger call shares with the audit row that records it:
        on the database ledger one transaction holds both, so neither happens
        without the other; on Redis there is none to share.

        A caller in one tenant's scope is refused a call for another (on
        either backend): a license it could not see must not become
        reachable through the ledger."""
        current = current_tenant_id()
        if current is not None and not in_operator_scope() and current != uuid.UUID(str(tenant_id)):
            raise ScopeError(f"a seat-ledger call for tenant {tenant_id} inside tenant {current}'s scope")
        return self.ledger.call_scope(tenant_id)

    def _call(self, operation: str, tenant_id: uuid.UUID, /, **arguments: Any) -> Any:
        with self.scope(tenant_id), observe_ledger(self.ledger.name, operation):
            try:
                return getattr(self.ledger, operation)(**arguments)
            except LedgerUnavailable as exc:
                raise ServiceUnavailable(
                    "The seat ledger does not answer; try again shortly.",
                    headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
                ) from exc

    def acquire(
        self,
        *,
        license_id: uuid.UUID,
        tenant_id: uuid.UUID,
        max_seats: int,
        fingerprint: str,
        user_id: str | None,
        ttl: int,
        client_info: dict[str, Any] | None = None,
        overdraft: int = 0,
        per_user: bool = False,
        machines_per_user: int | None = None,
        groups: tuple[SeatGroup, ...] = (),
        group: str | None = None,
        queue: QueueRequest | None = None,
    ) -> AcquireResult | QueueTicket:
        return self._call(
            "acquire",
            tenant_id,
            license_id=license_id,
            tenant_id=tenant_id,
            max_seats=max_seats,
            fingerprint=fingerprint,
            user_id=user_id,
            ttl=ttl,
            client_info=client_info,
            overdraft=overdraft,
            per_user=per_user,
            machines_per_user=machines_per_user,
            groups=groups,
            group=group,
            queue=queue,
        )

    def heartbeat(
        self,
        *,
        license_id: uuid.UUID,
        tenant_id: uuid.UUID,
        session_id: str,
        ttl: int,
        rejection: LedgerEvent | None = None,
    ) -> Lease:
        return self._call(
            "heartbeat", tenant_id, license_id=license_id, session_id=session_id, ttl=ttl, rejection=rejection
        )

    def release(
        self,
        *,
        license_id: uuid.UUID,
        tenant_id: uuid.UUID,
        session_id: str,
        event: LedgerEvent | None = None,
        linger: int = 0,
    ) -> Lease:
        return self._call(
            "release", tenant_id, license_id=license_id, session_id=session_id, event=event, linger=linger
        )

    def borrow(
        self,
        *,
        license_id: uuid.UUID,
        tenant_id: uuid.UUID,
        session_id: str,
        seconds: int,
        not_after: datetime | None = None,
        event: LedgerEvent | None = None,
        max_borrowed: int | None = None,
        max_per_user: int | None = None,
    ) -> Lease:
        return self._call(
            "borrow",
            tenant_id,
            license_id=license_id,
            session_id=session_id,
            seconds=seconds,
            not_after=not_after,
            event=event,
            max_borrowed=max_borrowed,
            max_per_user=max_per_user,
        )

    def borrow_undo(self, *, borrowed: Lease, borrow_id: str, reason: str) -> Lease | None:
        return self._call(
            "borrow_undo", borrowed.tenant_id, borrowed=borrowed, borrow_id=borrow_id, reason=reason
        )

    def live_leases(self, *, license_id: uuid.UUID, tenant_id: uuid.UUID) -> list[Lease]:
        return self._call("live_leases", tenant_id, license_id=license_id)

    def live_leases_page(
        self,
        *,
        license_id: uuid.UUID,
        tenant_id: uuid.UUID,
        cursor: str | None,
        limit: int,
        user_id: str | None = None,
    ) -> tuple[list[Lease], str | None]:
        return self._call(
            "live_leases_page", tenant_id, license_id=license_id, cursor=cursor, limit=limit, user_id=user_id
        )

    def used(self, *, license_id: uuid.UUID, tenant_id: uuid.UUID, per_user: bool = False) -> int:
        return self._call("used", tenant_id, license_id=license_id, per_user=per_user)

    def queued(self, *, license_id: uuid.UUID, tenant_id: uuid.UUID) -> int:
        return self._call("queued", tenant_id, license_id=license_id)

    def tickets_drop(
        self,
        *,
        license_id: uuid.UUID,
        tenant_id: uuid.UUID,
        user_id: str | None = None,
        fingerprint: str | None = None,
    ) -> int:
        return self._call(
            "tickets_drop", tenant_id, license_id=license_id, user_id=user_id, fingerprint=fingerprint
        )

    def expired_pending(
        self, *, license_id: uuid.UUID, tenant_id: uuid.UUID, limit: int = 500
    ) -> list[ExpiredLease]:
        return self._call("expired_pending", tenant_id, license_id=license_id, limit=limit)

    def expired_ack(self, *, license_id: uuid.UUID, tenant_id: uuid.UUID, session_ids: list[str]) -> None:
        self._call("expired_ack", tenant_id, license_id=license_id, session_ids=session_ids)

    def events_pending(
        self, *, license_id: uuid.UUID, tenant_id: uuid.UUID, limit: int = 500
    ) -> list[PendingEvent]:
        return self._call("events_pending", tenant_id, license_id=license_id, limit=limit)

    def events_ack(self, *, license_id: uuid.UUID, tenant_id: uuid.UUID, stream_ids: list[str]) -> None:
        self._call("events_ack", tenant_id, license_id=license_id, stream_ids=stream_ids)
