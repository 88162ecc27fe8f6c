"""Reads for accounts.

Two lookups must happen before the caller's tenant is known: a password login
finds the user by email (emails are unique across tenants), an Identity
Platform sign-in by its (provider, subject). They read across every tenant on
the operator database path, so they live here, loudly named, and return only
what it takes to open the right tenant's scope: callers then load the user
again through the scoped manager, as the app role, under row-level security.
"""

from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import DatabaseError
from django.db.models import Max
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.utils import timezone

from accounts.models import Invite, RefreshToken, User
from accounts.tokens import tenant_secret_parse
from core.cache import ProcessCache, on_each_commit
from core.errors import ServiceUnavailable
from core.pagination import Page, queryset_page
from tenants.models import Tenant
from tenants.scope import operator_scope, tenant_scope

_CANDIDATE_FIELDS = ("id", "tenant_id", "oauth_provider", "oauth_subject")


@dataclass(frozen=True)
class SignInCandidate:
    id: uuid.UUID
    tenant_id: uuid.UUID | None  # None: an operator, who signs in at the admin site only
    oauth_provider: str
    oauth_subject: str


def _candidate(**lookup) -> SignInCandidate | None:
    with operator_scope():
        row = User.objects.filter(**lookup).values(*_CANDIDATE_FIELDS).first()
    return SignInCandidate(**row) if row else None


def user_sign_in_candidate_by_email_across_tenants(*, email: str) -> SignInCandidate | None:
    """CROSS-TENANT READ (operator path): who owns this email, and in which tenant."""
    return _candidate(email=email.strip().lower())


def user_sign_in_candidate_by_identity_across_tenants(
    *, provider: str, subject: str
) -> SignInCandidate | None:
    """CROSS-TENANT READ (operator path): who is linked to this Identity Platform identity."""
    if not subject:
        return None
    return _candidate(oauth_provider=provider, oauth_subject=subject)


def invite_page(*, cursor: str | None, limit: int) -> Page:
    """One page of the current tenant's invites, newest first (the scoped
    manager picks the tenant)."""
    return queryset_page(
        Invite.objects.all(), kind="invites", order=("-created_at", "-id"), cursor=cursor, limit=limit
    )


def invite_get(*, invite_id: uuid.UUID) -> Invite | None:
    return Invite.objects.filter(pk=invite_id).first()


@dataclass(frozen=True)
class InviteByCode:
    """What the invite page shows of a presented code's invite: its status
    ("pending", "used", "revoked", "expired"; "inactive" when its tenant is
    suspended), and for a pending one its tenant's name, role and email."""

    status: str
    tenant_name: str = ""
    role: str = ""
    role_label: str = ""
    email: str = ""


def invite_get_by_code(*, code: str) -> InviteByCode | None:
    """The invite of an invite code, read in the tenant the code names; None
    for a code that is no invite's (so nothing tells whose it would be)."""
    parsed = tenant_secret_parse(code)
    if parsed is None or "\x00" in code:
        return None
    tenant_id, digest = parsed
    with tenant_scope(tenant_id):
        invite = Invite.objects.filter(code_digest=digest).first()
        if invite is None:
            return None
        status = invite.status()
        if status != "pending":
            return InviteByCode(status=status)
        tenant = Tenant.objects.filter(pk=tenant_id).first()
        if tenant is None or not tenant.is_active:
            return InviteByCode(status="inactive")
        return InviteByCode(
            status=status,
            tenant_name=tenant.name,
            role=invite.role,
            role_label=invite.get_role_display(),
            email=invite.email,
        )


def token_family_is_revoked(*, family_id: uuid.UUID) -> bool:
    """Whether a sign-in (a refresh-token family) has ended: logout, a reused
    refresh token, a new password or a deactivation revoked its rows. Read in
    the caller's tenant scope, on every request an access token makes; a family
    with no rows (pruned a day after its last refresh token expired, long after
    its access tokens) is not revoked."""
    return RefreshToken.objects.filter(family_id=family_id, revoked_at__isnull=False).exists()


# The caller of an access token on the calls an application makes beside its
# heartbeats (acquire, status: views with `caller_cache`), kept as briefly as
# a license's state is: an active member with a live sign-in, read on every
# such call otherwise. A user or tenant saved or deleted, or a sign-in ended,
# in this process forgets every entry at once (and again when its transaction
# commits); other processes see it within CALLER_CACHE_SECONDS. Refusals are
# never kept.
_callers: ProcessCache[User] = ProcessCache(lambda: settings.CALLER_CACHE_SECONDS)


def caller_get_cached(*, tenant_id: uuid.UUID, user_id: uuid.UUID, family_id: uuid.UUID, load) -> User:
    """The caller `load` finds (in the caller's tenant scope, which is
    active), as of at most CALLER_CACHE_SECONDS ago; each call gets its own
    copy of the row. `load` raises for a caller who may not call."""
    user = _callers.get((str(tenant_id), str(user_id), str(family_id)), load)
    return copy.deepcopy(user)  # its tenant row too


def callers_forget() -> None:
    """Forget every cached caller, now and when the current transaction
    commits (a request of this process that read the row before the change
    committed does not keep it)."""
    _callers.clear()
    on_each_commit(_callers.clear)


