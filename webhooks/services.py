"""Endpoints, and the sender: fan a message out, deliver, retry, disable.

Tenant admins manage their own endpoints in their tenant's scope (the API);
operators manage every endpoint, operator-wide ones included, from the admin
site. The sender runs on the operator path (it serves every tenant's
endpoints and the operator's), as background tasks enqueued on commit.
"""

from __future__ import annotations

import http.client
import json
import logging
import random
import time
import uuid
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.mail import mail_admins, send_mail
from django.db import router, transaction
from django.db.models import F, Q
from django.utils import timezone

from accounts.models import Role, User
from audit.events import Event
from audit.services import audit_record
from core.errors import ApplicationError
from core.locks import transaction_lock
from core.tasks import task_enqueue_on_commit
from tenants.scope import operator_scope
from webhooks.events import PING_EVENT, WEBHOOK_EVENTS
from webhooks.models import Delivery, DeliveryAttempt, DeliveryStatus, Endpoint, Message
from webhooks.outbox import message_enqueue, task_named
from webhooks.signing import webhook_headers, webhook_secret_new
from webhooks.transport import TargetForbidden, target_check_url, webhook_post

logger = logging.getLogger(__name__)
# A delivery's error as its tenant reads it when the target was refused.
REFUSED_AT_DELIVERY = (
    "refused: the target is not one this server delivers to "
    "(its name does not resolve, or an address it resolves to is in a range that is not allowed)"
)

EDITABLE = ("url", "description", "event_types", "enabled")


def _db() -> str:
    return router.db_for_write(Endpoint) or "default"


def endpoint_validate(*, url: str, event_types: list[str]) -> None:
    """400 `webhook_target_forbidden` for a URL that may not be delivered to,
    `invalid_request` for an event type no endpoint may subscribe to."""
    try:
        target_check_url(url)
    except TargetForbidden as error:
        raise ApplicationError(str(error), code="webhook_target_forbidden", details={"url": url}) from None
    unknown = sorted(set(event_types) - WEBHOOK_EVENTS)
    if unknown or not event_types:
        raise ApplicationError(
            "The request is not valid.",
            details={
                "fields": {"event_types": [f"Unknown event types: {unknown}" if unknown else "Name one."]}
            },
        )


def endpoint_limit_check(*, tenant_id: uuid.UUID | None) -> None:
    """409 `webhook_endpoint_limit_reached` when the tenant (None: the
    operator) has as many endpoints as it may; endpoint_create calls it under
    the owner's lock, the console's form before it."""
    limit = (
        settings.WEBHOOK_MAX_ENDPOINTS_PER_TENANT
        if tenant_id is not None
        else settings.WEBHOOK_MAX_OPERATOR_ENDPOINTS
    )
    if Endpoint.objects.using(_db()).filter(tenant_id=tenant_id).count() >= limit:
        raise ApplicationError(
            f"At most {limit} webhook endpoints; delete one first.",
            code="webhook_endpoint_limit_reached",
            details={"limit": limit},
        )


def endpoint_create(
    *, tenant_id: uuid.UUID | None, url: str, event_types: list[str], description: str = "", actor: Any = None
) -> Endpoint:
    """A new endpoint and its secret (`endpoint.secret`: show it once)."""
    endpoint_validate(url=url, event_types=event_types)
    endpoint = Endpoint(
        tenant_id=tenant_id,
        url=url,
        event_types=sorted(set(event_types)),
        description=description,
        secret=webhook_secret_new(),
    )
    with transaction.atomic(using=_db()):
        # Counted under a lock per owner: two creates at once cannot both
        # take the last place.
        transaction_lock(f"webhooks:endpoints:{tenant_id or 'operator'}", using=_db())
        endpoint_limit_check(tenant_id=tenant_id)
        endpoint.save(using=_db(), force_insert=True)
        audit_record(
            action=Event.WEBHOOK_ENDPOINT_CREATED,
            tenant_id=tenant_id,
            user=actor,
            target=endpoint,
            details={"url": url, "event_types": endpoint.event_types},
        )
    return endpoint


