"""Django's PostgreSQL backend with a deadline on every wait for the server.

A server that is hung (stopped, or a network path that swallows packets)
never enforces its own `statement_timeout`, and TCP does not notice either:
the kernel on the other side still acknowledges what is sent, so keepalives
and `tcp_user_timeout` see a healthy peer. Without a deadline of its own a
worker waits on the socket for as long as the hang lasts. Here every wait
psycopg makes for the server (a query, its rows, a commit, a rollback)
gives up after `OPTIONS["deadline"]` seconds: the connection is closed,
since the protocol is left mid-exchange, and the caller gets an
OperationalError, which the API answers as 503 service_unavailable.

After giving up, a thread does not open a new connection to that server for
one deadline more (see ensure_connection), so the request that met the hang
is not held up again while Django unwinds it. Nothing else differs from
Django's backend.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg
from django.db import OperationalError
from django.db.backends.postgresql import base


class DeadlineConnection(psycopg.Connection):
    """A psycopg connection whose waits for the server end at `deadline`."""

    deadline: float | None = None  # seconds; None waits as long as the server takes
    expired_at: float | None = None  # monotonic time a wait ran out; the connection is closed then

    def wait(self, gen, interval=psycopg.connection._WAIT_INTERVAL, timeout=None):
        # A caller that chose its own timeout (cancellation, notifies) keeps it.
        if timeout is None:
            timeout = self.deadline
        try:
            return super().wait(gen, interval=interval, timeout=timeout)
        except psycopg.errors._WaitTimeout:
            self.expired_at = time.monotonic()
            # The query may still be running and its answer may still come:
            # nothing else can be sent on this connection, so it goes.
            self.close()
            raise psycopg.OperationalError(
                f"PostgreSQL did not answer within {timeout:g} s; the connection is closed"
            ) from None


class _Psycopg:
    """psycopg as Django's backend uses it, whose connect() makes DeadlineConnections."""

    connect = staticmethod(DeadlineConnection.connect)

    def __getattr__(self, name: str) -> Any:
        return getattr(psycopg, name)


class DatabaseWrapper(base.DatabaseWrapper):
    Database = _Psycopg()
    # When this thread's last connection to the server was given up on a deadline.
    _unanswered_at: float | None = None

    @property
    def _deadline(self) -> float | None:
        deadline = self.settings_dict["OPTIONS"].get("deadline")
        return float(deadline) if deadline else None

    def get_connection_params(self) -> dict:
        params = super().get_connection_params()
        params.pop("deadline", None)  # ours, not libpq's
        return params

    def get_new_connection(self, conn_params: dict) -> DeadlineConnection:
        connection = super().get_new_connection(conn_params)
        connection.deadline = self._deadline
        return connection

    def ensure_connection(self) -> None:
        # Django opens a new connection wherever it finds none, also while it
        # unwinds the request that met the hang (ending its transaction, the
        # next health check), and a hung server would hold each of them up to
        # connect_timeout more. For one deadline after giving up, this thread
        # does not try the server again: those calls fail at once.
        if self.connection is None and self._unanswered_at is not None:
            if time.monotonic() - self._unanswered_at < (self._deadline or 0):
                raise OperationalError("PostgreSQL did not answer just now; not reconnecting yet")
            self._unanswered_at = None
        super().ensure_connection()

    def _close(self) -> None:
        if self.connection is not None and self.connection.expired_at is not None:
            self._unanswered_at = self.connection.expired_at
        super()._close()
