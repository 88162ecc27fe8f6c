"""What the current request (or task run) is: its id, for logs and audit rows."""

from __future__ import annotations

from contextvars import ContextVar

request_id_var: ContextVar[str | None] = ContextVar("coditect_request_id", default=None)