def endpoint_update(*, endpoint: Endpoint, values: dict[str, Any], actor: Any = None) -> Endpoint:
    url = values.get("url", endpoint.url)
    event_types = values.get("event_types", endpoint.event_types)
    endpoint_validate(url=url, event_types=event_types)
    if "event_types" in values:
        values = {**values, "event_types": sorted(set(event_types))}
    changes = [name for name in EDITABLE if name in values and values[name] != getattr(endpoint, name)]
    if not changes:
        return endpoint
    for name in changes:
        setattr(endpoint, name, values[name])
    fields = list(changes)
    if "enabled" in changes and endpoint.enabled:
        # Enabled again by hand: its failures so far are forgiven.
        endpoint.failure_count, endpoint.disabled_at, endpoint.disabled_reason = 0, None, ""
        endpoint.failing_since = None
        fields += ["failure_count", "failing_since", "disabled_at", "disabled_reason"]
    with transaction.atomic(using=_db()):
        endpoint.save(using=_db(), update_fields=[*fields, "updated_at"])
        audit_record(
            action=Event.WEBHOOK_ENDPOINT_UPDATED,
            tenant_id=endpoint.tenant_id,
            user=actor,
            target=endpoint,
            details={"changes": changes},
        )
    return endpoint


def endpoint_delete(*, endpoint: Endpoint, actor: Any = None) -> None:
    with transaction.atomic(using=_db()):
        audit_record(
            action=Event.WEBHOOK_ENDPOINT_DELETED,
            tenant_id=endpoint.tenant_id,
            user=actor,
            target=endpoint,
            details={"url": endpoint.url},
        )
        endpoint.delete(using=_db())


def endpoint_ping(*, endpoint: Endpoint, actor: Any = None) -> Message:
    """A `webhook.ping` to this endpoint alone (whatever it subscribes to)."""
    _refuse_if_disabled(endpoint)
    now = timezone.now()
    message = Message(
        tenant_id=endpoint.tenant_id,
        endpoint=endpoint,
        event_type=PING_EVENT,
        created_at=now,
        payload={
            "type": PING_EVENT,
            "timestamp": now.isoformat().replace("+00:00", "Z"),
            "data": {"endpoint_id": str(endpoint.id)},
        },
    )
    with transaction.atomic(using=_db()):
        message.save(using=_db(), force_insert=True)
        audit_record(
            action=Event.WEBHOOK_PINGED,
            tenant_id=endpoint.tenant_id,
            user=actor,
            target=endpoint,
            details={"message_id": message.webhook_id},
        )
        message_enqueue(message, _db())
    return message


def _refuse_if_disabled(endpoint: Endpoint) -> None:
    if not endpoint.enabled:
        raise ApplicationError(
            "This endpoint is disabled; enable it first.",
            code="webhook_endpoint_disabled",
            details={"disabled_reason": endpoint.disabled_reason},
        )


def delivery_redeliver(*, delivery: Delivery, actor: Any = None) -> Delivery:
    """Send a delivery's message to its endpoint again, as a new delivery."""
    endpoint = delivery.endpoint
    _refuse_if_disabled(endpoint)
    again = Delivery(
        tenant_id=delivery.tenant_id,
        endpoint=endpoint,
        message_id=delivery.message_id,
        next_attempt_at=timezone.now(),
    )
    with transaction.atomic(using=_db()):
        again.save(using=_db(), force_insert=True)
        audit_record(
            action=Event.WEBHOOK_REDELIVERED,
            tenant_id=delivery.tenant_id,
            user=actor,
            target=endpoint,
            details={"delivery_id": str(delivery.id), "message_id": delivery.message.webhook_id},
        )
        _delivery_enqueue(again, _db())
    return again


def _delivery_enqueue(delivery: Delivery, using: str) -> None:
    task_enqueue_on_commit(task_named("webhooks.delivery_attempt"), str(delivery.id), using=using)


# --- The sender (operator path) ------------------------------------------------------


def message_dispatch(*, message_id: uuid.UUID) -> int:
    """Make the message's deliveries, one per enabled endpoint that subscribes
    to it (the tenant's and the operator-wide ones), once. Returns how many."""
    with operator_scope():
        using = _db()
        with transaction.atomic(using=using):
            message = (
                Message.objects.select_for_update().filter(pk=message_id, dispatched_at__isnull=True).first()
            )
            if message is None:
                return 0
            if message.endpoint_id is not None:
                endpoints = list(Endpoint.objects.filter(pk=message.endpoint_id, enabled=True))
            else:
                owners = Q(tenant__isnull=True)
                if message.tenant_id is not None:
                    owners |= Q(tenant_id=message.tenant_id)
                endpoints = [
                    endpoint
                    for endpoint in Endpoint.objects.filter(owners, enabled=True)
                    if message.event_type in endpoint.event_types
                ]
            now = timezone.now()
            deliveries = [
                Delivery(
                    tenant_id=endpoint.tenant_id, endpoint=endpoint, message=message, next_attempt_at=now
                )
                for endpoint in endpoints
            ]
            for delivery in deliveries:
                delivery.save(using=using, force_insert=True)
                _delivery_enqueue(delivery, using)
            message.dispatched_at = now
            message.save(using=using, update_fields=["dispatched_at"])
    return len(deliveries)


