"""The "seats near the limit" notice, enqueued from acquire (licenses.leases)
without slowing it: on commit, at most once a day per license per process;
the task (licenses.email_tasks) dedupes across processes."""

from __future__ import annotations

from django.utils import timezone

from core.tasks import task_enqueue_on_commit
from licenses.delivery import license_seats_near_limit
from licenses.email_tasks import seats_near_limit_notice_task
from licenses.models import License

# Licenses this process has enqueued a seats notice for today: acquire asks
# here first, so a busy license enqueues once a day per process, not per seat.
_seats_enqueued: set[tuple[str, str]] = set()


def seats_notice_maybe_enqueue(license: License, used: int) -> None:
    """Called by acquire: enqueue the "seats near the limit" notice on commit
    when this acquire reached the license's share (the task dedupes across processes)."""
    if not license_seats_near_limit(license, used):
        return
    marker = (str(license.id), timezone.now().date().isoformat())
    if marker in _seats_enqueued:
        return
    if len(_seats_enqueued) > 10_000:
        _seats_enqueued.clear()
    _seats_enqueued.add(marker)
    task_enqueue_on_commit(seats_near_limit_notice_task, str(license.id), str(license.tenant_id))
