"""Usage rollups: one row per license per hour, and per license per day.

Rows are derived data, recomputed from the audit events (and the ledger's live
leases) over a window by `analytics.services.usage_rollup_license`; they can
be thrown away and rebuilt at any time. A period with no activity has no row.
"""

from __future__ import annotations

from django.db import models

from licenses.models import License
from tenants.models import TenantOwnedModel


class UsageRollup(TenantOwnedModel):
    license = models.ForeignKey(License, on_delete=models.CASCADE, related_name="+", db_index=False)
    period_start = models.DateTimeField(help_text="UTC start of the hour or day.")
    peak_seats = models.PositiveIntegerField(default=0, help_text="Most seats held at one instant.")
    acquisitions = models.PositiveIntegerField(default=0, help_text="New leases (not renewals).")
    denials = models.PositiveIntegerField(default=0)
    denials_by_code = models.JSONField(default=dict, blank=True)
    distinct_users = models.PositiveIntegerField(default=0, help_text="Users holding a seat in the period.")
    distinct_machines = models.PositiveIntegerField(
        default=0, help_text="Machines holding a seat in the period."
    )
    sessions_ended = models.PositiveIntegerField(default=0, help_text="Leases that ended in the period.")
    session_seconds = models.FloatField(default=0.0, help_text="Total length of the leases that ended.")
    computed_at = models.DateTimeField()

    # The columns a recompute rewrites (everything but the row's identity).
    FIGURES = (
        "peak_seats",
        "acquisitions",
        "denials",
        "denials_by_code",
        "distinct_users",
        "distinct_machines",
        "sessions_ended",
        "session_seconds",
    )

    class Meta:
        abstract = True
        ordering = ["period_start"]

    @property
    def avg_session_seconds(self) -> float | None:
        return self.session_seconds / self.sessions_ended if self.sessions_ended else None

    def __str__(self) -> str:
        return f"{self.license_id} {self.period_start:%Y-%m-%d %H:%M}"


class HourlyUsage(UsageRollup):
    class Meta(UsageRollup.Meta):
        db_table = "usage_hourly"
        constraints = [
            models.UniqueConstraint(fields=["license", "period_start"], name="usage_hourly_unique")
        ]
        indexes = [models.Index(fields=["tenant", "period_start"], name="usage_hourly_tenant_period")]


class DailyUsage(UsageRollup):
    class Meta(UsageRollup.Meta):
        db_table = "usage_daily"
        constraints = [models.UniqueConstraint(fields=["license", "period_start"], name="usage_daily_unique")]
        indexes = [models.Index(fields=["tenant", "period_start"], name="usage_daily_tenant_period")]


class UsageRollupRun(TenantOwnedModel):
    """When one license's usage was last rolled up: the figures of its rows
    hold up to `rolled_up_to` (the end of the latest recompute; a backfill of
    older periods never moves it back). A period with no activity has no
    rollup row, so this, not the rows' `computed_at`, says how fresh they are."""

    license = models.OneToOneField(License, on_delete=models.CASCADE, related_name="+")
    rolled_up_to = models.DateTimeField()

    class Meta:
        db_table = "usage_rollup_run"

    def __str__(self) -> str:
        return f"{self.license_id} as of {self.rolled_up_to:%Y-%m-%d %H:%M}"
