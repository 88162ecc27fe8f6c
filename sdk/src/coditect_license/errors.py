"""Typed exceptions: one class per error code of the server's contract, under
one base class, plus the few failures that happen on the client side.

The server answers every error as `{"error": {"code", "message", "details"}}`;
`error_from_response` turns that into the matching class, so applications
can write `except NoSeatsAvailable:` instead of comparing strings.
"""

from __future__ import annotations

from typing import Any


class LicenseError(Exception):
    """Base class of everything this SDK raises on purpose."""

    code = "license_error"

    def __init__(
        self,
        message: str = "",
        *,
        code: str | None = None,
        status: int | None = None,
        details: dict[str, Any] | None = None,
        retry_after: float | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message or self.code)
        if code is not None:
            self.code = code
        self.message = message or self.code
        self.status = status
        self.details = details or {}
        self.retry_after = retry_after
        self.request_id = request_id

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


# --- The server's codes (DESIGN.md, "API contract") --------------------------------


class InvalidRequest(LicenseError):
    code = "invalid_request"


class NotAuthenticated(LicenseError):
    code = "not_authenticated"


class PermissionDenied(LicenseError):
    code = "permission_denied"


class LicenseNotFound(LicenseError):
    code = "license_not_found"


class LicenseExpired(LicenseError):
    code = "license_expired"


class LicenseSuspended(LicenseError):
    code = "license_suspended"


class FingerprintNotAllowed(LicenseError):
    code = "fingerprint_not_allowed"


class NoSeatsAvailable(LicenseError):
    code = "no_seats_available"


class GroupLimitReached(LicenseError):
    """The user's group (the license's group rules) holds its most seats."""

    code = "group_limit_reached"


class QueueFull(LicenseError):
    """No seat is free and the license's queue is full (or it does not queue)."""

    code = "queue_full"


class TicketNotFound(LicenseError):
    """A queue ticket that no longer waits; `acquire(wait=...)` queues again by itself."""

    code = "ticket_not_found"


class NotAssigned(LicenseError):
    """The license's seats are named and none is this user's: ask a tenant admin."""

    code = "not_assigned"


class BorrowLimitReached(LicenseError):
    """The license's (or the user's) seats out on borrow at once are at their limit."""

    code = "borrow_limit_reached"


class SessionNotFound(LicenseError):
    code = "session_not_found"


class RateLimited(LicenseError):
    code = "rate_limited"


class ServiceUnavailable(LicenseError):
    code = "service_unavailable"


class UserInactive(LicenseError):
    """The user was deactivated or deleted: their seats end, none is granted."""

    code = "user_inactive"


class TenantInactive(LicenseError):
    """The user's organisation was deactivated: every seat of it ends."""

    code = "tenant_inactive"


class MachineBlocked(LicenseError):
    """An operator blocked this machine on the license (`details` has no reason:
    the operator's note stays on the server). Acquiring again will not help."""

    code = "machine_blocked"


class UserBlocked(LicenseError):
    """An operator blocked this user on the license. Acquiring again will not help."""

    code = "user_blocked"


class IdleTimeout(LicenseError):
    """The application's user was idle (as `LicenseClient.report_activity`
    tracks it) past the license's idle timeout: the server ended the seat.
    Acquire again when the user is back."""

    code = "idle_timeout"


class RequestTooLarge(LicenseError):
    code = "request_too_large"


class ServerError(LicenseError):
    """A 5xx without the contract's error body (a proxy, or a server bug)."""

    code = "server_error"


# --- Client-side failures ---------------------------------------------------------


class ConnectionFailed(LicenseError):
    """The server could not be reached (after the retries the policy allows)."""

    code = "connection_failed"


class ProtocolError(LicenseError):
    """The server answered something this SDK does not understand."""

    code = "protocol_error"


class TokenInvalid(LicenseError):
    """A license token that fails verification: bad signature, unknown key,
    wrong algorithm, missing or mismatched claims."""

    code = "token_invalid"


class TokenExpired(TokenInvalid):
    code = "token_expired"


class KeyNotTrusted(TokenInvalid):
    """A token signed by a key the application does not trust: neither one
    it ships (`trusted_jwks`) nor one a signed key set under a pinned root
    key vouches for. A forged token or cache ends here."""

    code = "key_not_trusted"


class KeySetInvalid(TokenInvalid):
    """A signed key set that is refused: not signed by a pinned root key,
    tampered with, expired, of another issuer, or older than one already
    trusted (a replay)."""

    code = "keyset_invalid"


class ClockSetBack(TokenInvalid):
    """The system clock reads earlier than a time this machine has already
    seen (the token's issue time or the cache's last-seen time)."""

    code = "clock_set_back"


class CacheTampered(TokenInvalid):
    """The offline cache file was changed outside this SDK (or is corrupt)."""

    code = "cache_tampered"


class TrustNotConfigured(LicenseError):
    """The client was made without trust anchors (`trusted_jwks` and/or
    `trusted_root_keys`) and without the explicit insecure development mode:
    it would have nothing to check a token's signature against."""

    code = "trust_not_configured"


class MaintenanceExpired(LicenseError):
    """The license does not cover this version of the application: it is
    newer than the token's `ver_max`, or was released after its maintenance
    ended (`maint`). An older release of the application is accepted; so is
    this one once the license's policy covers it. The seat is given back."""

    code = "maintenance_expired"


class NotLicensed(LicenseError):
    """No lease and no usable cached token."""

    code = "not_licensed"


SERVER_ERRORS: dict[str, type[LicenseError]] = {
    cls.code: cls
    for cls in (
        InvalidRequest,
        NotAuthenticated,
        PermissionDenied,
        LicenseNotFound,
        LicenseExpired,
        LicenseSuspended,
        FingerprintNotAllowed,
        NoSeatsAvailable,
        GroupLimitReached,
        QueueFull,
        TicketNotFound,
        NotAssigned,
        BorrowLimitReached,
        SessionNotFound,
        RateLimited,
        ServiceUnavailable,
        UserInactive,
        TenantInactive,
        MachineBlocked,
        UserBlocked,
        IdleTimeout,
        RequestTooLarge,
    )
}

_BY_STATUS: dict[int, type[LicenseError]] = {
    400: InvalidRequest,
    401: NotAuthenticated,
    403: PermissionDenied,
    429: RateLimited,
    503: ServiceUnavailable,
}


def error_from_response(
    status: int,
    body: Any,
    *,
    retry_after: float | None = None,
    request_id: str | None = None,
) -> LicenseError:
    """The typed exception for an error answer. An unknown code keeps its
    name on the base class, so a newer server never breaks an older SDK."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and isinstance(error.get("code"), str):
        code = error["code"]
        message = str(error.get("message") or code)
        details = error.get("details") if isinstance(error.get("details"), dict) else {}
        cls = SERVER_ERRORS.get(code, LicenseError)
        return cls(
            message,
            code=code,
            status=status,
            details=details,
            retry_after=retry_after,
            request_id=request_id,
        )
    cls = _BY_STATUS.get(status, ServerError if status >= 500 else ProtocolError)
    return cls(
        f"HTTP {status} without an error body",
        status=status,
        retry_after=retry_after,
        request_id=request_id,
    )
