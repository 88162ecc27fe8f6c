"""Keep what the outbox hook reads true when an endpoint changes."""

from __future__ import annotations

from django.db.models.signals import post_delete, post_save

from webhooks.models import Endpoint, OperatorSubscription
from webhooks.outbox import subscriptions_forget


def _endpoint_changed(sender, instance: Endpoint, using: str, **kwargs) -> None:
    if instance.tenant_id is None:
        # The operator path (the only one that writes operator-wide endpoints).
        types = {
            name
            for event_types in Endpoint.unscoped.using(using)
            .filter(tenant__isnull=True, enabled=True)
            .values_list("event_types", flat=True)
            for name in event_types
        }
        OperatorSubscription.objects.using(using).exclude(event_type__in=types).delete()
        known = set(OperatorSubscription.objects.using(using).values_list("event_type", flat=True))
        OperatorSubscription.objects.using(using).bulk_create(
            [OperatorSubscription(event_type=name) for name in sorted(types - known)]
        )
    subscriptions_forget()


def connect() -> None:
    post_save.connect(_endpoint_changed, sender=Endpoint, dispatch_uid="webhooks.endpoint_saved")
    post_delete.connect(_endpoint_changed, sender=Endpoint, dispatch_uid="webhooks.endpoint_deleted")
