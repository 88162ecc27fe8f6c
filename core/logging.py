"""Structured JSON logs, each line carrying the request id (and the actor, once known).

No line carries a query string: a request is logged as its method and path
(a `?license_key=` stays out of the logs), and the development server's
request line loses its query. Whatever is shaped like a license key or a
token is redacted from every line (a key pasted into a path, a header echoed). Django logs a request's 4xx answer after the
middleware that holds the request context has returned; the filter then
takes the request id from the record's own request.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime

from core.context import current_context

_STANDARD = set(logging.makeLogRecord({}).__dict__) | {
    "message",
    "asctime",
    "request_id",
    "actor_id",
    "request",
}


# What a secret looks like wherever it turns up (a path of a 404, a client's
# header echoed in a message): a license key (licenses/keys.py: CDT- and
# groups of five; the display prefix CDT-XXXXX alone is not one), a JWS, an
# API key of the provisioning API (accounts/apikeys.py: cdt_pk_ and 43
# characters; its display prefix cdt_pk_ and 6 alone is not one).
SECRET_SHAPES = re.compile(
    r"\bCDT-[0-9A-Z]{5}(?:-[0-9A-Z]{5}){2,}|eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}(?:\.[A-Za-z0-9_-]*)?"
    r"|cdt_pk_[A-Za-z0-9_-]{16,}",
    re.IGNORECASE,
)
REDACTED = "[redacted]"


def redact(text: str) -> str:
    """`text` with anything shaped like a secret replaced by [redacted]."""
    return SECRET_SHAPES.sub(REDACTED, text)


def path_without_query(text: str) -> str:
    return text.split("?", 1)[0]


def _request_line_without_query(line: str) -> str:
    # "GET /path?query HTTP/1.1" -> "GET /path HTTP/1.1"
    parts = line.split(" ")
    if len(parts) == 3:
        parts[1] = path_without_query(parts[1])
        return " ".join(parts)
    return path_without_query(line)


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        context = current_context()
        request = getattr(record, "request", None)
        record.request_id = context.request_id or getattr(request, "request_id", None) or None
        actor = context.actor
        record.actor_id = str(actor.pk) if getattr(actor, "pk", None) else None
        if record.name == "django.server" and record.args and isinstance(record.args, tuple):
            record.args = (_request_line_without_query(str(record.args[0])), *record.args[1:])
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
        }
        if getattr(record, "actor_id", None):
            entry["actor_id"] = record.actor_id
        request = getattr(record, "request", None)
        if hasattr(request, "path") and hasattr(request, "method"):
            # An HttpRequest's repr is its full URL, query string included: never logged.
            entry["method"] = request.method
            entry["path"] = request.path
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        # A last net under every field: a key pasted into a URL path, say.
        return redact(json.dumps(entry, default=str))
