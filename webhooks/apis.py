"""The webhooks API, for tenant admins: their tenant's endpoints only (another
tenant's, or an operator-wide one, is 404 as an unknown id: the scoped
manager never finds it). Operator-wide endpoints are managed in the admin."""

from __future__ import annotations

from django.core.validators import RegexValidator
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from accounts.permissions import TENANT_ADMIN_ONLY
from core.openapi import error_responses
from core.pagination import PageQuerySerializer, queryset_page
from core.serializers import JsonBodySerializer
from tenants.scope import current_tenant_id
from tenants.views import TenantAPIView
from webhooks import services
from webhooks.events import WEBHOOK_EVENTS
from webhooks.models import Delivery, Endpoint

EVENT_CHOICES = sorted(WEBHOOK_EVENTS)
# What the sender can parse; the address rules are the service's (webhook_target_forbidden).
URL_SHAPE = RegexValidator(r"^https?://[A-Za-z0-9.:_\[\]-]+([/?#][!-~]*)?$", "An http(s):// URL.")


class EndpointOutput(serializers.Serializer):
    id = serializers.UUIDField()
    url = serializers.CharField()
    description = serializers.CharField()
    event_types = serializers.ListField(child=serializers.CharField())
    enabled = serializers.BooleanField()
    failure_count = serializers.IntegerField(help_text="Failed tries in a row.")
    disabled_at = serializers.DateTimeField(allow_null=True)
    disabled_reason = serializers.CharField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class EndpointCreatedOutput(EndpointOutput):
    secret = serializers.CharField(help_text="`whsec_…`: verifies the signatures. Shown in this answer only.")


class DeliveryOutput(serializers.Serializer):
    id = serializers.UUIDField()
    endpoint_id = serializers.UUIDField()
    message_id = serializers.CharField(source="message.webhook_id", help_text="The `webhook-id` header sent.")
    event_type = serializers.CharField(source="message.event_type")
    status = serializers.CharField()
    attempts = serializers.IntegerField()
    next_attempt_at = serializers.DateTimeField(allow_null=True)
    last_response_code = serializers.IntegerField(allow_null=True)
    last_error = serializers.CharField()
    created_at = serializers.DateTimeField()
    completed_at = serializers.DateTimeField(allow_null=True)


class EndpointInput(JsonBodySerializer):
    url = serializers.CharField(max_length=2000, validators=[URL_SHAPE])
    description = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    event_types = serializers.ListField(
        child=serializers.ChoiceField(choices=EVENT_CHOICES), min_length=1, max_length=len(EVENT_CHOICES)
    )


class EndpointPatchInput(JsonBodySerializer):
    url = serializers.CharField(max_length=2000, validators=[URL_SHAPE], required=False)
    description = serializers.CharField(max_length=200, required=False, allow_blank=True)
    event_types = serializers.ListField(
        child=serializers.ChoiceField(choices=EVENT_CHOICES),
        min_length=1,
        max_length=len(EVENT_CHOICES),
        required=False,
    )
    enabled = serializers.BooleanField(required=False, help_text="True enables a disabled endpoint again.")


def _endpoint(endpoint_id) -> Endpoint:
    endpoint = Endpoint.objects.filter(pk=endpoint_id).first()
    if endpoint is None:
        raise NotFound("No such webhook endpoint.")
    return endpoint


def _list(name: str, item) -> serializers.Serializer:
    return inline_serializer(
        name, {"results": item(many=True), "next_cursor": serializers.CharField(allow_null=True)}
    )


class EndpointsApi(TenantAPIView):
    permission_classes = TENANT_ADMIN_ONLY

    @extend_schema(
        operation_id="webhook_endpoints_list",
        summary="List the tenant's webhook endpoints",
        description="A page of the tenant's webhook endpoints, newest first; secrets are never shown again. "
        "Tenant admins only.",
        parameters=[PageQuerySerializer],
        responses={
            200: _list("WebhookEndpointList", EndpointOutput),
            **error_responses("invalid_request", "not_authenticated", "permission_denied", "rate_limited"),
        },
    )
    def get(self, request):
        query = PageQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        page = queryset_page(
            Endpoint.objects.all(),
            kind="webhook_endpoints",
            order=("-created_at", "-id"),
            cursor=query.validated_data.get("cursor"),
            limit=query.validated_data["limit"],
        )
        return Response(
            {"results": EndpointOutput(page.items, many=True).data, "next_cursor": page.next_cursor}
        )

    @extend_schema(
        operation_id="webhook_endpoints_create",
        summary="Make a webhook endpoint",
        description=(
            "An endpoint that receives the named events of this tenant, signed per Standard Webhooks "
            "(`webhook-id`, `webhook-timestamp`, `webhook-signature`) with the `secret` in this answer, "
            "which is never shown again. The URL must be https:// (http:// and loopback only on a "
            "server in DEBUG); an address in a private or reserved range is 400 "
            "`webhook_target_forbidden`. A tenant has at most `WEBHOOK_MAX_ENDPOINTS_PER_TENANT` (10) "
            "endpoints: one more is 409 `webhook_endpoint_limit_reached`. Tenant admins only."
        ),
        request=EndpointInput,
        responses={
            201: EndpointCreatedOutput,
            **error_responses(
                "invalid_request",
                "webhook_target_forbidden",
                "webhook_endpoint_limit_reached",
                "not_authenticated",
                "permission_denied",
                "rate_limited",
            ),
        },
    )
    def post(self, request):
        data = EndpointInput(data=request.data)
        data.is_valid(raise_exception=True)
        endpoint = services.endpoint_create(
            tenant_id=current_tenant_id(), actor=request.user, **data.validated_data
        )
        return Response(EndpointCreatedOutput(endpoint).data, status=201)


