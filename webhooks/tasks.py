"""Background work of the sender: tasks take ids and call a service, which is
idempotent (a message fans out once; a delivery is tried only when due)."""

from __future__ import annotations

import uuid

from celery import shared_task
from django.db import OperationalError

from webhooks.services import deliveries_prune, deliveries_sweep, delivery_attempt, message_dispatch


@shared_task(
    name="webhooks.message_dispatch", autoretry_for=(OperationalError,), retry_backoff=True, max_retries=3
)
def message_dispatch_task(message_id: str) -> int:
    return message_dispatch(message_id=uuid.UUID(message_id))


@shared_task(
    name="webhooks.delivery_attempt", autoretry_for=(OperationalError,), retry_backoff=True, max_retries=3
)
def delivery_attempt_task(delivery_id: str) -> str:
    delivery = delivery_attempt(delivery_id=uuid.UUID(delivery_id))
    return delivery.status if delivery else "not_due"


@shared_task(name="webhooks.deliveries_sweep")
def deliveries_sweep_task() -> int:
    """The periodic entry point (WEBHOOK_DELIVERY_SWEEP_INTERVAL): retries fall due here."""
    return deliveries_sweep()


@shared_task(name="webhooks.deliveries_prune")
def deliveries_prune_task() -> int:
    """Daily: finished deliveries past WEBHOOK_DELIVERY_RETENTION_DAYS go."""
    return deliveries_prune()
