"""Middleware that is not about tenants: the request context, request body
limits, query strings without NUL, the content security policy."""

from __future__ import annotations

import logging
import re
import uuid

from django_prometheus.middleware import PrometheusAfterMiddleware
from django_prometheus.utils import Time

from core.context import client_ip, normalized_ip, request_context
from core.logging import SECRET_SHAPES

logger = logging.getLogger("coditect.request")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestContextMiddleware:
    """Open the request's context: X-Request-ID from the load balancer when
    sane, else a new one (echoed back), and the client's address.

    A 503 (a dependency down, not a bug) is logged here, once, at WARNING,
    with its request id, and Django's own ERROR line for it is skipped."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.META.get("HTTP_X_REQUEST_ID", "")
        # A client's id is logged on every line: never one shaped like a secret.
        sane = _REQUEST_ID.match(incoming) and not SECRET_SHAPES.search(incoming)
        request_id = incoming if sane else uuid.uuid4().hex
        request.request_id = request_id
        request.client_ip = client_ip(request)
        with request_context(request_id=request_id, client_ip=normalized_ip(request.client_ip)):
            response = self.get_response(request)
            if response.status_code == 503 and not getattr(response, "_has_been_logged", False):
                logger.warning(
                    "service unavailable",
                    extra={
                        "status_code": 503,
                        "method": request.method,
                        "path": request.path,
                        **getattr(response, "log_details", {}),
                    },
                )
                response._has_been_logged = True  # Django's log_response would say it again, at ERROR
        response["X-Request-ID"] = request_id
        return response


class QueryStringNulMiddleware:
    """Refuse a query string that carries a NUL character (`%00`) before any
    view reads it: PostgreSQL text cannot hold one, so a filter or a search
    given one (the console's list filters) would fail at the database as a
    500. The API answers 400 invalid_request; other pages Django's 400."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        query = request.META.get("QUERY_STRING", "")
        if query and ("%00" in query or "\x00" in query):
            from django.core.exceptions import SuspiciousOperation

            from core.errors import _answers_json, error_response, handler400

            if _answers_json(request):
                return error_response("invalid_request", "The query string carries a NUL character (%00).")
            return handler400(request, SuspiciousOperation("NUL in the query string"))
        return self.get_response(request)


class RequestBodyLimitMiddleware:
    """Hold every API request body to the API_MAX_* limits before any view runs.

    The JSON parser (core/parsers.py) enforces the same limits, but only where
    a view reads its body, and only after authentication: here an endpoint
    that ignores its body, or a caller without credentials, gets the same
    4xx, so no endpoint is a way around them. The size is judged from
    Content-Length before a byte is read; a JSON body within it is parsed
    once by the bounded loader (Django keeps the bytes; DRF parses them
    again, cheaply, as they are small). Malformed JSON is left to the view's
    parser, which says so only if the view wants the body.
    """

    BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        from core.errors import is_api_request

        if request.method in self.BODY_METHODS and is_api_request(request):
            refusal = self._refusal(request)
            if refusal is not None:
                return refusal
        return self.get_response(request)

    @staticmethod
    def _refusal(request):
        from django.conf import settings

        from core.errors import error_response
        from core.parsers import JsonLimitExceeded, json_limit_error, json_loads_bounded

        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return error_response("invalid_request", "The Content-Length header is not a number.")
        if not length and "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower():
            # Django reads a body by its Content-Length only: a chunked one
            # would be taken for no body at all, and answered as such.
            return error_response(
                "invalid_request",
                "Send the request body with a Content-Length; a chunked body is not read.",
                {"header": "Transfer-Encoding"},
            )
        maximum = settings.API_MAX_BODY_BYTES
        if length > maximum:
            return error_response(
                "request_too_large",
                f"The request body is larger than {maximum} bytes.",
                {"limit": "body_bytes", "max": maximum},
            )
        if not length or "json" not in request.content_type:
            return None
        try:
            # Kept for the view's parser (core.parsers.BoundedJSONParser): the
            # body is parsed once, under the same limits.
            request.coditect_json = json_loads_bounded(
                request.body,
                max_depth=settings.API_MAX_JSON_DEPTH,
                max_keys=settings.API_MAX_JSON_KEYS,
                max_string_length=settings.API_MAX_STRING_LENGTH,
            )
        except JsonLimitExceeded as exc:
            message, details = json_limit_error(exc)
            return error_response("invalid_request", message, details)
        except ValueError:
            return None
        return None


def content_security_policy_header() -> str:
    from django.conf import settings

    if settings.CONTENT_SECURITY_POLICY_REPORT_ONLY:
        return "Content-Security-Policy-Report-Only"
    return "Content-Security-Policy"


def content_security_policy_widened(additions: dict[str, list[str]]) -> str:
    """The site's policy with more sources for some directives, for the one
    page that needs them (the dashboard's sign-in with Identity Platform). A
    directive the policy lacks starts from its default-src; "" when the site
    sends no policy."""
    from django.conf import settings

    policy = settings.CONTENT_SECURITY_POLICY
    if not policy:
        return ""
    directives = {}
    for part in policy.split(";"):
        if words := part.split():
            directives[words[0]] = words[1:]
    for name, sources in additions.items():
        current = directives.get(name, list(directives.get("default-src", [])))
        directives[name] = [*[s for s in current if s != "'none'"], *sources]
    return "; ".join(" ".join([name, *sources]) for name, sources in directives.items())


class ContentSecurityPolicyMiddleware:
    """Send settings.CONTENT_SECURITY_POLICY on HTML responses (dashboard, admin).

    Django 5.2 has no CSP of its own; one fixed policy for the whole site needs
    no nonces, so a dependency would add nothing. JSON answers need no policy.
    """

    def __init__(self, get_response):
        from django.conf import settings

        self.get_response = get_response
        self.policy = settings.CONTENT_SECURITY_POLICY
        self.header = content_security_policy_header()
        self.exempt = [re.compile(pattern) for pattern in settings.CONTENT_SECURITY_POLICY_EXEMPT]

    def __call__(self, request):
        response = self.get_response(request)
        if (
            self.policy
            and self.header not in response
            and response.get("Content-Type", "").startswith("text/html")
            and not any(pattern.match(request.path_info.lstrip("/")) for pattern in self.exempt)
        ):
            response[self.header] = self.policy
        return response


class RequestMetricsMiddleware(PrometheusAfterMiddleware):
    """django_prometheus's after-half, with the same metrics and labels, made
    cheaper on every request: each labelled child is looked up once per
    process and kept (prometheus_client's `labels()` validates and sorts the
    labels and takes a lock on every call, eight calls a request), and the
    two headers it reads come from `META`, not `request.headers` (which
    builds a dict of every header). The label values are the method, view,
    status, charset and exception names the metrics already carry, but for
    the latency's method: one the library does not know is "<invalid
    method>" there too, as in its other metrics."""

    MAX_CHILDREN = 10_000

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._children: dict = {}

    def label_metric(self, metric, request, response=None, **labels):
        if not labels:
            return metric
        if "method" in labels:
            # The library labels its latency with the request's method as
            # sent: a client inventing methods would invent series. Its own
            # `_method` (its other metrics' label) says "<invalid method>".
            labels["method"] = self._method(request)
        key = (id(metric), *labels.items())
        child = self._children.get(key)
        if child is None:
            if len(self._children) >= self.MAX_CHILDREN:
                self._children.clear()
            child = self._children[key] = metric.labels(**labels)
        return child

    def process_request(self, request):
        meta = request.META
        method = self._method(request)
        self.label_metric(self.metrics.requests_by_method, request, method=method).inc()
        self.label_metric(
            self.metrics.requests_by_transport, request, transport=self._transport(request)
        ).inc()
        if meta.get("HTTP_X_REQUESTED_WITH") == "XMLHttpRequest":
            self.metrics.requests_ajax.inc()
        try:
            content_length = int(meta.get("CONTENT_LENGTH") or 0)
        except ValueError:
            content_length = 0
        self.metrics.requests_body_bytes.observe(content_length)
        request.prometheus_after_middleware_event = Time()


class LeanPathMiddleware:
    """The license-token calls every running application makes (heartbeat,
    release: LEAN_PATHS) skip the middleware after this one, which is there
    for pages and sign-ins: sessions, CSRF, the signed-in user, messages, the
    operator site, framing headers. What they need runs before this one, as
    for every request: the request context and its id, the security headers
    and HTTPS redirect, the per-address rate limit, the body limits, the Host
    check and Content-Length (CommonMiddleware). The
    request metrics count them as any other (the after-half,
    RequestMetricsMiddleware, is called here as the full chain calls it).

    The views of these paths take nothing those middlewares give (no
    session, no `request.user`, CSRF-exempt as every API view is); a test
    asks each view of LEAN_PATHS to answer the same with and without them."""

    def __init__(self, get_response):
        from django.conf import settings
        from django.core.handlers.exception import convert_exception_to_response

        self.get_response = get_response
        self.paths = frozenset(settings.LEAN_PATHS)
        self.metrics = RequestMetricsMiddleware(convert_exception_to_response(self._view))
        # What each path resolves to: fixed paths without arguments, resolved
        # once (the URL tree is walked on every other request).
        self.matches: dict = {}

    def __call__(self, request):
        if request.path_info in self.paths:
            return self.metrics(request)
        return self.get_response(request)

    def _view(self, request):
        from django.urls import resolve

        match = self.matches.get(request.path_info)
        if match is None:
            match = self.matches[request.path_info] = resolve(request.path_info)
        request.resolver_match = match
        self.metrics.process_view(request, match.func, match.args, match.kwargs)
        try:
            response = match.func(request, *match.args, **match.kwargs)
            if callable(getattr(response, "render", None)):
                # A DRF view's answer renders late, as Django's handler renders it.
                response = self.metrics.process_template_response(request, response).render()
            return response
        except Exception as exc:
            self.metrics.process_exception(request, exc)
            raise