class EndpointDetailApi(TenantAPIView):
    permission_classes = TENANT_ADMIN_ONLY

    @extend_schema(
        operation_id="webhook_endpoints_retrieve",
        summary="One webhook endpoint",
        description="One of the tenant's endpoints (without its secret). Tenant admins only.",
        responses={
            200: EndpointOutput,
            **error_responses("not_authenticated", "permission_denied", "not_found", "rate_limited"),
        },
    )
    def get(self, request, endpoint_id):
        return Response(EndpointOutput(_endpoint(endpoint_id)).data)

    @extend_schema(
        operation_id="webhook_endpoints_update",
        summary="Change a webhook endpoint",
        description=(
            "Changes the fields named: `url`, `description`, `event_types`, `enabled` (true enables a "
            "disabled endpoint again and forgets its failures). Tenant admins only."
        ),
        request=EndpointPatchInput,
        responses={
            200: EndpointOutput,
            **error_responses(
                "invalid_request",
                "webhook_target_forbidden",
                "not_authenticated",
                "permission_denied",
                "not_found",
                "rate_limited",
            ),
        },
    )
    def patch(self, request, endpoint_id):
        endpoint = _endpoint(endpoint_id)
        data = EndpointPatchInput(data=request.data)
        data.is_valid(raise_exception=True)
        endpoint = services.endpoint_update(endpoint=endpoint, values=data.validated_data, actor=request.user)
        return Response(EndpointOutput(endpoint).data)

    @extend_schema(
        operation_id="webhook_endpoints_delete",
        summary="Remove a webhook endpoint",
        description="The endpoint and its delivery log are gone; nothing more is sent to it. Tenant admins only.",
        responses={
            204: None,
            **error_responses("not_authenticated", "permission_denied", "not_found", "rate_limited"),
        },
    )
    def delete(self, request, endpoint_id):
        services.endpoint_delete(endpoint=_endpoint(endpoint_id), actor=request.user)
        return Response(status=204)


class EndpointPingApi(TenantAPIView):
    permission_classes = TENANT_ADMIN_ONLY

    @extend_schema(
        operation_id="webhook_endpoints_ping",
        summary="Send a test event",
        description=(
            "Sends a `webhook.ping` to this endpoint (whatever it subscribes to); its delivery appears "
            "in the endpoint's deliveries. A disabled endpoint is 409 `webhook_endpoint_disabled`. "
            "Tenant admins only."
        ),
        request=None,
        responses={
            202: inline_serializer("WebhookPing", {"message_id": serializers.CharField()}),
            **error_responses(
                "webhook_endpoint_disabled",
                "not_authenticated",
                "permission_denied",
                "not_found",
                "rate_limited",
            ),
        },
    )
    def post(self, request, endpoint_id):
        message = services.endpoint_ping(endpoint=_endpoint(endpoint_id), actor=request.user)
        return Response({"message_id": message.webhook_id}, status=202)


class EndpointDeliveriesApi(TenantAPIView):
    permission_classes = TENANT_ADMIN_ONLY

    @extend_schema(
        operation_id="webhook_deliveries_list",
        summary="An endpoint's deliveries",
        description=(
            "A page of the endpoint's deliveries, newest first: status (`pending`, `succeeded`, "
            "`failed`), tries, the last response code or error, and when the next try is due. "
            "Tenant admins only."
        ),
        parameters=[PageQuerySerializer],
        responses={
            200: _list("WebhookDeliveryList", DeliveryOutput),
            **error_responses(
                "invalid_request", "not_authenticated", "permission_denied", "not_found", "rate_limited"
            ),
        },
    )
    def get(self, request, endpoint_id):
        endpoint = _endpoint(endpoint_id)
        query = PageQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        page = queryset_page(
            Delivery.objects.filter(endpoint=endpoint).select_related("message"),
            kind="webhook_deliveries",
            order=("-created_at", "-id"),
            cursor=query.validated_data.get("cursor"),
            limit=query.validated_data["limit"],
        )
        return Response(
            {"results": DeliveryOutput(page.items, many=True).data, "next_cursor": page.next_cursor}
        )


class DeliveryRedeliverApi(TenantAPIView):
    permission_classes = TENANT_ADMIN_ONLY

    @extend_schema(
        operation_id="webhook_deliveries_redeliver",
        summary="Send a delivery again",
        description=(
            "Sends the delivery's message to its endpoint again, as a new delivery (same `webhook-id`, "
            "so a receiver that deduplicates by it sees one event). A disabled endpoint is 409 "
            "`webhook_endpoint_disabled`. Tenant admins only."
        ),
        request=None,
        responses={
            202: DeliveryOutput,
            **error_responses(
                "webhook_endpoint_disabled",
                "not_authenticated",
                "permission_denied",
                "not_found",
                "rate_limited",
            ),
        },
    )
    def post(self, request, delivery_id):
        delivery = Delivery.objects.filter(pk=delivery_id).select_related("endpoint", "message").first()
        if delivery is None:
            raise NotFound("No such delivery.")
        again = services.delivery_redeliver(delivery=delivery, actor=request.user)
        again.refresh_from_db()
        return Response(DeliveryOutput(again).data, status=202)
