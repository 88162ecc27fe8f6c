"""Email about licenses (issue 15), the work the tasks do (licenses.email_tasks);
what enqueues them is licenses.mailing (delivery, claims) and licenses.notices
(the seats notice, from acquire), kept apart so no import goes round in a circle.

Email about licenses: delivering a key as a one-time claim link,
and the notices a tenant's admins get (expiring soon, seats near the limit).

Delivery. `license_delivery_send` is the one way a key goes out by email: the
console's "Email the key to…", `create_license --email`, and (later) the
provisioning API and Stripe call it. It writes a LicenseClaim (the token's
SHA-256 only) and its audit row, and enqueues the email on commit, the token
sealed (core.email). The email carries the claim link, never the key. The
claim page (licenses.views) shows a button; pressing it (a POST, so a mail
scanner's GET takes nothing) mints the license's key anew and shows it once:
the key that was current until then stops working. A second visit, an expired
or an unknown link refuses, all with the same page.

Notices. Each is sent once (a LicenseNotice row, written in the sending
transaction: a send that fails rolls it back and the retry tries again; two
workers at once meet on its unique constraint). Each license's tenant admin
may turn either notice off, set its threshold, and choose its channels on the
dashboard (the license's `notify_*` fields; their defaults are the server's
settings, both channels on): the email goes to the tenant's admins, the
webhook is the notice's audit event, sent to the tenant's endpoints that
subscribe to it; the row says which channels it went out on (`channels`), and
the webhooks' outbox leaves it alone when they leave out "webhook".
"""

from __future__ import annotations

import hashlib
import logging
import math
import secrets
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import Role, User
from audit.events import Detail, Event
from audit.services import audit_record
from core.email import email_link, email_send
from licenses.models import NOTIFY_EXPIRY_DAYS_MAX, License, LicenseClaim, LicenseNotice
from tenants.scope import operator_scope, tenant_scope

logger = logging.getLogger(__name__)

CLAIM_PATH = "/claim?t="


def claim_token_new(tenant_id: uuid.UUID) -> str:
    # The tenant's id in front so the claim page opens the right tenant's scope
    # before it looks anything up (RLS); the rest is the secret.
    return f"{tenant_id}.{secrets.token_urlsafe(32)}"


def claim_token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _claim_token_tenant(token: str) -> uuid.UUID | None:
    if not isinstance(token, str) or len(token) > 200:
        return None
    tenant_part, _, secret_part = token.partition(".")
    if len(secret_part) < 32:
        return None
    try:
        return uuid.UUID(tenant_part)
    except ValueError:
        return None


def license_delivery_email(*, claim_id: uuid.UUID, tenant_id: uuid.UUID, token: str) -> int:
    """The delivery email of one claim (the task's work). A claim already used
    or expired is not sent."""
    with tenant_scope(tenant_id):
        claim = LicenseClaim.objects.select_related("license", "tenant").filter(id=claim_id).first()
        if claim is None or not claim.is_open():
            return 0
        return email_send(
            template="license_delivery",
            to=[claim.email],
            context={
                "tenant": claim.tenant,
                "license": claim.license,
                "claim_url": email_link(f"{CLAIM_PATH}{token}"),
                "expires_at": claim.expires_at,
            },
        )


def license_claim_peek(*, token: str) -> LicenseClaim | None:
    """The open claim this token names (the claim page's GET), or None."""
    tenant_id = _claim_token_tenant(token)
    if tenant_id is None:
        return None
    with tenant_scope(tenant_id):
        claim = (
            LicenseClaim.objects.select_related("license", "tenant")
            .filter(token_digest=claim_token_digest(token))
            .first()
        )
        return claim if claim is not None and claim.is_open() and claim.license.deleted_at is None else None


# --- notices to a tenant's admins ---------------------------------------------------------


