"""The notices acquire enqueues (licenses.leases) without slowing it: "seats
near the limit" and "seats past the limit" (overdraft), each on commit, at
most once a day per license per process; the tasks (licenses.email_tasks)
dedupe across processes."""

from __future__ import annotations

from django.utils import timezone

from core.tasks import task_enqueue_on_commit
from licenses.delivery import license_notice_channels, license_seats_near_limit
from licenses.email_tasks import overdraft_notice_task, seats_near_limit_notice_task
from licenses.models import License

# (kind, license, day) of the notices this process enqueued today: acquire
# asks here first, so a busy license enqueues once a day per process, not per seat.
_enqueued: set[tuple[str, str, str]] = set()


def _enqueue_once_a_day(kind: str, task, license: License) -> None:
    marker = (kind, str(license.id), timezone.now().date().isoformat())
    if marker in _enqueued:
        return
    if len(_enqueued) > 10_000:
        _enqueued.clear()
    _enqueued.add(marker)
    task_enqueue_on_commit(task, str(license.id), str(license.tenant_id))


def seats_notice_maybe_enqueue(license: License, used: int, *, overdraft: bool = False) -> None:
    """Called by acquire: enqueue the "seats near the limit" notice on commit
    when this acquire reached the license's share, and the overdraft notice
    when it granted a seat past max_seats (the tasks dedupe across processes)."""
    if overdraft and license_notice_channels(license):
        _enqueue_once_a_day("overdraft", overdraft_notice_task, license)
    if license_seats_near_limit(license, used):
        _enqueue_once_a_day("seats", seats_near_limit_notice_task, license)
