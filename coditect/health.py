"""Probes: /health says the process is up; /ready says its dependencies answer."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import connections
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from core.errors import error_response

logger = logging.getLogger(__name__)


@never_cache
@require_GET
def health(request):
    return JsonResponse({"status": "ok"})


def _check_database(alias: str) -> None:
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT 1")


def _check_redis() -> None:
    import redis

    client = redis.Redis.from_url(
        settings.REDIS_URL,
        socket_connect_timeout=settings.REDIS_SOCKET_TIMEOUT,
        socket_timeout=settings.REDIS_SOCKET_TIMEOUT,
    )
    try:
        client.ping()
    finally:
        client.close()


@never_cache
@require_GET
def ready(request):
    checks = {"database": lambda: _check_database("default")}
    if settings.OPERATOR_DATABASE != "default":
        # Sign-in by email and the admin site go through the operator role.
        checks["operator_database"] = lambda: _check_database(settings.OPERATOR_DATABASE)
    if settings.REDIS_URL:
        checks["redis"] = _check_redis
    failed = {}
    for name, check in checks.items():
        try:
            check()
        except Exception as exc:  # any failure means not ready; say which
            logger.warning("readiness check failed", extra={"dependency": name, "error": type(exc).__name__})
            failed[name] = type(exc).__name__
            if name == "database":
                connections["default"].close()
            elif name == "operator_database":
                connections[settings.OPERATOR_DATABASE].close()
    if failed:
        return error_response(
            "service_unavailable",
            "A dependency does not answer: " + ", ".join(sorted(failed)) + ".",
            {"failed": failed},
        )
    return JsonResponse({"status": "ready", "checks": sorted(checks)})