def tenant_admin_emails(tenant_id: uuid.UUID) -> list[str]:
    """The addresses notices go to: the tenant's active admins (in its scope)."""
    return sorted(
        User.objects.filter(tenant_id=tenant_id, role=Role.TENANT_ADMIN, is_active=True).values_list(
            "email", flat=True
        )
    )


def _notice_once(license: License, kind: str, key: str) -> bool:
    """Record the notice; False when it was sent already."""
    try:
        with transaction.atomic():
            LicenseNotice(tenant_id=license.tenant_id, license=license, kind=kind, key=key).save(
                force_insert=True
            )
    except IntegrityError:
        return False
    return True


NOTICE_CHANNELS = ("email", "webhook")


def license_notice_channels(license: License) -> list[str]:
    """The channels the license's notices go out on (none: no notice is sent)."""
    return [
        channel
        for channel, on in (("email", license.notify_email), ("webhook", license.notify_webhook))
        if on
    ]


def license_expiry_notice_days(license: License) -> list[int]:
    """The days before its expiry the license's admins are told, smallest first
    (none: the notice is off): its own day, or EMAIL_EXPIRY_NOTICE_DAYS."""
    if not license.notify_expiry or not license_notice_channels(license):
        return []
    if license.notify_expiry_days:
        return [license.notify_expiry_days]
    return list(settings.EMAIL_EXPIRY_NOTICE_DAYS)


def expiry_notices_due(now=None) -> list[tuple[str, str, int]]:
    """(license id, tenant id, days) of each license that has an expiring-soon
    notice to send now: the smallest of its notice days (its own, or
    EMAIL_EXPIRY_NOTICE_DAYS) its expiry is within, not yet sent for this
    expiry date."""
    defaults = settings.EMAIL_EXPIRY_NOTICE_DAYS
    now = now or timezone.now()
    with operator_scope():
        notified = License.objects.filter(expires_at__gt=now, suspended=False, notify_expiry=True).exclude(
            notify_email=False, notify_webhook=False
        )
        licenses = list(
            notified.filter(
                notify_expiry_days__isnull=True,
                expires_at__lte=now + timedelta(days=max(defaults, default=0)),
            )
        ) + [
            license
            for license in notified.filter(
                notify_expiry_days__isnull=False, expires_at__lte=now + timedelta(days=NOTIFY_EXPIRY_DAYS_MAX)
            )
            if license.expires_at <= now + timedelta(days=license.notify_expiry_days)
        ]
        sent = set(
            LicenseNotice.objects.filter(
                kind="expiring", license_id__in=[license.id for license in licenses]
            ).values_list("license_id", "key")
        )
    due = []
    for license in licenses:
        left = license.expires_at - now
        windows = [d for d in license_expiry_notice_days(license) if left <= timedelta(days=d)]
        if not windows:
            continue
        window = min(windows)
        if (license.id, f"{window}:{license.expires_at.date().isoformat()}") not in sent:
            due.append((str(license.id), str(license.tenant_id), window))
    return due


def license_expiry_notice_send(*, license_id: uuid.UUID, tenant_id: uuid.UUID, days: int) -> int:
    """The "expiring soon" email of one license, once per (days, expiry date)."""
    with tenant_scope(tenant_id), transaction.atomic():
        license = License.objects.select_related("tenant").filter(id=license_id).first()
        if license is None or license.expires_at is None or license.expires_at <= timezone.now():
            return 0
        notice_days = license_expiry_notice_days(license)
        if days not in notice_days:  # turned off or changed since it was found due
            return 0
        # A license that reached a smaller window first is not told the larger one after.
        for d in notice_days:
            if d > days:
                _notice_once(license, "expiring", f"{d}:{license.expires_at.date().isoformat()}")
        if not _notice_once(license, "expiring", f"{days}:{license.expires_at.date().isoformat()}"):
            return 0
        return _notice_send(
            license,
            action=Event.LICENSE_EXPIRING_SOON,
            template="license_expiring",
            details={"days": days, "expires_at": license.expires_at.isoformat()},
            context={"days": days, "expires_at": license.expires_at},
        )


