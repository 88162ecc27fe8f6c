"""Background work for seats: record leases that ended by expiry, and drain the
audit events the Redis ledger keeps with its changes (invariant 8).

Tasks take ids, call a service and nothing more; the service opens the
license's tenant scope and is idempotent, so a task run twice, or by two
workers at once, records each expired lease exactly once.
"""

from __future__ import annotations

import logging
import uuid

from celery import shared_task
from django.db import OperationalError

from core.errors import ServiceUnavailable
from core.tasks import task_enqueue_on_commit
from licenses.leases import lease_events_drain_license, lease_expiry_sweep_license
from licenses.ledger import LedgerUnavailable
from licenses.ledger.gateway import seat_ledger
from licenses.models import License
from tenants.scope import operator_scope

logger = logging.getLogger(__name__)

RETRYABLE = (ServiceUnavailable, LedgerUnavailable, OperationalError)


@shared_task(
    name="licenses.lease_expiry_sweep_license",
    autoretry_for=RETRYABLE,
    retry_backoff=True,
    max_retries=3,
)
def lease_expiry_sweep_license_task(license_id: str, tenant_id: str) -> int:
    return lease_expiry_sweep_license(license_id=uuid.UUID(license_id), tenant_id=uuid.UUID(tenant_id))


@shared_task(name="licenses.lease_expiry_sweep")
def lease_expiry_sweep_task() -> int:
    """Fan out one sweep per license (the periodic entry point); returns how many."""
    with operator_scope():
        targets = [(str(lid), str(tid)) for lid, tid in License.objects.values_list("id", "tenant_id")]
    for license_id, tenant_id in targets:
        task_enqueue_on_commit(lease_expiry_sweep_license_task, license_id, tenant_id)
    return len(targets)


@shared_task(
    name="licenses.lease_events_drain_license",
    autoretry_for=RETRYABLE,
    retry_backoff=True,
    max_retries=3,
)
def lease_events_drain_license_task(license_id: str, tenant_id: str) -> int:
    return lease_events_drain_license(license_id=uuid.UUID(license_id), tenant_id=uuid.UUID(tenant_id))


@shared_task(name="licenses.lease_events_drain")
def lease_events_drain_task() -> int:
    """Fan out one drain per license that has events waiting in the ledger (the
    periodic entry point, LEASE_EVENT_DRAIN_INTERVAL); returns how many. Only
    a ledger that records its own events has any; looking costs one Redis
    call per license, and no database transaction."""
    seats = seat_ledger()
    if not seats.records_events:
        return 0
    with operator_scope():
        targets = list(License.objects.values_list("id", "tenant_id"))
    waiting = [
        (str(license_id), str(tenant_id))
        for license_id, tenant_id in targets
        if seats.events_pending(license_id=license_id, tenant_id=tenant_id, limit=1)
    ]
    for license_id, tenant_id in waiting:
        task_enqueue_on_commit(lease_events_drain_license_task, license_id, tenant_id)
    return len(waiting)


# Email (issue 15): its tasks live in licenses.email_tasks (acquire enqueues one,
# and this module imports licenses.leases); imported here so a worker finds them.
from licenses.email_tasks import (  # noqa: E402, F401
    license_delivery_email_task,
    license_expiry_notice_task,
    license_expiry_notices_task,
    seats_near_limit_notice_task,
)
