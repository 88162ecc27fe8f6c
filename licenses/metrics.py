"""The Prometheus metrics the license server exports about licensing.

What code calls:
- `record_acquire_outcome(code)`: once per acquire, with "granted" (a new
  lease), "existing" (the fingerprint's live lease came back), "queued" (a
  place in the license's queue) or the error code that refused it.
- `observe_queue_wait(seconds)`: once per seat granted to a queued ticket,
  how long it waited.

Each seat-ledger call is timed and its failures counted by the ledger's
gateway, which every call goes through (licenses/ledger/metrics.py).

Seats in use are not counted here on acquire and release: leases also end by
expiry, with no call at all (invariant 4), so a gauge kept up by the API would
drift. `SeatCollector` reads the ledger itself at scrape time instead, through
the operator path, for at most `METRICS_SEAT_LICENSES_MAX` licenses, and keeps
the answer for `METRICS_SEAT_CACHE_SECONDS` so that several scrapers (or
workers) cost the ledger one read each period.

Every label takes values from a fixed set, so no client input can grow the
number of series: unknown codes are counted as "other". The seat gauges'
`tenant` label is the tenant's id: a tenant's slug (its customer's name, as
often as not) reaches the metrics store only with METRICS_TENANT_LABELS on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from core.errors import ERROR_STATUS
from licenses.ledger.gateway import seat_ledger
from licenses.ledger.metrics import bounded_label

logger = logging.getLogger(__name__)

# Granted, the fingerprint's existing lease, or one of the API's error codes:
# a bounded label set that follows the codes wherever they are defined.
ACQUIRE_OUTCOMES = frozenset({"granted", "existing", "queued", *ERROR_STATUS})

ACQUIRES = Counter(
    "coditect_license_acquire",
    "License acquires by outcome: granted, existing, or the error code that refused them.",
    ["outcome"],
)


def record_acquire_outcome(code: str) -> None:
    """Count one acquire: "granted", "existing", or the error code that refused it."""
    ACQUIRES.labels(outcome=bounded_label(code, ACQUIRE_OUTCOMES)).inc()


QUEUE_WAITS = Histogram(
    "coditect_license_queue_wait_seconds",
    "How long a queued acquire waited for the seat it was granted.",
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, float("inf")),
)


def observe_queue_wait(seconds: float) -> None:
    QUEUE_WAITS.observe(seconds)


# Pre-create the series dashboards and alerts name, so that a quiet server
# exports zeros rather than nothing (an absent series hides a broken rate()).
for _outcome in ("granted", "existing", "no_seats_available"):
    ACQUIRES.labels(outcome=_outcome)


@dataclass(frozen=True)
class SeatUsage:
    tenant: str  # the tenant's id, or its slug with METRICS_TENANT_LABELS on
    license: str
    used: int | None  # None: the ledger did not answer for this license
    max_seats: int
    # Tickets waiting in the license's queue (None: it does not queue, or no answer).
    queued: int | None = None


class SeatCollector(Collector):
    """Seats in use and seats sold per license, read from the ledger at scrape time."""

    def __init__(self, *, max_licenses: int, cache_seconds: float) -> None:
        self.max_licenses = max_licenses
        self.cache_seconds = cache_seconds
        self._lock = threading.Lock()
        self._cached_at = float("-inf")
        self._cached: tuple[list[SeatUsage], bool, bool] = ([], False, True)

    def describe(self) -> Iterator:
        # Registering must not touch the database; the families are described empty.
        return iter(())

    def forget(self) -> None:
        """Drop the cached answer: the next scrape reads the ledger again."""
        with self._lock:
            self._cached_at = float("-inf")

    def read(self) -> tuple[list[SeatUsage], bool, bool]:
        """(usage per license, truncated, every read succeeded), cached."""
        with self._lock:
            if time.monotonic() - self._cached_at >= self.cache_seconds:
                self._cached = self._read_now()
                self._cached_at = time.monotonic()
            return self._cached

    def _read_now(self) -> tuple[list[SeatUsage], bool, bool]:
        from django.conf import settings
        from django.utils import timezone

        from licenses.models import License
        from tenants.scope import operator_scope

        usage: list[SeatUsage] = []
        ok = True
        try:
            with operator_scope():
                now = timezone.now()
                rows = list(
                    License.unscoped.filter(suspended=False)
                    .exclude(expires_at__lte=now)
                    .order_by("created_at")
                    .values_list(
                        "id",
                        "tenant_id",
                        "tenant__slug",
                        "max_seats",
                        "seat_mode",
                        "policy__seat_mode",
                        "queue_max_tickets",
                        "policy__queue_max_tickets",
                    )[: self.max_licenses + 1]
                )
        except Exception:  # a scrape must answer even while the database does not
            logger.warning("seat metrics: licenses could not be read", exc_info=True)
            return [], False, False
        truncated = len(rows) > self.max_licenses
        rows = rows[: self.max_licenses]
        try:
            seats = seat_ledger()
        except Exception:
            logger.warning("seat metrics: no seat ledger", exc_info=True)
            seats, ok = None, False
        by_slug = settings.METRICS_TENANT_LABELS
        for license_id, tenant_id, tenant_slug, max_seats, own_mode, policy_mode, own_queue, queue in rows:
            # A seat is a user's in the per-user modes (licenses.terms.seats_per_user).
            per_user = (own_mode or policy_mode) in ("per_user", "named")
            queues = (queue if own_queue is None else own_queue) > 0
            used = queued = None
            if seats is not None:
                try:
                    # The database ledger reads every tenant's rows: operator work.
                    with operator_scope():
                        used = seats.used(license_id=license_id, tenant_id=tenant_id, per_user=per_user)
                        if queues:
                            queued = seats.queued(license_id=license_id, tenant_id=tenant_id)
                except Exception:
                    ok = False
            usage.append(
                SeatUsage(
                    tenant=tenant_slug if by_slug else str(tenant_id),
                    license=str(license_id),
                    used=used,
                    max_seats=max_seats,
                    queued=queued,
                )
            )
        if not ok:
            logger.warning("seat metrics: the ledger did not answer for every license")
        return usage, truncated, ok

    def collect(self) -> Iterator:
        usage, truncated, ok = self.read()
        used = GaugeMetricFamily(
            "coditect_license_seats_used", "Live leases per license.", labels=["tenant", "license"]
        )
        sold = GaugeMetricFamily(
            "coditect_license_seats_max", "Seats sold per license (max_seats).", labels=["tenant", "license"]
        )
        waiting = GaugeMetricFamily(
            "coditect_license_queue_waiting",
            "Acquires waiting in the license's queue (licenses that queue).",
            labels=["tenant", "license"],
        )
        for row in usage:
            sold.add_metric([row.tenant, row.license], row.max_seats)
            if row.used is not None:
                used.add_metric([row.tenant, row.license], row.used)
            if row.queued is not None:
                waiting.add_metric([row.tenant, row.license], row.queued)
        yield used
        yield sold
        yield waiting
        yield GaugeMetricFamily(
            "coditect_license_seat_metrics_truncated",
            "1 when more active licenses exist than METRICS_SEAT_LICENSES_MAX exports.",
            value=1 if truncated else 0,
        )
        yield GaugeMetricFamily(
            "coditect_license_seat_metrics_ok",
            "1 when the last read of seats answered for every license.",
            value=1 if ok else 0,
        )


_seat_collector: SeatCollector | None = None


def seat_collector() -> SeatCollector:
    """The process's one seat collector, configured from settings."""
    global _seat_collector
    if _seat_collector is None:
        from django.conf import settings

        _seat_collector = SeatCollector(
            max_licenses=settings.METRICS_SEAT_LICENSES_MAX,
            cache_seconds=settings.METRICS_SEAT_CACHE_SECONDS,
        )
    return _seat_collector
