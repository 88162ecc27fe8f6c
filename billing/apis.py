"""`POST /api/v1/integrations/stripe/webhook`: Stripe's events (billing.services).

No authentication: the `Stripe-Signature` header is the caller's proof. The
body is read raw (the signature is over its exact bytes), never parsed by
DRF's parsers; `stripe.Webhook.construct_event` parses it once verified."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response

from billing import services
from billing.models import EventOutcome
from core.openapi import error_responses
from tenants.views import PublicAPIView


class StripeEventBody(serializers.Serializer):
    """The schema of the body (never used to parse it: the signature is over its bytes)."""

    id = serializers.RegexField(services.EVENT_ID.pattern, help_text="The event's id (`evt_…`).")
    type = serializers.RegexField(services.EVENT_TYPE.pattern, help_text="`checkout.session.completed`, …")
    data = serializers.DictField(required=False, help_text='`{"object": …}`: the object the event is about.')
    created = serializers.IntegerField(
        required=False, help_text="When the event happened (Unix time): the order events are applied in."
    )
    livemode = serializers.BooleanField(required=False)


class StripeWebhookApi(PublicAPIView):
    # The body is read raw (request.body) and never through request.data: the
    # JSON parser here only names the body's type in the schema.

    @extend_schema(
        operation_id="integrations_stripe_webhook",
        tags=["integrations"],
        summary="Receive a Stripe event",
        description=(
            "Stripe's webhook: the body is a Stripe event, verified by its `Stripe-Signature` header "
            "against `STRIPE_WEBHOOK_SECRET` (timestamps older than 300 s are refused, as Stripe's "
            "library does). A missing or bad signature, or a body that is not an event, is 400 "
            "`invalid_request` and changes nothing. Each event is recorded once by its id: a replay "
            "answers 200 with `replay: true` and changes nothing. Acted on: "
            "`checkout.session.completed` (the tenant, its first admin's invite, the license from "
            "the price's policy), `customer.subscription.updated` (seats and policy), "
            "`customer.subscription.deleted` (expiry at the period's end), `invoice.payment_failed` "
            "(suspension after `STRIPE_PAYMENT_GRACE_DAYS`) and `invoice.paid`; an unpaid checkout "
            "(a delayed payment method) makes nothing (`awaiting_payment`) until "
            "`checkout.session.async_payment_succeeded`; `checkout.session.async_payment_failed` is "
            "recorded. An event of a subscription whose checkout has not come yet is `deferred` and "
            "applied with that checkout in Stripe's `created` order; one older than the last applied "
            "of its kind is `stale` and changes nothing. Any other type, or an unknown price, is "
            "recorded and answered 200. 503 when the integration is not configured or Stripe's API "
            "cannot be read (Stripe delivers the event again)."
        ),
        request=StripeEventBody,
        parameters=[
            OpenApiParameter(
                "Stripe-Signature",
                OpenApiTypes.STR,
                OpenApiParameter.HEADER,
                required=True,
                description='`t=<unix time>,v1=<hex HMAC-SHA256 of "t.body">`, as Stripe sends it.',
            )
        ],
        responses={
            200: inline_serializer(
                "StripeWebhookReceipt",
                {
                    "event_id": serializers.CharField(),
                    "type": serializers.CharField(),
                    "outcome": serializers.ChoiceField(
                        choices=[choice for choice, _ in EventOutcome.choices],
                        help_text="What the server did about the event.",
                    ),
                    "replay": serializers.BooleanField(help_text="True: this event id was received before."),
                },
            ),
            **error_responses("invalid_request", "request_too_large", "rate_limited", "service_unavailable"),
        },
    )
    def post(self, request):
        row, replay = services.stripe_event_handle(
            payload=request.body, signature=request.headers.get("Stripe-Signature")
        )
        return Response(
            {"event_id": row.event_id, "type": row.type, "outcome": row.outcome, "replay": replay}
        )
