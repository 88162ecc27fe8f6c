"""Every audit event the server writes, and the detail fields each carries.

Producers (`licenses`, `accounts`, the admin) write these names, consumers
(`analytics` rollups, dashboards, exports) read them back; both import them
from here, so a rename is one edit, and a name or detail field not declared
here is refused when it is written (`audit_record` checks), never silently
left for a rollup to miss.
"""

from __future__ import annotations

from enum import StrEnum


class Event(StrEnum):
    # Tenants and people
    TENANT_CREATED = "tenant.created"
    USER_REGISTERED = "user.registered"
    USER_IDENTITY_LINKED = "user.identity_linked"
    INVITE_CREATED = "invite.created"
    INVITE_REDEEMED = "invite.redeemed"
    INVITE_REVOKED = "invite.revoked"
    # The dashboard's People page (issue 16): an invite sent again with a new
    # code (the old one stops), a member's role changed, a member deactivated
    # and reactivated by a tenant admin.
    INVITE_RESENT = "invite.resent"
    USER_ROLE_CHANGED = "user.role_changed"
    USER_DEACTIVATED = "user.deactivated"
    USER_REACTIVATED = "user.reactivated"
    # Sign-in
    AUTH_LOGIN = "auth.login"
    AUTH_LOGIN_FAILED = "auth.login_failed"
    AUTH_REFRESH_REUSED = "auth.refresh_reused"
    AUTH_LOGOUT = "auth.logout"
    AUTH_PASSWORD_CHANGED = "auth.password_changed"
    # Every sign-in of a user (or of a tenant) ended at once: a password set
    # anew outside the API, a user or a tenant deactivated.
    AUTH_SIGN_INS_ENDED = "auth.sign_ins_ended"
    # An account's failed sign-ins reached the throttle (accounts.throttle); an operator lifted it.
    USER_LOGIN_THROTTLED = "user.login_throttled"
    USER_UNLOCKED = "user.unlocked"
    # Licenses
    LICENSE_CREATED = "license.created"
    LICENSE_UPDATED = "license.updated"
    LICENSE_SUSPENDED = "license.suspended"
    LICENSE_RESUMED = "license.resumed"
    LICENSE_EXTENDED = "license.extended"
    LICENSE_KEY_REGENERATED = "license.key_regenerated"
    LICENSE_MACHINE_BOUND = "license.machine_bound"
    LICENSE_MACHINE_UNBOUND = "license.machine_unbound"
    # A machine or a user blocked on a license by an operator, and unblocked.
    LICENSE_BLOCKED = "license.blocked"
    LICENSE_UNBLOCKED = "license.unblocked"
    # Seats
    LEASE_ACQUIRED = "lease.acquired"
    LEASE_DENIED = "lease.denied"
    LEASE_HEARTBEAT_REJECTED = "lease.heartbeat_rejected"
    LEASE_BORROWED = "lease.borrowed"
    # A borrow answered 503 after the Redis ledger made it (its durable copy
    # or its signature failed): the lease is back as it was before.
    LEASE_BORROW_UNDONE = "lease.borrow_undone"
    LEASE_RELEASED = "lease.released"
    LEASE_FORCE_RELEASED = "lease.force_released"
    LEASE_ENDED = "lease.ended"
    LEASE_EXPIRED = "lease.expired"
    # Live in a Redis ledger that lost its state (DESIGN.md invariant 9).
    LEASE_LOST = "lease.lost"
    # Floating-license rules (issue 17): a released seat's linger ran out with
    # nobody reclaiming it; a seat ended for its user's reported inactivity.
    LEASE_LINGER_ENDED = "lease.linger_ended"
    LEASE_IDLE_RELEASED = "lease.idle_released"
    # An acquire with no seat free for it took a place in the license's queue.
    LEASE_QUEUED = "lease.queued"
    # Provisioning API (issue 15): its API keys, a license deleted (soft), a tenant changed
    API_KEY_CREATED = "api_key.created"
    API_KEY_REVOKED = "api_key.revoked"
    LICENSE_DELETED = "license.deleted"
    TENANT_UPDATED = "tenant.updated"
    TENANT_SUSPENDED = "tenant.suspended"
    TENANT_RESUMED = "tenant.resumed"
    TENANT_DELETED = "tenant.deleted"
    # Email (issue 15): a license's key sent as a one-time claim link, the link
    # claimed; the notices sent to a tenant's admins; a password reset.
    LICENSE_DELIVERY_SENT = "license.delivery_sent"
    LICENSE_CLAIMED = "license.claimed"
    LICENSE_EXPIRING_SOON = "license.expiring_soon"
    LICENSE_SEATS_NEAR_LIMIT = "license.seats_near_limit"
    # Seats past max_seats granted (issue 17): at most once a UTC day per license.
    LICENSE_OVERDRAFT = "license.overdraft"
    # Named seats (issue 17): a tenant admin gave a user a seat, or took it back.
    LICENSE_SEAT_ASSIGNED = "license.seat_assigned"
    LICENSE_SEAT_UNASSIGNED = "license.seat_unassigned"
    # Group rules (reservations and limits) set by a tenant admin or an operator.
    LICENSE_SEAT_RULES_CHANGED = "license.seat_rules_changed"
    AUTH_PASSWORD_RESET_REQUESTED = "auth.password_reset_requested"
    AUTH_PASSWORD_RESET = "auth.password_reset"
    # The operator console
    ADMIN_ADDED = "admin.added"
    ADMIN_CHANGED = "admin.changed"
    ADMIN_DELETED = "admin.deleted"
    # Outbound webhooks (webhooks/): endpoints made, changed, removed, disabled
    # after repeated failure; a delivery sent again; a test ping. Never
    # delivered as webhooks themselves.
    WEBHOOK_ENDPOINT_CREATED = "webhook.endpoint_created"
    WEBHOOK_ENDPOINT_UPDATED = "webhook.endpoint_updated"
    WEBHOOK_ENDPOINT_DELETED = "webhook.endpoint_deleted"
    WEBHOOK_ENDPOINT_DISABLED = "webhook.endpoint_disabled"
    WEBHOOK_REDELIVERED = "webhook.redelivered"
    WEBHOOK_PINGED = "webhook.pinged"
    # Stripe (billing/): a checkout that made a license, a failed payment (its
    # grace's end: the license is suspended then), a paid invoice after one.
    BILLING_CHECKOUT_COMPLETED = "billing.checkout_completed"
    BILLING_PAYMENT_FAILED = "billing.payment_failed"
    BILLING_PAYMENT_RECOVERED = "billing.payment_recovered"
    # Monthly usage reports (analytics.report_services): one license's month
    # emailed to the tenant's admins, the CSV attached.
    REPORT_EMAILED = "report.emailed"


