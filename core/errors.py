"""One error shape for the whole API: {"error": {"code", "message", "details"}}.

Business code raises `ApplicationError` (or a subclass naming a stable code);
the DRF exception handler below renders it, and turns DRF's own exceptions
into the same shape so that clients only ever parse one format.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db import InterfaceError, OperationalError, ProgrammingError, connections
from django.http import Http404, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions as drf_exceptions
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

logger = logging.getLogger(__name__)

# The stable codes of DESIGN.md, with their HTTP status.
ERROR_STATUS: dict[str, int] = {
    "invalid_request": 400,
    "not_authenticated": 401,
    "permission_denied": 403,
    "not_found": 404,
    "license_not_found": 404,
    "license_expired": 403,
    "license_suspended": 403,
    "fingerprint_not_allowed": 403,
    "machine_blocked": 403,
    "user_blocked": 403,
    "user_inactive": 403,
    "tenant_inactive": 403,
    "no_seats_available": 409,
    "session_not_found": 404,
    # Outbound webhooks: a target URL refused (SSRF rules), an endpoint disabled.
    "webhook_target_forbidden": 400,
    "webhook_endpoint_disabled": 409,
    "webhook_endpoint_limit_reached": 409,
    "method_not_allowed": 405,
    "request_too_large": 413,
    "rate_limited": 429,
    "login_throttled": 429,
    "service_unavailable": 503,
    "internal_error": 500,
    # Provisioning API (issue 15)
    "tenant_not_found": 404,
    "idempotency_key_reused": 422,
    # The dashboard (issue 16): a license's monthly self-service unbinds are used.
    "unbind_limit_reached": 409,
    # Floating-license rules (issue 17): a seat ended for its user's inactivity.
    "idle_timeout": 403,
    "borrow_limit_reached": 409,
    # Named seats: a user without one, all of them given.
    "not_assigned": 403,
    "seats_all_assigned": 409,
    # Group rules and the queue: a group at its max; a queue at its most
    # tickets; a queue ticket that no longer waits.
    "group_limit_reached": 409,
    "queue_full": 409,
    "ticket_not_found": 404,
}


class ApplicationError(Exception):
    code = "invalid_request"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        if self.code not in ERROR_STATUS:
            raise ValueError(f"unknown error code {self.code!r}")
        self.message = message
        self.details = details or {}
        self.headers = headers or {}

    @property
    def status(self) -> int:
        return ERROR_STATUS[self.code]


class ServiceUnavailable(ApplicationError):
    """A dependency does not answer. Every such answer tells the client when
    to try again (Retry-After, 5 s unless the raiser knows better)."""

    code = "service_unavailable"

    def __init__(self, message: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.headers.setdefault("Retry-After", "5")


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def error_response(code: str, message: str, details: dict[str, Any] | None = None) -> JsonResponse:
    """The error shape outside DRF (health checks, Django's own error views)."""
    return JsonResponse(error_body(code, message, details), status=ERROR_STATUS[code])


def get_only(view):
    """A plain Django view (a probe, /metrics) that answers GET and HEAD, and
    any other method with 405 `method_not_allowed` in the error shape: it
    takes no cookie-borne input, so the CSRF check (whose refusal is an HTML
    403) has nothing to protect there."""
    from functools import wraps

    from django.views.decorators.csrf import csrf_exempt

    @csrf_exempt
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if request.method not in ("GET", "HEAD"):
            response = error_response(
                "method_not_allowed", f"{request.method} is not allowed here.", {"allowed": ["GET", "HEAD"]}
            )
            response["Allow"] = "GET, HEAD"
            return response
        return view(request, *args, **kwargs)

    return wrapper


def database_unavailable_response() -> JsonResponse:
    # Logged once, with the request, by the request-context middleware.
    response = error_response("service_unavailable", "The database does not answer; try again shortly.")
    response["Retry-After"] = "5"
    response.log_details = {"dependency": "database"}
    return response


# What SQLite says of a table or column the migrations have not made yet.
_SQLITE_SCHEMA_MISSING = ("no such table", "no such column")


def database_schema_missing(exc: BaseException | None) -> bool:
    """Whether `exc`, or an error it was raised from, says a table or column is
    missing: the database answers, but its migrations are not applied. SQLite
    raises OperationalError for it, PostgreSQL ProgrammingError (UndefinedTable,
    UndefinedColumn); neither is the database being down."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, OperationalError) and str(exc).lower().startswith(_SQLITE_SCHEMA_MISSING):
            return True
        if isinstance(exc, ProgrammingError):
            import psycopg

            if isinstance(exc.__cause__, (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn)):
                return True
        exc = exc.__cause__
        seen += 1
    return False


def _schema_missing_error(cause: BaseException) -> ServiceUnavailable:
    # An operator's mistake, not a dependency down and not a client's: logged
    # at ERROR with what the database said (a table name, never a value).
    logger.error(
        "the database schema is behind the code (a table or column is missing): run `manage.py migrate`",
        extra={"error": type(cause).__name__, "database_error": str(cause).splitlines()[0][:200]},
    )
    return ServiceUnavailable(
        "The server's database is not migrated; an operator must apply its migrations.",
        details={"reason": "migrations_unapplied"},
    )


def _drf_error(exc: drf_exceptions.APIException) -> tuple[str, str, dict[str, Any]]:
    if isinstance(exc, drf_exceptions.ValidationError):
        detail = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        return "invalid_request", "The request is not valid.", {"fields": detail}
    if isinstance(exc, drf_exceptions.ParseError):
        return "invalid_request", str(exc.detail), {}
    if isinstance(exc, drf_exceptions.UnsupportedMediaType):
        return "invalid_request", str(exc.detail), {}
    if isinstance(exc, (drf_exceptions.NotAuthenticated, drf_exceptions.AuthenticationFailed)):
        return "not_authenticated", str(exc.detail), {}
    if isinstance(exc, drf_exceptions.PermissionDenied):
        return "permission_denied", str(exc.detail), {}
    if isinstance(exc, drf_exceptions.NotFound):
        return "not_found", str(exc.detail), {}
    if isinstance(exc, drf_exceptions.MethodNotAllowed):
        return "method_not_allowed", str(exc.detail), {}
    if isinstance(exc, drf_exceptions.Throttled):
        return "rate_limited", str(exc.detail), {"retry_after": exc.wait}
    return "invalid_request", str(exc.detail), {}


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    return api_error_response(exc, Response)


_JSON = JSONRenderer()


def compact_json_response(data: Any, status: int = 200) -> HttpResponse:
    """JSON as DRF's views answer it (its renderer: ISO 8601 times with `Z`,
    compact, UTF-8), for the views that answer without DRF's request cycle
    (licenses/fast.py)."""
    return HttpResponse(_JSON.render(data), status=status, content_type="application/json")


def api_error_response(exc: Exception, response_class: Any = Response) -> Any:
    """The answer, in the error shape, for what an API view raised (None for a
    bug: Django logs it and answers 500). `response_class(data, status=)`
    makes the response: DRF's Response in its views, compact_json_response
    outside them."""
    cause = exc
    if database_schema_missing(exc):
        exc = _schema_missing_error(cause)
    elif isinstance(exc, (OperationalError, InterfaceError)):
        # The database went away mid-request: a dependency is down, not a bug.
        exc = ServiceUnavailable(
            "The database does not answer; try again shortly.", headers={"Retry-After": "5"}
        )
    if isinstance(exc, Http404):
        exc = drf_exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf_exceptions.PermissionDenied()

    if isinstance(exc, ServiceUnavailable):
        # Whatever the request wrote is abandoned with it, and a commit is not
        # attempted on a connection that may be dead.
        for connection in connections.all(initialized_only=True):
            if connection.in_atomic_block:
                connection.set_rollback(True)
    if isinstance(exc, ApplicationError):
        response = response_class(error_body(exc.code, exc.message, exc.details), status=exc.status)
        for name, value in exc.headers.items():
            response[name] = value
        if isinstance(exc, ServiceUnavailable):
            # For the one WARNING line the request-context middleware writes.
            root = cause.__cause__ if cause is exc else cause
            response.log_details = {"error": type(root).__name__ if root is not None else exc.code}
            if exc.details.get("reason") == "migrations_unapplied":
                response.log_details["reason"] = "migrations_unapplied"
        return response
    if isinstance(exc, drf_exceptions.APIException):
        code, message, details = _drf_error(exc)
        response = response_class(error_body(code, message, details), status=ERROR_STATUS[code])
        if isinstance(exc, drf_exceptions.Throttled) and exc.wait is not None:
            response["Retry-After"] = str(int(exc.wait) + 1)
        if isinstance(exc, (drf_exceptions.NotAuthenticated, drf_exceptions.AuthenticationFailed)):
            response["WWW-Authenticate"] = 'Bearer realm="api"'
        return response
    return None  # a bug: let Django log it and answer 500


def is_api_request(request) -> bool:
    return request.path_info.startswith("/api/") or request.path_info.startswith("/.well-known/")


def _answers_json(request) -> bool:
    """The API and the probes answer JSON; the dashboard and the admin, pages."""
    return is_api_request(request) or request.path_info in {"/health", "/ready", "/metrics"}


def handler400(request, exception=None):
    """What Django refuses before any view runs (a Host header not in
    ALLOWED_HOSTS, a body over DATA_UPLOAD_MAX_MEMORY_SIZE, too many form
    fields, another SuspiciousOperation): the error shape on API paths,
    Django's page elsewhere. Nothing of the request is echoed."""
    if _answers_json(request):
        from django.core.exceptions import DisallowedHost, RequestDataTooBig

        if isinstance(exception, RequestDataTooBig):
            return error_response("request_too_large", "The request body is too large.")
        if isinstance(exception, DisallowedHost):
            return error_response("invalid_request", "The Host header names no site this server serves.")
        return error_response("invalid_request", "The request is malformed.")
    from django.views.defaults import bad_request

    return bad_request(request, exception)


