from datetime import UTC, date, datetime

import factory
from django.utils import timezone

from analytics.models import DailyUsage, HourlyUsage, MonthlyReport, UsageRollupRun
from licenses.tests.factories import LicenseFactory
from tenants.tests.factories import TenantOwnedFactory


class HourlyUsageFactory(TenantOwnedFactory):
    class Meta:
        model = HourlyUsage

    license = factory.SubFactory(LicenseFactory, tenant=factory.SelfAttribute("..tenant"))
    period_start = factory.Sequence(lambda n: datetime(2026, 1, 1, n % 24, tzinfo=UTC))
    peak_seats = 1
    computed_at = factory.LazyFunction(timezone.now)


class DailyUsageFactory(HourlyUsageFactory):
    class Meta:
        model = DailyUsage

    period_start = factory.Sequence(lambda n: datetime(2026, 1, 1 + n % 28, tzinfo=UTC))


class UsageRollupRunFactory(TenantOwnedFactory):
    class Meta:
        model = UsageRollupRun

    license = factory.SubFactory(LicenseFactory, tenant=factory.SelfAttribute("..tenant"))
    rolled_up_to = factory.LazyFunction(timezone.now)


class MonthlyReportFactory(TenantOwnedFactory):
    class Meta:
        model = MonthlyReport

    license = factory.SubFactory(LicenseFactory, tenant=factory.SelfAttribute("..tenant"))
    month = factory.Sequence(lambda n: date(2020 + n // 12, n % 12 + 1, 1))
    max_seats = 2
    peak_seats = 1
    csv_text = "tenant,license_id\r\n"
