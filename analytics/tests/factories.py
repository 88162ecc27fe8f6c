from datetime import UTC, datetime

import factory
from django.utils import timezone

from analytics.models import DailyUsage, HourlyUsage, UsageRollupRun
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
