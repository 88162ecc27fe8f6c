from __future__ import annotations

from django.db import models

from core.dates import when
from tenants.models import Tenant, TenantScopedManager


class AuditLog(models.Model):
    """One event, append-only. `tenant` is null for events of no tenant (an
    operator's action, a failed login for an unknown email). Rows are chained
    per tenant: `hash` covers the row and `prev_hash`, the previous row's hash."""

    id = models.BigAutoField(primary_key=True)
    tenant = models.ForeignKey(Tenant, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    # Plain ids, not foreign keys: the log outlives what it speaks of and is never updated.
    user_id = models.UUIDField(null=True, blank=True)
    actor = models.CharField(max_length=254, blank=True, default="")
    action = models.CharField(max_length=64)
    target_type = models.CharField(max_length=64, blank=True, default="")
    target_id = models.CharField(max_length=64, blank=True, default="")
    details = models.JSONField(default=dict, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    request_id = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField()
    prev_hash = models.CharField(max_length=64, blank=True, default="")
    hash = models.CharField(max_length=64, blank=True, default="")

    objects = TenantScopedManager()
    unscoped = models.Manager()

    class Meta:
        db_table = "audit_logs"
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["tenant", "-id"], name="audit_tenant_id_desc"),
            models.Index(fields=["action", "created_at"], name="audit_action_created"),
            # One license's rows: the drainer's and the sweep's dedupe, the
            # restore after a loss of Redis, the console's license pages.
            models.Index(fields=["target_id", "action"], name="audit_target_action"),
        ]

    def __str__(self) -> str:
        # The console's one format (its breadcrumbs and history pages print this).
        return f"{when(self.created_at, seconds=True)} {self.action}"
