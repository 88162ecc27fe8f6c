from __future__ import annotations

import uuid

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.db import models
from django.utils import timezone

from tenants.models import Tenant, TenantScopedManager, check_write_scope
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

    def save(self, *args, **kwargs):
        if self.tenant_id is None:
            # Operator accounts belong to no tenant: only operator code makes them.
            if not in_operator_scope():
                raise ScopeError("users without a tenant are created in operator_scope()")
        else:
            check_write_scope(self.tenant_id)
        super().save(*args, **kwargs)