def _notice_send(license: License, *, action: Event, template: str, details: dict, context: dict) -> int:
    """A notice about a license on its channels (the caller has recorded it
    once): its audit row, which the license's webhook endpoints that
    subscribe to `action` are sent, with how many admins it was emailed to,
    and the email to the tenant's admins when email is a channel. Returns
    how many emails went."""
    channels = license_notice_channels(license)
    to = tenant_admin_emails(license.tenant_id) if "email" in channels else []
    audit_record(
        action=action,
        tenant_id=license.tenant_id,
        target=license,
        details={**details, "recipients": len(to), Detail.CHANNELS: channels},
    )
    if not to:
        return 0
    return email_send(
        template=template, to=to, context={"tenant": license.tenant, "license": license, **context}
    )


def seats_near_limit(used: int, max_seats: int, share: float | None = None) -> bool:
    share = settings.EMAIL_SEATS_NEAR_LIMIT_SHARE if share is None else share
    return 0 < share and max_seats > 0 and used >= max(1, math.ceil(share * max_seats))


def license_seats_near_limit(license: License, used: int) -> bool:
    """Whether `used` seats call for the license's "near the limit" notice: it
    is on, goes out somewhere, and `used` reached its share (its own percent,
    or EMAIL_SEATS_NEAR_LIMIT_SHARE). No query: the license row holds it all."""
    if not license.notify_seats or not license_notice_channels(license):
        return False
    share = license.notify_seats_percent / 100 if license.notify_seats_percent else None
    return seats_near_limit(used, license.max_seats, share)


def license_overdraft_notice_send(*, license_id: uuid.UUID, tenant_id: uuid.UUID) -> int:
    """The `license.overdraft` notice of one license (issue 17): seats past its
    max_seats were granted. At most once a UTC day, on the license's notice
    channels (email to the tenant's admins, the `license.overdraft` webhook),
    whether or not the overdraft is still in use when the task runs: it is
    a fact for the true-up, not a warning."""
    from licenses.ledger.gateway import seat_ledger

    with tenant_scope(tenant_id), transaction.atomic():
        license = License.objects.select_related("tenant", "policy").filter(id=license_id).first()
        if license is None:
            return 0
        if not license_notice_channels(license):
            return 0
        if not _notice_once(license, "overdraft", timezone.now().date().isoformat()):
            return 0
        used = seat_ledger().used(
            license_id=license.id, tenant_id=license.tenant_id, per_user=license.terms.seats_per_user
        )
        overdraft = license.terms.overdraft_seats
        return _notice_send(
            license,
            action=Event.LICENSE_OVERDRAFT,
            template="license_overdraft",
            details={"used": used, "max": license.max_seats, Detail.OVERDRAFT: overdraft},
            context={"used": used, "max_seats": license.max_seats, "overdraft": overdraft},
        )


def license_seats_notice_send(*, license_id: uuid.UUID, tenant_id: uuid.UUID) -> int:
    """The "seats near the limit" email of one license, at most once a UTC day,
    and only while the seats in use are still at the share."""
    from licenses.ledger.gateway import seat_ledger

    with tenant_scope(tenant_id), transaction.atomic():
        license = License.objects.select_related("tenant").filter(id=license_id).first()
        if license is None:
            return 0
        used = seat_ledger().used(
            license_id=license.id, tenant_id=license.tenant_id, per_user=license.terms.seats_per_user
        )
        if not license_seats_near_limit(license, used):
            return 0
        if not _notice_once(license, "seats", timezone.now().date().isoformat()):
            return 0
        return _notice_send(
            license,
            action=Event.LICENSE_SEATS_NEAR_LIMIT,
            template="license_seats",
            details={"used": used, "max": license.max_seats},
            context={"used": used, "max_seats": license.max_seats},
        )
