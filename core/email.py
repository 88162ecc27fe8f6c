"""Email from every app the same way: a text and an HTML template under
`templates/email/`, sent through Django's mail API (SendGrid through
django-anymail in production, the console backend on a laptop: settings
EMAIL_BACKEND), by a Celery task each app declares (accounts.tasks,
licenses.tasks), enqueued on commit.

Secrets an email must carry (an invite code, a claim link's token) cross the
broker sealed (`secret_seal`): encrypted and authenticated with a key derived
from SECRET_KEY, so the queue, a retry's log line or a task's arguments never
hold one in the clear. Log lines name the template and the recipients' count,
never a body.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Iterable
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.core.mail.backends.console import EmailBackend as ConsoleEmailBackend
from django.template.loader import render_to_string

logger = logging.getLogger(__name__)

# Errors a send may retry: the provider's API away or refusing for now. A
# template that does not render is a bug and is not retried.
try:  # anymail is a runtime dependency; keep core importable without it
    from anymail.exceptions import AnymailAPIError, AnymailRequestsAPIError

    SEND_RETRYABLE: tuple[type[BaseException], ...] = (AnymailAPIError, AnymailRequestsAPIError, OSError)
except ImportError:  # pragma: no cover
    SEND_RETRYABLE = (OSError,)


def email_task_options() -> dict:
    """The Celery options of every email task: a send that fails (SendGrid
    away, a timeout, the database away) retries with exponential backoff."""
    from django.db import OperationalError

    return {
        "autoretry_for": (*SEND_RETRYABLE, OperationalError),
        "retry_backoff": 30,
        "retry_backoff_max": 3600,
        "retry_jitter": True,
        "max_retries": settings.EMAIL_SEND_RETRIES,
    }


class SealedSecretInvalid(Exception):
    """A sealed value that was tampered with, sealed under another key, or too old."""


def _fernet() -> Fernet:
    key = hashlib.sha256(f"coditect-email-seal:{settings.SECRET_KEY}".encode()).digest()
    return Fernet(base64.urlsafe_b64encode(key))


def secret_seal(value: str) -> str:
    """`value` encrypted for a task's arguments (only this server opens it)."""
    return _fernet().encrypt(value.encode()).decode()


def secret_unseal(sealed: str, *, max_age: int | None = 7 * 24 * 3600) -> str:
    try:
        return _fernet().decrypt(sealed.encode(), ttl=max_age).decode()
    except (InvalidToken, ValueError, TypeError):
        raise SealedSecretInvalid("sealed value not valid") from None


def email_link(path: str) -> str:
    """An absolute link to this server for an email (settings.EMAIL_LINK_BASE_URL)."""
    return f"{settings.EMAIL_LINK_BASE_URL}{path}"


def email_render(template: str, context: dict[str, Any]) -> tuple[str, str, str]:
    """Subject, text body and HTML body of `templates/email/<template>`:
    `<template>.subject.txt`, `<template>.txt`, `<template>.html`."""
    subject = render_to_string(f"email/{template}.subject.txt", context).strip().splitlines()[0]
    text = render_to_string(f"email/{template}.txt", context)
    html = render_to_string(f"email/{template}.html", context)
    return subject, text, html


def email_send(
    *,
    template: str,
    to: Iterable[str],
    context: dict[str, Any],
    tags: Iterable[str] = (),
    attachments: Iterable[tuple[str, str | bytes, str]] = (),
) -> int:
    """Render and send one message to `to` (each address sees only its own
    copy: one message per recipient). Returns how many were sent. Errors of
    the backend propagate (the calling task retries them).

    `attachments`: (filename, content, MIME type) each. Like a body, their
    content is never logged, and the calling task loads it from the database
    by id: it never crosses the broker (only a secret would need the seal)."""
    recipients = sorted({address for address in to if address})
    if not recipients:
        logger.info("email has no recipients", extra={"template": template})
        return 0
    context = {"server_url": settings.EMAIL_LINK_BASE_URL, **context}
    subject, text, html = email_render(template, context)
    attachments = list(attachments)
    sent = 0
    for address in recipients:
        message = EmailMultiAlternatives(
            subject=subject, body=text, from_email=settings.DEFAULT_FROM_EMAIL, to=[address]
        )
        message.attach_alternative(html, "text/html")
        for filename, content, mimetype in attachments:
            message.attach(filename, content, mimetype)
        message.tags = [template, *tags]  # anymail: SendGrid categories
        sent += message.send()
    logger.info(
        "email sent",
        extra={"template": template, "recipients": len(recipients), "attachments": len(attachments)},
    )
    return sent


class ConsoleToStderrBackend(ConsoleEmailBackend):
    """Django's console backend, writing to standard error: a command that
    prints one JSON object on standard output (`create_license --email`) keeps
    it one, and `make run`'s terminal still shows each message."""

    def __init__(self, *args, **kwargs):
        import sys

        kwargs.setdefault("stream", sys.stderr)
        super().__init__(*args, **kwargs)
