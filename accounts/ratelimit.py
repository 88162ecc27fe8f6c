"""Rate limits: per client IP (middleware) and per user (a DRF throttle).

placeholder while the limiter is built: lets every request through.
"""

from __future__ import annotations

from rest_framework.throttling import BaseThrottle


class PerIpRateLimitMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)


class PerUserRateLimit(BaseThrottle):
    def allow_request(self, request, view) -> bool:
        return True
