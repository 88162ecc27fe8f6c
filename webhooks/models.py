"""Outbound webhooks: endpoints, the outbox of messages, and their deliveries.

An `Endpoint` belongs to one tenant, or to none (operator-wide: it hears every
tenant's events, and is managed only from the admin site). A `Message` is one
event to send, written in the transaction of the audit row it comes from (the
outbox), so a change that rolls back sends nothing and a committed one is never
lost. The sender fans a message out into one `Delivery` per subscribed endpoint
and logs each try as a `DeliveryAttempt`. Every table is tenant-owned under
row-level security; rows of no tenant (operator-wide endpoints and their
deliveries, operator events) are seen on the operator path only.
"""

from __future__ import annotations

import uuid

from django.db import models

from tenants.models import Tenant, TenantScopedManager, check_write_scope


class _TenantOrOperatorRow(models.Model):
    tenant = models.ForeignKey(Tenant, null=True, blank=True, on_delete=models.CASCADE, related_name="+")

    objects = TenantScopedManager()
    unscoped = models.Manager()

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        check_write_scope(self.tenant_id)
        super().save(*args, **kwargs)


class Endpoint(_TenantOrOperatorRow):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    url = models.URLField(max_length=2000)
    description = models.CharField(max_length=200, blank=True, default="")
    # Event names from audit/events.py (webhooks.events.WEBHOOK_EVENTS).
    event_types = models.JSONField(default=list)
    # `whsec_` + base64 of 24 random bytes (Standard Webhooks); it signs, so it
    # is kept as it is, shown once when made and never in an answer again.
    secret = models.CharField(max_length=100, editable=False)
    enabled = models.BooleanField(default=True)
    # Failed tries in a row, across deliveries; WEBHOOK_DISABLE_AFTER_FAILURES disables.
    failure_count = models.PositiveIntegerField(default=0)
    # When the run of failures began (None while it succeeds): an endpoint is
    # disabled only once failing for WEBHOOK_DISABLE_AFTER_SECONDS too.
    failing_since = models.DateTimeField(null=True, blank=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "webhook_endpoints"
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.url


class Message(_TenantOrOperatorRow):
    """One event to send (the outbox). Its id is the `webhook-id` of every delivery."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    event_type = models.CharField(max_length=64)
    # {"type", "timestamp", "data"}: the body sent, as Standard Webhooks shapes it.
    payload = models.JSONField()
    # The audit row it comes from (none for a test ping).
    audit_id = models.BigIntegerField(null=True, blank=True)
    # Set for a message meant for one endpoint only (a test ping).
    endpoint = models.ForeignKey(Endpoint, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField()
    # When the sender made its deliveries; null: still to fan out.
    dispatched_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "webhook_messages"
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["dispatched_at", "created_at"], name="webhook_msg_undispatched")]

    @property
    def webhook_id(self) -> str:
        return f"msg_{self.id.hex}"

    def __str__(self) -> str:
        return f"{self.event_type} {self.webhook_id}"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class Delivery(_TenantOrOperatorRow):
    """One message to one endpoint; `tenant` is the endpoint's."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="deliveries")
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="deliveries")
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_response_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "webhook_deliveries"
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="webhook_delivery_due")]
        verbose_name_plural = "deliveries"

    def __str__(self) -> str:
        return f"{self.message.event_type} to {self.endpoint.url}"


class DeliveryAttempt(_TenantOrOperatorRow):
    """One try of a delivery: what the endpoint answered, or why nothing was."""

    id = models.BigAutoField(primary_key=True)
    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempt_log")
    attempted_at = models.DateTimeField()
    response_code = models.PositiveIntegerField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True, default="")
    duration_ms = models.PositiveIntegerField(default=0)

    class Meta:
        db_table = "webhook_delivery_attempts"
        ordering = ["-attempted_at", "-id"]

    def __str__(self) -> str:
        return f"{self.attempted_at:%Y-%m-%d %H:%M:%S} {self.response_code or self.error}"


class OperatorSubscription(models.Model):
    """The event types some operator-wide endpoint subscribes to, and nothing
    else (no address, no secret): the one part of the operator's endpoints a
    tenant's transaction may read, to know whether one of its events needs a
    message in the outbox. Rebuilt from the endpoints whenever one changes."""

    event_type = models.CharField(max_length=64, primary_key=True)

    class Meta:
        db_table = "webhook_operator_subscriptions"

    def __str__(self) -> str:
        return self.event_type
