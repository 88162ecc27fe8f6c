"""GET /.well-known/jwks.json: the public keys that verify license tokens.
GET /.well-known/coditect-keyset.jws: the same keys, signed by the root key
that applications pin (licenses.keyset).

Clients and the SDK fetch them to check tokens offline; caches may keep them a
few minutes, since a rotation keeps the old key listed far longer than that.
The SDK trusts only the signed one (or the keys the application ships); the
plain JWKS is for other verifiers and the SDK's insecure development mode.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.response import Response

from core.openapi import error_responses
from licenses.keyset import signed_keyset
from licenses.signing import jwks
from tenants.views import PublicAPIView

_JwkSetSchema = inline_serializer(
    name="JwkSet",
    fields={
        "keys": serializers.ListField(
            child=serializers.DictField(),
            help_text="Public JWKs (RFC 7517) with kid, alg (EdDSA or RS256) and use 'sig'; "
            "the signing key first, then retired keys still accepted.",
        )
    },
)

JOSE = "application/jose"


class JwksApi(PublicAPIView):
    @extend_schema(
        operation_id="jwks",
        description=(
            "The public keys (RFC 7517 JWK set) that verify license tokens, current and retired, by "
            "`kid`. Cacheable for `LICENSE_JWKS_MAX_AGE` seconds; fetch again on an unknown `kid`."
        ),
        summary="Public keys for license tokens",
        auth=[],
        responses={200: _JwkSetSchema, **error_responses("service_unavailable")},
    )
    def get(self, request):
        response = Response(jwks())
        response["Cache-Control"] = f"public, max-age={settings.LICENSE_JWKS_MAX_AGE}"
        return response


class _AnswerAnyAccept(BaseContentNegotiation):
    """The key set is application/jose whatever the client accepts (the SDK
    asks for that, which DRF's JSON renderer would refuse with 406); the
    error bodies stay JSON."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class SignedKeySetApi(PublicAPIView):
    content_negotiation_class = _AnswerAnyAccept

    @extend_schema(
        operation_id="signed_keyset",
        summary="Public keys for license tokens, signed by the pinned root key",
        description=(
            "A compact JWS (RFC 7515, media type application/jose) with header typ "
            "'coditect-keyset+jwt' and kid the root key's RFC 7638 thumbprint; its claims are iss, "
            "iat, exp and keys (the JWKS's keys). The SDK accepts a license signing key it was not "
            "shipped with only from a set whose signature verifies under a root key the application "
            "pins and whose exp has not passed. 404 not_found when the server serves no signed set "
            "(LICENSE_KEYSET_ENABLED=false)."
        ),
        auth=[],
        responses={
            (200, JOSE): OpenApiResponse(OpenApiTypes.STR, description="The signed key set (compact JWS)."),
            **error_responses("not_found", "service_unavailable"),
        },
    )
    def get(self, request):
        if not settings.LICENSE_KEYSET_ENABLED:
            raise NotFound("This server serves no signed key set.")
        response = HttpResponse(signed_keyset(), content_type=JOSE)
        response["Cache-Control"] = f"public, max-age={settings.LICENSE_JWKS_MAX_AGE}"
        return response
