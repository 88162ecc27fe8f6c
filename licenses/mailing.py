"""Sending a license's key by email, and claiming it (licenses.delivery's
docstring tells the whole flow): the service functions the console, the
`create_license --email` command, the claim page, and later the provisioning
API and Stripe call."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from audit.events import Event
from audit.services import audit_record
from core.email import secret_seal
from core.tasks import task_enqueue_on_commit
from licenses.delivery import _claim_token_tenant, claim_token_digest, claim_token_new
from licenses.email_tasks import license_delivery_email_task
from licenses.models import License, LicenseClaim
from licenses.services import license_regenerate_key
from tenants.scope import tenant_scope


class ClaimRefused(Exception):
    """The link is unknown, used or expired (one answer for all three)."""


def license_delivery_send(
    *, license: License, email: str, requested_by: str = "", actor: Any = None
) -> LicenseClaim:
    """Email `email` a one-time link that claims this license's key. Returns
    the claim; the link's token exists only in the sealed task argument."""
    email = email.strip().lower()
    token = claim_token_new(license.tenant_id)
    with tenant_scope(license.tenant_id), transaction.atomic():
        # By id, not the instance: a license the console read on the operator
        # alias would otherwise send the claim there, outside this transaction.
        claim = LicenseClaim(
            tenant_id=license.tenant_id,
            license_id=license.id,
            token_digest=claim_token_digest(token),
            email=email,
            requested_by=requested_by[:254],
            expires_at=timezone.now() + timedelta(hours=settings.LICENSE_CLAIM_LIFETIME_HOURS),
        )
        claim.save(force_insert=True)
        audit_record(
            action=Event.LICENSE_DELIVERY_SENT,
            tenant_id=license.tenant_id,
            user=actor if isinstance(actor, User) else None,
            actor=requested_by[:254] if not isinstance(actor, User) else "",
            target=license,
            details={
                "email": email,
                "claim_id": str(claim.id),
                "expires_at": claim.expires_at.isoformat(),
                "via": requested_by[:100],
            },
        )
        task_enqueue_on_commit(
            license_delivery_email_task, str(claim.id), str(license.tenant_id), secret_seal(token)
        )
    return claim


def license_claim_redeem(*, token: str) -> tuple[LicenseClaim, str]:
    """Take the claim (once): the license's key is minted anew and returned;
    the previous key stops working. ClaimRefused otherwise, changing nothing."""
    tenant_id = _claim_token_tenant(token)
    if tenant_id is None:
        raise ClaimRefused()
    with tenant_scope(tenant_id), transaction.atomic():
        claim = (
            LicenseClaim.objects.select_for_update()
            .select_related("license", "tenant")
            .filter(token_digest=claim_token_digest(token))
            .first()
        )
        if claim is None or not claim.is_open() or claim.license.deleted_at is not None:
            raise ClaimRefused()
        claim.used_at = timezone.now()
        claim.save(update_fields=["used_at"])
        license, key = license_regenerate_key(license=claim.license, actor=None)
        audit_record(
            action=Event.LICENSE_CLAIMED,
            tenant_id=tenant_id,
            actor=claim.email,
            target=license,
            details={"claim_id": str(claim.id), "key_prefix": license.key_prefix},
        )
    return claim, key
