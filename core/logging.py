"""Structured JSON logs, each line carrying the request id (and the actor, once known)."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from core.context import current_context

_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "request_id", "actor_id"}


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        context = current_context()
        record.request_id = context.request_id or None
        record.actor_id = str(context.actor.pk) if getattr(context.actor, "pk", None) else None
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
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)
