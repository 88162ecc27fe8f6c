"""Who may call what: the one module every API view takes its roles from.

The defaults (REST_FRAMEWORK settings) make every endpoint members-only with
read-only members limited to safe methods, so a view that forgets to say
anything is still guarded. Admin-only views set `permission_classes =
TENANT_ADMIN_ONLY`. Objects of another tenant never reach a permission check:
the scoped manager does not find them, and the view answers 404.
"""

from __future__ import annotations

from rest_framework.permissions import SAFE_METHODS, BasePermission

from accounts.models import Role
from tenants.scope import current_tenant_id


class IsTenantMember(BasePermission):
    """An active member (User.is_active_member) of the tenant the request is
    scoped to (operators, who have no tenant, are not members of any)."""

    message = "This endpoint is for members of a tenant."

    def has_permission(self, request, view) -> bool:
        user = request.user
        tenant_id = current_tenant_id()
        return (
            user is not None
            and tenant_id is not None
            and getattr(user, "tenant_id", None) == tenant_id
            and getattr(user, "is_active_member", False)
        )


class IsTenantAdmin(IsTenantMember):
    message = "Only a tenant admin may do this."

    def has_permission(self, request, view) -> bool:
        return super().has_permission(request, view) and request.user.role == Role.TENANT_ADMIN


class ReadOnlyOrWriter(BasePermission):
    """Read-only members may use safe methods only, on every tenant endpoint
    (acquiring a seat included: read-only is for people who watch, not use)."""

    message = "Read-only members may only read."

    def has_permission(self, request, view) -> bool:
        if request.method in SAFE_METHODS:
            return True
        return getattr(request.user, "role", None) in (Role.TENANT_ADMIN, Role.USER)


TENANT_MEMBERS = [IsTenantMember, ReadOnlyOrWriter]
TENANT_ADMIN_ONLY = [IsTenantAdmin]
