"""Stripe events to licenses (issue 15): the webhook's work.

`stripe_event_handle` verifies the `Stripe-Signature` header with the
`stripe` library (STRIPE_WEBHOOK_SECRET, Stripe's default tolerance of 300
seconds), then records the event by its id and acts on it in one transaction:
a replay finds the row and changes nothing; an error rolls back the row with
the change, so Stripe's redelivery tries again.

Stripe delivers events in any order and, for one new customer, at once:
- an event of a subscription no checkout here has made yet is kept
  (`deferred`, with its object) and applied, in Stripe's `created` order, in
  the transaction of the checkout that makes the subscription's license;
- per subscription, the `created` of the last applied update or deletion, and
  of the last applied invoice, are kept: an older one is `stale`, changing nothing;
- a checkout takes a lock on its customer (PostgreSQL: a transaction-level
  advisory lock; SQLite runs one write transaction at a time anyway), so two
  first checkouts of one customer make one tenant; a lock on the subscription
  orders a deferral against the checkout that would apply it.

The flows (docs/operations.md, "Stripe"):
- `checkout.session.completed`: paid (or no payment required: a trial), the tenant of the Stripe customer, or a new
  one (named from the customer details) with an invite for its first admin
  (emailed) and the license's claim link (emailed); the license from the
  price's policy, seats = quantity x the price's seats per quantity. The
  price and quantity come from the session's `metadata` (`price_id`,
  `quantity`) when the vendor set them, else from Stripe's API
  (billing.stripe_api). An unknown price is recorded and makes nothing.
  Unpaid (a delayed payment method) it makes nothing (`awaiting_payment`):
  `checkout.session.async_payment_succeeded` for the session does the above,
  `checkout.session.async_payment_failed` is recorded (`payment_failed`).
- `customer.subscription.updated`: seats follow the quantity (fewer seats
  end no live lease: DESIGN.md invariant 6); a new price moves the policy.
- `invoice.payment_failed`: the failure time is kept; the periodic sweep
  suspends the license once STRIPE_PAYMENT_GRACE_DAYS have passed;
  `invoice.paid` clears it and resumes a license the sweep suspended.
- `customer.subscription.deleted`: the license expires at the period's end.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import stripe
from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from django.db import DataError, IntegrityError, transaction
from django.utils import timezone

from accounts.models import Role
from accounts.selectors import user_sign_in_candidate_by_email_across_tenants
from accounts.services import invite_create
from audit.events import Event
from audit.services import audit_record
from billing import stripe_api
from billing.models import EventOutcome, StripeCustomer, StripeEvent, StripePrice, StripeSubscription
from core.errors import ApplicationError, ServiceUnavailable
from core.locks import transaction_lock
from licenses.mailing import license_delivery_send
from licenses.models import MAX_SEATS, License
from licenses.selectors import license_get
from licenses.services import license_create, license_extend, license_resume, license_suspend, license_update
from tenants.models import Tenant
from tenants.scope import tenant_scope
from tenants.services import tenant_create

logger = logging.getLogger(__name__)

SIGNATURE_TOLERANCE = 300  # seconds: stripe.Webhook.DEFAULT_TOLERANCE
# What an event's id and type look like (evt_…; checkout.session.completed); the schema says the same.
EVENT_ID = re.compile(r"^evt_[A-Za-z0-9_]{1,250}$")
EVENT_TYPE = re.compile(r"^[a-z0-9_.]{1,100}$")
ACTOR = "stripe"
# What a signed event in an unusable shape raises in a flow.
MALFORMED = (
    AttributeError,
    TypeError,
    ValueError,
    OverflowError,
    KeyError,
    DataError,
    DjangoValidationError,
    ApplicationError,
)


class Outcome:
    def __init__(self, outcome: str, **detail: Any) -> None:
        self.outcome = outcome
        self.detail = {key: str(value) for key, value in detail.items() if value is not None}


@dataclass(frozen=True)
class Received:
    """One event as a flow sees it: now, or later when it was deferred."""

    event_id: str
    type: str
    created: datetime  # Stripe's `created` (else when it was received)
    obj: dict


def _created(event: dict) -> datetime | None:
    created = event.get("created")
    if isinstance(created, bool) or not isinstance(created, int | float):
        return None
    try:
        return datetime.fromtimestamp(created, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _lock(kind: str, key: str) -> None:
    """Held until the transaction ends: one flow at a time per customer or subscription."""
    transaction_lock(f"stripe:{kind}:{key}")


def _seats(quantity: int, price: StripePrice) -> int:
    seats = quantity * price.seats_per_quantity
    if not 1 <= seats <= MAX_SEATS:
        raise ValueError(f"{seats} seats is not a license's (1 to {MAX_SEATS})")  # recorded: malformed
    return seats


def stripe_event_verify(*, payload: bytes, signature: str | None) -> dict:
    """The event, if its signature is good: else 400 `invalid_request`."""
    if not signature:
        raise ApplicationError("The Stripe-Signature header is missing.", code="invalid_request")
    secret = settings.STRIPE_WEBHOOK_SECRET
    if not secret:
        raise ServiceUnavailable("The Stripe integration is not configured (STRIPE_WEBHOOK_SECRET).")
    try:
        event = stripe.Webhook.construct_event(payload, signature, secret, tolerance=SIGNATURE_TOLERANCE)
    except stripe.SignatureVerificationError:
        raise ApplicationError(
            "The Stripe-Signature header does not verify.", code="invalid_request"
        ) from None
    except (ValueError, AttributeError, TypeError):
        # Verified, but not JSON (ValueError) or not an object (the library's
        # Event.construct_from fails on a list or a string).
        raise ApplicationError("The body is not a Stripe event.", code="invalid_request") from None
    event = event.to_dict()
    event_id, event_type = event.get("id"), event.get("type")
    if not (isinstance(event_id, str) and EVENT_ID.match(event_id)) or not (
        isinstance(event_type, str) and EVENT_TYPE.match(event_type)
    ):
        raise ApplicationError("The body is not a Stripe event (its id or type).", code="invalid_request")
    return event


def stripe_event_handle(*, payload: bytes, signature: str | None) -> tuple[StripeEvent, bool]:
    """Verify, record and act on one event; returns its row and whether it is a replay."""
    event = stripe_event_verify(payload=payload, signature=signature)
    data = event.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    obj = obj if isinstance(obj, dict) else {}
    received = Received(
        event_id=event["id"], type=event["type"], created=_created(event) or timezone.now(), obj=obj
    )
    with transaction.atomic():
        try:
            with transaction.atomic():
                row = StripeEvent.objects.create(
                    event_id=received.event_id,
                    type=received.type,
                    livemode=bool(event.get("livemode")),
                    created=received.created,
                    outcome=EventOutcome.IGNORED,
                )
        except IntegrityError:
            return StripeEvent.objects.get(event_id=event["id"]), True
        _record(row, _run(received), received)
    logger.info(
        "stripe event",
        extra={"event_id": row.event_id, "event_type": row.type, "outcome": row.outcome, **row.detail},
    )
    return row, False


def _run(received: Received) -> Outcome:
    """The event's flow, in a savepoint: a shape it cannot use rolls back what it began."""
    handler = HANDLERS.get(received.type)
    try:
        with transaction.atomic():
            return handler(received) if handler else Outcome(EventOutcome.IGNORED)
    except ServiceUnavailable:
        raise  # a dependency down: 503, and Stripe sends it again
    except MALFORMED as error:
        # Signed, but in a shape the flow cannot use (a field of another type,
        # a value past a column): recorded and answered 200, so Stripe does
        # not resend it for days; what it would have changed is rolled back.
        logger.warning(
            "stripe event in a shape the flow cannot use",
            extra={"event_id": received.event_id, "event_type": received.type, "error": repr(error)[:300]},
        )
        return Outcome(EventOutcome.INCOMPLETE, error=f"malformed: {type(error).__name__}")


