"""Enqueueing background work the same way from every app."""

from __future__ import annotations

import logging

from celery import Task
from django.db import transaction

logger = logging.getLogger(__name__)


def task_enqueue_on_commit(task: Task, *args: str, using: str | None = None) -> None:
    """Enqueue one task of a fan-out once the caller's transaction commits
    (at once outside one). With no broker (the embedded default) the task runs
    right here and its error surfaces here, as would a broker that refuses the
    message: either is logged, so that one license does not stop the others.
    `using` names the database whose transaction it waits for (default: default)."""

    def send() -> None:
        try:
            task.delay(*args)
        except Exception:
            logger.exception("background task failed", extra={"task": task.name, "task_args": list(args)})

    transaction.on_commit(send, using=using)
