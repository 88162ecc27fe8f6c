from __future__ import annotations

import uuid

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.db import models
from django.utils import timezone

from tenants.models import Tenant, TenantOwnedModel, TenantScopedManager, check_write_scope
from tenants.scope import ScopeError, in_operator_scope


class Role(models.TextChoices):
    TENANT_ADMIN = "admin", "Tenant admin"
    USER = "user", "User"
    READ_ONLY = "readonly", "Read-only"


class UserManager(TenantScopedManager, BaseUserManager):
    use_in_migrations = False

    def create_user(self, email: str, password: str | None = None, **fields) -> User:
        if not email:
            raise ValueError("email is required")
        user = self.model(email=self.normalize_email(email).lower(), **fields)
        user.set_password(password)
        user.save()
        return user

    def create_superuser(self, email: str, password: str | None = None, **fields) -> User:
        fields.update(is_staff=True, is_superuser=True, tenant=None)
        return self.create_user(email, password, **fields)


class User(AbstractBaseUser, PermissionsMixin):
    """A person. Tenant members have a tenant and a role; operators are staff
    with no tenant, and use the admin site, not the tenant API."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    email = models.EmailField(unique=True)
    full_name = models.CharField(max_length=200, blank=True)
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.USER)
    oauth_provider = models.CharField(max_length=32, blank=True, default="")
    oauth_subject = models.CharField(max_length=255, blank=True, default="")
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False)
    date_joined = models.DateTimeField(default=timezone.now)

    objects = UserManager()
    unscoped = BaseUserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        db_table = "users"
        constraints = [
            models.UniqueConstraint(
                fields=["oauth_provider", "oauth_subject"],
                condition=~models.Q(oauth_subject=""),
                name="users_unique_oauth_identity",
            )
        ]

    def __str__(self) -> str:
        return self.email

    @property
    def is_operator(self) -> bool:
        return self.is_staff and self.tenant_id is None

    @property
    def is_tenant_admin(self) -> bool:
        return self.tenant_id is not None and self.role == Role.TENANT_ADMIN

    @property
    def is_active_member(self) -> bool:
        """The one test of who may act for a tenant (API, dashboard, sign-in,
        refresh): an active user of an active tenant. Operators belong to no
        tenant and are members of none. Load the user with its tenant
        (`related="tenant"`, `select_related`), in that tenant's scope."""
        return self.is_active and self.tenant_id is not None and self.tenant.is_active

    def save(self, *args, **kwargs):
        if self.tenant_id is None:
            # Operator accounts belong to no tenant: only operator code makes them.
            if not in_operator_scope():
                raise ScopeError("users without a tenant are created in operator_scope()")
        else:
            check_write_scope(self.tenant_id)
        super().save(*args, **kwargs)


class Invite(TenantOwnedModel):
    """A single-use code a tenant admin hands out to let someone join the tenant.
    The code itself is shown once; the database keeps its SHA-256 digest."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    code_digest = models.CharField(max_length=64, unique=True, editable=False)
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.USER)
    # When set, only this address may use the code.
    email = models.EmailField(blank=True, default="")
    created_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    used_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "invites"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"invite {self.id} ({self.role})"

    def status(self, now=None) -> str:
        if self.used_at:
            return "used"
        if self.revoked_at:
            return "revoked"
        if self.expires_at <= (now or timezone.now()):
            return "expired"
        return "pending"


class RefreshToken(TenantOwnedModel):
    """One refresh token. Tokens of one sign-in share a family: each refresh
    marks the presented token used and issues the next; a used token presented
    again means two parties hold the family, and the whole family is revoked."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
    family_id = models.UUIDField(db_index=True)
    token_digest = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "refresh_tokens"

    def __str__(self) -> str:
        return f"refresh token {self.id} (family {self.family_id})"


class RateLimitHit(models.Model):
    """The rate limiter's fallback store where there is no Redis: one row per
    counted request, kept for one window. Not tenant-owned: keys are client
    addresses and user ids, checked before any tenant is known."""

    id = models.BigAutoField(primary_key=True)
    key = models.CharField(max_length=200)
    hit_at = models.DateTimeField()

    class Meta:
        db_table = "rate_limit_hits"
        indexes = [models.Index(fields=["key", "hit_at"], name="rate_limit_key_hit_at")]

    def __str__(self) -> str:
        return f"{self.key} at {self.hit_at:%H:%M:%S}"


class LoginThrottle(models.Model):
    """An account's run of failed sign-ins (accounts.throttle): the store where
    there is no Redis, and, beside Redis, the mirror of every lock, so that an
    account locked in Redis stays refused while Redis is away. Not
    tenant-owned: it is read before any tenant is known, and for emails with no
    account too. The key is a digest of the normalised email, not the email."""

    key = models.CharField(max_length=64, primary_key=True)
    failures = models.PositiveIntegerField(default=0)
    last_failure_at = models.DateTimeField()
    locked_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "login_throttles"
        indexes = [models.Index(fields=["last_failure_at"], name="login_throttle_last_failure")]

    def __str__(self) -> str:
        return f"{self.key[:12]}: {self.failures} failures"


# --- API keys of the provisioning API (issue 15) ------------------------------------


class ApiKey(models.Model):
    """A key the vendor's own backend sends as `Authorization: Bearer
    cdt_pk_...` to the provisioning API (accounts/apikeys.py).

    `tenant` empty: operator-wide (every tenant, and creating tenants); set:
    that tenant only, its requests run in its scope. The key itself is shown
    once; the table keeps its SHA-256 (the key is 256 random bits, so a fast
    hash suffices) and a display prefix. Under row-level security by tenant:
    the app role sees a tenant's keys only in that tenant's scope and the
    operator-wide ones never; authentication looks keys up on the operator
    path, as sign-in by email does.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(
        Tenant,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        help_text="Empty: operator-wide (every tenant). Set: this tenant only.",
    )
    name = models.CharField(max_length=200, help_text="What uses it, e.g. 'billing backend'.")
    key_digest = models.CharField(max_length=64, unique=True, editable=False)
    key_prefix = models.CharField(max_length=16, editable=False)
    created_by = models.CharField(max_length=254, blank=True, default="", editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_by = models.CharField(max_length=254, blank=True, default="", editable=False)

    objects = TenantScopedManager()
    unscoped = models.Manager()

    class Meta:
        db_table = "accounts_api_keys"
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.key_prefix}…)"

    @property
    def is_operator_wide(self) -> bool:
        return self.tenant_id is None

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    def save(self, *args, **kwargs):
        check_write_scope(self.tenant_id)
        super().save(*args, **kwargs)
