"""Seats: acquire, heartbeat, release, borrow, and the expiry sweep.

The ledger keeps the seats; these services put the license's rules in front
of it, sign the token, and leave an audit event for every acquire, denial,
release, borrow, rejected heartbeat and expiry (DESIGN.md invariant 8).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any, NoReturn

from django.core import signing
from django.db import Error as DatabaseError
from django.db import connections, transaction
from django.utils import timezone

from accounts.selectors import TENANT_INACTIVE, USER_INACTIVE, seat_holder_standing
from audit.events import Detail, Event
from audit.models import AuditLog
from audit.services import audit_record, audit_record_standalone
from core.context import context_undo_on_failure, current_context, request_context
from core.errors import ApplicationError, ServiceUnavailable
from licenses import metrics
from licenses.ledger import (
    BorrowLimitReached,
    GroupLimitReached,
    Lease,
    LedgerEvent,
    NoSeatsAvailable,
    QueueFull,
    QueueRequest,
    QueueTicket,
    SessionNotFound,
    TicketNotFound,
    UserMachineLimitReached,
)
from licenses.ledger.base import PendingEvent
from licenses.ledger.gateway import SeatLedgerGateway, seat_ledger
from licenses.models import License
from licenses.notices import seats_notice_maybe_enqueue
from licenses.seat_rules import seat_group_of, seat_groups
from licenses.selectors import (
    LicenseNotFound,
    license_get,
    license_get_by_key_cached,
    license_get_cached,
    license_state_error,
)
from licenses.signing import license_token_issue
from tenants.scope import tenant_scope

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Checkout:
    """What acquire and borrow hand back: the lease and its signed token."""

    license: License
    lease: Lease
    created: bool
    used: int
    token: str
    token_expires_at: datetime


@dataclass(frozen=True)
class Queued:
    """What acquire hands back to a caller waiting in the license's queue: its
    place, and the ticket token it polls with."""

    license: License
    ticket: QueueTicket
    token: str
    poll_after: int


NO_SEAT_MESSAGES = {
    "": "All seats of this license are in use.",
    "reserved": "The seats free now are reserved for groups you are not in.",
    "queue": "The seats free now are held for the requests queued before yours: queue too.",
}
TICKET_SALT = "coditect.licenses.queue-ticket"
TICKET_NOT_FOUND = "This queue ticket no longer waits (unknown, or not polled in time): queue again."


def _ticket_token(license: License, ticket: QueueTicket, *, user_id: Any, fingerprint: str) -> str:
    """The ticket token: the ticket's id, signed for this license, user and
    machine (the server checks it; the client only hands it back)."""
    return signing.dumps(
        {"t": ticket.ticket_id, "l": str(license.id), "u": str(user_id), "f": fingerprint}, salt=TICKET_SALT
    )


def _ticket_read(token: str, license: License, *, user_id: Any, fingerprint: str) -> str:
    """The ticket id a ticket token names, if it was made for this license,
    user and machine; else ticket_not_found."""
    try:
        claims = signing.loads(token, salt=TICKET_SALT)
    except signing.BadSignature:
        claims = None
    if not isinstance(claims, dict) or (claims.get("l"), claims.get("u"), claims.get("f")) != (
        str(license.id),
        str(user_id),
        fingerprint,
    ):
        raise ApplicationError(TICKET_NOT_FOUND, code="ticket_not_found")
    return str(claims.get("t"))


def _denied(
    error: ApplicationError,
    *,
    tenant_id,
    license: License | None,
    user,
    fingerprint: str,
    queued: bool = False,
    waits: bool = False,
) -> ApplicationError:
    """Record a refused acquire (audit and metrics) and hand the error back to
    raise. A caller that queues (`queued`) and is refused for good (a block,
    the license's state, no seat of theirs: not `waits`) leaves the queue: a
    ticket of theirs would hold back everyone behind it until it lapsed."""
    if queued and not waits and license is not None:
        try:
            seat_ledger().tickets_drop(
                license_id=license.id,
                tenant_id=license.tenant_id,
                user_id=str(user.pk),
                fingerprint=fingerprint,
            )
        except ServiceUnavailable:
            pass  # it lapses within its TTL
    audit_record(
        action=Event.LEASE_DENIED,
        tenant_id=tenant_id,
        user=user,
        target=license,
        details={Detail.CODE: error.code, Detail.FINGERPRINT: fingerprint},
    )
    metrics.record_acquire_outcome(error.code)
    return error


def _token_expiry(license: License, lease: Lease, now: datetime) -> datetime:
    """`exp` is the offline grace; a borrowed lease's token lasts exactly to the
    borrow's end (DESIGN.md); neither outlives the license itself."""
    terms = license.terms
    if lease.borrowed_until is not None:
        expires = lease.borrowed_until
    else:
        expires = now + timedelta(seconds=terms.offline_grace)
    # In the grace period after expiry, the grace's end is the license's end.
    if terms.ends_at is not None:
        expires = min(expires, terms.ends_at)
    return expires


def _checkout(license: License, lease: Lease, *, created: bool, used: int) -> Checkout:
    now = timezone.now()
    expires = _token_expiry(license, lease, now)
    token = license_token_issue(license=license, lease=lease, expires_at=expires, now=now)
    return Checkout(
        license=license, lease=lease, created=created, used=used, token=token, token_expires_at=expires
    )


def lease_acquire(
    *,
    user,
    license_key: str,
    fingerprint: str,
    client_info: dict[str, Any] | None = None,
    queue: bool = False,
    ticket: str | None = None,
) -> Checkout | Queued:
    """Check out a seat, in DESIGN.md's order: the key exists in the caller's
    tenant, the license is not suspended, not expired, neither the machine nor
    the user is blocked on it, the machine is allowed, then a seat. Idempotent
    per (license, user, fingerprint): the live lease this user holds on this
    machine comes back, never another user's.

    With `queue` (or a `ticket` token to poll with), a caller with no seat
    free for it waits in the license's queue: Queued, its place and ticket
    token, instead of a refusal."""
    tenant_id = user.tenant_id
    deny = partial(
        _denied, tenant_id=tenant_id, user=user, fingerprint=fingerprint, queued=queue or ticket is not None
    )
    try:
        # The short per-process cache's row, its terms frozen: read, never changed.
        license = license_get_by_key_cached(license_key=license_key)
    except LicenseNotFound as error:
        raise deny(error, license=None) from None
    if error := license_state_error(license):
        raise deny(error, license=license)
    if error := license_block_error(license, fingerprint=fingerprint, user_id=user.pk):
        raise deny(error, license=license)
    if error := license_assignment_error(license, user_id=user.pk):
        raise deny(error, license=license)

    binds_machine = False
    terms = license.terms
    if fingerprint not in license.hardware_fingerprints:
        if terms.max_machines is None and license.hardware_fingerprints:
            raise deny(
                ApplicationError("This machine is not licensed.", code="fingerprint_not_allowed"),
                license=license,
            )
        if terms.max_machines is not None:
            # Binding a new machine: the row lock serialises concurrent binds,
            # so the machine limit holds under any interleaving.
            license = license_get(license_id=license.id, for_update=True)
            if fingerprint not in license.hardware_fingerprints:
                if len(license.hardware_fingerprints) >= terms.max_machines:
                    raise deny(
                        ApplicationError(
                            "This license is bound to its maximum number of machines.",
                            code="fingerprint_not_allowed",
                            details={"max_machines": terms.max_machines},
                        ),
                        license=license,
                    )
                binds_machine = True

    queued = None
    if queue or ticket is not None:
        ticket_id = None
        if ticket is not None:
            try:
                ticket_id = _ticket_read(ticket, license, user_id=user.pk, fingerprint=fingerprint)
            except ApplicationError as error:
                raise deny(error, license=license, waits=True) from None
        queued = QueueRequest(
            ttl=terms.queue_ticket_ttl, max_tickets=terms.queue_max_tickets, ticket_id=ticket_id
        )
    group = seat_group_of(license, user_id=user.pk, fingerprint=fingerprint)
    try:
        result = seat_ledger().acquire(
            license_id=license.id,
            tenant_id=license.tenant_id,
            max_seats=terms.max_seats,
            fingerprint=fingerprint,
            user_id=str(user.pk),
            ttl=terms.lease_ttl,
            client_info=client_info or {},
            overdraft=terms.overdraft_seats,
            per_user=terms.seats_per_user,
            machines_per_user=terms.machines_per_user,
            groups=seat_groups(license),
            group=group,
            queue=queued,
        )
    except TicketNotFound:
        raise deny(
            ApplicationError(TICKET_NOT_FOUND, code="ticket_not_found"), license=license, waits=True
        ) from None
    except QueueFull as exc:
        raise deny(
            ApplicationError(
                "Every seat is in use and the queue for one is full."
                if exc.max_tickets
                else "Every seat is in use, and this license does not queue.",
                code="queue_full",
                details={"waiting": exc.waiting, "max_tickets": exc.max_tickets},
            ),
            license=license,
            waits=True,
        ) from None
    except GroupLimitReached as exc:
        raise deny(
            ApplicationError(
                f"Your group {exc.group!r} holds its {exc.limit} seats of this license.",
                code="group_limit_reached",
                details={"group": exc.group, "max": exc.limit, "held": exc.held},
            ),
            license=license,
            waits=True,
        ) from None
    except UserMachineLimitReached as exc:
        raise deny(
            ApplicationError(
                f"You hold this license's seat on {exc.held} machines, its limit per user.",
                code="fingerprint_not_allowed",
                details={"machines_per_user": exc.limit},
            ),
            license=license,
        ) from None
    except NoSeatsAvailable as exc:
        raise deny(
            ApplicationError(
                NO_SEAT_MESSAGES[exc.held_for],
                code="no_seats_available",
                details={
                    "used": exc.used,
                    "max": exc.max_seats,
                    **({"held_for": exc.held_for} if exc.held_for else {}),
                },
            ),
            license=license,
            waits=True,
        ) from None

    if isinstance(result, QueueTicket):
        return _queued(license, result, user=user, fingerprint=fingerprint, group=group)
    if result.created:
        # Should the request fail from here on (its audit row, its commit, the
        # signature), its answer is 503 and the seat it took is given back.
        context_undo_on_failure(
            partial(
                _give_back_untold,
                license_id=license.id,
                tenant_id=license.tenant_id,
                session_id=result.lease.session_id,
            )
        )
    # Sign first: the audit rows below take the tenant's chain lock, held to
    # commit, and a KMS signature must not be made while holding it.
    checkout = _checkout(license, result.lease, created=result.created, used=result.used)
    if binds_machine:
        license.hardware_fingerprints = [*license.hardware_fingerprints, fingerprint]
        license.save(update_fields=["hardware_fingerprints", "updated_at"])
        audit_record(
            action=Event.LICENSE_MACHINE_BOUND,
            tenant_id=tenant_id,
            user=user,
            target=license,
            details={Detail.FINGERPRINT: fingerprint},
        )
    audit_record(
        action=Event.LEASE_ACQUIRED,
        tenant_id=tenant_id,
        user=user,
        target=license,
        details={
            Detail.SESSION_ID: result.lease.session_id,
            Detail.FINGERPRINT: fingerprint,
            Detail.CREATED: result.created,
            **({Detail.OVERDRAFT: True} if result.lease.overdraft else {}),
            **({"reclaimed": True} if result.reclaimed else {}),
            **({"group": result.lease.group} if result.lease.group else {}),
            **(
                {"ticket_id": result.ticket_id, "waited_seconds": round(result.waited.total_seconds(), 3)}
                if result.ticket_id
                else {}
            ),
        },
    )
    if result.waited is not None:
        metrics.observe_queue_wait(result.waited.total_seconds())
    metrics.record_acquire_outcome("granted" if result.created else "existing")
    if result.created:
        # Email (issue 15): near the limit, the tenant's admins hear of it, at
        # most once a day; the notice is enqueued on commit, never sent here.
        # A seat past the limit (overdraft) is told the same way.
        seats_notice_maybe_enqueue(license, result.used, overdraft=result.lease.overdraft)
    return checkout


def _queued(license: License, ticket: QueueTicket, *, user, fingerprint: str, group: str | None) -> Queued:
    """A caller's place in the queue: its ticket token, audited once, when
    the ticket is made (its polls write nothing)."""
    if ticket.created:
        audit_record(
            action=Event.LEASE_QUEUED,
            tenant_id=license.tenant_id,
            user=user,
            target=license,
            details={
                Detail.FINGERPRINT: fingerprint,
                "ticket_id": ticket.ticket_id,
                "position": ticket.position,
                **({"group": group} if group else {}),
            },
        )
    metrics.record_acquire_outcome("queued")
    return Queued(
        license=license,
        ticket=ticket,
        token=_ticket_token(license, ticket, user_id=user.pk, fingerprint=fingerprint),
        poll_after=license.terms.queue_poll_after,
    )


def _give_back_untold(*, license_id: uuid.UUID, tenant_id: uuid.UUID, session_id: str) -> None:
    """Undo a seat whose acquire was answered 503: no client holds its token,
    and its `lease.acquired` row went with the rolled-back transaction. On the
    database ledger the rollback already took the lease."""
    try:
        seat_ledger().release(license_id=license_id, tenant_id=tenant_id, session_id=session_id)
    except SessionNotFound:
        pass


def _leased_license(claims: dict[str, Any]) -> License:
    """The license a token names. The license-token endpoints hold no database
    transaction of their own (a heartbeat on the Redis ledger needs none), so
    this reads through the short per-process cache."""
    try:
        return license_get_cached(license_id=claims["sub"], tenant_id=claims["tid"])
    except LicenseNotFound:
        raise ApplicationError("This session is not live.", code="session_not_found") from None


def _end_lease(
    license: License,
    session_id: str,
    error: ApplicationError,
    *,
    action: Event = Event.LEASE_ENDED,
    details: dict[str, Any] | None = None,
) -> NoReturn:
    """End a lease whose holder may no longer hold it, now, with an audit event
    that says why (`lease.ended` with the error's code, or `action` with its
    `details`), and refuse the call with `error`."""
    seats = seat_ledger()
    event = _lease_event(action, {Detail.REASON: error.code} if details is None else details)
    with seats.scope(license.tenant_id):
        try:
            lease = seats.release(
                license_id=license.id, tenant_id=license.tenant_id, session_id=session_id, event=event
            )
        except SessionNotFound:
            pass
        else:
            _record_change(seats, license, event, lease)
    raise error


def _end_if_license_ended(license: License, session_id: str) -> None:
    """Suspending or expiring a license ends its leases at their next heartbeat."""
    error = license_state_error(license)
    if error is not None:
        _end_lease(license, session_id, error)


def license_block_error(license: License, *, fingerprint: str, user_id: Any) -> ApplicationError | None:
    """The refusal an operator's block on this machine or this user calls for
    (None when neither is blocked). Read from the license row, so on the
    heartbeat path from the per-process cache, never the database."""
    for kind, value in (("machine", fingerprint), ("user", user_id)):
        if license.block_of(kind, str(value) if value is not None else None) is not None:
            message, code = _BLOCK_ERRORS[kind]
            return ApplicationError(message, code=code)
    return None


NOT_ASSIGNED = "This license's seats are named, and none is yours: ask your tenant admin for one."


def license_assignment_error(license: License, *, user_id: Any) -> ApplicationError | None:
    """Named seats: the refusal of a user the tenant admin gave none (None
    otherwise). Read from the license row, so on the heartbeat path from the
    per-process cache."""
    if license.terms.seat_mode == "named" and license.assignment_of(user_id) is None:
        return ApplicationError(NOT_ASSIGNED, code="not_assigned")
    return None


_BLOCK_ERRORS = {
    "machine": ("This machine is blocked on this license.", "machine_blocked"),
    "user": ("This user is blocked on this license.", "user_blocked"),
}


def _refuse_if_blocked(license: License, claims: dict[str, Any]) -> None:
    """Before the ledger is asked: a token whose machine is blocked, or whose
    session a block ended, is refused with the block's code (a live lease of
    a blocked machine ends now)."""
    if license.block_of("machine", claims.get("fp")) is not None:
        message, code = _BLOCK_ERRORS["machine"]
        _end_lease(license, claims["sid"], ApplicationError(message, code=code))
    block = license.block_ending(claims["sid"])
    if block is not None and block.get("kind") in _BLOCK_ERRORS:
        message, code = _BLOCK_ERRORS[block["kind"]]
        raise ApplicationError(message, code=code)


def _end_if_blocked(license: License, lease: Lease) -> None:
    """A blocked machine's or user's lease, or one of a named seat taken back,
    ends at its next heartbeat or borrow (blocking and taking back end the
    live ones at once; this catches any that another process's cache let
    through meanwhile)."""
    error = license_block_error(license, fingerprint=lease.fingerprint, user_id=lease.user_id)
    error = error or license_assignment_error(license, user_id=lease.user_id)
    if error is not None:
        _end_lease(license, lease.session_id, error)


_STANDING_ERRORS = {
    USER_INACTIVE: "The user who holds this seat is deactivated or deleted; the seat is released.",
    TENANT_INACTIVE: "This tenant is deactivated; the seat is released.",
}


def _end_if_holder_may_not_hold(license: License, lease: Lease, *, unknown_keeps: bool = False) -> None:
    """Deactivating or deleting the user, or deactivating the tenant, ends the
    user's leases at their next heartbeat or borrow (invariant 11). With
    `unknown_keeps`, a standing the database cannot tell now keeps the lease
    until the next call looks again."""
    try:
        standing = seat_holder_standing(user_id=lease.user_id, tenant_id=license.tenant_id)
    except (DatabaseError, ServiceUnavailable):
        if not unknown_keeps:
            raise
        logger.warning("lease kept without its holder's standing: the database does not answer")
        return
    if standing:
        _end_lease(license, lease.session_id, ApplicationError(_STANDING_ERRORS[standing], code=standing))


def lease_end_details(lease: Lease) -> dict[str, Any]:
    """What usage rollups need from an event that ends a lease (LEASE_END_FIELDS):
    who held it, and since when (the ledger's clock), so session time needs no
    other row."""
    return {
        Detail.SESSION_ID: lease.session_id,
        Detail.FINGERPRINT: lease.fingerprint,
        Detail.USER_ID: lease.user_id,
        Detail.ACQUIRED_AT: lease.created_at.isoformat(),
        **({Detail.OVERDRAFT: True} if lease.overdraft else {}),
    }


def _lease_event(action: Event, details: dict[str, Any] | None = None, *, actor: Any = None) -> LedgerEvent:
    """The audit event of a ledger change, with the request's id and address
    and who made it on the lease holder's behalf (`actor`, a User), which a
    ledger that records its own events keeps for the drainer."""
    context = current_context()
    return LedgerEvent(
        action=action,
        details=details or {},
        request_id=context.request_id,
        client_ip=context.client_ip,
        user_id=str(actor.pk) if actor is not None else None,
        actor=getattr(actor, "email", "") if actor is not None else "",
    )


def lease_event_user_id(event: LedgerEvent, lease: Lease | None) -> str | None:
    """Whom a ledger change's audit row (and its webhook's `user_id`) names:
    who acted on the holder's behalf, else the lease's holder (a release, an
    expiry, a refused heartbeat are the holder's own seat)."""
    if event.user_id:
        return event.user_id
    return str(lease.user_id) if lease is not None and lease.user_id else None


def lease_event_details(event: LedgerEvent, lease: Lease | None) -> dict[str, Any]:
    """An event's audit details from the lease as its change left it: the same
    whether the request writes the row or the drainer does later."""
    if lease is None:
        return dict(event.details)
    if event.action in (Event.LEASE_BORROWED, Event.LEASE_BORROW_UNDONE):
        until = lease.borrowed_until.isoformat() if lease.borrowed_until is not None else None
        base = {Detail.SESSION_ID: lease.session_id, Detail.UNTIL: until}
    else:
        base = lease_end_details(lease)
        if event.action == Event.LEASE_RELEASED and lease.lingering_until is not None:
            base["linger_until"] = lease.lingering_until.isoformat()
    return {**base, **event.details}


def _record_change(
    seats: SeatLedgerGateway, license: License, event: LedgerEvent, lease: Lease | None = None
) -> None:
    """Record a ledger change's event, in the change's transaction, unless the
    ledger kept it with the change itself (the drainer records it then), so
    that a change is never answered 503 for a database that failed after it."""
    if not seats.records_events:
        audit_record_standalone(
            action=event.action,
            tenant_id=license.tenant_id,
            user_id=lease_event_user_id(event, lease),
            actor=event.actor,
            target=license,
            details=lease_event_details(event, lease),
        )


def _end_if_idle(license: License, session_id: str, idle_seconds: int | None) -> None:
    """Past the policy's idle timeout, as the client reports its user's
    inactivity, the seat ends (`lease.idle_released`) and the heartbeat is
    refused with `idle_timeout`: the application acquires again when its
    user is back. A client that reports nothing is never idle."""
    timeout = license.terms.idle_timeout
    if not timeout or idle_seconds is None or idle_seconds < timeout:
        return
    figures = {"idle_seconds": idle_seconds, "idle_timeout": timeout}
    _end_lease(
        license,
        session_id,
        ApplicationError(
            f"Idle for {idle_seconds} seconds, past this license's {timeout}: the seat is released. "
            "Acquire again when the user is back.",
            code="idle_timeout",
            details=figures,
        ),
        action=Event.LEASE_IDLE_RELEASED,
        details=figures,
    )


def lease_heartbeat(*, claims: dict[str, Any], idle_seconds: int | None = None) -> tuple[License, Lease]:
    """Extend the token's lease; `idle_seconds`, how long its user has been
    inactive as the application tells the SDK, ends it past the policy's
    idle timeout (`_end_if_idle`)."""
    license = _leased_license(claims)
    _end_if_license_ended(license, claims["sid"])
    _refuse_if_blocked(license, claims)
    _end_if_idle(license, claims["sid"], idle_seconds)
    seats = seat_ledger()
    rejection = _lease_event(
        Event.LEASE_HEARTBEAT_REJECTED,
        {Detail.SESSION_ID: claims["sid"], Detail.FINGERPRINT: claims.get("fp", "")},
    )
    try:
        lease = seats.heartbeat(
            license_id=license.id,
            tenant_id=license.tenant_id,
            session_id=claims["sid"],
            ttl=license.terms.lease_ttl,
            rejection=rejection,
        )
    except SessionNotFound:
        _record_change(seats, license, rejection)
        raise ApplicationError(
            "This session is not live (expired or released); acquire again.", code="session_not_found"
        ) from None
    _end_if_blocked(license, lease)
    # The lease is extended already: a 503 for a standing the database cannot
    # tell would answer "not done" for a heartbeat that was (invariant 8).
    _end_if_holder_may_not_hold(license, lease, unknown_keeps=True)
    return license, lease


def lease_release(*, claims: dict[str, Any]) -> Lease:
    license = _leased_license(claims)
    seats = seat_ledger()
    event = _lease_event(Event.LEASE_RELEASED)
    with seats.scope(license.tenant_id):
        try:
            # With the policy's linger the seat stays this holder's a while.
            lease = seats.release(
                license_id=license.id,
                tenant_id=license.tenant_id,
                session_id=claims["sid"],
                event=event,
                linger=license.terms.linger_seconds,
            )
        except SessionNotFound:
            raise ApplicationError(
                "This session is not live (expired or already released).", code="session_not_found"
            ) from None
        _record_change(seats, license, event, lease)
    return lease


def lease_force_release(*, license: License, session_id: str, actor=None) -> Lease:
    """End a live lease on someone else's behalf (an operator in the admin, a
    tenant admin on the dashboard). The client finds out at its next heartbeat.

    Like a client's release, its event goes with the change: in the same
    transaction on the database ledger, into the license's event stream on
    Redis, so a release that happened is never answered 503 for a database
    that failed after it. On Redis the stream is drained once the caller's
    transaction commits, so the console shows the row at once; should that
    fail, the drainer records it later."""
    seats = seat_ledger()
    event = _lease_event(Event.LEASE_FORCE_RELEASED, actor=actor)
    # The tenant's own transaction, from the admin's operator scope too: on
    # the database ledger it holds the release and its row together.
    with tenant_scope(license.tenant_id):
        try:
            lease = seats.release(
                license_id=license.id, tenant_id=license.tenant_id, session_id=session_id, event=event
            )
        except SessionNotFound:
            raise ApplicationError(
                "This session is not live (expired or already released).", code="session_not_found"
            ) from None
        _record_change(seats, license, event, lease)
    if seats.records_events:
        transaction.on_commit(
            partial(_drain_soon, license_id=license.id, tenant_id=license.tenant_id), robust=True
        )
    return lease


def _drain_soon(*, license_id: uuid.UUID, tenant_id: uuid.UUID) -> None:
    try:
        lease_events_drain_license(license_id=license_id, tenant_id=tenant_id)
    except (DatabaseError, ServiceUnavailable):
        logger.warning(
            "a force-release's event waits for the drainer",
            extra={"license_id": str(license_id)},
            exc_info=True,
        )


def lease_borrow(*, claims: dict[str, Any], hours: int) -> Checkout:
    license = _leased_license(claims)
    _end_if_license_ended(license, claims["sid"])
    _refuse_if_blocked(license, claims)
    terms = license.terms
    if terms.borrow_limit_hours == 0:
        raise ApplicationError("This license does not allow borrowing.", code="permission_denied")
    if hours > terms.borrow_limit_hours:
        raise ApplicationError(
            f"This license lets a seat be borrowed for at most {terms.borrow_limit_hours} hours.",
            code="invalid_request",
            details={"max_hours": terms.borrow_limit_hours},
        )
    seats = seat_ledger()
    # The lease names its holder: one who may no longer hold a seat gets no
    # borrow, and the seat ends now (its own transaction, before the borrow's).
    try:
        live = seats.heartbeat(
            license_id=license.id,
            tenant_id=license.tenant_id,
            session_id=claims["sid"],
            ttl=terms.lease_ttl,
        )
    except SessionNotFound:
        raise ApplicationError("This session is not live; acquire again.", code="session_not_found") from None
    _end_if_blocked(license, live)
    _end_if_holder_may_not_hold(license, live)
    event = _lease_event(Event.LEASE_BORROWED, {Detail.HOURS: hours})
    # One scope for the borrow, its signature and its event: on the database
    # ledger one transaction, so a failure anywhere answers 503 with nothing
    # changed. The signature comes before the event's row, which takes the
    # tenant's chain lock (held to commit).
    with seats.scope(license.tenant_id):
        try:
            lease = seats.borrow(
                license_id=license.id,
                tenant_id=license.tenant_id,
                session_id=claims["sid"],
                seconds=hours * 3600,
                # On the ledger's clock, so neither the borrow nor its token
                # outlives the license (invariant 11).
                not_after=terms.ends_at,
                event=event,
                max_borrowed=terms.borrow_max_seats,
                max_per_user=terms.borrow_max_per_user,
            )
        except SessionNotFound:
            raise ApplicationError(
                "This session is not live; acquire again.", code="session_not_found"
            ) from None
        except BorrowLimitReached as full:
            whose = "this license's" if full.scope == "license" else "your"
            raise ApplicationError(
                f"{full.borrowed} seats are out on borrow, {whose} limit: return one first.",
                code="borrow_limit_reached",
                details={"scope": full.scope, "limit": full.limit, "borrowed": full.borrowed},
            ) from None
        try:
            used = seats.used(
                license_id=license.id, tenant_id=license.tenant_id, per_user=terms.seats_per_user
            )
            checkout = _checkout(license, lease, created=False, used=used)
            _record_change(seats, license, event, lease)
        except BaseException:
            if seats.records_events:
                # Redis keeps the borrow whatever the request does next: it is
                # put back, so the 503 this becomes has not happened.
                seats.borrow_undo(borrowed=lease, borrow_id=event.event_id, reason="request_failed")
            raise
    return checkout


# --- Expiry sweep (invariant 8) -------------------------------------------------------


def lease_expiry_sweep_license(*, license_id: uuid.UUID, tenant_id: uuid.UUID) -> int:
    """Record each lease of one license that ended by expiry, and each event the
    ledger kept with its change (lease_events_drain_license), exactly once.

    A per-license lock keeps two sweepers apart; the audit log is checked
    before writing, so a sweep that died between recording and acknowledging
    does not record twice when it runs again.
    """
    recorded = lease_events_drain_license(license_id=license_id, tenant_id=tenant_id)
    seats = seat_ledger()
    with tenant_scope(tenant_id):
        if not _try_sweep_lock(license_id):
            return recorded
        pending = seats.expired_pending(license_id=license_id, tenant_id=tenant_id)
        if not pending:
            return recorded
        session_ids = [item.lease.session_id for item in pending]
        recorded_session_id = f"details__{Detail.SESSION_ID}"
        already = set(
            AuditLog.objects.filter(
                action__in=[Event.LEASE_EXPIRED, Event.LEASE_LINGER_ENDED], target_id=str(license_id)
            )
            .filter(**{f"{recorded_session_id}__in": session_ids})
            .values_list(recorded_session_id, flat=True)
        )
        for item in pending:
            if item.lease.session_id in already:
                continue
            audit_record(
                # A lingering lease was released already: only its linger ended.
                action=Event.LEASE_LINGER_ENDED if item.lease.lingering else Event.LEASE_EXPIRED,
                tenant_id=tenant_id,
                target_type="licenses.license",
                target_id=str(license_id),
                details={**lease_end_details(item.lease), Detail.EXPIRED_AT: item.expired_at.isoformat()},
            )
            recorded += 1
    # Forget them only once their records are committed.
    seats.expired_ack(license_id=license_id, tenant_id=tenant_id, session_ids=session_ids)
    return recorded


def _try_sweep_lock(license_id: uuid.UUID) -> bool:
    connection = connections["default"]
    if connection.vendor != "postgresql":
        return True  # SQLite's IMMEDIATE transactions already run one at a time
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(hashtextextended(%s, 0))", [f"sweep:{license_id}"])
        return cursor.fetchone()[0]


_LEDGER_EVENTS = (
    Event.LEASE_RELEASED,
    Event.LEASE_FORCE_RELEASED,
    Event.LEASE_BORROW_UNDONE,
    Event.LEASE_ENDED,
    Event.LEASE_BORROWED,
    Event.LEASE_HEARTBEAT_REJECTED,
)


def lease_events_drain_license(*, license_id: uuid.UUID, tenant_id: uuid.UUID, limit: int = 500) -> int:
    """Move the audit events a ledger kept with its changes (release, borrow,
    a lease ended; SeatLedger.records_events) into the audit log, exactly once:
    each row carries its event's id, and an id already in the log is skipped,
    so a drain that died between committing and acknowledging records nothing
    twice. Acknowledged only after the rows commit. Returns how many it wrote."""
    seats = seat_ledger()
    if not seats.records_events:
        return 0
    recorded = 0
    while events := seats.events_pending(license_id=license_id, tenant_id=tenant_id, limit=limit):
        with tenant_scope(tenant_id):
            if not _try_sweep_lock(license_id):
                return recorded
            # Read again under the lock: another drainer may have committed some.
            events = seats.events_pending(license_id=license_id, tenant_id=tenant_id, limit=limit)
            recorded += _events_record(license_id, tenant_id, events)
        seats.events_ack(
            license_id=license_id, tenant_id=tenant_id, stream_ids=[item.stream_id for item in events]
        )
        if len(events) < limit:
            break
    return recorded


def _events_record(license_id: uuid.UUID, tenant_id: uuid.UUID, events: list[PendingEvent]) -> int:
    recorded_event_id = f"details__{Detail.EVENT_ID}"
    already = set(
        AuditLog.objects.filter(action__in=_LEDGER_EVENTS, target_id=str(license_id))
        .filter(**{f"{recorded_event_id}__in": [item.event.event_id for item in events]})
        .values_list(recorded_event_id, flat=True)
    )
    recorded = 0
    for item in events:
        if item.event.event_id in already:
            continue
        already.add(item.event.event_id)
        # The row keeps the request's id and address, as if the request had written it.
        with request_context(request_id=item.event.request_id, client_ip=item.event.client_ip):
            audit_record(
                action=item.event.action,
                tenant_id=tenant_id,
                user_id=lease_event_user_id(item.event, item.lease),
                actor=item.event.actor,
                target_type="licenses.license",
                target_id=str(license_id),
                details={
                    **lease_event_details(item.event, item.lease),
                    Detail.EVENT_ID: item.event.event_id,
                    Detail.OCCURRED_AT: item.occurred_at.isoformat(),
                },
            )
        recorded += 1
    return recorded