def _record(row: StripeEvent, result: Outcome, received: Received, **extra: str) -> None:
    row.outcome, row.detail = result.outcome, {**result.detail, **extra}
    row.subscription_id = result.detail.get("subscription_id", "")[:255]
    # The object is kept only while the event waits to be applied.
    row.payload = received.obj if result.outcome == EventOutcome.DEFERRED else None
    row.save(update_fields=["outcome", "detail", "subscription_id", "payload"])


def deferred_apply(*, subscription_id: str, checkout_event_id: str) -> int:
    """Apply the deferred events of a subscription whose license now exists, in
    Stripe's order, in the caller's transaction (the checkout's); returns how many."""
    waiting = list(
        StripeEvent.objects.select_for_update()
        .filter(outcome=EventOutcome.DEFERRED, subscription_id=subscription_id)
        .order_by("created", "received_at", "id")
    )
    for row in waiting:
        received = Received(
            event_id=row.event_id,
            type=row.type,
            created=row.created or row.received_at,
            obj=row.payload if isinstance(row.payload, dict) else {},
        )
        _record(row, _run(received), received, applied_with=checkout_event_id)
        logger.info(
            "stripe event applied after its checkout",
            extra={"event_id": row.event_id, "event_type": row.type, "outcome": row.outcome},
        )
    return len(waiting)


