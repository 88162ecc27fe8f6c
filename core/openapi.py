"""OpenAPI pieces every API module shares: the one error body, and the error
responses an operation can give, by DESIGN.md's stable codes."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers

from core.errors import ERROR_STATUS


class ErrorSerializer(serializers.Serializer):
    error = inline_serializer(
        "ErrorBody",
        {
            "code": serializers.CharField(),
            "message": serializers.CharField(),
            "details": serializers.DictField(),
        },
    )


def error_responses(*codes: str) -> dict[int, OpenApiResponse]:
    """`responses={200: ..., **error_responses("invalid_request", ...)}`."""
    by_status: dict[int, list[str]] = {}
    for code in codes:
        by_status.setdefault(ERROR_STATUS[code], []).append(code)
    return {
        http_status: OpenApiResponse(ErrorSerializer, description="Error codes: " + ", ".join(names))
        for http_status, names in by_status.items()
    }
