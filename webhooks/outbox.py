"""The outbox: a message for each audit event some endpoint subscribes to,
written by the audit hook in the audit row's own transaction (audit.hooks).

Whether an event is wanted is read once per tenant every
WEBHOOK_SUBSCRIPTION_CACHE_SECONDS, per process (and at once after an endpoint
changes in this process): the tenant's enabled endpoints, read in its own
scope, and the event types of the operator-wide ones (OperatorSubscription,
which holds no address or secret, so a tenant's transaction may read it).
"""

from __future__ import annotations

import uuid
from datetime import UTC
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connections, router

from audit.events import Detail
from audit.models import AuditLog
from core.cache import ProcessCache
from core.tasks import task_enqueue_on_commit
from tenants.scope import current_tenant_id, in_operator_scope, operator_scope, tenant_scope
from webhooks.events import WEBHOOK_EVENTS
from webhooks.models import Endpoint, Message, OperatorSubscription

_subscriptions: ProcessCache[frozenset[str]] = ProcessCache(
    lambda: settings.WEBHOOK_SUBSCRIPTION_CACHE_SECONDS,
    stale_on=(DatabaseError,),
    stale_limit=lambda: 300,
)


def subscriptions_forget() -> None:
    """An endpoint changed: read subscriptions anew (this process at once, others within the cache's age)."""
    _subscriptions.clear()


def _types(endpoints) -> set[str]:
    return {
        name
        for types in endpoints.filter(enabled=True).values_list("event_types", flat=True)
        for name in types
    }


def _operator_types() -> set[str]:
    return set(OperatorSubscription.objects.values_list("event_type", flat=True))


def _load(tenant_id: uuid.UUID | None) -> frozenset[str]:
    if tenant_id is None:
        with operator_scope():
            return frozenset(_operator_types())
    if in_operator_scope():
        return frozenset(_types(Endpoint.objects.filter(tenant_id=tenant_id)) | _operator_types())
    if current_tenant_id() == tenant_id and connections["default"].in_atomic_block:
        return frozenset(_types(Endpoint.objects.all()) | _operator_types())
    with tenant_scope(tenant_id):
        return frozenset(_types(Endpoint.objects.all()) | _operator_types())


def event_wanted(action: str, tenant_id: uuid.UUID | None) -> bool:
    if action not in WEBHOOK_EVENTS:
        return False
    return action in _subscriptions.get(tenant_id, lambda: _load(tenant_id))


def _timestamp(moment) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def event_payload(row: AuditLog) -> dict[str, Any]:
    """The body sent (Standard Webhooks' shape). From the audit row, whose
    details never hold a secret (a license's key is never in one); the actor's
    address and the client's IP stay in the log."""
    return {
        "type": row.action,
        "timestamp": _timestamp(row.created_at),
        "data": {
            "tenant_id": str(row.tenant_id) if row.tenant_id else None,
            "target_type": row.target_type,
            "target_id": row.target_id,
            "user_id": str(row.user_id) if row.user_id else None,
            "details": row.details,
            "audit_id": row.id,
        },
    }


def task_named(name: str):
    """A task of webhooks.tasks by its name (that module imports the services,
    so they cannot import it back; apps.ready has loaded it)."""
    from celery import current_app

    return current_app.tasks[name]


def message_enqueue(message: Message, using: str) -> None:
    task_enqueue_on_commit(task_named("webhooks.message_dispatch"), str(message.id), using=using)


class OutboxHook:
    def wants(self, action: str, tenant_id: uuid.UUID | None) -> bool:
        return event_wanted(action, tenant_id)

    def written(self, row: AuditLog) -> None:
        channels = row.details.get(Detail.CHANNELS) if isinstance(row.details, dict) else None
        if isinstance(channels, list) and "webhook" not in channels:
            return  # a notice its tenant admin sends by email only (licenses.delivery)
        using = router.db_for_write(Message)
        message = Message(
            tenant_id=row.tenant_id,
            event_type=row.action,
            payload=event_payload(row),
            audit_id=row.id,
            created_at=row.created_at,
        )
        message.save(using=using, force_insert=True)
        message_enqueue(message, using or "default")


outbox_hook = OutboxHook()