# --- reading Stripe's objects ---------------------------------------------------------------


def _id(value) -> str | None:
    """An id, whether Stripe sent it bare or expanded."""
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) and value else None


def _quantity(value) -> int:
    """Stripe's quantity: absent is 1; anything but a whole number of at
    least 1 is a ValueError (the event is recorded incomplete, nothing sold)."""
    if value is None or value == "":
        return 1
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"quantity {value!r} is not a whole number")
    quantity = int(value)  # a ValueError for "abc"
    if quantity < 1:
        raise ValueError(f"quantity {quantity} is less than 1")
    return quantity


def _first_item(subscription: dict) -> dict:
    items = ((subscription.get("items") or {}).get("data")) or []
    return items[0] if items else {}


def _period_end(subscription: dict) -> datetime | None:
    # On the subscription in older API versions, on its items since 2025-03-31.
    end = subscription.get("current_period_end") or _first_item(subscription).get("current_period_end")
    if not isinstance(end, int | float):
        return None
    return datetime.fromtimestamp(end, tz=UTC)


def _invoice_subscription(invoice: dict) -> str | None:
    # `subscription` in older API versions, `parent.subscription_details` since 2025-03-31.
    found = _id(invoice.get("subscription"))
    if found:
        return found
    parent = invoice.get("parent") or {}
    return _id((parent.get("subscription_details") or {}).get("subscription"))


def _checkout_price(session: dict) -> tuple[str | None, int]:
    metadata = session.get("metadata") or {}
    if metadata.get("price_id"):
        return str(metadata["price_id"]), _quantity(metadata.get("quantity"))
    items = stripe_api.checkout_line_items(session["id"])
    if not items:
        return None, 1
    price_id, quantity = items[0]
    return price_id, _quantity(quantity)


def _price(price_id: str | None) -> StripePrice | None:
    if not price_id:
        return None
    return StripePrice.objects.select_related("policy").filter(price_id=price_id).first()


def _license(link: StripeSubscription) -> License:
    with tenant_scope(link.tenant_id):
        return license_get(license_id=link.license_id)


# --- the flows --------------------------------------------------------------------------------

PAID = {"paid", "no_payment_required"}  # no_payment_required: a free trial


