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
    # Overdraft seats (issue 17): granted past max_seats, marked so on the lease.
    overdraft_peak = models.PositiveIntegerField(
        default=0, help_text="Most seats held past max_seats at one instant (for the true-up)."
    )
    overdraft_seconds = models.FloatField(
        default=0.0, help_text="Seat-seconds held past max_seats within the period."
    )
    # The queue (issue 17): leases granted to a queued ticket, and its wait.
    queued_acquisitions = models.PositiveIntegerField(
        default=0, help_text="New leases granted after a wait in the license's queue."
    )
    queue_wait_seconds = models.FloatField(default=0.0, help_text="Their waits, in total.")
    queue_wait_max = models.FloatField(default=0.0, help_text="The longest of their waits.")
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
        "overdraft_peak",
        "overdraft_seconds",
        "queued_acquisitions",
        "queue_wait_seconds",
        "queue_wait_max",
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


class MonthlyReport(TenantOwnedModel):
    """One license's usage over one past UTC month, as it was emailed to the
    tenant's admins (analytics.report_services): the figures, read from the
    same rollups as the usage API, and the CSV that was attached. Kept
    MONTHLY_REPORT_RETENTION_DAYS; `emailed_at` is set in the transaction that
    sent it, so a second run (or a second worker) sends nothing."""

    license = models.ForeignKey(License, on_delete=models.CASCADE, related_name="+", db_index=False)
    month = models.DateField(help_text="The first day of the UTC month reported on.")
    max_seats = models.PositiveIntegerField(help_text="The license's seat limit when the report was made.")
    peak_seats = models.PositiveIntegerField(default=0, help_text="Most seats held at one instant.")
    average_seats = models.FloatField(
        default=0.0, help_text="The mean of the month's hourly peaks (every hour counts, idle ones as 0)."
    )
    acquisitions = models.PositiveIntegerField(default=0)
    denials = models.PositiveIntegerField(default=0)
    denials_by_code = models.JSONField(default=dict, blank=True)
    sessions_ended = models.PositiveIntegerField(default=0)
    session_seconds = models.FloatField(default=0.0)
    top_users = models.JSONField(
        default=list, blank=True, help_text='[{"email", "seconds", "sessions"}], most session time first.'
    )
    overdraft_seats = models.PositiveIntegerField(
        default=0, help_text="Seats held beyond max_seats at the peak: max(0, peak - max_seats)."
    )
    csv_text = models.TextField(
        help_text="The CSV attached to the email (and downloaded from the dashboard)."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    emailed_at = models.DateTimeField(null=True, blank=True)
    emailed_to = models.PositiveIntegerField(default=0, help_text="How many admins it was sent to.")

    class Meta:
        db_table = "monthly_report"
        ordering = ["-month", "license_id"]
        constraints = [
            models.UniqueConstraint(fields=["license", "month"], name="monthly_report_unique"),
        ]
        indexes = [models.Index(fields=["tenant", "month"], name="monthly_report_tenant_month")]

    def __str__(self) -> str:
        return f"{self.license_id} {self.month:%Y-%m}"
