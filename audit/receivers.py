"""Audit rows for changes made on the floor below, which cannot call audit."""

from __future__ import annotations

from typing import Any

from audit.events import Event
from audit.services import audit_record
from tenants.models import Tenant


def tenant_created_record(sender, *, tenant: Tenant, actor: Any = None, **kwargs) -> None:
    """`tenant_created`: sent inside the creating transaction and the tenant's scope."""
    audit_record(action=Event.TENANT_CREATED, tenant_id=tenant.id, user=actor, target=tenant)
