from __future__ import annotations

import re
import uuid

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from tenants.models import TenantOwnedModel

# The most seats one license sells (the provisioning API, Stripe).
MAX_SEATS = 1_000_000
# The longest trial or grace a policy gives (a century; past it a date overflows).
MAX_POLICY_DAYS = 36_500
# Bounds of the floating-license rules: an overdraft is a few seats, not a
# second license; a linger or an idle timeout of more than a day is no longer either.
MAX_OVERDRAFT_SEATS = 100_000
MAX_LINGER_SECONDS = 86_400
MAX_IDLE_TIMEOUT = 7 * 86_400
# The queue: tickets waiting on one license at once, and how long an unpolled
# ticket keeps its place.
MAX_QUEUE_TICKETS = 10_000
MAX_QUEUE_TICKET_TTL = 600


class SeatMode(models.TextChoices):
    # A seat per user and machine (a user on two machines holds two).
    PER_MACHINE = "per_machine", "Per machine"
    # A seat per user, whatever the number of their machines (up to machines_per_user).
    PER_USER = "per_user", "Per user"
    # Seats assigned to named users by the tenant admin; only they acquire.
    NAMED = "named", "Named users"


# What a client may send as its machine's fingerprint (a client-side hash).
FINGERPRINT = re.compile(r"^[A-Za-z0-9._:+/=-]{8,128}$")


def default_lease_ttl() -> int:
    return settings.LICENSE_DEFAULT_LEASE_TTL


def default_offline_grace() -> int:
    return settings.LICENSE_DEFAULT_OFFLINE_GRACE


def default_borrow_limit_hours() -> int:
    return settings.LICENSE_DEFAULT_BORROW_LIMIT_HOURS


# --- Products and policies (issue 15) ---------------------------------------------
# Global, not tenant-owned: the operator (the vendor running this server) sells
# the same editions to every tenant, and a policy is the vendor's template a
# license is made from. A tenant's own deal is a license's overrides. Neither
# table holds tenant data, so neither is under RLS; the app role reads them
# (a license's effective terms need its policy on every acquire).

DEFAULT_PRODUCT_SLUG = "coditect"
DEFAULT_POLICY_SLUG = "default"


