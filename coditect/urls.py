from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.utils import extend_schema, extend_schema_view
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from accounts.urls import invite_urlpatterns
from analytics.apis import AnalyticsUsageApi
from coditect import health, metrics
from coditect.api_docs import RedocView
from core.errors import api_route_not_found
from licenses.claim_views import license_claim_view
from licenses.jwks import JwksApi, SignedKeySetApi

# The same key set under the API prefix, named apart in the OpenAPI schema.
JwksV1Api = extend_schema_view(get=extend_schema(operation_id="jwks_v1"))(type("JwksV1Api", (JwksApi,), {}))
SignedKeySetV1Api = extend_schema_view(get=extend_schema(operation_id="signed_keyset_v1"))(
    type("SignedKeySetV1Api", (SignedKeySetApi,), {})
)

api_v1 = [
    path("auth/", include("accounts.urls")),
    *invite_urlpatterns,
    path(".well-known/jwks.json", JwksV1Api.as_view(), name="jwks"),
    path(".well-known/coditect-keyset.jws", SignedKeySetV1Api.as_view(), name="signed-keyset"),
    path("licenses/", include("licenses.urls")),
    path("analytics/usage", AnalyticsUsageApi.as_view(), name="analytics-usage"),
    # Provisioning API (issue 15): the vendor's backend, with API keys.
    path("provisioning/", include("licenses.provisioning_urls")),
    path("webhooks/", include("webhooks.urls")),
    # Stripe (issue 15): its webhook, signed by Stripe.
    path("integrations/", include("billing.urls")),
]

urlpatterns = [
    path("health", health.health, name="health"),
    path("ready", health.ready, name="ready"),
    path(".well-known/jwks.json", JwksApi.as_view(), name="jwks"),
    path(".well-known/coditect-keyset.jws", SignedKeySetApi.as_view(), name="signed-keyset"),
    # django-prometheus's metrics, added up across gunicorn workers, plus seats, backlog, dependencies.
    path("metrics", metrics.metrics_view, name="prometheus-django-metrics"),
    path(settings.ADMIN_URL, admin.site.urls),
    path("dashboard/", include("analytics.urls")),
    # Email (issue 15): the one-time claim link of a license delivery email.
    path("claim", license_claim_view, name="license-claim"),
    path("api/v1/", include((api_v1, "api"), namespace="v1")),
    # Public pages: no authentication runs, so a caller's bearer token (which
    # would open a tenant scope these views do not have) is simply not read.
    path("api/schema/", SpectacularAPIView.as_view(authentication_classes=[]), name="schema"),
    path(
        "api/docs/",
        SpectacularSwaggerView.as_view(url_name="schema", authentication_classes=[]),
        name="docs",
    ),
    # The same schema in ReDoc (coditect/api_docs.py: its page's policy).
    path("api/redoc/", RedocView.as_view(), name="redoc"),
    re_path(r"^(api|\.well-known)/", api_route_not_found),
]

handler400 = "core.errors.handler400"
handler404 = "core.errors.handler404"
handler500 = "core.errors.handler500"
