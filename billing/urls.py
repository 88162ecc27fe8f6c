from django.urls import path

from billing import apis

# Under /api/v1/integrations/.
urlpatterns = [
    path("stripe/webhook", apis.StripeWebhookApi.as_view(), name="stripe-webhook"),
]