class Product(models.Model):
    """A CODITECT edition the operator sells."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=80, unique=True)
    description = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "license_products"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Policy(models.Model):
    """The template a license is made from (licenses/terms.py reads a license's
    effective values from it and the license's overrides).

    `entitlements` is the catalog: {code: name}. A license grants every code of
    it unless it names its own (codes of this catalog)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="policies")
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=80, unique=True)
    seats = models.PositiveIntegerField(
        default=1, validators=[MinValueValidator(1)], help_text="Seats of a license made without a number."
    )
    lease_ttl = models.PositiveIntegerField(
        default=default_lease_ttl,
        validators=[MinValueValidator(1)],
        help_text="Seconds a seat lives without a heartbeat.",
    )
    offline_grace = models.PositiveIntegerField(
        default=default_offline_grace,
        validators=[MinValueValidator(1)],
        help_text="Seconds a license token stays valid offline.",
    )
    borrow_limit_hours = models.PositiveIntegerField(
        default=default_borrow_limit_hours, help_text="0: no borrowing."
    )
    max_machines = models.PositiveIntegerField(null=True, blank=True, help_text="Empty: no machine limit.")
    max_unbinds_per_month = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Machines a tenant admin may unbind from one license per calendar month (UTC), on the "
        "dashboard. Empty: no cap; 0: tenant admins may not unbind. Operators are never capped.",
    )
    # Floating-license rules (issue 17; docs/contract.md "Floating seats").
    overdraft_seats = models.PositiveIntegerField(
        default=0,
        validators=[MaxValueValidator(MAX_OVERDRAFT_SEATS)],
        help_text="Seats granted past the license's seats, marked as overdraft for true-up (0: none).",
    )
    linger_seconds = models.PositiveIntegerField(
        default=0,
        validators=[MaxValueValidator(MAX_LINGER_SECONDS)],
        help_text="Seconds a released seat stays held for the same user and machine (0: none).",
    )
    idle_timeout = models.PositiveIntegerField(
        default=0,
        validators=[MaxValueValidator(MAX_IDLE_TIMEOUT)],
        help_text="Seconds of reported user inactivity after which a seat is ended (0: never).",
    )
    borrow_max_seats = models.PositiveIntegerField(
        null=True, blank=True, help_text="Seats of one license out on borrow at once. Empty: no limit."
    )
    seat_mode = models.CharField(
        max_length=16,
        choices=SeatMode.choices,
        default=SeatMode.PER_MACHINE,
        help_text="What a seat is: one per user and machine, one per user, or one per named user.",
    )
    machines_per_user = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="Per user and named seats: machines one user may hold leases on at once. Empty: any.",
    )
    reassign_cooldown_hours = models.PositiveIntegerField(
        default=24,
        validators=[MaxValueValidator(24 * 365)],
        help_text="Named seats: hours a seat taken from a user stays unassignable (0: none).",
    )
    borrow_max_per_user = models.PositiveIntegerField(
        null=True, blank=True, help_text="Seats one user may have out on borrow at once. Empty: no limit."
    )
    queue_max_tickets = models.PositiveIntegerField(
        default=0,
        validators=[MaxValueValidator(MAX_QUEUE_TICKETS)],
        help_text="Acquires that may wait in the license's queue for a seat at once (0: no queue).",
    )
    queue_ticket_ttl = models.PositiveIntegerField(
        default=60,
        validators=[MinValueValidator(5), MaxValueValidator(MAX_QUEUE_TICKET_TTL)],
        help_text="Seconds a queue ticket keeps its place without a poll.",
    )
    trial_days = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_POLICY_DAYS)],
        help_text="A trial: licenses made from it expire this many days after creation. Empty: no trial.",
    )
    expiry_grace_days = models.PositiveIntegerField(
        default=0,
        validators=[MaxValueValidator(MAX_POLICY_DAYS)],
        help_text="Days after expiry during which acquire still succeeds (0: none).",
    )
    maintenance_end = models.DateField(
        null=True,
        blank=True,
        help_text="Application releases after this day are refused by the SDK. Empty: no end.",
    )
    max_version = models.CharField(
        max_length=40,
        blank=True,
        default="",
        help_text="The newest application version covered (dotted numbers, e.g. 2.4). Empty: any.",
    )
    entitlements = models.JSONField(default=dict, blank=True, help_text='The catalog: {"code": "Name", ...}.')
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "license_policies"
        ordering = ["name"]
        verbose_name_plural = "policies"
        constraints = [
            models.CheckConstraint(condition=models.Q(seats__gte=1), name="license_policies_seats_positive")
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        from licenses.terms import catalog_error, version_error

        errors = {}
        if error := catalog_error(self.entitlements):
            errors["entitlements"] = error
        if self.max_version and (error := version_error(self.max_version)):
            errors["max_version"] = error
        if "entitlements" not in errors and (named := self._removed_codes_still_named()):
            errors["entitlements"] = (
                f"Licenses of this policy name {', '.join(named)}: take the code off them (or move them "
                "to another policy) before it leaves the catalog."
            )
        if errors:
            raise ValidationError(errors)

    def _removed_codes_still_named(self) -> list[str]:
        """Codes this change takes out of the catalog that a live license of
        the policy still names: a license's entitlements stay codes of its
        policy's catalog (the console runs on the operator path, which sees
        every tenant's licenses)."""
        if self._state.adding:
            return []
        before = type(self).objects.filter(pk=self.pk).values_list("entitlements", flat=True).first() or {}
        removed = sorted(set(before) - set(self.entitlements or {}))
        licenses = self.licenses.model.unscoped.filter(policy_id=self.pk, deleted_at__isnull=True)
        return [code for code in removed if licenses.filter(entitlements__has_key=code).exists()]

    @classmethod
    def default(cls) -> Policy:
        """The policy a license made without one points to (the data migration
        made it; made again here should a test's flush have taken it)."""
        policy = cls.objects.filter(slug=DEFAULT_POLICY_SLUG).first()
        if policy is None:
            product, _ = Product.objects.get_or_create(
                slug=DEFAULT_PRODUCT_SLUG, defaults={"name": "CODITECT"}
            )
            policy, _ = cls.objects.get_or_create(
                slug=DEFAULT_POLICY_SLUG, defaults={"name": "Default", "product": product}
            )
        return policy


# The most days before its expiry a license's admins may ask to be told.
NOTIFY_EXPIRY_DAYS_MAX = 365
# The notice fields a tenant admin sets (licenses.services.license_notifications_set).
NOTIFICATION_FIELDS = (
    "notify_seats",
    "notify_seats_percent",
    "notify_expiry",
    "notify_expiry_days",
    "notify_email",
    "notify_webhook",
)


class License(TenantOwnedModel):
    """A pool of floating seats for one tenant.

    Fingerprints: with `max_machines` unset, a non-empty
    `hardware_fingerprints` node-locks the license to exactly those machines;
    with `max_machines` set, new machines are bound into the list until it
    holds that many, and the next is refused. An empty list and no limit lets
    any machine in.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200, blank=True, default="")
    # The template; the fields below that may be empty are its overrides
    # (empty: the policy's value). licenses/terms.py gives the effective ones.
    policy = models.ForeignKey(Policy, on_delete=models.PROTECT, related_name="licenses")
    # The SHA-256 hex digest of the key (column name from the seed schema).
    key_digest = models.CharField(max_length=64, unique=True, db_column="license_key", editable=False)
    key_prefix = models.CharField(max_length=16, editable=False)
    max_seats = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Empty: perpetual.")
    hardware_fingerprints = models.JSONField(default=list, blank=True)
    max_machines = models.PositiveIntegerField(
        null=True, blank=True, help_text="Empty: the policy's (whose empty is no limit)."
    )
    max_unbinds_per_month = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Machines a tenant admin may unbind per calendar month (UTC); 0: none. "
        "Empty: the policy's (whose empty is no cap).",
    )
    # Codes of the policy's catalog, as {code: true}; empty (None): every code
    # of the catalog. Licenses older than policies keep their own JSON here.
    entitlements = models.JSONField(null=True, blank=True, default=None)
    suspended = models.BooleanField(default=False)
    # Machines and users an operator has blocked on this license, each
    # {"kind": "machine"|"user", "value", "reason", "by", "at", "sessions"}
    # (`sessions`: the leases the block ended when it was made): kept on the
    # row so the per-process license cache carries them to the heartbeat path.
    blocks = models.JSONField(default=list, blank=True)
    lease_ttl = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="Seconds a seat lives without a heartbeat. Empty: the policy's.",
    )
    offline_grace = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="Seconds a license token stays valid offline. Empty: the policy's.",
    )
    borrow_limit_hours = models.PositiveIntegerField(
        null=True, blank=True, help_text="0: no borrowing. Empty: the policy's."
    )
    overdraft_seats = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MaxValueValidator(MAX_OVERDRAFT_SEATS)],
        help_text="Seats granted past max seats, marked as overdraft (0: none). Empty: the policy's.",
    )
    linger_seconds = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MaxValueValidator(MAX_LINGER_SECONDS)],
        help_text="Seconds a released seat stays held for its user and machine. Empty: the policy's.",
    )
    idle_timeout = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MaxValueValidator(MAX_IDLE_TIMEOUT)],
        help_text="Seconds of reported inactivity that end a seat (0: never). Empty: the policy's.",
    )
    borrow_max_seats = models.PositiveIntegerField(
        null=True, blank=True, help_text="Seats out on borrow at once. Empty: the policy's (no limit)."
    )
    seat_mode = models.CharField(
        max_length=16, choices=SeatMode.choices, blank=True, default="", help_text="Empty: the policy's."
    )
    machines_per_user = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="Machines one user may hold leases on at once. Empty: the policy's.",
    )
    # Named seats: the users a tenant admin gave one, each {"user_id", "email",
    # "by", "at"}, and the seats taken back within the cooldown, each
    # {"user_id", "email", "by", "at"}: on the row, as blocks are, so the
    # per-process license cache carries them to the heartbeat path.
    assignments = models.JSONField(default=list, blank=True, editable=False)
    unassigned = models.JSONField(default=list, blank=True, editable=False)
    borrow_max_per_user = models.PositiveIntegerField(
        null=True, blank=True, help_text="Seats one user may borrow at once. Empty: the policy's (no limit)."
    )
    queue_max_tickets = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MaxValueValidator(MAX_QUEUE_TICKETS)],
        help_text="Acquires that may wait for a seat at once (0: no queue). Empty: the policy's.",
    )
    queue_ticket_ttl = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(5), MaxValueValidator(MAX_QUEUE_TICKET_TTL)],
        help_text="Seconds a queue ticket keeps its place without a poll. Empty: the policy's.",
    )
    # Group rules (reservations and limits), the tenant admin's: each
    # {"name", "users": [user ids], "machines": [fingerprints], "reserve",
    # "max", "priority"} (licenses.seat_rules); on the row, so the license
    # cache carries them to acquire.
    seat_rules = models.JSONField(default=list, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Provisioning API (issue 15): a deleted license is suspended and gone from
    # every list and lookup by key (acquire answers license_not_found); the row
    # and its audit trail stay (licenses.services.license_delete).
    deleted_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Policies (issue 15, h-policy): the `policy` foreign key goes here.
    # The notices its tenant's admins get (licenses.delivery), as a tenant admin
    # set them on the dashboard: each on or off, its threshold (empty: the
    # server's EMAIL_SEATS_NEAR_LIMIT_SHARE, EMAIL_EXPIRY_NOTICE_DAYS), and the
    # channels (email to the tenant's admins; the tenant's webhook endpoints
    # that subscribe to the notice's event). On the row, not beside it: acquire
    # reads the threshold from the license it already holds, with no query.
    notify_seats = models.BooleanField(default=True, help_text="Tell the admins when seats run short.")
    notify_seats_percent = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(100)],
        help_text="Percent of the seats in use that is near the limit. Empty: the server's default.",
    )
    notify_expiry = models.BooleanField(default=True, help_text="Tell the admins before the license expires.")
    notify_expiry_days = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(NOTIFY_EXPIRY_DAYS_MAX)],
        help_text="Days before the expiry to tell them. Empty: the server's default days.",
    )
    notify_email = models.BooleanField(default=True, help_text="Notices go by email to the tenant's admins.")
    notify_webhook = models.BooleanField(
        default=True, help_text="Notices go to the tenant's webhook endpoints that subscribe to them."
    )

    class Meta:
        db_table = "licenses"
        ordering = ["created_at"]
        constraints = [
            models.CheckConstraint(condition=models.Q(max_seats__gte=1), name="licenses_max_seats_positive")
        ]

    def __str__(self) -> str:
        # Pages say "License …" before it: an unnamed one is its key prefix alone.
        return f"{self.name} {self.key_prefix}…" if self.name else f"{self.key_prefix}…"

    def save(self, *args, **kwargs):
        if self.policy_id is None:
            self.policy = Policy.default()
        self.__dict__.pop("_frozen_terms", None)
        super().save(*args, **kwargs)

    @property
    def terms(self):
        """The effective values (licenses.terms.license_terms), worked out
        again at each read unless frozen (`terms_freeze`)."""
        frozen = self.__dict__.get("_frozen_terms")
        if frozen is not None:
            return frozen
        from licenses.terms import license_terms

        return license_terms(self)

    def terms_freeze(self) -> License:
        """Work the terms out once for the rest of this instance's life (a
        request's copy of the row, or the per-process cache's): they are read
        several times on the hot paths. Saving the row thaws them."""
        from licenses.terms import license_terms

        self.__dict__["_frozen_terms"] = license_terms(self)
        return self

    @property
    def heartbeat_interval(self) -> int:
        return self.terms.heartbeat_interval

    def is_expired(self, now=None) -> bool:
        """Past its end and past the policy's grace after it: it may hold no seat."""
        return self.terms.is_expired(now)

    def in_grace(self, now=None) -> bool:
        """Past its end, inside the grace period: acquire still succeeds."""
        return self.terms.in_grace(now)

    def block_of(self, kind: str, value: str | None) -> dict | None:
        """The block on this machine (kind "machine", a fingerprint) or user
        (kind "user", a user id), or None."""
        if not value:
            return None
        for block in self.blocks or ():
            if block.get("kind") == kind and block.get("value") == str(value):
                return block
        return None

    def assignment_of(self, user_id) -> dict | None:
        """The named seat of this user, or None."""
        for assignment in self.assignments or ():
            if assignment.get("user_id") == str(user_id):
                return assignment
        return None

    def block_ending(self, session_id: str) -> dict | None:
        """The block that ended this session when it was made, or None."""
        for block in self.blocks or ():
            if session_id in (block.get("sessions") or ()):
                return block
        return None


