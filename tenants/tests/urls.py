"""A tenant view for tests of the scope's life across requests, authenticated
by a test-only header (the real authentication comes from `accounts`)."""

from django.db import connection
from django.urls import path
from rest_framework.authentication import BaseAuthentication
from rest_framework.response import Response

from licenses.models import License
from tenants.scope import activate_tenant
from tenants.views import TenantAPIView


class HeaderTenantAuthentication(BaseAuthentication):
    def authenticate(self, request):
        tenant = request.headers.get("X-Test-Tenant")
        if not tenant:
            return None
        activate_tenant(tenant)
        return (object(), None)


class RowsView(TenantAPIView):
    authentication_classes = [HeaderTenantAuthentication]
    permission_classes = []

    def get(self, request):
        with connection.cursor() as cursor:
            cursor.execute("SELECT tenant_id::text FROM licenses")
            raw = sorted(row[0] for row in cursor.fetchall())
            cursor.execute("SELECT pg_backend_pid()")
            pid = cursor.fetchone()[0]
        orm = sorted(str(t) for t in License.objects.values_list("tenant_id", flat=True))
        return Response({"raw": raw, "orm": orm, "backend_pid": pid})


urlpatterns = [path("rows", RowsView.as_view())]
