"""GET /.well-known/jwks.json: the public keys that verify license tokens.

Clients and the SDK fetch it to check tokens offline; caches may keep it a
few minutes, since a rotation keeps the old key listed far longer than that.
"""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response

from core.openapi import error_responses
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


class JwksApi(PublicAPIView):
    @extend_schema(
        operation_id="jwks",
        summary="Public keys for license tokens",
        auth=[],
        responses={200: _JwkSetSchema, **error_responses("service_unavailable")},
    )
    def get(self, request):
        response = Response(jwks())
        response["Cache-Control"] = f"public, max-age={settings.LICENSE_JWKS_MAX_AGE}"
        return response
