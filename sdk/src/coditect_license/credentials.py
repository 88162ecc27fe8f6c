"""Who the user is: the bearer token for acquire and status.

Three ways in, as the server offers them:
- `PasswordLogin(email, password)`: logs in at /auth/login, keeps the access
  token, refreshes it at /auth/refresh shortly before it ends (refresh tokens
  rotate), and logs in again if refreshing fails.
- `RefreshTokenLogin(refresh_token, on_rotate=...)`: an application that
  stored a refresh token; `on_rotate` receives each new one to store.
- `BearerToken(token_or_callable)`: a token the application already has,
  e.g. an Identity Platform ID token from its own sign-in. A callable is
  asked again whenever the server says the token is no longer valid.

Every class is thread-safe and keeps no token in its repr.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from coditect_license.errors import NotAuthenticated, ProtocolError

if TYPE_CHECKING:
    from coditect_license.transport import HttpApi

LOGIN_PATH = "/api/v1/auth/login"
REFRESH_PATH = "/api/v1/auth/refresh"
# Refresh this long before the access token ends, so a request in flight
# never carries one that expires on the way.
REFRESH_MARGIN_SECONDS = 60.0


class Credentials:
    """The interface: a bearer token for user endpoints, and a way to hear
    that the server refused it."""

    def bearer(self, api: HttpApi) -> str:
        raise NotImplementedError

    def invalidate(self, token: str) -> None:
        """The server answered not_authenticated to `token`."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"


class BearerToken(Credentials):
    def __init__(self, token: str | Callable[[], str]) -> None:
        self._source = token
        self._lock = threading.Lock()
        self._current: str | None = None

    def bearer(self, api: HttpApi) -> str:
        with self._lock:
            if self._current is None:
                self._current = self._source() if callable(self._source) else self._source
            if not self._current:
                raise NotAuthenticated("No bearer token was supplied.")
            return self._current

    def invalidate(self, token: str) -> None:
        with self._lock:
            if self._current == token and callable(self._source):
                self._current = None


class _TokenPair(Credentials):
    """Access and refresh tokens from the server's own login."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._access: str | None = None
        self._access_until = 0.0
        self._refresh: str | None = None

    def _accept(self, body: object) -> None:
        if not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
            raise ProtocolError("The login answer has no access_token.")
        self._access = body["access_token"]
        lifetime = float(body.get("expires_in") or 3600)
        self._access_until = self._clock() + max(0.0, lifetime - REFRESH_MARGIN_SECONDS)
        if isinstance(body.get("refresh_token"), str):
            self._refresh = body["refresh_token"]
            self._rotated(self._refresh)

    def _rotated(self, refresh_token: str) -> None:
        pass

    def _login(self, api: HttpApi) -> None:
        raise NotImplementedError

    def bearer(self, api: HttpApi) -> str:
        with self._lock:
            if self._access is not None and self._clock() < self._access_until:
                return self._access
            if self._refresh is not None:
                try:
                    self._accept(
                        api.request("POST", REFRESH_PATH, json={"refresh_token": self._refresh}).body
                    )
                    return self._access  # type: ignore[return-value]
                except NotAuthenticated:
                    self._refresh = None
            self._login(api)
            return self._access  # type: ignore[return-value]

    def invalidate(self, token: str) -> None:
        with self._lock:
            if self._access == token:
                self._access = None


class PasswordLogin(_TokenPair):
    def __init__(self, email: str, password: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.email = email
        self._password = password

    def _login(self, api: HttpApi) -> None:
        self._accept(
            api.request("POST", LOGIN_PATH, json={"email": self.email, "password": self._password}).body
        )

    def __repr__(self) -> str:
        return f"<PasswordLogin {self.email}>"


class RefreshTokenLogin(_TokenPair):
    def __init__(
        self, refresh_token: str, *, on_rotate: Callable[[str], None] | None = None, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        self._refresh = refresh_token
        self._on_rotate = on_rotate

    def _rotated(self, refresh_token: str) -> None:
        if self._on_rotate is not None:
            self._on_rotate(refresh_token)

    def _login(self, api: HttpApi) -> None:
        raise NotAuthenticated("The refresh token was refused; sign in again.")