@receiver([post_save, post_delete], sender=User, dispatch_uid="accounts.selectors.forget_caller")
@receiver([post_save, post_delete], sender=Tenant, dispatch_uid="accounts.selectors.forget_callers")
def callers_forget_on_change(**kwargs) -> None:
    callers_forget()


# Heartbeats ask, every two minutes per seat, whether the lease's holder may
# still hold it (invariant 11). The answer is kept as briefly as the license's
# state is: a save or delete in this process forgets it at once, other
# processes see it within LICENSE_CACHE_SECONDS.
_standing: ProcessCache[str] = ProcessCache(
    lambda: settings.LICENSE_CACHE_SECONDS,
    stale_on=(DatabaseError, ServiceUnavailable),
    stale_limit=lambda: settings.LICENSE_CACHE_STALE_IF_ERROR_SECONDS,
)

USER_INACTIVE = "user_inactive"
TENANT_INACTIVE = "tenant_inactive"


def seat_holder_standing(*, user_id: str | None, tenant_id: uuid.UUID | str) -> str:
    """ "" when this user of this tenant may hold a seat; else why not:
    `tenant_inactive` (the tenant is deactivated) or `user_inactive` (the
    user is deactivated or deleted). A lease of no user is judged by its
    tenant alone."""

    def load() -> str:
        with tenant_scope(tenant_id):
            tenant = Tenant.objects.fetch(pk=tenant_id)
            if tenant is None or not tenant.is_active:
                return TENANT_INACTIVE
            if user_id is None:
                return ""
            try:
                user = User.objects.fetch(pk=uuid.UUID(str(user_id)))
            except ValueError:
                user = None
            return "" if user is not None and user.is_active else USER_INACTIVE

    return _standing.get((str(tenant_id), str(user_id)), load)


@receiver([post_save, post_delete], sender=User, dispatch_uid="accounts.selectors.forget_user")
def seat_holder_standing_forget_user(*, instance: User, **kwargs) -> None:
    # Now and when the change commits, as callers_forget (another thread may read before it).
    key = (str(instance.tenant_id), str(instance.pk))
    _standing.forget(key)
    on_each_commit(lambda: _standing.forget(key))


@receiver([post_save, post_delete], sender=Tenant, dispatch_uid="accounts.selectors.forget_tenant")
def seat_holder_standing_forget_tenant(**kwargs) -> None:
    _standing.clear()
    on_each_commit(_standing.clear)


def user_sign_in_candidate_by_id_across_tenants(*, user_id: str) -> SignInCandidate | None:
    """CROSS-TENANT READ (operator path): the user of this id (a password
    reset's `uid`), and in which tenant; None for anything not a user's id."""
    try:
        user_uuid = uuid.UUID(str(user_id))
    except ValueError:
        return None
    return _candidate(pk=user_uuid)


# --- People (issue 16): the dashboard's People page ------------------------------------------


def people_page(*, cursor: str | None, limit: int) -> Page:
    """One page of the current tenant's users, by email (the scoped manager
    picks the tenant)."""
    return queryset_page(User.objects.all(), kind="people", order=("email", "id"), cursor=cursor, limit=limit)


def invite_pending_page(*, cursor: str | None, limit: int) -> Page:
    """One page of the current tenant's pending invites (not used, withdrawn
    or expired), newest first, with who made each."""
    pending = Invite.objects.filter(
        used_at__isnull=True, revoked_at__isnull=True, expires_at__gt=timezone.now()
    ).select_related("created_by")
    return queryset_page(
        pending, kind="pending-invites", order=("-created_at", "-id"), cursor=cursor, limit=limit
    )


def user_last_seen(*, user_ids: list[uuid.UUID]) -> dict[uuid.UUID, datetime]:
    """When each of these users (of the current tenant) was last seen: the
    newest of their last sign-in (API or dashboard: `last_login`) and their
    last token refresh (an application that runs refreshes its access token
    every ACCESS_TOKEN_LIFETIME seconds). Users never seen are left out."""
    seen: dict[uuid.UUID, datetime] = {}
    for pk, last_login in User.objects.filter(pk__in=user_ids, last_login__isnull=False).values_list(
        "pk", "last_login"
    ):
        seen[pk] = last_login
    refreshed = (
        RefreshToken.objects.filter(user_id__in=user_ids)
        .values("user_id")
        .annotate(newest=Max("created_at"))
        .values_list("user_id", "newest")
    )
    for pk, newest in refreshed:
        if newest is not None and (pk not in seen or newest > seen[pk]):
            seen[pk] = newest
    return seen


def user_operator_ids_across_tenants(*, ids: set[str]) -> set[str]:
    """CROSS-TENANT READ (operator path): which of these user ids are
    operators' (staff of no tenant), so a tenant's audit log can say
    "operator" for their actions without showing who they are."""
    keys = []
    for value in ids:
        try:
            keys.append(uuid.UUID(str(value)))
        except ValueError:
            pass
    if not keys:
        return set()
    with operator_scope():
        found = User.objects.filter(pk__in=keys, tenant__isnull=True, is_staff=True).values_list(
            "pk", flat=True
        )
        return {str(pk) for pk in found}
