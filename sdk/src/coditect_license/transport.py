"""HTTP with retries: network errors, 5xx and 429 are tried again with
exponential backoff and full jitter, waiting at least what `Retry-After` asks.

Every call the SDK makes is safe to repeat (acquire is idempotent per user and
fingerprint, heartbeat extends, release and borrow are idempotent), so a
request whose answer was lost may simply be sent again.
"""

from __future__ import annotations

import email.utils
import logging
import random
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import requests

from coditect_license import __version__
from coditect_license.errors import ConnectionFailed, LicenseError, ProtocolError, error_from_response

logger = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """How hard one call tries. `deadline` bounds the whole call, waits
    included; a `Retry-After` longer than what is left ends the call at once
    (the error carries `retry_after`)."""

    attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0
    deadline: float = 60.0

    def backoff(self, attempt: int, rng: random.Random) -> float:
        # Full jitter: clients that failed together do not retry together.
        return rng.uniform(0, min(self.max_delay, self.base_delay * (2**attempt)))


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    current = datetime.fromtimestamp(time.time() if now is None else now, UTC)
    return max(0.0, (moment - current).total_seconds())


class Interrupted(ConnectionFailed):
    """A retry wait was cut short because the client is stopping."""


@dataclass(frozen=True)
class Response:
    status: int
    body: Any
    headers: Mapping[str, str]


class HttpApi:
    """One server. A requests.Session per thread: requests does not promise a
    Session is safe to share between threads."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float | tuple[float, float] = (5.0, 15.0),
        retry: RetryPolicy | None = None,
        verify: bool | str = True,
        rng: random.Random | None = None,
        user_agent: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.verify = verify
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not secrets
        self._rng_lock = threading.Lock()
        self.user_agent = user_agent or f"coditect-license-python/{__version__}"
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._sessions_lock = threading.Lock()

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.trust_env = True
            session.headers.update({"User-Agent": self.user_agent, "Accept": "application/json"})
            self._local.session = session
            with self._sessions_lock:
                self._sessions.append(session)
        return session

    def close(self) -> None:
        with self._sessions_lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()

    def _jitter(self, attempt: int, policy: RetryPolicy) -> float:
        with self._rng_lock:
            return policy.backoff(attempt, self.rng)

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        bearer: str | None = None,
        retry: RetryPolicy | None = None,
        interrupt: threading.Event | None = None,
        text: bool = False,
    ) -> Response:
        """Send and retry as the policy allows; return a 2xx answer or raise
        the typed error of the last answer (ConnectionFailed when none came).
        With `text`, a 2xx answer's body is its text, not parsed JSON."""
        policy = retry or self.retry
        started = time.monotonic()
        headers = dict(headers or {})
        if bearer:
            headers["Authorization"] = f"Bearer {bearer}"
        url = f"{self.base_url}{path}"
        attempt = 0
        while True:
            try:
                raw = self._session().request(
                    method,
                    url,
                    json=json,
                    params=params,
                    headers=headers,
                    timeout=self.timeout,
                    verify=self.verify,
                    allow_redirects=False,
                )
            except requests.RequestException as exc:
                failure: LicenseError = ConnectionFailed(
                    f"{method} {path}: the server cannot be reached ({type(exc).__name__})."
                )
                failure.__cause__ = exc
                wait = self._jitter(attempt, policy)
            else:
                response = self._response(raw, text=text)
                if 200 <= response.status < 300:
                    return response
                retry_after = parse_retry_after(raw.headers.get("Retry-After"))
                failure = error_from_response(
                    response.status,
                    response.body,
                    retry_after=retry_after,
                    request_id=raw.headers.get("X-Request-ID"),
                )
                if response.status not in RETRY_STATUSES:
                    raise failure
                wait = self._jitter(attempt, policy)
                if retry_after is not None:
                    # At least what the server asked, plus a little spread.
                    wait = retry_after + self._jitter(0, policy) * 0.2
            attempt += 1
            remaining = policy.deadline - (time.monotonic() - started)
            if attempt >= policy.attempts or wait > remaining:
                raise failure
            logger.info(
                "retrying after a failed request",
                extra={"method": method, "path": path, "error": failure.code, "wait": round(wait, 3)},
            )
            if interrupt is not None:
                if interrupt.wait(wait):
                    raise Interrupted(f"{method} {path}: stopped while waiting to retry.") from failure
            else:
                time.sleep(wait)

    @staticmethod
    def _response(raw: requests.Response, *, text: bool = False) -> Response:
        body: Any = None
        if text and 200 <= raw.status_code < 300:
            body = raw.text
        elif raw.content:
            try:
                body = raw.json()
            except ValueError:
                body = None
                if 200 <= raw.status_code < 300:
                    raise ProtocolError(
                        f"HTTP {raw.status_code} with a body that is not JSON", status=raw.status_code
                    ) from None
        return Response(status=raw.status_code, body=body, headers=raw.headers)
