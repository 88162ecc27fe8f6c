"""OpenAPI pieces every API module shares: the one error body, and the error
responses an operation can give, by DESIGN.md's stable codes.

An operation's own refusals (`license_not_found`, `no_seats_available`, ...)
are named where it is declared, with `error_responses(...)`. The refusals that
come from the layers every request crosses are added here, by `ContractAutoSchema`,
from what the operation is, so that no declaration can forget them and a new
layer is declared once:

- 400 `invalid_request`: every operation (a malformed body, query or header, a
  bad Host);
- 413 (the codes of status 413 in `ERROR_STATUS`): every POST, PUT, PATCH and
  DELETE, whose bodies are held to the limits before any view runs;
- 401 `not_authenticated`: every operation that takes credentials;
- 403 `permission_denied`: every operation whose permissions can refuse a
  caller who is signed in;
- 404 `not_found`: every operation with a path parameter;
- 429 `rate_limited` (and any other 429 code an operation names): every
  operation, since the per-address limit stands in front of all of them;
- 503 `service_unavailable`: every operation (a dependency down).

Every operation also gets its tag from its path (`TAG_BY_PREFIX`, the tags of
SPECTACULAR_SETTINGS["TAGS"]), and its description only from its own
`extend_schema(description=...)`: a class docstring (say, a shared base view's)
is never taken for one, so it cannot leak into several operations.
"""

from __future__ import annotations

from django.core.validators import RegexValidator
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny, IsAuthenticated

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


class ErrorResponse(OpenApiResponse):
    """An error answer in the contract's shape, and the codes it may carry."""

    def __init__(self, codes: list[str]) -> None:
        self.codes = list(dict.fromkeys(codes))
        super().__init__(ErrorSerializer, description="Error codes: " + ", ".join(self.codes))


def error_responses(*codes: str) -> dict[int, ErrorResponse]:
    """`responses={200: ..., **error_responses("license_not_found", ...)}`."""
    by_status: dict[int, list[str]] = {}
    for code in codes:
        by_status.setdefault(ERROR_STATUS[code], []).append(code)
    return {http_status: ErrorResponse(names) for http_status, names in by_status.items()}


def _codes_of(http_status: int) -> list[str]:
    return [code for code, status in ERROR_STATUS.items() if status == http_status]


NO_NUL_CHARACTER = r"^[^\x00]*$"

# Permissions that refuse only a caller who is not signed in (that is a 401).
_AUTHENTICATION_ONLY = (AllowAny, IsAuthenticated)


# The tag of an operation, by the first path prefix it starts with.
TAG_BY_PREFIX = (
    ("/api/v1/auth/", "auth"),
    ("/api/v1/invites", "invites"),
    ("/api/v1/licenses/", "licenses"),
    ("/api/v1/provisioning/", "provisioning"),
    ("/api/v1/analytics/", "analytics"),
    ("/api/v1/webhooks/", "webhooks"),
    ("/api/v1/integrations/", "integrations"),
    ("/api/v1/.well-known/", "keys"),
    ("/.well-known/", "keys"),
)


class ContractAutoSchema(AutoSchema):
    """drf-spectacular's schema, with the error answers of the shared layers
    added to every operation, its tag by path and no description taken from a
    docstring (see the module's docstring)."""

    def get_tags(self) -> list[str]:
        for prefix, tag in TAG_BY_PREFIX:
            if self.path.startswith(prefix):
                return [tag]
        return super().get_tags()

    def get_description(self) -> str:
        # Only an explicit extend_schema(description=...) (which overrides this) describes an operation.
        return ""

    def layer_error_codes(self) -> list[str]:
        codes = ["invalid_request"]
        if self.method in ("POST", "PUT", "PATCH", "DELETE"):  # what RequestBodyLimitMiddleware holds
            codes += _codes_of(413)
        if self.get_auth():
            codes.append("not_authenticated")
        permissions = self.view.get_permissions() if hasattr(self.view, "get_permissions") else []
        if any(not isinstance(permission, _AUTHENTICATION_ONLY) for permission in permissions):
            codes.append("permission_denied")
        if "{" in self.path:
            codes.append("not_found")
        codes += ["rate_limited", "service_unavailable"]
        return codes

    def _map_serializer_field(self, field, direction, bypass_extensions=False):
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        # DRF's CharField refuses a NUL character (ProhibitNullCharactersValidator): say so.
        if (
            direction == "request"
            and isinstance(field, serializers.CharField)
            and schema.get("type") == "string"
            and "pattern" not in schema
            and not any(isinstance(validator, RegexValidator) for validator in field.validators)
        ):
            schema["pattern"] = NO_NUL_CHARACTER
        return schema

    def _map_basic_serializer(self, serializer, direction):
        schema = super()._map_basic_serializer(serializer, direction)
        rules = getattr(serializer, "schema_rules", None)
        if rules and direction == "request":
            schema.update(rules)
        return schema

    def _get_request_for_media_type(self, serializer, direction="request"):
        schema, required = super()._get_request_for_media_type(serializer, direction)
        # A body with rules across its fields cannot be left out, even when no field alone is required.
        if getattr(serializer, "schema_rules", None):
            required = True
        return schema, required

    def _get_response_bodies(self, direction="response"):
        # Here, not in get_response_serializers: @extend_schema replaces that one.
        bodies = super()._get_response_bodies(direction)
        declared = self.get_response_serializers()
        codes_by_status = {
            str(http_status): list(response.codes)
            for http_status, response in (declared.items() if isinstance(declared, dict) else ())
            if isinstance(response, ErrorResponse)
        }
        for code in self.layer_error_codes():
            http_status = str(ERROR_STATUS[code])
            if http_status in bodies and http_status not in codes_by_status:
                continue  # the operation answers this status with a body of its own
            codes = codes_by_status.setdefault(http_status, [])
            if code not in codes:
                codes.append(code)
        for http_status, codes in codes_by_status.items():
            bodies[http_status] = self._get_response_for_code(
                ErrorResponse(codes), http_status, direction=direction
            )
        return dict(sorted(bodies.items()))