class Detail(StrEnum):
    """Detail fields that a consumer reads back (names shared by several events)."""

    SESSION_ID = "session_id"
    FINGERPRINT = "fingerprint"
    USER_ID = "user_id"
    ACQUIRED_AT = "acquired_at"
    EXPIRED_AT = "expired_at"
    CREATED = "created"
    OVERDRAFT = "overdraft"
    CODE = "code"
    REASON = "reason"
    HOURS = "hours"
    UNTIL = "until"
    METHOD = "method"
    FAMILY_ID = "family_id"
    REVOKED = "revoked"
    ROLE = "role"
    # Events the Redis ledger keeps with its change until the drainer records
    # them (docs/architecture.md): the event's id, so a second drain skips it,
    # and when the change happened on the ledger's clock (the row is written later).
    EVENT_ID = "event_id"
    OCCURRED_AT = "occurred_at"
    # The channels a notice to a tenant's admins went out on ("email",
    # "webhook"): the webhooks' outbox sends none whose channels leave it out.
    CHANNELS = "channels"


D = Detail

# What ends a lease, with who held it and since when (usage rollups need no other row).
# `overdraft` only when true: the lease was one of the overdraft seats (issue 17).
LEASE_END_FIELDS = frozenset({D.SESSION_ID, D.FINGERPRINT, D.USER_ID, D.ACQUIRED_AT, D.OVERDRAFT})
# What an event drained from the ledger's own record carries besides its fields.
LEDGER_EVENT_FIELDS = frozenset({D.EVENT_ID, D.OCCURRED_AT})

# Events that end a lease: each carries LEASE_END_FIELDS.
LEASE_ENDING_EVENTS = (
    Event.LEASE_RELEASED,
    Event.LEASE_FORCE_RELEASED,
    Event.LEASE_ENDED,
    Event.LEASE_EXPIRED,
    Event.LEASE_LOST,
    Event.LEASE_IDLE_RELEASED,
)

