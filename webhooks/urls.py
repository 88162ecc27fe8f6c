from django.urls import path

from webhooks import apis

# Under /api/v1/webhooks/.
urlpatterns = [
    path("endpoints", apis.EndpointsApi.as_view(), name="webhook-endpoints"),
    path("endpoints/<uuid:endpoint_id>", apis.EndpointDetailApi.as_view(), name="webhook-endpoint"),
    path("endpoints/<uuid:endpoint_id>/ping", apis.EndpointPingApi.as_view(), name="webhook-endpoint-ping"),
    path(
        "endpoints/<uuid:endpoint_id>/deliveries",
        apis.EndpointDeliveriesApi.as_view(),
        name="webhook-endpoint-deliveries",
    ),
    path(
        "deliveries/<uuid:delivery_id>/redeliver",
        apis.DeliveryRedeliverApi.as_view(),
        name="webhook-delivery-redeliver",
    ),
]
