"""The seat ledger's Prometheus instruments: how long each call takes, and
which calls failed because the store did not answer (or a bug).

Only the gateway (licenses/ledger/gateway.py) calls `observe_ledger`: every
ledger call goes through it, so every call is counted once, the same way.
Every label takes values from a fixed set, so no client input can grow the
number of series: unknown backends and operations are counted as "other".
"""

from __future__ import annotations

import time
from contextlib import ContextDecorator

from prometheus_client import Counter, Histogram

from licenses.ledger.base import NoSeatsAvailable, SessionNotFound

LEDGER_BACKENDS = frozenset({"redis", "database"})
LEDGER_OPERATIONS = frozenset(
    {"acquire", "heartbeat", "release", "borrow", "live_leases", "used", "expired_pending", "expired_ack"}
)
# A seat-ledger call is a Redis script or a short row-locking transaction:
# milliseconds, with the tail that matters between 5 and 250 ms.
LEDGER_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

LEDGER_SECONDS = Histogram(
    "coditect_ledger_operation_seconds",
    "Time spent in one seat-ledger call, by backend and operation.",
    ["backend", "operation"],
    buckets=LEDGER_BUCKETS,
)
LEDGER_ERRORS = Counter(
    "coditect_ledger_errors",
    "Seat-ledger calls that failed for a reason other than the business answers "
    "(no seats, unknown session): the store did not answer, or a bug.",
    ["backend", "operation"],
)

# Answers of the ledger that are business outcomes, not failures.
_BUSINESS_ANSWERS = (NoSeatsAvailable, SessionNotFound)


def bounded_label(value: str, allowed: frozenset[str]) -> str:
    return value if value in allowed else "other"


class observe_ledger(ContextDecorator):  # a lower-case name: it reads as a function where used
    """Time one seat-ledger call: `with observe_ledger(ledger.name, "acquire"): ...`.

    A failure other than the ledger's business answers (no seats, unknown
    session) is counted in `coditect_ledger_errors`.
    """

    def __init__(self, backend: str, operation: str) -> None:
        self.backend = bounded_label(backend, LEDGER_BACKENDS)
        self.operation = bounded_label(operation, LEDGER_OPERATIONS)

    def __enter__(self) -> observe_ledger:
        self._started = time.perf_counter()
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        LEDGER_SECONDS.labels(backend=self.backend, operation=self.operation).observe(
            time.perf_counter() - self._started
        )
        if exc_type is not None and not issubclass(exc_type, _BUSINESS_ANSWERS):
            LEDGER_ERRORS.labels(backend=self.backend, operation=self.operation).inc()
        return False


# Pre-create the series dashboards and alerts name, so that a quiet server
# exports zeros rather than nothing (an absent series hides a broken rate()).
for _backend in LEDGER_BACKENDS:
    for _operation in ("acquire", "heartbeat", "release", "borrow"):
        LEDGER_ERRORS.labels(backend=_backend, operation=_operation)