class Lease(TenantOwnedModel):
    """One seat of the database seat ledger (licenses/ledger/database.py).

    Live while `expires_at` is ahead of the database's clock. A released lease
    is deleted; an expired one stays until the expiry sweep has recorded it
    and acknowledged it (invariant 8). Seats are counted from these rows under
    a lock on the license row, never kept in a counter. At most one live row
    per (license, user, fingerprint), by the same lock: expired rows of that
    holder may wait beside it for the sweep, so no unique constraint can say it.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Not indexed alone: the (license, expires_at) index leads with it.
    license = models.ForeignKey(License, on_delete=models.CASCADE, related_name="leases", db_index=False)
    session_id = models.CharField(max_length=64, unique=True)
    fingerprint = models.CharField(max_length=255)
    # The ledger's user reference, as the API hands it over (the user's id).
    user_id = models.CharField(max_length=64, null=True, blank=True)
    client_info = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    borrowed_until = models.DateTimeField(null=True, blank=True)
    # Granted beyond max_seats, out of the license's overdraft seats (issue 17).
    overdraft = models.BooleanField(default=False)
    # When its holder released it, keeping the seat for them until expires_at
    # (the policy's linger); None for a lease in use.
    lingering_since = models.DateTimeField(null=True, blank=True)
    # The group rule it was granted under ('' for none), counted against it.
    seat_group = models.CharField(max_length=64, blank=True, default="")
    # An expired lease handed to a sweeper is hidden from other sweepers until
    # then; if that sweeper dies before acknowledging, the next one takes it.
    sweep_claimed_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "license_leases"
        ordering = ["created_at"]
        indexes = [
            models.Index(fields=["license", "expires_at"], name="license_leases_expiry"),
            # A lease is held by one user on one machine (invariant 10): acquire
            # looks up the live lease of this (license, fingerprint, user).
            models.Index(fields=["license", "fingerprint", "user_id"], name="license_leases_holder"),
            # Status pages leases in creation order (keyset, ledger.live_leases_page):
            # every lease of a license, or one user's, from a cursor, in O(page).
            models.Index(fields=["license", "created_at", "session_id"], name="license_leases_page"),
            models.Index(
                fields=["license", "user_id", "created_at", "session_id"], name="license_leases_user_page"
            ),
        ]

    def __str__(self) -> str:
        return f"Lease {self.session_id[:8]}… of {self.license_id}"


class BorrowedLease(TenantOwnedModel):
    """PostgreSQL's copy of a seat borrowed on the Redis ledger (DESIGN.md
    invariant 9), so a Redis that restarts empty, fails over or evicts gets it
    back before it grants another seat (licenses/ledger/borrowed.py).

    Written with the borrow, deleted with the release; a row whose
    `borrowed_until` has passed is ended and is never restored (the next
    borrow of the license deletes it). The database ledger keeps its borrows
    in `license_leases` already and writes none of these.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Not indexed alone: the (license, borrowed_until) index leads with it.
    license = models.ForeignKey(
        License, on_delete=models.CASCADE, related_name="borrowed_leases", db_index=False
    )
    session_id = models.CharField(max_length=64, unique=True)
    fingerprint = models.CharField(max_length=255)
    user_id = models.CharField(max_length=64, null=True, blank=True)
    client_info = models.JSONField(default=dict, blank=True)
    # The lease's own start and the borrow's end, on the Redis clock.
    created_at = models.DateTimeField()
    borrowed_until = models.DateTimeField()
    overdraft = models.BooleanField(default=False)
    seat_group = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        db_table = "licenses_borrowed_leases"
        ordering = ["created_at"]
        indexes = [
            models.Index(fields=["license", "borrowed_until"], name="licenses_borrowed_until"),
        ]

    def __str__(self) -> str:
        return f"Borrowed lease {self.session_id[:8]}… of {self.license_id}"


