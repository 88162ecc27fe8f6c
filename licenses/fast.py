"""The fast path of the two calls every running application makes: heartbeat
and release.

A heartbeat is the request this server answers most (every two minutes for
every seat in use). Through DRF it pays for a Request wrapper, content
negotiation, authenticator and permission objects, throttles and a renderer,
none of which a license-token call needs: the token is the credential, its
per-user limit does not apply (a license session is no user), and the answer
is one small JSON object. So the URLs of these two endpoints are plain Django
views that do the common case themselves:

- heartbeat: POST with `Authorization: Bearer <token>` and no body, or the
  SDK's `{"idle_seconds": n}` as `application/json`;
- release: DELETE with `Authorization: Bearer <token>`;
- either with no `Accept`, or one naming only `application/json`,
  `application/*` or `*/*` (no parameters).

Anything else (no or malformed credentials, another method, OPTIONS, any
other body, any other `Accept`) goes to the DRF view,
which stays the one home of these endpoints' validation and their OpenAPI
schema: the URL's view carries the DRF class (`cls`), as `as_view()` does, so
drf-spectacular documents exactly what it documented before. The services
called (leases.lease_heartbeat, leases.lease_release), the token check
(licenses.signing) and the error shape (core.errors.api_error_response) are
the same ones the DRF views use; only the request cycle around them is
shorter. The middleware these paths skip is in core.middleware.LeanPathMiddleware.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from core.errors import ApplicationError, api_error_response, compact_json_response
from licenses import apis, leases
from licenses.signing import license_token_verify
from tenants.scope import scope_boundary

IDLE_SECONDS_MAX = apis.IDLE_SECONDS_MAX


# The Accept values DRF's one renderer (JSON, no parameters) answers as this
# view does; any other (a parameter such as `indent`, another type) is DRF's
# to negotiate or refuse.
_PLAIN_JSON = frozenset({"application/json", "application/*", "*/*"})


def _plain_json(accept: str) -> bool:
    return all(kind.strip().lower() in _PLAIN_JSON for kind in accept.split(","))


def _claims(request: HttpRequest) -> dict | HttpResponse | None:
    """The verified claims of the request's license token; the error answer
    for a token that fails; None when the request is not the common case
    (no bearer credentials, or an Accept header JSON does not satisfy)."""
    accept = request.META.get("HTTP_ACCEPT")
    if accept and not _plain_json(accept):
        return None
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token or " " in token:
        return None
    try:
        return license_token_verify(token)
    except ApplicationError as error:
        return api_error_response(error, compact_json_response)


def _answer(call: Callable[[], dict]) -> HttpResponse:
    """Run the service in a scope of its own and answer its result, or its
    error in the contract's shape (what is not an application's error, a
    dependency's or the client's, is a bug: Django answers 500)."""
    try:
        with scope_boundary():
            return compact_json_response(call())
    except Exception as exc:
        response = api_error_response(exc, compact_json_response)
        if response is None:
            raise
        return response


def _idle_seconds(request: HttpRequest) -> int | bool | None:
    """The SDK's `idle_seconds` from the body, None for no body, False for any
    other body (DRF's parser and serializer judge it)."""
    if not request.body:
        return None
    if request.content_type != "application/json":
        return False
    # Parsed once already, within the API's limits, by the body-limits middleware.
    body = getattr(request, "coditect_json", None)
    idle = body.get("idle_seconds") if isinstance(body, dict) and len(body) == 1 else None
    if type(idle) is int and 0 <= idle <= IDLE_SECONDS_MAX:
        return idle
    return False


def heartbeat(request: HttpRequest) -> HttpResponse | None:
    if request.method != "POST":
        return None
    idle_seconds = _idle_seconds(request)
    if idle_seconds is False:
        return None
    claims = _claims(request)
    if not isinstance(claims, dict):
        return claims

    return _answer(
        lambda: apis.heartbeat_answer(*leases.lease_heartbeat(claims=claims, idle_seconds=idle_seconds))
    )


def release(request: HttpRequest) -> HttpResponse | None:
    if request.method != "DELETE":
        return None
    claims = _claims(request)
    if not isinstance(claims, dict):
        return claims

    return _answer(lambda: apis.release_answer(leases.lease_release(claims=claims)))


def fast_view(api_class: type, handler: Callable[[HttpRequest], HttpResponse | None]) -> Callable:
    """The URL's view: `handler` answers the common case, the DRF view the
    rest. It is marked as `as_view()` marks its views (so drf-spectacular and
    Django's checks see the DRF class), CSRF-exempt as every APIView is."""
    drf_view = api_class.as_view()
    allow = ", ".join(api_class().allowed_methods)

    def view(request: HttpRequest) -> HttpResponse:
        response = handler(request)
        if response is None:
            return drf_view(request)
        response["Allow"] = allow  # as DRF's answers say
        return response

    view.cls = api_class
    view.view_class = api_class
    view.initkwargs = drf_view.initkwargs
    view.csrf_exempt = True
    view.__name__ = drf_view.__name__
    view.__doc__ = api_class.__doc__
    view.__module__ = api_class.__module__
    return view


heartbeat_view = fast_view(apis.LicenseHeartbeatApi, heartbeat)
release_view = fast_view(apis.LicenseReleaseApi, release)
