"""Email tasks of licenses (issue 15): licenses.delivery does the work. A send
that fails (SendGrid away, a timeout) retries with exponential backoff; the
request that enqueued it has answered long before (core.tasks)."""

from __future__ import annotations

import uuid

from celery import shared_task

from core.email import email_task_options, secret_unseal
from core.tasks import task_enqueue_on_commit
from licenses import delivery

_EMAIL_TASK = email_task_options()


@shared_task(name="licenses.delivery_email", **_EMAIL_TASK)
def license_delivery_email_task(claim_id: str, tenant_id: str, sealed_token: str) -> int:
    return delivery.license_delivery_email(
        claim_id=uuid.UUID(claim_id), tenant_id=uuid.UUID(tenant_id), token=secret_unseal(sealed_token)
    )


@shared_task(name="licenses.expiry_notice", **_EMAIL_TASK)
def license_expiry_notice_task(license_id: str, tenant_id: str, days: str) -> int:
    return delivery.license_expiry_notice_send(
        license_id=uuid.UUID(license_id), tenant_id=uuid.UUID(tenant_id), days=int(days)
    )


@shared_task(name="licenses.expiry_notices")
def license_expiry_notices_task() -> int:
    """Fan out one "expiring soon" notice per license that has one due (the
    periodic entry point, EMAIL_EXPIRY_NOTICE_INTERVAL); returns how many."""
    due = delivery.expiry_notices_due()
    for license_id, tenant_id, days in due:
        task_enqueue_on_commit(license_expiry_notice_task, license_id, tenant_id, str(days))
    return len(due)


@shared_task(name="licenses.seats_near_limit_notice", **_EMAIL_TASK)
def seats_near_limit_notice_task(license_id: str, tenant_id: str) -> int:
    return delivery.license_seats_notice_send(
        license_id=uuid.UUID(license_id), tenant_id=uuid.UUID(tenant_id)
    )


@shared_task(name="licenses.overdraft_notice", **_EMAIL_TASK)
def overdraft_notice_task(license_id: str, tenant_id: str) -> int:
    return delivery.license_overdraft_notice_send(
        license_id=uuid.UUID(license_id), tenant_id=uuid.UUID(tenant_id)
    )
