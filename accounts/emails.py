"""Email of accounts (issue 15): an invite sent to its address, and the
password reset (`POST /api/v1/auth/password/reset` and `/confirm`).

An invite made for an email is sent to it on commit (accounts.tasks); its code
crosses the broker sealed (core.email.secret_seal), as the answer to its
creator still shows it once.

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

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import ValidationError
from django.db import transaction

from accounts.models import Invite, User
from accounts.selectors import (
    user_sign_in_candidate_by_email_across_tenants,
    user_sign_in_candidate_by_id_across_tenants,
)
from accounts.throttle import LoginThrottled, login_attempt_begin, login_attempt_succeeded
from audit.events import Event
from audit.services import audit_record
from core.email import email_send, secret_seal
from core.errors import ApplicationError
from core.tasks import task_enqueue_on_commit
from tenants.scope import tenant_scope

logger = logging.getLogger(__name__)

RESET_INVALID = "This password reset link is not valid or has expired; ask for a new one."


# --- invites ----------------------------------------------------------------------------------


def invite_email_enqueue(*, invite: Invite, code: str) -> None:
    """Send the invite to its address once the caller's transaction commits."""
    if not invite.email:
        return
    from accounts.tasks import invite_email_task

    task_enqueue_on_commit(invite_email_task, str(invite.id), str(invite.tenant_id), secret_seal(code))


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
                "expires_at": invite.expires_at,
            },
        )


# --- password reset ---------------------------------------------------------------------------


def password_reset_request(*, email: str) -> None:
    """Ask for a reset email; the same nothing for any address (202)."""
    if not settings.PASSWORD_LOGIN_ENABLED:
        return
    from accounts.tasks import password_reset_email_task

    task_enqueue_on_commit(password_reset_email_task, email.strip().lower()[:254])


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
        audit_record(
            action=Event.AUTH_PASSWORD_RESET_REQUESTED,
            tenant_id=user.tenant_id,
            target=user,
            actor=user.email,
        )
        return email_send(
            template="password_reset",
            to=[user.email],
            context={
                "user": user,
                "tenant": user.tenant,
                "uid": str(user.pk),
                "token": default_token_generator.make_token(user),
                "valid_minutes": max(1, settings.PASSWORD_RESET_TIMEOUT // 60),
            },
        )


def _reset_invalid() -> ApplicationError:
    return ApplicationError(RESET_INVALID, code="invalid_request", details={"token": [RESET_INVALID]})


def password_reset_confirm(*, uid: str, token: str, new_password: str) -> None:
    """Set the password of the user a valid reset token names. One answer
    (400) for an unknown user, a bad, used or expired token."""
    from accounts.services import _password_login_check, login_throttled_error

    _password_login_check()
    candidate = user_sign_in_candidate_by_id_across_tenants(user_id=uid)
    if candidate is None or candidate.tenant_id is None:
        raise _reset_invalid()
    with tenant_scope(candidate.tenant_id):
        user = User.objects.select_related("tenant").filter(pk=candidate.id).first()
        if user is None or not user.is_active_member:
            raise _reset_invalid()
        try:
            validate_password(new_password, user=user)
        except ValidationError as exc:
            raise ApplicationError(
                "; ".join(exc.messages), code="invalid_request", details={"new_password": exc.messages}
            ) from exc
        try:
            attempt = login_attempt_begin(email=user.email)
        except LoginThrottled as throttled:
            raise login_throttled_error(throttled.retry_after) from None
        if not default_token_generator.check_token(user, token):
            # Counted as a failed sign-in (login_attempt_begin did), with its row.
            audit_record(
                action=Event.AUTH_LOGIN_FAILED,
                tenant_id=user.tenant_id,
                user=user,
                actor=user.email,
                details={"reason": "bad_reset_token", "method": "password_reset"},
            )
            failed = True
        else:
            login_attempt_succeeded(attempt)
            with transaction.atomic():
                user.set_password(new_password)
                user.save(update_fields=["password"])  # ends every sign-in (accounts.receivers)
                audit_record(
                    action=Event.AUTH_PASSWORD_RESET, tenant_id=user.tenant_id, user=user, target=user
                )
            failed = False
    if failed:
        raise _reset_invalid()