def checkout_completed(received: Received) -> Outcome:
    """`checkout.session.completed` and `checkout.session.async_payment_succeeded`
    (the same session, its delayed payment now paid)."""
    session = received.obj
    session_id, customer_id = _id(session.get("id")), _id(session.get("customer"))
    if not session_id or not customer_id:
        return Outcome(EventOutcome.INCOMPLETE, missing="customer")
    subscription_id = _id(session.get("subscription")) or f"checkout:{session_id}"
    status = session.get("payment_status", "paid")
    if status == "unpaid":
        if StripeSubscription.objects.filter(subscription_id=subscription_id).exists():
            # Its async_payment_succeeded came first and made the license.
            return Outcome(EventOutcome.IGNORED, subscription_id=subscription_id, already="linked")
        return Outcome(
            EventOutcome.AWAITING_PAYMENT,
            customer_id=customer_id,
            session_id=session_id,
            subscription_id=subscription_id,
        )
    if status not in PAID:
        return Outcome(EventOutcome.INCOMPLETE, customer_id=customer_id, error="payment_status")
    price_id, quantity = _checkout_price(session)
    price = _price(price_id)
    if price is None:
        return Outcome(EventOutcome.UNKNOWN_PRICE, price_id=price_id or "", customer_id=customer_id)
    details = session.get("customer_details") or {}
    email = (details.get("email") or session.get("customer_email") or "").strip().lower()
    try:
        if email:
            if len(email) > 254:  # the column's length (SQLite would not refuse it)
                raise DjangoValidationError("too long")
            validate_email(email)
    except DjangoValidationError:
        # No invite or claim link can go to it: the event is recorded, nothing made.
        return Outcome(
            EventOutcome.INCOMPLETE, customer_id=customer_id, error="customer email is not an address"
        )
    # Customer first, then subscription (every flow takes them in this order):
    # two first checkouts of one customer make one tenant, and an event of this
    # subscription deferred meanwhile is seen below.
    _lock("customer", customer_id)
    _lock("subscription", subscription_id)
    if StripeSubscription.objects.filter(subscription_id=subscription_id).exists():
        return Outcome(EventOutcome.IGNORED, subscription_id=subscription_id, already="linked")
    mapping = StripeCustomer.objects.select_for_update().filter(customer_id=customer_id).first()
    tenant, invite = None, None
    if mapping is not None:
        # A tenant deleted since (the provisioning API's soft delete) is gone
        # for Stripe too: the customer's next checkout makes a new one.
        with tenant_scope(mapping.tenant_id):
            tenant = Tenant.objects.filter(pk=mapping.tenant_id, deleted_at__isnull=True).first()
    made = False
    if tenant is None and email:
        # A buyer who already has an account (Stripe makes a new customer per
        # checkout unless the vendor passes one): the license goes to the
        # tenant they belong to, not to a new tenant whose invite to them
        # could never be accepted (an email is one account).
        tenant = _account_tenant(email)
    if tenant is None:
        name = (details.get("name") or email or customer_id).strip()[:200]
        tenant, made = tenant_create(name=name), True
    if mapping is None:
        StripeCustomer.objects.create(customer_id=customer_id, tenant_id=tenant.id)
    elif mapping.tenant_id != tenant.id:
        mapping.tenant_id = tenant.id
        mapping.save(update_fields=["tenant_id"])
    if made:
        if email and not user_sign_in_candidate_by_email_across_tenants(email=email):
            with tenant_scope(tenant.id):
                invite, _code = invite_create(
                    created_by=None, tenant=tenant, role=Role.TENANT_ADMIN, email=email
                )
    seats = _seats(quantity, price)
    # Paid: no trial end. It runs until the subscription ends (its period end).
    license, _key = license_create(
        tenant=tenant,
        policy=price.policy,
        max_seats=seats,
        name=f"Stripe {subscription_id}"[:200],
        trial=False,
    )
    StripeSubscription.objects.create(
        subscription_id=subscription_id,
        customer_id=customer_id,
        tenant_id=tenant.id,
        license_id=license.id,
        price_id=price.price_id,
        quantity=quantity,
    )
    with tenant_scope(tenant.id):
        audit_record(
            action=Event.BILLING_CHECKOUT_COMPLETED,
            tenant_id=tenant.id,
            actor=ACTOR,
            target=license,
            details={
                "event_id": received.event_id,
                "customer_id": customer_id,
                "subscription_id": subscription_id,
                "price_id": price.price_id,
                "quantity": quantity,
            },
        )
    if email:
        # The key goes out as a one-time claim link, never in the email itself.
        license_delivery_send(license=license, email=email, requested_by=ACTOR)
    # What came before the checkout, in Stripe's order. The subscription's state
    # times start unset here: the session's price and quantity date from when it
    # was opened, so an update made while a delayed payment settled still applies.
    applied = deferred_apply(subscription_id=subscription_id, checkout_event_id=received.event_id)
    return Outcome(
        EventOutcome.PROCESSED,
        tenant_id=tenant.id,
        license_id=license.id,
        invite_id=invite.id if invite else None,
        price_id=price.price_id,
        subscription_id=subscription_id,
        deferred_applied=applied or None,
    )


def _account_tenant(email: str) -> Tenant | None:
    """The live tenant of the account this email signs in to, if any."""
    candidate = user_sign_in_candidate_by_email_across_tenants(email=email)
    if candidate is None or candidate.tenant_id is None:
        return None
    with tenant_scope(candidate.tenant_id):
        return Tenant.objects.filter(pk=candidate.tenant_id, deleted_at__isnull=True).first()


