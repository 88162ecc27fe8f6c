"""The one place this server calls Stripe's API: a checkout session's line
items, when the vendor did not put `price_id` and `quantity` in the session's
metadata. Through the `stripe` library with STRIPE_API_KEY and a timeout of
STRIPE_API_TIMEOUT seconds, no retries (Stripe redelivers the event, which is
the retry). Tests replace `checkout_line_items`."""

from __future__ import annotations

import stripe
from django.conf import settings

from core.errors import ServiceUnavailable


def checkout_line_items(session_id: str) -> list[tuple[str, int]]:
    """[(price id, quantity), …] of a checkout session; 503 when Stripe cannot be asked."""
    if not settings.STRIPE_API_KEY:
        raise ServiceUnavailable("STRIPE_API_KEY is not set: the session's line items cannot be read.")
    client = stripe.StripeClient(
        settings.STRIPE_API_KEY,
        http_client=stripe.RequestsClient(timeout=settings.STRIPE_API_TIMEOUT),
        max_network_retries=0,
    )
    try:
        items = client.v1.checkout.sessions.line_items.list(session_id, {"limit": 10})
    except stripe.StripeError as exc:
        raise ServiceUnavailable(f"Stripe did not answer for the session's line items: {exc}") from exc
    return [(item.price.id, int(item.quantity or 1)) for item in items.data if item.price]
