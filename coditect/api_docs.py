"""The ReDoc page of the API reference (`/api/redoc/`), beside Swagger UI at
`/api/docs/`: both from drf-spectacular-sidecar's files, served here.

ReDoc builds its search index in a web worker it starts from a `blob:` URL.
The site's policy has no `worker-src`, so `script-src 'self'` stands in for it
and Chromium refuses the worker: the page renders, but search finds nothing.
This page alone gets the site's policy with `worker-src 'self' blob:` added;
every other page keeps the policy as it is. Nothing else is widened: ReDoc's
"API docs by Redocly" logo, an image on Redocly's CDN, stays refused by
`img-src` (the link keeps its words), so the page asks no other host for
anything.
"""

from __future__ import annotations

import re

from django.conf import settings
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularRedocView

WORKER_SOURCES = "worker-src 'self' blob:"


def redoc_policy() -> str:
    """The site's content security policy plus ReDoc's search worker; empty
    when the site sends none. A policy that names `worker-src` itself is kept
    as the operator wrote it."""
    policy = settings.CONTENT_SECURITY_POLICY.strip().rstrip(";").strip()
    if not policy or re.search(r"(^|;)\s*worker-src\b", policy):
        return policy
    return f"{policy}; {WORKER_SOURCES}"


class RedocView(SpectacularRedocView):
    # A public page: no authentication runs (as for /api/docs/ and /api/schema/).
    authentication_classes = []
    url_name = "schema"
    # drf-spectacular's page without its Google Fonts stylesheet.
    template_name = "api_docs/redoc.html"

    @extend_schema(exclude=True)  # a page about the API, not an operation of it
    def get(self, request, *args, **kwargs):
        response = super().get(request, *args, **kwargs)
        policy = redoc_policy()
        exempt = any(
            re.match(pattern, request.path_info.lstrip("/"))
            for pattern in settings.CONTENT_SECURITY_POLICY_EXEMPT
        )
        if policy and not exempt:
            # The header ContentSecurityPolicyMiddleware would send; it keeps a view's own.
            header = (
                "Content-Security-Policy-Report-Only"
                if settings.CONTENT_SECURITY_POLICY_REPORT_ONLY
                else "Content-Security-Policy"
            )
            response[header] = policy
        return response