def checkout_payment_failed(received: Received) -> Outcome:
    """`checkout.session.async_payment_failed`: recorded; nothing is made."""
    session = received.obj
    session_id = _id(session.get("id"))
    if not session_id:
        return Outcome(EventOutcome.INCOMPLETE, missing="id")
    return Outcome(
        EventOutcome.PAYMENT_FAILED,
        customer_id=_id(session.get("customer")),
        session_id=session_id,
        subscription_id=_id(session.get("subscription")) or f"checkout:{session_id}",
    )


def _link(subscription_id: str | None) -> StripeSubscription | None:
    if not subscription_id:
        return None
    _lock("subscription", subscription_id)
    return StripeSubscription.objects.select_for_update().filter(subscription_id=subscription_id).first()


def _deferred(subscription_id: str | None) -> Outcome:
    if not subscription_id:
        return Outcome(EventOutcome.UNKNOWN_SUBSCRIPTION, subscription_id="")
    return Outcome(EventOutcome.DEFERRED, subscription_id=subscription_id)


def _stale(link: StripeSubscription, field: str, received: Received) -> Outcome | None:
    """`stale` when its kind of event already applied a newer one; else the
    event's time becomes the last applied (the caller saves `field`)."""
    last = getattr(link, field)
    if last is not None and received.created < last:
        return Outcome(
            EventOutcome.STALE,
            subscription_id=link.subscription_id,
            license_id=link.license_id,
            newer_applied_at=last.isoformat(),
        )
    setattr(link, field, received.created)
    return None


def subscription_updated(received: Received) -> Outcome:
    subscription = received.obj
    subscription_id = _id(subscription.get("id"))
    link = _link(subscription_id)
    if link is None:
        return _deferred(subscription_id)
    stale = _stale(link, "subscription_event_at", received)
    if stale:
        return stale
    item = _first_item(subscription)
    price_id = _id(item.get("price")) or link.price_id
    price = _price(price_id)
    if price is None:
        return Outcome(EventOutcome.UNKNOWN_PRICE, price_id=price_id, subscription_id=subscription_id)
    quantity = _quantity(item.get("quantity", link.quantity))
    license = _license(link)
    # Fewer seats refuse new acquires beyond the number; live leases run on
    # (DESIGN.md invariant 6): license_update changes the row, never a lease.
    license.max_seats = _seats(quantity, price)
    fields = ["max_seats"]
    if license.policy_id != price.policy_id:
        # Another plan: the license grants that plan's whole catalog (what the
        # customer now pays for), not codes it named under the old one.
        license.policy_id, license.entitlements = price.policy_id, None
        fields += ["policy_id", "entitlements"]
    license = license_update(license=license, fields=fields, actor=None)
    link.price_id, link.quantity = price.price_id, quantity
    link.save(update_fields=["price_id", "quantity", "subscription_event_at", "updated_at"])
    return Outcome(
        EventOutcome.PROCESSED,
        license_id=link.license_id,
        seats=license.max_seats,
        price_id=price_id,
        subscription_id=subscription_id,
    )


def subscription_deleted(received: Received) -> Outcome:
    subscription = received.obj
    subscription_id = _id(subscription.get("id"))
    link = _link(subscription_id)
    if link is None:
        return _deferred(subscription_id)
    end = _period_end(subscription)
    if end is None:
        return Outcome(EventOutcome.INCOMPLETE, missing="current_period_end", license_id=link.license_id)
    stale = _stale(link, "subscription_event_at", received)
    if stale:
        return stale
    license = _license(link)
    if end > timezone.now():
        license_extend(license=license, expires_at=end)
    else:
        # The period is already over: the license ends now. An end in the
        # past is refused by license_extend (expiring now is suspension).
        # That suspension is the subscription's end, not a payment's: an old
        # invoice paid after it must not resume the license (invoice_paid
        # resumes only what the payment grace suspended).
        license_suspend(license=license, reason="stripe_subscription_ended")
        link.suspended_for_payment, link.payment_failed_at = False, None
    link.save(
        update_fields=["subscription_event_at", "suspended_for_payment", "payment_failed_at", "updated_at"]
    )
    return Outcome(
        EventOutcome.PROCESSED,
        license_id=link.license_id,
        expires_at=end.isoformat(),
        subscription_id=subscription_id,
    )