def handler404(request, exception=None):
    """Unknown API routes answer in the error shape; pages keep Django's page."""
    if is_api_request(request):
        return error_response("not_found", "No such endpoint.")
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


class DebugApiBadHostMiddleware:
    """Under DEBUG Django answers a Host header outside ALLOWED_HOSTS with its
    HTML debug page, never calling handler400: on the API and the probes this
    answers the error shape instead, as with DEBUG off (400 invalid_request),
    and logs the refusal as Django does. With DEBUG off it does nothing."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        from django.conf import settings

        if settings.DEBUG and _answers_json(request):
            from django.core.exceptions import DisallowedHost

            try:
                request.get_host()
            except DisallowedHost as exc:
                logging.getLogger("django.security.DisallowedHost").error(
                    str(exc), extra={"status_code": 400, "request": request}
                )
                return handler400(request, exc)
        return self.get_response(request)


@csrf_exempt
def api_route_not_found(request, *args, **kwargs):
    """The last API route: an unknown path under the API answers in the error
    shape even with DEBUG on, where Django would show its HTML debug page (and
    the URL patterns) instead of calling handler404. Exempt from CSRF: a
    DELETE to an unknown API path is a 404, not Django's HTML 403."""
    return error_response("not_found", "No such endpoint.")


def handler500(request):
    """A bug. API clients still get the error shape, never an HTML page."""
    if is_api_request(request):
        return error_response("internal_error", "Something went wrong on our side; it has been logged.")
    from django.views.defaults import server_error

    return server_error(request)
