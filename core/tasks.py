"""Enqueueing background work the same way from every app."""

from __future__ import annotations

import logging

from celery import Task, current_app
from django.db import transaction

from core.errors import ServiceUnavailable

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


# How long a request waits to learn that the broker cannot take its message.
BROKER_CHECK_SECONDS = 2


def task_broker_check(what: str) -> None:
    """Raise ServiceUnavailable (503, nothing changed) when the broker does not
    answer, before a change that is worth nothing without its message: an
    invite whose new code only the email carries. `what` names it for the
    client ("the invite email"). With tasks run in the process (the embedded
    default) there is no broker to ask. A broker lost between this check and
    the commit still only logs (task_enqueue_on_commit)."""
    if current_app.conf.task_always_eager:
        return
    try:
        with current_app.connection_for_write(connect_timeout=BROKER_CHECK_SECONDS) as connection:
            connection.ensure_connection(
                max_retries=1, interval_start=0, interval_step=0, timeout=BROKER_CHECK_SECONDS
            )
    except Exception as exc:
        logger.warning("the task broker does not answer", extra={"task": what}, exc_info=True)
        raise ServiceUnavailable(
            f"The server cannot send {what} right now; nothing was changed. Try again shortly.",
            headers={"Retry-After": "5"},
        ) from exc
