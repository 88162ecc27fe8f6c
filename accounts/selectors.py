"""Reads for accounts.

Two lookups must happen before the caller's tenant is known: a password login
finds the user by email (emails are unique across tenants), an Identity
Platform sign-in by its (provider, subject). They read across every tenant on
the operator database path, so they live here, loudly named, and return only
what it takes to open the right tenant's scope: callers then load the user
again through the scoped manager, as the app role, under row-level security.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from accounts.models import Invite, User
from core.pagination import Page, queryset_page
from tenants.scope import operator_scope

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