def invoice_payment_failed(received: Received) -> Outcome:
    subscription_id = _invoice_subscription(received.obj)
    link = _link(subscription_id)
    if link is None:
        return _deferred(subscription_id)
    stale = _stale(link, "invoice_event_at", received)
    if stale:
        return stale
    if link.payment_failed_at is None:
        link.payment_failed_at = timezone.now()
        suspend_after = link.payment_failed_at + timedelta(days=settings.STRIPE_PAYMENT_GRACE_DAYS)
        with tenant_scope(link.tenant_id):
            audit_record(
                action=Event.BILLING_PAYMENT_FAILED,
                tenant_id=link.tenant_id,
                actor=ACTOR,
                target_type="license",
                target_id=str(link.license_id),
                details={
                    "event_id": received.event_id,
                    "subscription_id": link.subscription_id,
                    "suspend_after": suspend_after.isoformat(),
                },
            )
    link.save(update_fields=["payment_failed_at", "invoice_event_at", "updated_at"])
    return Outcome(
        EventOutcome.PROCESSED,
        license_id=link.license_id,
        payment_failed_at=link.payment_failed_at.isoformat(),
        subscription_id=subscription_id,
    )


def invoice_paid(received: Received) -> Outcome:
    subscription_id = _invoice_subscription(received.obj)
    link = _link(subscription_id)
    if link is None:
        return _deferred(subscription_id)
    stale = _stale(link, "invoice_event_at", received)
    if stale:
        return stale
    if link.payment_failed_at is None and not link.suspended_for_payment:
        link.save(update_fields=["invoice_event_at", "updated_at"])
        return Outcome(EventOutcome.PROCESSED, license_id=link.license_id, subscription_id=subscription_id)
    resumed = link.suspended_for_payment
    if resumed:
        license_resume(license=_license(link))
    link.payment_failed_at, link.suspended_for_payment = None, False
    link.save(update_fields=["payment_failed_at", "suspended_for_payment", "invoice_event_at", "updated_at"])
    with tenant_scope(link.tenant_id):
        audit_record(
            action=Event.BILLING_PAYMENT_RECOVERED,
            tenant_id=link.tenant_id,
            actor=ACTOR,
            target_type="license",
            target_id=str(link.license_id),
            details={
                "event_id": received.event_id,
                "subscription_id": link.subscription_id,
                "resumed": resumed,
            },
        )
    return Outcome(
        EventOutcome.PROCESSED, license_id=link.license_id, resumed=resumed, subscription_id=subscription_id
    )


HANDLERS = {
    "checkout.session.completed": checkout_completed,
    "checkout.session.async_payment_succeeded": checkout_completed,
    "checkout.session.async_payment_failed": checkout_payment_failed,
    "customer.subscription.updated": subscription_updated,
    "customer.subscription.deleted": subscription_deleted,
    "invoice.payment_failed": invoice_payment_failed,
    "invoice.paid": invoice_paid,
}


# --- the grace sweep (periodic) -------------------------------------------------------------


def payment_grace_sweep(now: datetime | None = None) -> int:
    """Suspend each license whose failed payment's grace ran out; returns how many."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.STRIPE_PAYMENT_GRACE_DAYS)
    due = list(
        StripeSubscription.objects.filter(
            payment_failed_at__isnull=False, payment_failed_at__lte=cutoff, suspended_for_payment=False
        ).values_list("pk", flat=True)
    )
    suspended = 0
    for pk in due:
        with transaction.atomic():
            link = (
                StripeSubscription.objects.select_for_update()
                .filter(pk=pk, payment_failed_at__lte=cutoff, suspended_for_payment=False)
                .first()
            )
            if link is None:
                continue
            license = _license(link)
            if license.suspended:
                # Suspended already (by an operator): not ours to resume later.
                continue
            license_suspend(license=license, reason="stripe_payment_failed")
            link.suspended_for_payment = True
            link.save(update_fields=["suspended_for_payment", "updated_at"])
            suspended += 1
    return suspended