class LeaseTicket(TenantOwnedModel):
    """A place in a license's queue on the database seat ledger: one holder
    (user and machine) waiting for a seat, in order of `priority` (higher
    first), then arrival (`seq`). Gone when its holder gets a seat, or past
    `expires_at` (moved on by each poll), under the license row's lock."""

    id = models.BigAutoField(primary_key=True)
    license = models.ForeignKey(License, on_delete=models.CASCADE, related_name="tickets", db_index=False)
    ticket_id = models.CharField(max_length=64, unique=True)
    fingerprint = models.CharField(max_length=255)
    user_id = models.CharField(max_length=64, null=True, blank=True)
    seat_group = models.CharField(max_length=64, blank=True, default="")
    priority = models.IntegerField(default=0)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()

    class Meta:
        db_table = "license_lease_tickets"
        indexes = [models.Index(fields=["license", "priority", "id"], name="license_tickets_order")]

    def __str__(self) -> str:
        return f"Ticket {self.ticket_id[:8]}… of {self.license_id}"


class ConsoleNonce(models.Model):
    """A one-time token carried by a confirming form of the operator console
    (regenerate a key, extend, suspend, add a license, a bulk action...): the
    first POST that carries it takes it, under a row lock, and acts; a second
    POST with the same token (a double click) acts on nothing and lands where
    the first one did (`result`). Not tenant-owned: the admin site writes it
    on the operator path. The table keeps the token's SHA-256, not the token."""

    digest = models.CharField(primary_key=True, max_length=64)
    user_id = models.UUIDField()
    action = models.CharField(max_length=40)
    license_id = models.UUIDField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    used_at = models.DateTimeField(null=True, blank=True)
    # Where a second POST with the token goes (a URL of the console), if anywhere.
    result = models.CharField(max_length=300, blank=True, default="")

    class Meta:
        db_table = "licenses_console_nonce"

    def __str__(self) -> str:
        return f"{self.action} token ({'used' if self.used_at else 'unused'})"