def retry_delay(attempts: int) -> float:
    """Seconds before the next try after `attempts` failed ones: exponential,
    capped, with jitter (half fixed, half random, so tries never bunch up yet
    each wait is at least half the last one's ceiling)."""
    ceiling = min(
        settings.WEBHOOK_RETRY_MAX_SECONDS, settings.WEBHOOK_RETRY_BASE_SECONDS * 2 ** (attempts - 1)
    )
    return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - jitter, not a secret


def _claim(delivery_id: uuid.UUID, using: str) -> Delivery | None:
    """Take a due delivery for one try: its next try moves past this one's
    deadline, so a second sender skips it meanwhile."""
    now = timezone.now()
    with transaction.atomic(using=using):
        delivery = (
            Delivery.objects.select_for_update()
            .select_related("endpoint", "message")
            .filter(pk=delivery_id, status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
            .first()
        )
        if delivery is None:
            return None
        delivery.attempts += 1
        delivery.next_attempt_at = now + timedelta(seconds=settings.WEBHOOK_TIMEOUT_SECONDS * 2 + 30)
        delivery.save(using=using, update_fields=["attempts", "next_attempt_at"])
    return delivery


def delivery_attempt(*, delivery_id: uuid.UUID) -> Delivery | None:
    """One try of a due delivery; the result, retry or disabling recorded.
    None when it was not due (done, or taken by another sender)."""
    with operator_scope():
        using = _db()
        delivery = _claim(delivery_id, using)
        if delivery is None:
            return None
        endpoint, message = delivery.endpoint, delivery.message
        if not endpoint.enabled:
            return _finish(
                delivery, using, status=DeliveryStatus.FAILED, code=None, error="endpoint disabled"
            )
        body = json.dumps(message.payload, separators=(",", ":")).encode()
        started = time.monotonic()
        code, error = None, ""
        try:
            answer = webhook_post(
                endpoint.url,
                body=body,
                headers=webhook_headers(
                    endpoint.secret, msg_id=message.webhook_id, timestamp=int(time.time()), body=body
                ),
            )
            code = answer.status
            if not 200 <= code < 300:
                error = f"answered {code}"
        except TargetForbidden as refused:
            # The tenant reads this: what its host name resolved to (an internal
            # address) or whether it resolves at all stays in the server's log.
            error = REFUSED_AT_DELIVERY
            logger.warning(
                "webhook target refused at delivery",
                extra={"endpoint_id": str(endpoint.pk), "why": str(refused)[:300]},
            )
        except (OSError, http.client.HTTPException) as failure:
            error = f"{type(failure).__name__}: {failure}"[:500]
        duration_ms = int((time.monotonic() - started) * 1000)
        return _record(delivery, using, code=code, error=error, duration_ms=duration_ms)


def _record(delivery: Delivery, using: str, *, code: int | None, error: str, duration_ms: int) -> Delivery:
    now = timezone.now()
    with transaction.atomic(using=using):
        DeliveryAttempt(
            tenant_id=delivery.tenant_id,
            delivery=delivery,
            attempted_at=now,
            response_code=code,
            error=error,
            duration_ms=duration_ms,
        ).save(using=using, force_insert=True)
        endpoint = Endpoint.objects.select_for_update().get(pk=delivery.endpoint_id)
        if not error:
            Endpoint.objects.filter(pk=endpoint.pk).update(failure_count=0, failing_since=None)
            return _finish(delivery, using, status=DeliveryStatus.SUCCEEDED, code=code, error="")
        failing_since = endpoint.failing_since or now
        Endpoint.objects.filter(pk=endpoint.pk).update(
            failure_count=F("failure_count") + 1, failing_since=failing_since
        )
        endpoint.failure_count += 1
        # Disabled for sustained failure only: many tries in a row AND for long
        # enough (a receiver restarted for a minute is not switched off).
        sustained = now - failing_since >= timedelta(seconds=settings.WEBHOOK_DISABLE_AFTER_SECONDS)
        if (
            endpoint.enabled
            and endpoint.failure_count >= settings.WEBHOOK_DISABLE_AFTER_FAILURES
            and sustained
        ):
            _disable(endpoint, using)
        if not endpoint.enabled or delivery.attempts >= settings.WEBHOOK_MAX_ATTEMPTS:
            return _finish(delivery, using, status=DeliveryStatus.FAILED, code=code, error=error)
        delivery.last_response_code, delivery.last_error = code, error
        delivery.next_attempt_at = now + timedelta(seconds=retry_delay(delivery.attempts))
        delivery.save(using=using, update_fields=["last_response_code", "last_error", "next_attempt_at"])
    return delivery


def _finish(delivery: Delivery, using: str, *, status: str, code: int | None, error: str) -> Delivery:
    delivery.status, delivery.last_response_code, delivery.last_error = status, code, error
    delivery.next_attempt_at, delivery.completed_at = None, timezone.now()
    delivery.save(
        using=using,
        update_fields=["status", "last_response_code", "last_error", "next_attempt_at", "completed_at"],
    )
    return delivery


def _disable(endpoint: Endpoint, using: str) -> None:
    reason = f"{endpoint.failure_count} failed deliveries in a row"
    endpoint.enabled, endpoint.disabled_at, endpoint.disabled_reason = False, timezone.now(), reason
    endpoint.save(using=using, update_fields=["enabled", "disabled_at", "disabled_reason", "updated_at"])
    audit_record(
        action=Event.WEBHOOK_ENDPOINT_DISABLED,
        tenant_id=endpoint.tenant_id,
        actor="webhooks",
        target=endpoint,
        details={"reason": reason, "failures": endpoint.failure_count},
    )
    subject = "A webhook endpoint was disabled"
    text = (
        f"The webhook endpoint {endpoint.url} was disabled after {reason}.\n"
        "Nothing more is sent to it until it is enabled again; deliveries can be sent again "
        "after that (redelivery).\n"
    )
    if endpoint.tenant_id is None:
        transaction.on_commit(lambda: _mail_safely(mail_admins, subject, text), using=using)
        return
    recipients = list(
        User.objects.filter(tenant_id=endpoint.tenant_id, role=Role.TENANT_ADMIN, is_active=True)
        .exclude(email="")
        .values_list("email", flat=True)
    )
    if recipients:
        transaction.on_commit(lambda: _mail_safely(send_mail, subject, text, None, recipients), using=using)


def _mail_safely(send, *args) -> None:
    try:
        send(*args)
    except Exception:
        logger.exception("webhook disabled: the email was not sent")


def deliveries_sweep(*, limit: int = 500) -> int:
    """The periodic pass: fan out messages whose enqueue was lost, and try
    every delivery whose next try is due. Returns how many it handled."""
    with operator_scope():
        now = timezone.now()
        waiting = list(
            Message.objects.filter(dispatched_at__isnull=True, created_at__lte=now)
            .order_by("created_at")
            .values_list("id", flat=True)[:limit]
        )
        due = list(
            Delivery.objects.filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
            .order_by("next_attempt_at")
            .values_list("id", flat=True)[:limit]
        )
    for message_id in waiting:
        message_dispatch(message_id=message_id)
    for delivery_id in due:
        delivery_attempt(delivery_id=delivery_id)
    return len(waiting) + len(due)


def deliveries_prune(*, now=None, batch: int = 1000) -> int:
    """Delete finished deliveries (succeeded, or failed for good) completed
    more than WEBHOOK_DELIVERY_RETENTION_DAYS ago, with their tries, and the
    dispatched messages no delivery is left of. A pending delivery is never
    touched. In batches, each its own transaction. Returns the deliveries
    deleted."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.WEBHOOK_DELIVERY_RETENTION_DAYS)
    deleted = 0
    with operator_scope():
        using = _db()  # the operator path's alias (the router reads the scope)
        while True:
            with transaction.atomic(using=using):
                ids = list(
                    Delivery.objects.using(using)
                    .filter(
                        status__in=[DeliveryStatus.SUCCEEDED, DeliveryStatus.FAILED], completed_at__lt=cutoff
                    )
                    .values_list("id", flat=True)[:batch]
                )
                if not ids:
                    break
                DeliveryAttempt.objects.using(using).filter(delivery_id__in=ids).delete()
                Delivery.objects.using(using).filter(id__in=ids).delete()
            deleted += len(ids)
        with transaction.atomic(using=using):
            Message.objects.using(using).filter(dispatched_at__lt=cutoff, deliveries__isnull=True).delete()
    if deleted:
        logger.info("webhook deliveries pruned", extra={"deleted": deleted, "before": cutoff.isoformat()})
    return deleted
