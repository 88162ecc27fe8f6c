"""API keys of the provisioning API: made, found, revoked.

A key looks like `cdt_pk_` and 43 characters of base64url (256 random bits),
so a leaked one is easy to grep for and `core.logging.redact` removes it from
every log line. The database keeps its SHA-256 (a high-entropy secret needs
no slow hash, and a request pays for no password hash) and the display prefix
`cdt_pk_` + 6 characters; the key itself exists only in `api_key_create`'s
return value.

A request's key is looked up on the operator path (keys of every tenant, and
operator-wide ones with no tenant, are in one table under RLS by tenant); the
caller then runs in the key's tenant scope, or, for an operator-wide key, on
the provisioning API's operator path (licenses/provisioning.py).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import router, transaction
from django.utils import timezone

from accounts.models import ApiKey
from audit.events import Event
from audit.services import audit_record
from core.errors import ApplicationError
from tenants.models import Tenant
from tenants.scope import operator_scope

API_KEY_PREFIX = "cdt_pk_"
API_KEY_SHAPE = re.compile(r"^cdt_pk_[A-Za-z0-9_-]{43}$")
DISPLAY_PREFIX_LENGTH = len(API_KEY_PREFIX) + 6
# `last_used_at` is written at most this often per key (not on every request).
LAST_USED_GRANULARITY = timedelta(minutes=1)


def api_key_generate() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def api_key_digest(key: str) -> str:
    return hashlib.sha256(key.encode("ascii", "replace")).hexdigest()


def looks_like_api_key(token: str) -> bool:
    return token.startswith(API_KEY_PREFIX)


@dataclass(frozen=True)
class ApiKeyCaller:
    """`request.user` of a request signed with an API key. Not a User: it has
    no role and no tenant membership, so no tenant endpoint's permission lets
    it in; only the provisioning API's does (`is_api_key`)."""

    api_key: ApiKey
    is_authenticated: bool = True
    is_api_key: bool = True
    # No user id: the audit log names the key in `actor`, not as a user.
    pk: None = None

    @property
    def tenant_id(self) -> uuid.UUID | None:
        return self.api_key.tenant_id

    @property
    def is_operator_wide(self) -> bool:
        return self.api_key.tenant_id is None

    @property
    def email(self) -> str:
        # What audit rows name as the actor (AuditLog.actor).
        return f"api-key:{self.api_key.key_prefix} ({self.api_key.name})"[:254]


def api_key_create(*, name: str, tenant: Tenant | None = None, actor: Any = None) -> tuple[ApiKey, str]:
    """Make a key (operator-wide without `tenant`); return it and the secret,
    which exists only in this return value. Audited: `api_key.created`."""
    name = (name or "").strip()
    if not name:
        raise ValueError("an API key needs a name")
    key = api_key_generate()
    with operator_scope(), transaction.atomic(using=router.db_for_write(ApiKey)):
        api_key = ApiKey.objects.create(
            tenant=tenant,
            name=name[:200],
            key_digest=api_key_digest(key),
            key_prefix=key[:DISPLAY_PREFIX_LENGTH],
            created_by=getattr(actor, "email", "") or "",
        )
        audit_record(
            action=Event.API_KEY_CREATED,
            tenant_id=api_key.tenant_id,
            user=actor,
            target=api_key,
            details={"key_prefix": api_key.key_prefix, "name": api_key.name, "scope": _scope(api_key)},
        )
    return api_key, key


def api_key_revoke(*, api_key: ApiKey, actor: Any = None) -> ApiKey:
    """The key is refused (401) from its next request on. Revoking a revoked
    key changes nothing and is not audited again."""
    with operator_scope(), transaction.atomic(using=router.db_for_write(ApiKey)):
        api_key = ApiKey.objects.select_for_update().get(pk=api_key.pk)
        if api_key.revoked_at is None:
            api_key.revoked_at = timezone.now()
            api_key.revoked_by = getattr(actor, "email", "") or ""
            api_key.save(update_fields=["revoked_at", "revoked_by"])
            audit_record(
                action=Event.API_KEY_REVOKED,
                tenant_id=api_key.tenant_id,
                user=actor,
                target=api_key,
                details={"key_prefix": api_key.key_prefix, "name": api_key.name, "scope": _scope(api_key)},
            )
    return api_key


def api_key_find(*, key: str) -> ApiKey | None:
    """The live key with this secret (None for an unknown, malformed or
    revoked one), its `last_used_at` brought up to date. A key of a tenant
    that is not active is refused: 403 `tenant_inactive`."""
    if not API_KEY_SHAPE.match(key):
        return None
    with operator_scope():
        api_key = ApiKey.objects.fetch(key_digest=api_key_digest(key))
        if api_key is None or api_key.revoked_at is not None:
            return None
        if api_key.tenant_id is not None:
            if not Tenant.objects.filter(pk=api_key.tenant_id, is_active=True).exists():
                raise ApplicationError("This key's tenant is not active.", code="tenant_inactive")
        now = timezone.now()
        if api_key.last_used_at is None or now - api_key.last_used_at >= LAST_USED_GRANULARITY:
            # Its own autocommit statement on the operator path: the request's
            # transaction (and its rollback) is the tenant's, on another connection.
            ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
            api_key.last_used_at = now
    return api_key


def _scope(api_key: ApiKey) -> str:
    return "operator" if api_key.tenant_id is None else "tenant"