# --- Provisioning API (issue 15) ------------------------------------------------------


class IdempotencyRecord(models.Model):
    """The answer of a create sent with an `Idempotency-Key` header, kept a day
    (licenses/idempotency.py): the same key and body again answer the same,
    another body under the key is refused. Keyed per API key (or per user, for
    an access token). Not tenant-owned (an operator-wide key's creates have no
    tenant until they make one); the answer, which holds the new license key,
    is sealed under a key derived from the caller's own API key, so the table
    alone cannot disclose it."""

    id = models.BigAutoField(primary_key=True)
    # Who sent it: an API key's id (or a user's), never a secret.
    caller_id = models.UUIDField()
    key = models.CharField(max_length=255)
    request_digest = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    sealed_answer = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        db_table = "licenses_idempotency_records"
        constraints = [
            models.UniqueConstraint(fields=["caller_id", "key"], name="licenses_idempotency_once"),
        ]

    def __str__(self) -> str:
        return f"Idempotency-Key {self.key[:16]} ({self.status_code or 'pending'})"


# --- Email: license delivery and notices (issue 15) ------------------------------------


class LicenseClaim(TenantOwnedModel):
    """A one-time link that delivers a license's key by email (licenses.delivery).

    The email carries the link, never the key; the table keeps the SHA-256 of
    the link's token, not the token. Claiming (a POST from the claim page)
    mints the license's key anew and shows it once: the key that was current
    until then stops working, and no key is ever stored. A used, expired or
    revoked claim refuses."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    license = models.ForeignKey(License, on_delete=models.CASCADE, related_name="claims")
    token_digest = models.CharField(max_length=64, unique=True, editable=False)
    email = models.EmailField()
    # Who asked for it: an operator's or an API key's name, `create_license`...
    requested_by = models.CharField(max_length=254, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "license_claims"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"claim {self.id} of {self.license_id}"

    def is_open(self, now=None) -> bool:
        return self.used_at is None and self.expires_at > (now or timezone.now())


class LicenseNotice(TenantOwnedModel):
    """An email notice sent about a license, kept so each is sent once:
    `kind` "expiring" with `key` "<days>:<expiry date>" (a renewed license is
    told again about its new date), `kind` "seats" with `key` the UTC day."""

    id = models.BigAutoField(primary_key=True)
    license = models.ForeignKey(License, on_delete=models.CASCADE, related_name="notices")
    kind = models.CharField(max_length=20)
    key = models.CharField(max_length=64)
    sent_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "license_notices"
        constraints = [
            models.UniqueConstraint(fields=["license", "kind", "key"], name="license_notices_once")
        ]

    def __str__(self) -> str:
        return f"{self.kind} notice {self.key} of {self.license_id}"
