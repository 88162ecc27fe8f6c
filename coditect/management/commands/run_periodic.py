"""Run the periodic schedule (settings.CELERY_BEAT_SCHEDULE) in this process.

The embedded default has no broker and no beat: bin/run-embedded starts this
beside the web server, so `make run` still sweeps expired leases, rolls up
usage and exports the audit log. Tasks run eagerly there, in this process.
With a broker configured it enqueues, like beat (run one of the two, not both).
"""

from __future__ import annotations

import logging
import select
import signal
import socket
import time

from celery.schedules import maybe_schedule
from django.conf import settings
from django.core.management.base import BaseCommand
from django.utils import timezone

from coditect.celery import app

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Run the periodic tasks of CELERY_BEAT_SCHEDULE in-process (the embedded default's beat)."

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="Run every entry once, then exit.")

    def handle(self, *args, once: bool = False, **options):
        # Autodiscovery imports each app's tasks.py only when a worker starts.
        app.loader.import_default_modules()
        entries = {
            name: (entry["task"], maybe_schedule(entry["schedule"], app=app))
            for name, entry in settings.CELERY_BEAT_SCHEDULE.items()
        }
        if once:
            for name, (task, _) in entries.items():
                self._run(name, task)
            return

        # SIGTERM or SIGINT stops it, after the task in hand. The handler
        # takes no lock (a threading.Event set from a handler deadlocks when
        # the signal lands while the main thread holds the Event's own lock:
        # the process then outlived `make run`); the wait is a select on the
        # wakeup descriptor, which a signal makes readable.
        stopping: list[int] = []
        wakeup, wakeup_writer = socket.socketpair()
        wakeup.setblocking(False)
        wakeup_writer.setblocking(False)
        signal.set_wakeup_fd(wakeup_writer.fileno(), warn_on_full_buffer=False)
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda signum, _frame: stopping.append(signum))
        last_run: dict[str, object] = {}
        while not stopping:
            wait = 60.0
            for name, (task, schedule) in entries.items():
                if name not in last_run:
                    due, next_check = True, schedule.remaining_estimate(timezone.now()).total_seconds()
                else:
                    due, next_check = schedule.is_due(last_run[name])
                if due:
                    last_run[name] = timezone.now()
                    self._run(name, task)
                wait = min(wait, max(next_check, 0.5))
            if stopping:
                break
            select.select([wakeup], [], [], wait)

    @staticmethod
    def _run(name: str, task: str) -> None:
        started = time.monotonic()
        try:
            app.tasks[task].delay()
        except Exception:  # one failing entry must not stop the others
            logger.exception("periodic task failed", extra={"entry": name, "task": task})
        else:
            logger.debug(
                "periodic task ran",
                extra={"entry": name, "task": task, "seconds": round(time.monotonic() - started, 3)},
            )
