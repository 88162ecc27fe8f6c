"""Build and email the monthly usage reports of a past month now, in this process."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from analytics import report_services


class Command(BaseCommand):
    help = (
        "Build each license's usage report of a past month and email it to the tenant's admins; "
        "idempotent (a report already emailed is not sent again)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--month", help="YYYY-MM (default: the month before this one).")
        parser.add_argument("--license", dest="license_id", help="Only this license id.")
        parser.add_argument("--prune", action="store_true", help="Also delete reports past their retention.")

    def handle(self, *args, month=None, license_id=None, prune=False, **options):
        try:
            chosen = report_services.month_parse(month) if month else report_services.month_previous()
        except ValueError as error:
            raise CommandError(f"--month takes YYYY-MM, e.g. 2026-10 ({error})") from None
        if report_services.month_bounds(chosen)[1] > timezone.now():
            raise CommandError(f"{chosen:%Y-%m} has not ended yet: reports are of past months.")
        targets = report_services.monthly_report_targets(month=chosen)
        if license_id:
            targets = [target for target in targets if target[0] == license_id]
        sent = sum(
            report_services.monthly_report_run(license_id=lid, tenant_id=tid, month=chosen)
            for lid, tid in targets
        )
        self.stdout.write(f"{chosen:%Y-%m}: {len(targets)} reports due, {sent} emails sent")
        if prune:
            self.stdout.write(f"pruned {report_services.monthly_reports_prune()} old reports")
