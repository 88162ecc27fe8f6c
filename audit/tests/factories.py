import factory
from django.utils import timezone

from audit.models import AuditLog
from tenants.tests.factories import TenantOwnedFactory


class AuditLogFactory(TenantOwnedFactory):
    class Meta:
        model = AuditLog

    action = "test.event"
    created_at = factory.LazyFunction(timezone.now)
