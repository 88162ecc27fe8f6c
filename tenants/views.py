"""The tenant-safe base view every tenant API view stands on.

`dispatch` opens the request's transaction and a scope boundary; the
authentication class (configured in DRF settings, so this module never imports
`accounts`) activates the caller's tenant inside it; `initial` refuses a
request that reached a tenant view without a tenant. On exit the scope is reset
in `finally` and the transaction-local database setting ends with the
transaction.
"""

from __future__ import annotations

from django.db import InterfaceError, OperationalError
from rest_framework.views import APIView

from core.context import context_undo_changes
from core.errors import ApplicationError, database_unavailable_response
from tenants.scope import current_tenant_id, scope_boundary, scoped_transaction


class ScopedTransactionAPIView(APIView):
    """A request in one transaction and a scope boundary: a database that fails
    opening or committing it is a 503, and a 5xx undoes what the request
    changed elsewhere. TenantAPIView adds the refusal of a caller without a
    tenant; the provisioning API (an operator-wide key has none) stands here."""

    def dispatch(self, request, *args, **kwargs):
        try:
            with scoped_transaction():
                response = super().dispatch(request, *args, **kwargs)
        except (OperationalError, InterfaceError):
            # The database failed where DRF's handler does not reach: opening
            # or committing the request's transaction. A dependency is down.
            response = database_unavailable_response()
        except BaseException:
            context_undo_changes()
            raise
        if response.status_code >= 500:
            # Nothing the request did stands: its transaction is rolled back,
            # and what it changed elsewhere is undone (a 503 has not happened).
            context_undo_changes()
        return response


class TenantAPIView(ScopedTransactionAPIView):
    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        if current_tenant_id() is None:
            # Operators (staff without a tenant) use the admin site, not this API.
            raise ApplicationError("This endpoint is for members of a tenant.", code="permission_denied")


class PublicAPIView(APIView):
    """Endpoints that need no caller (register, login, JWKS)."""

    authentication_classes: list = []
    permission_classes: list = []

    def dispatch(self, request, *args, **kwargs):
        with scope_boundary():
            return super().dispatch(request, *args, **kwargs)
