"""Email of accounts (issue 15): an invite sent to its address, and the
password reset (`POST /api/v1/auth/password/reset` and `/confirm`).

This module renders and sends (the tasks' work, accounts.tasks); the
enqueueing is in accounts.tasks and the confirm in accounts.services. An invite
made for an email is sent to it on commit; its code crosses the broker sealed
(core.email.secret_seal), as the answer to its creator still shows it once.

A reset request never says whether the email has an account: the API answers
202 at once, and the task looks the address up (so the answer's timing does
not tell either) and mails an active member who has a password. The reset
token is Django's (PasswordResetTokenGenerator: an HMAC over the user's
password hash and last sign-in, good for PASSWORD_RESET_TIMEOUT seconds), so
it works once: setting the password changes what it was made from. The
confirm goes through the sign-in throttle as a password check does: a locked
account is 429 `login_throttled` before the token is looked at, and a bad
token counts as a failed sign-in. Setting the password ends every other
sign-in of the account (accounts.receivers), as a password change does.
"""

from __future__ import annotations

import logging
import uuid
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.tokens import default_token_generator
from django.core.cache import cache
from django.urls import reverse

from accounts.models import Invite, User
from accounts.selectors import user_sign_in_candidate_by_email_across_tenants
from audit.events import Event
from audit.services import audit_record
from core.email import email_link, email_send
from tenants.scope import tenant_scope

logger = logging.getLogger(__name__)


# --- invites ----------------------------------------------------------------------------------


def invite_email(*, invite_id: uuid.UUID, tenant_id: uuid.UUID, code: str) -> int:
    """The invite email (the task's work); a used, revoked or expired invite is not sent."""
    with tenant_scope(tenant_id):
        invite = Invite.objects.select_related("tenant", "created_by").filter(pk=invite_id).first()
        if invite is None or not invite.email or invite.status() != "pending":
            return 0
        inviter = invite.created_by
        return email_send(
            template="invite",
            to=[invite.email],
            context={
                "tenant": invite.tenant,
                "inviter": (inviter.full_name or inviter.email) if inviter is not None else "",
                "role": invite.get_role_display(),
                "email": invite.email,
                "code": code,
                # The dashboard's page that accepts it (analytics); the code in
                # its query is also what the API's register takes.
                "accept_url": email_link(f"{reverse('dashboard:invite')}?{urlencode({'code': code})}"),
                "expires_at": invite.expires_at,
            },
        )


# --- password reset ---------------------------------------------------------------------------


def password_reset_email(*, email: str) -> int:
    """Mail a reset token to the active member of this email that has a
    password (the task's work); anyone else gets nothing."""
    if "\x00" in email:
        return 0
    candidate = user_sign_in_candidate_by_email_across_tenants(email=email)
    if candidate is None or candidate.tenant_id is None:
        return 0
    with tenant_scope(candidate.tenant_id):
        user = User.objects.select_related("tenant").filter(pk=candidate.id).first()
        if user is None or not user.is_active_member or not user.has_usable_password():
            return 0
        if not _reset_mail_slot_take(user.pk):
            logger.info("password reset email held back: one went to this account in the last minutes")
            return 0
        try:
            return _password_reset_send(user)
        except BaseException:
            _reset_mail_slot_give_back(user.pk)  # the task's retry may send
            raise


def _reset_mail_slot_key(user_id) -> str:
    return f"accounts:password-reset-mail:{user_id}"


def _reset_mail_slot_take(user_id) -> bool:
    """At most one reset email per account per PASSWORD_RESET_EMAIL_INTERVAL
    seconds, whoever asks and from wherever (the request API is limited per
    IP only, and must not say whether the address has an account). A cache
    that is down holds nothing back."""
    interval = settings.PASSWORD_RESET_EMAIL_INTERVAL
    if interval <= 0:
        return True
    try:
        return bool(cache.add(_reset_mail_slot_key(user_id), 1, timeout=interval))
    except Exception:
        logger.warning("password reset email interval not checked: the cache is unavailable", exc_info=True)
        return True


def _reset_mail_slot_give_back(user_id) -> None:
    try:
        cache.delete(_reset_mail_slot_key(user_id))
    except Exception:
        logger.warning(
            "password reset email interval not given back: the cache is unavailable", exc_info=True
        )


def _password_reset_send(user) -> int:
    """Audit the request and mail the link (inside the user's tenant scope)."""
    audit_record(
        action=Event.AUTH_PASSWORD_RESET_REQUESTED,
        tenant_id=user.tenant_id,
        target=user,
        actor=user.email,
    )
    # The dashboard's page that sets the password (analytics); its query
    # carries uid and token, which are also what the API's confirm takes.
    query = urlencode({"uid": str(user.pk), "token": default_token_generator.make_token(user)})
    return email_send(
        template="password_reset",
        to=[user.email],
        context={
            "user": user,
            "tenant": user.tenant,
            "reset_url": email_link(f"{reverse('dashboard:password-reset-confirm')}?{query}"),
            "valid_minutes": max(1, settings.PASSWORD_RESET_TIMEOUT // 60),
        },
    )