# Each event's detail fields: the ones it may carry. Writing another is refused.
DETAIL_FIELDS: dict[str, frozenset[str]] = {
    Event.TENANT_CREATED: frozenset(),
    Event.USER_REGISTERED: frozenset({D.METHOD, D.ROLE, "invite_id"}),
    Event.USER_IDENTITY_LINKED: frozenset({"provider"}),
    Event.INVITE_CREATED: frozenset({D.ROLE, "email", "expires_at"}),
    Event.INVITE_REDEEMED: frozenset(),
    Event.INVITE_REVOKED: frozenset(),
    # People (issue 16): a role change carries `role` as {"from": old, "to": new}.
    Event.INVITE_RESENT: frozenset({"email", "expires_at"}),
    Event.USER_ROLE_CHANGED: frozenset({D.ROLE}),
    Event.USER_DEACTIVATED: frozenset(),
    Event.USER_REACTIVATED: frozenset(),
    Event.AUTH_LOGIN: frozenset({D.METHOD, D.FAMILY_ID}),
    Event.AUTH_LOGIN_FAILED: frozenset({D.REASON, D.METHOD}),
    Event.AUTH_REFRESH_REUSED: frozenset({D.FAMILY_ID, D.REVOKED}),
    Event.AUTH_LOGOUT: frozenset({D.FAMILY_ID, D.REVOKED}),
    Event.AUTH_PASSWORD_CHANGED: frozenset({D.FAMILY_ID}),
    Event.AUTH_SIGN_INS_ENDED: frozenset({D.REASON, D.REVOKED}),
    Event.USER_LOGIN_THROTTLED: frozenset({"failures", "retry_after", D.METHOD}),
    Event.USER_UNLOCKED: frozenset({"failures", "via"}),
    Event.LICENSE_CREATED: frozenset({"key_prefix", "max_seats", "policy"}),
    Event.LICENSE_UPDATED: frozenset({"changes"}),
    Event.LICENSE_SUSPENDED: frozenset({D.REASON}),
    Event.LICENSE_RESUMED: frozenset(),
    # how: extended (by `days`), set (to a date) or perpetual.
    Event.LICENSE_EXTENDED: frozenset({"from", "to", "how", "days"}),
    Event.LICENSE_KEY_REGENERATED: frozenset({"previous_prefix", "key_prefix"}),
    Event.LICENSE_MACHINE_BOUND: frozenset({D.FINGERPRINT}),
    # via: "dashboard" for a tenant admin's own unbind (counted against the monthly cap).
    Event.LICENSE_MACHINE_UNBOUND: frozenset({D.FINGERPRINT, "via"}),
    # kind: machine (value a fingerprint) or user (value a user id).
    Event.LICENSE_BLOCKED: frozenset({"kind", "value", D.REASON}),
    Event.LICENSE_UNBLOCKED: frozenset({"kind", "value", D.REASON}),
    # overdraft, reclaimed: only when true (a seat past max_seats; the seat of
    # the holder's lingering lease); group: the group rule it counts under;
    # ticket_id, waited_seconds: granted to a queued ticket, after that wait.
    Event.LEASE_ACQUIRED: frozenset(
        {
            D.SESSION_ID,
            D.FINGERPRINT,
            D.CREATED,
            D.OVERDRAFT,
            "reclaimed",
            "group",
            "ticket_id",
            "waited_seconds",
        }
    ),
    Event.LEASE_QUEUED: frozenset({D.FINGERPRINT, "ticket_id", "position", "group"}),
    Event.LEASE_DENIED: frozenset({D.CODE, D.FINGERPRINT}),
    Event.LEASE_HEARTBEAT_REJECTED: frozenset({D.SESSION_ID, D.FINGERPRINT}) | LEDGER_EVENT_FIELDS,
    Event.LEASE_BORROWED: frozenset({D.SESSION_ID, D.HOURS, D.UNTIL}) | LEDGER_EVENT_FIELDS,
    # linger_until: the seat stays its holder's until then (the policy's linger).
    Event.LEASE_RELEASED: LEASE_END_FIELDS | {"linger_until"} | LEDGER_EVENT_FIELDS,
    Event.LEASE_BORROW_UNDONE: frozenset({D.SESSION_ID, D.REASON, D.UNTIL}) | LEDGER_EVENT_FIELDS,
    Event.LEASE_FORCE_RELEASED: LEASE_END_FIELDS | LEDGER_EVENT_FIELDS,
    Event.LEASE_ENDED: LEASE_END_FIELDS | {D.REASON} | LEDGER_EVENT_FIELDS,
    Event.LEASE_EXPIRED: LEASE_END_FIELDS | {D.EXPIRED_AT},
    Event.LEASE_LOST: LEASE_END_FIELDS,
    Event.LEASE_LINGER_ENDED: LEASE_END_FIELDS | {D.EXPIRED_AT},
    Event.LEASE_IDLE_RELEASED: LEASE_END_FIELDS | {"idle_seconds", "idle_timeout"} | LEDGER_EVENT_FIELDS,
    # Provisioning API (issue 15). scope: operator (an operator-wide key) or tenant.
    Event.API_KEY_CREATED: frozenset({"key_prefix", "name", "scope"}),
    Event.API_KEY_REVOKED: frozenset({"key_prefix", "name", "scope"}),
    Event.LICENSE_DELETED: frozenset({"key_prefix"}),
    Event.TENANT_UPDATED: frozenset({"changes"}),
    Event.TENANT_SUSPENDED: frozenset(),
    Event.TENANT_RESUMED: frozenset(),
    Event.TENANT_DELETED: frozenset({"licenses"}),
    # Email (issue 15). `claim_id` names the LicenseClaim; no key or token is ever a detail.
    Event.LICENSE_DELIVERY_SENT: frozenset({"email", "claim_id", "expires_at", "via"}),
    Event.LICENSE_CLAIMED: frozenset({"claim_id", "key_prefix"}),
    Event.LICENSE_EXPIRING_SOON: frozenset({"days", "expires_at", "recipients", D.CHANNELS}),
    Event.LICENSE_SEATS_NEAR_LIMIT: frozenset({"used", "max", "recipients", D.CHANNELS}),
    Event.LICENSE_OVERDRAFT: frozenset({"used", "max", D.OVERDRAFT, "recipients", D.CHANNELS}),
    Event.LICENSE_SEAT_ASSIGNED: frozenset({D.USER_ID, "email"}),
    Event.LICENSE_SEAT_UNASSIGNED: frozenset({D.USER_ID, "email"}),
    # groups: the rules' names after the change.
    Event.LICENSE_SEAT_RULES_CHANGED: frozenset({"groups"}),
    Event.AUTH_PASSWORD_RESET_REQUESTED: frozenset(),
    Event.AUTH_PASSWORD_RESET: frozenset(),
    Event.ADMIN_ADDED: frozenset({"object", "change"}),
    Event.ADMIN_CHANGED: frozenset({"object", "change"}),
    Event.ADMIN_DELETED: frozenset({"object", "change"}),
    # Outbound webhooks: `url` and `event_types` as set; `changes` names the fields changed.
    Event.WEBHOOK_ENDPOINT_CREATED: frozenset({"url", "event_types"}),
    Event.WEBHOOK_ENDPOINT_UPDATED: frozenset({"changes"}),
    Event.WEBHOOK_ENDPOINT_DELETED: frozenset({"url"}),
    Event.WEBHOOK_ENDPOINT_DISABLED: frozenset({D.REASON, "failures"}),
    Event.WEBHOOK_REDELIVERED: frozenset({"delivery_id", "message_id"}),
    Event.WEBHOOK_PINGED: frozenset({"message_id"}),
    # Stripe: `event_id` is Stripe's event (evt_…); `resumed`: the paid invoice resumed the license.
    Event.BILLING_CHECKOUT_COMPLETED: frozenset(
        {D.EVENT_ID, "customer_id", "subscription_id", "price_id", "quantity"}
    ),
    Event.BILLING_PAYMENT_FAILED: frozenset({D.EVENT_ID, "subscription_id", "suspend_after"}),
    Event.BILLING_PAYMENT_RECOVERED: frozenset({D.EVENT_ID, "subscription_id", "resumed"}),
    # `month`: YYYY-MM; `report_id`: the MonthlyReport; `recipients`: how many admins.
    Event.REPORT_EMAILED: frozenset({"month", "report_id", "recipients"}),
}


def event_check(action: str, details: dict) -> None:
    """ValueError for an event name or a detail field not declared above."""
    fields = DETAIL_FIELDS.get(action)
    if fields is None:
        raise ValueError(f"audit event {action!r} is not named in audit/events.py")
    unknown = set(details) - fields
    if unknown:
        raise ValueError(f"audit event {action!r} carries undeclared detail fields {sorted(unknown)}")
