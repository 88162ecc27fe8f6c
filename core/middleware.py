"""Middleware that is not about tenants: the request context, the content security policy."""

from __future__ import annotations

import re
import uuid

from core.context import client_ip, normalized_ip, request_context

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestContextMiddleware:
    """Open the request's context: X-Request-ID from the load balancer when
    sane, else a new one (echoed back), and the client's address."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id
        request.client_ip = client_ip(request)
        with request_context(request_id=request_id, client_ip=normalized_ip(request.client_ip)):
            response = self.get_response(request)
        response["X-Request-ID"] = request_id
        return response


class ContentSecurityPolicyMiddleware:
    """Send settings.CONTENT_SECURITY_POLICY on HTML responses (dashboard, admin).

    Django 5.2 has no CSP of its own; one fixed policy for the whole site needs
    no nonces, so a dependency would add nothing. JSON answers need no policy.
    """

    def __init__(self, get_response):
        from django.conf import settings

        self.get_response = get_response
        self.policy = settings.CONTENT_SECURITY_POLICY
        self.header = (
            "Content-Security-Policy-Report-Only"
            if settings.CONTENT_SECURITY_POLICY_REPORT_ONLY
            else "Content-Security-Policy"
        )
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
