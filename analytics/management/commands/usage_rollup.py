"""Recompute usage rollups over a chosen range (a backfill), now, in this process."""

from __future__ import annotations

from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from analytics.services import usage_rollup_license
from licenses.models import License
from tenants.scope import operator_scope


class Command(BaseCommand):
    help = "Recompute hourly and daily usage of every license (or one) over a range; idempotent."

    def add_arguments(self, parser):
        parser.add_argument("--from", dest="start", help="ISO 8601 start (default: 48 hours ago).")
        parser.add_argument("--to", dest="end", help="ISO 8601 end (default: now).")
        parser.add_argument("--license", dest="license_id", help="Only this license id.")

    def handle(self, *args, start=None, end=None, license_id=None, **options):
        now = timezone.now()
        begin = parse_datetime(start) if start else now - timedelta(hours=48)
        stop = parse_datetime(end) if end else now
        if begin is None or stop is None:
            raise CommandError("--from and --to take ISO 8601 times, e.g. 2026-01-31T00:00:00Z")
        with operator_scope():
            licenses = License.objects.all()
            if license_id:
                licenses = licenses.filter(id=license_id)
            targets = list(licenses.values_list("id", "tenant_id"))
        periods = sum(
            usage_rollup_license(license_id=lid, tenant_id=tid, start=begin, end=stop, now=now)
            for lid, tid in targets
        )
        self.stdout.write(f"recomputed {periods} periods of {len(targets)} licenses")
