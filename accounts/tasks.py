"""Background email of accounts (issue 15): accounts.emails does the work. A
send that fails (SendGrid away, a timeout) retries with exponential backoff;
the request that enqueued it answered long before (core.tasks)."""

from __future__ import annotations

import uuid

from celery import shared_task
from django.conf import settings

from accounts import emails
from accounts.models import Invite
from core.email import email_task_options, secret_seal, secret_unseal
from core.tasks import task_enqueue_on_commit

_EMAIL_TASK = email_task_options()


@shared_task(name="accounts.invite_email", **_EMAIL_TASK)
def invite_email_task(invite_id: str, tenant_id: str, sealed_code: str) -> int:
    return emails.invite_email(
        invite_id=uuid.UUID(invite_id), tenant_id=uuid.UUID(tenant_id), code=secret_unseal(sealed_code)
    )


@shared_task(name="accounts.password_reset_email", **_EMAIL_TASK)
def password_reset_email_task(email: str) -> int:
    return emails.password_reset_email(email=email)


# --- enqueueing, on commit ---------------------------------------------------------------


def invite_email_enqueue(*, invite: Invite, code: str) -> None:
    """Send the invite to its address once the caller's transaction commits."""
    if not invite.email:
        return
    task_enqueue_on_commit(invite_email_task, str(invite.id), str(invite.tenant_id), secret_seal(code))


def password_reset_request(*, email: str) -> None:
    """Ask for a reset email; the same nothing for any address (202)."""
    if not settings.PASSWORD_LOGIN_ENABLED:
        return
    task_enqueue_on_commit(password_reset_email_task, email.strip().lower()[:254])
