"""Stripe (issue 15, "It must show" 3): events signed here with a test secret
as Stripe signs them, so the real verification (stripe.Webhook.construct_event)
runs: each of the four flows makes its change; a replay changes nothing; a bad
signature is 400 and changes nothing; an unknown price is recorded and 200."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.core import mail
from django.utils import timezone

from accounts.models import Invite, Role
from audit.events import Event
from audit.models import AuditLog
from billing import stripe_api
from billing.models import EventOutcome, StripeCustomer, StripeEvent, StripePrice, StripeSubscription
from billing.services import payment_grace_sweep
from coditect.personas import api_client
from licenses.models import License, LicenseClaim, Policy, Product
from licenses.services import license_create, license_suspend
from licenses.tests.conftest import acquire, error_code
from tenants.models import Tenant
from tenants.scope import operator_scope, tenant_scope
from tenants.tests.factories import TenantFactory

# Real commits: the checks read every tenant's rows on the operator path, as the console does.
pytestmark = [pytest.mark.embedded]

SECRET = "whsec_test_only_not_a_real_secret"
URL = "/api/v1/integrations/stripe/webhook"


@pytest.fixture(autouse=True)
def stripe_settings(committed_db, eager_tasks, settings):
    settings.STRIPE_WEBHOOK_SECRET = SECRET
    settings.STRIPE_API_KEY = ""
    settings.STRIPE_PAYMENT_GRACE_DAYS = 7


@pytest.fixture
def acme(committed_db):
    return TenantFactory(name="Acme", slug="acme")


@pytest.fixture
def prices(committed_db):
    product = Product.objects.create(name="CODITECT Pro", slug="coditect-pro-stripe")
    team = Policy.objects.create(product=product, name="Team", slug="stripe-team", seats=1)
    studio = Policy.objects.create(product=product, name="Studio", slug="stripe-studio", seats=1)
    return {
        "team": StripePrice.objects.create(price_id="price_team", policy=team),
        "studio": StripePrice.objects.create(price_id="price_studio", policy=studio, seats_per_quantity=5),
    }


def signed(payload: str, *, secret: str = SECRET, at: int | None = None) -> str:
    """The Stripe-Signature header, computed as Stripe computes it."""
    at = int(time.time()) if at is None else at
    digest = hmac.new(secret.encode(), f"{at}.{payload}".encode(), hashlib.sha256).hexdigest()
    return f"t={at},v1={digest}"


_serial = iter(range(1, 10**6))


def event(type_: str, obj: dict, *, event_id: str | None = None, created: int | None = None) -> str:
    return json.dumps(
        {
            "id": event_id or f"evt_test_{next(_serial)}",
            "object": "event",
            "type": type_,
            "created": int(time.time()) if created is None else created,
            "livemode": False,
            "api_version": "2025-03-31.basil",
            "data": {"object": obj},
        }
    )


def post(api, payload: str, *, signature: str | None = None):
    headers = {} if signature == "" else {"HTTP_STRIPE_SIGNATURE": signature or signed(payload)}
    return api.post(URL, data=payload, content_type="application/json", **headers)


def checkout(customer="cus_1", subscription="sub_1", price="price_team", quantity=3, **extra) -> dict:
    return {
        "id": f"cs_{subscription}",
        "object": "checkout.session",
        "mode": "subscription",
        "payment_status": "paid",
        "customer": customer,
        "subscription": subscription,
        "customer_details": {"email": "Buyer@Initech.test", "name": "Initech"},
        "metadata": {"price_id": price, "quantity": str(quantity)},
        **extra,
    }


def subscription_object(subscription="sub_1", price="price_team", quantity=3, period_end=None) -> dict:
    item = {"id": "si_1", "price": {"id": price}, "quantity": quantity}
    if period_end is not None:
        item["current_period_end"] = period_end
    return {"id": subscription, "object": "subscription", "customer": "cus_1", "items": {"data": [item]}}


def link(subscription="sub_1") -> StripeSubscription:
    with operator_scope():
        return StripeSubscription.objects.get(subscription_id=subscription)


def license_of(subscription="sub_1") -> License:
    row = link(subscription)
    with tenant_scope(row.tenant_id):
        return License.objects.select_related("policy").get(pk=row.license_id)


def everything() -> dict:
    """A picture of every row the webhook could change."""
    with operator_scope():
        return {
            "tenants": sorted(str(t.pk) for t in Tenant.objects.all()),
            "licenses": sorted(
                (str(x.pk), x.max_seats, x.policy_id, x.suspended, x.expires_at)
                for x in License.unscoped.all()
            ),
            "invites": Invite.unscoped.count(),
            "audit": AuditLog.objects.count(),
            "events": StripeEvent.objects.count(),
            "links": sorted(
                (s.subscription_id, s.quantity, s.price_id, s.payment_failed_at, s.suspended_for_payment)
                for s in StripeSubscription.objects.all()
            ),
        }


# --- checkout.session.completed --------------------------------------------------------------


def test_checkout_makes_the_tenant_its_admins_invite_and_the_license(api, prices):
    payload = event("checkout.session.completed", checkout(quantity=3))
    response = post(api, payload)
    assert response.status_code == 200, response.content
    assert response.json()["outcome"] == "processed" and response.json()["replay"] is False

    row = link()
    with tenant_scope(row.tenant_id):
        tenant = Tenant.objects.get(pk=row.tenant_id)
    assert tenant.name == "Initech"
    assert StripeCustomer.objects.get(customer_id="cus_1").tenant_id == tenant.id
    license = license_of()
    assert (license.max_seats, license.policy.slug, license.tenant_id) == (3, "stripe-team", tenant.id)
    with tenant_scope(tenant.id):
        invite = Invite.objects.get()
        assert (invite.email, invite.role, invite.created_by) == (
            "buyer@initech.test",
            Role.TENANT_ADMIN,
            None,
        )
        assert LicenseClaim.objects.get().license_id == license.id
        actions = set(AuditLog.objects.filter(tenant_id=tenant.id).values_list("action", flat=True))
    assert {
        Event.TENANT_CREATED,
        Event.INVITE_CREATED,
        Event.LICENSE_CREATED,
        Event.LICENSE_DELIVERY_SENT,
        Event.BILLING_CHECKOUT_COMPLETED,
    } <= actions
    # Both emails went to the buyer: the invite and the license's one-time claim link (no key in it).
    assert sorted(message.to[0] for message in mail.outbox) == ["buyer@initech.test"] * 2
    assert all(license.key_prefix not in message.body for message in mail.outbox)


def test_a_second_checkout_of_the_same_customer_finds_its_tenant(api, prices):
    assert post(api, event("checkout.session.completed", checkout(subscription="sub_1"))).status_code == 200
    second = checkout(subscription="sub_2", price="price_studio", quantity=2)
    assert post(api, event("checkout.session.completed", second)).status_code == 200
    assert link("sub_1").tenant_id == link("sub_2").tenant_id
    with operator_scope():
        assert Tenant.objects.filter(name="Initech").count() == 1
    with tenant_scope(link("sub_1").tenant_id):
        assert Invite.objects.count() == 1  # the first admin is invited once
    assert license_of("sub_2").max_seats == 2 * 5  # seats per quantity of the studio price


def test_line_items_are_read_from_stripe_without_metadata(api, prices, monkeypatch):
    asked = []

    def line_items(session_id):
        asked.append(session_id)
        return [("price_studio", 1)]

    monkeypatch.setattr(stripe_api, "checkout_line_items", line_items)
    session = checkout(metadata={})
    assert post(api, event("checkout.session.completed", session)).json()["outcome"] == "processed"
    assert asked == ["cs_sub_1"]
    assert (license_of().max_seats, license_of().policy.slug) == (5, "stripe-studio")


def test_stripe_unreachable_for_line_items_is_503_and_records_nothing(api, prices):
    # No STRIPE_API_KEY: the line items cannot be read; Stripe delivers the event again later.
    before = everything()
    response = post(api, event("checkout.session.completed", checkout(metadata={})))
    assert response.status_code == 503 and error_code(response) == "service_unavailable"
    assert everything() == before


def test_an_unknown_price_is_recorded_and_answered_200_without_a_license(api, prices):
    before = everything()
    payload = event(
        "checkout.session.completed", checkout(price="price_nobody_knows"), event_id="evt_unknown"
    )
    response = post(api, payload)
    assert response.status_code == 200 and response.json()["outcome"] == EventOutcome.UNKNOWN_PRICE
    recorded = StripeEvent.objects.get(event_id="evt_unknown")
    assert (recorded.type, recorded.detail["price_id"]) == (
        "checkout.session.completed",
        "price_nobody_knows",
    )
    after = everything()
    assert after.pop("events") == before.pop("events") + 1
    assert after == before  # no tenant, license, invite or audit row


# --- signatures and replays ------------------------------------------------------------------


@pytest.mark.parametrize(
    "signature",
    [
        "",  # missing
        "t=1,v1=00",  # garbage
        "wrong-secret",
        "too-old",
        "tampered",
    ],
)
def test_a_bad_signature_is_400_and_changes_nothing(api, prices, signature):
    payload = event("checkout.session.completed", checkout())
    header = {
        "": "",
        "t=1,v1=00": "t=1,v1=00",
        "wrong-secret": signed(payload, secret="whsec_someone_else"),
        "too-old": signed(payload, at=int(time.time()) - 301),
        "tampered": signed(payload.replace('"quantity": "3"', '"quantity": "300"')),
    }[signature]
    before = everything()
    response = post(api, payload, signature=header)
    assert response.status_code == 400 and error_code(response) == "invalid_request"
    assert everything() == before


def test_without_a_configured_secret_it_is_503_and_changes_nothing(api, prices, settings):
    settings.STRIPE_WEBHOOK_SECRET = ""
    before = everything()
    response = post(api, event("checkout.session.completed", checkout()))
    assert response.status_code == 503 and error_code(response) == "service_unavailable"
    assert everything() == before


def test_a_replayed_event_changes_nothing(api, prices):
    payload = event("checkout.session.completed", checkout(), event_id="evt_once")
    assert post(api, payload).json()["replay"] is False
    before = everything()
    again = post(api, payload)  # signed anew, as Stripe's redelivery is
    assert again.status_code == 200 and again.json() == {
        "event_id": "evt_once",
        "type": "checkout.session.completed",
        "outcome": "processed",
        "replay": True,
    }
    assert everything() == before


def test_an_event_type_not_acted_on_is_recorded_and_200(api):
    response = post(api, event("customer.created", {"id": "cus_9", "object": "customer"}))
    assert response.status_code == 200 and response.json()["outcome"] == "ignored"


# --- customer.subscription.updated -----------------------------------------------------------


def test_seats_follow_the_quantity_and_fewer_seats_end_no_live_lease(api, prices, ledger, acme):
    # The subscription's license, in a tenant with a member to acquire seats.
    StripeCustomer.objects.create(customer_id="cus_1", tenant_id=acme.id)
    assert post(api, event("checkout.session.completed", checkout(quantity=3))).status_code == 200
    license = license_of()
    assert license.tenant_id == acme.id
    license.key = _fresh_key(license)
    from coditect.personas import tenant_member

    member = tenant_member(acme)
    tokens = []
    for n in range(3):
        acquired = acquire(member, license, fingerprint=f"machine-000{n}")
        assert acquired.status_code == 201, acquired.content
        tokens.append(acquired.json()["token"])

    down = post(api, event("customer.subscription.updated", subscription_object(quantity=1)))
    assert down.json()["outcome"] == "processed"
    assert license_of().max_seats == 1
    # DESIGN.md invariant 6: the three live leases run on; no new seat until they end.
    for token in tokens:
        assert api_client(token=token).post("/api/v1/licenses/heartbeat").status_code == 200
    refused = acquire(member, license, fingerprint="machine-0009")
    assert refused.status_code == 409 and error_code(refused) == "no_seats_available"

    up = post(api, event("customer.subscription.updated", subscription_object(quantity=4)))
    assert up.status_code == 200 and license_of().max_seats == 4
    assert acquire(member, license, fingerprint="machine-0009").status_code == 201


def _fresh_key(license) -> str:
    from licenses.services import license_regenerate_key

    _license, key = license_regenerate_key(license=license)
    return key


def test_a_new_price_moves_the_policy(api, prices):
    post(api, event("checkout.session.completed", checkout(quantity=2)))
    response = post(
        api, event("customer.subscription.updated", subscription_object(price="price_studio", quantity=2))
    )
    assert response.json()["outcome"] == "processed"
    license = license_of()
    assert (license.policy.slug, license.max_seats) == ("stripe-studio", 10)
    assert link().price_id == "price_studio"
    with tenant_scope(license.tenant_id):
        [updated] = AuditLog.objects.filter(action=Event.LICENSE_UPDATED, target_id=str(license.pk))
    assert set(updated.details["changes"]) == {"max_seats", "policy_id"}


def test_an_update_to_an_unknown_price_changes_nothing(api, prices):
    post(api, event("checkout.session.completed", checkout()))
    before = everything()
    response = post(api, event("customer.subscription.updated", subscription_object(price="price_gone")))
    assert response.json()["outcome"] == EventOutcome.UNKNOWN_PRICE
    after = everything()
    assert after.pop("events") == before.pop("events") + 1 and after == before


def test_an_update_of_a_subscription_not_known_here_waits_for_its_checkout(api, prices):
    before = everything()
    payload = event(
        "customer.subscription.updated", subscription_object(subscription="sub_other"), event_id="evt_early"
    )
    response = post(api, payload)
    assert response.status_code == 200 and response.json()["outcome"] == EventOutcome.DEFERRED
    row = StripeEvent.objects.get(event_id="evt_early")
    assert (row.subscription_id, row.payload["id"]) == ("sub_other", "sub_other")
    after = everything()
    assert after.pop("events") == before.pop("events") + 1 and after == before


def test_an_invoice_of_no_subscription_is_unknown(api, prices):
    response = post(api, event("invoice.paid", {"id": "in_9", "object": "invoice", "customer": "cus_1"}))
    assert response.json()["outcome"] == EventOutcome.UNKNOWN_SUBSCRIPTION


# --- invoice.payment_failed / invoice.paid ---------------------------------------------------


def invoice(subscription="sub_1", *, basil=True) -> dict:
    base = {"id": "in_1", "object": "invoice", "customer": "cus_1"}
    if basil:  # API 2025-03-31 and later: the subscription under `parent`
        return {**base, "parent": {"subscription_details": {"subscription": subscription}}}
    return {**base, "subscription": subscription}


def test_a_failed_payment_suspends_after_the_grace_and_a_paid_invoice_resumes(api, prices, app_clock):
    post(api, event("checkout.session.completed", checkout()))
    failed = post(api, event("invoice.payment_failed", invoice(basil=False)))
    assert failed.json()["outcome"] == "processed"
    failed_at = link().payment_failed_at
    assert failed_at is not None
    # A second failure (Stripe's retry of the charge) keeps the first time.
    post(api, event("invoice.payment_failed", invoice()))
    assert link().payment_failed_at == failed_at

    assert payment_grace_sweep() == 0  # within the grace: still working
    assert license_of().suspended is False
    assert payment_grace_sweep(now=failed_at + timedelta(days=7, seconds=1)) == 1
    assert license_of().suspended is True and link().suspended_for_payment is True
    assert payment_grace_sweep(now=failed_at + timedelta(days=8)) == 0  # once

    paid = post(api, event("invoice.paid", invoice()))
    assert paid.json()["outcome"] == "processed"
    assert license_of().suspended is False
    assert (link().payment_failed_at, link().suspended_for_payment) == (None, False)
    license = license_of()
    with tenant_scope(license.tenant_id):
        actions = list(
            AuditLog.objects.filter(tenant_id=license.tenant_id)
            .order_by("created_at", "id")
            .values_list("action", flat=True)
        )
    assert [
        a for a in actions if a.startswith(("billing.payment", "license.suspended", "license.resumed"))
    ] == [
        Event.BILLING_PAYMENT_FAILED,
        Event.LICENSE_SUSPENDED,
        Event.LICENSE_RESUMED,
        Event.BILLING_PAYMENT_RECOVERED,
    ]


def test_the_grace_is_configurable(api, prices, settings):
    settings.STRIPE_PAYMENT_GRACE_DAYS = 0
    post(api, event("checkout.session.completed", checkout()))
    post(api, event("invoice.payment_failed", invoice()))
    assert payment_grace_sweep(now=timezone.now() + timedelta(seconds=1)) == 1
    assert license_of().suspended is True


def test_a_paid_invoice_does_not_resume_a_license_an_operator_suspended(api, prices):
    post(api, event("checkout.session.completed", checkout()))
    license_suspend(license=license_of(), reason="fraud")
    post(api, event("invoice.payment_failed", invoice()))
    assert payment_grace_sweep(now=timezone.now() + timedelta(days=8)) == 0  # suspended already: not ours
    post(api, event("invoice.paid", invoice()))
    assert license_of().suspended is True


def test_the_sweep_runs_on_the_periodic_schedule(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["stripe-payment-grace-sweep"]
    assert entry["task"] == "billing.payment_grace_sweep"
    from billing.tasks import payment_grace_sweep_task

    assert payment_grace_sweep_task.name == entry["task"]


# --- customer.subscription.deleted -----------------------------------------------------------


def test_a_deleted_subscription_sets_the_expiry_to_the_period_end(api, prices):
    post(api, event("checkout.session.completed", checkout()))
    end = int((timezone.now() + timedelta(days=12)).timestamp())
    response = post(api, event("customer.subscription.deleted", subscription_object(period_end=end)))
    assert response.json()["outcome"] == "processed"
    assert license_of().expires_at == datetime.fromtimestamp(end, tz=UTC)
    assert license_of().suspended is False


def test_a_deleted_subscription_whose_period_is_over_ends_the_license_now(api, prices):
    post(api, event("checkout.session.completed", checkout()))
    ended = int((timezone.now() - timedelta(hours=1)).timestamp())
    # Older API versions: the period end on the subscription itself.
    obj = {**subscription_object(), "current_period_end": ended}
    assert post(api, event("customer.subscription.deleted", obj)).json()["outcome"] == "processed"
    assert license_of().suspended is True


def test_a_checkout_for_an_existing_license_tenant_adds_a_license(api, prices, acme):
    StripeCustomer.objects.create(customer_id="cus_1", tenant_id=acme.id)
    with tenant_scope(acme.id):
        before = License.objects.count()
    license_create(tenant=acme, max_seats=1)
    post(api, event("checkout.session.completed", checkout()))
    with tenant_scope(acme.id):
        assert License.objects.count() == before + 2
        assert Invite.objects.count() == 0  # an existing tenant has its admins


@pytest.mark.parametrize("body", ["not json", "[]", '{"object": "event"}'])
def test_a_signed_body_that_is_not_an_event_is_400_and_changes_nothing(api, body):
    before = everything()
    response = post(api, body)  # signed with the right secret
    assert response.status_code == 400 and error_code(response) == "invalid_request"
    assert everything() == before


@pytest.mark.parametrize(
    "session",
    [
        checkout(customer_details="Initech"),
        checkout(metadata=["price_team", 3]),
        checkout(customer_details={"email": 42, "name": "Initech"}),
        checkout(customer_details={"email": "x" * 250 + "@initech.test", "name": "Initech"}),
        checkout(customer_details={"email": "buyer@initech.test\nBcc: all@evil.test", "name": "Initech"}),
        checkout(customer_details={"email": "not-an-email", "name": "Initech"}),
        checkout(quantity="1000000000000"),
        checkout(quantity="5000000"),
    ],
    ids=[
        "details-a-string",
        "metadata-a-list",
        "email-a-number",
        "email-too-long",
        "newline-in-email",
        "email-not-an-address",
        "quantity-past-any-license",
        "more-seats-than-a-license-sells",
    ],
)
def test_a_signed_event_of_an_unusable_shape_is_recorded_and_changes_nothing(api, prices, session):
    """Answered 200 (Stripe would resend a 5xx for days), recorded as
    incomplete, and whatever the flow began is rolled back."""
    before = everything()
    response = post(api, event("checkout.session.completed", session))
    assert response.status_code == 200, response.content
    assert response.json()["outcome"] == EventOutcome.INCOMPLETE
    after = everything()
    assert after.pop("events") == before.pop("events") + 1 and after == before


def test_a_buyers_name_with_control_characters_names_the_tenant_on_one_line(api, prices):
    session = checkout(customer_details={"email": "buyer@initech.test", "name": "Ini\x00tech\nLtd"})
    assert post(api, event("checkout.session.completed", session)).json()["outcome"] == EventOutcome.PROCESSED
    with operator_scope():
        assert Tenant.objects.get(pk=link("sub_1").tenant_id).name == "Ini tech Ltd"


def test_a_paid_checkout_on_a_trial_policy_makes_a_license_that_does_not_end_at_the_trial(api, prices):
    """The license of a subscription runs until the subscription ends; a
    policy's trial is for licenses made without one."""
    policy = prices["team"].policy
    policy.trial_days = 14
    policy.save(update_fields=["trial_days"])

    response = post(api, event("checkout.session.completed", checkout()))

    assert response.json()["outcome"] == EventOutcome.PROCESSED
    assert license_of().expires_at is None


# --- out of order: deferred until the checkout, stale when older than what was applied --------

T0 = int(time.time()) - 600  # Stripe's `created` of the events below: T0 + seconds


def outcome_of(event_id: str) -> str:
    return StripeEvent.objects.get(event_id=event_id).outcome


def test_events_before_their_checkout_are_applied_with_it_in_stripes_order(api, prices):
    """Delivered newest first and before the checkout: each waits, then the
    checkout applies them oldest first, so the newest state is what remains."""
    early = [
        ("evt_upd_newest", "customer.subscription.updated", subscription_object(quantity=5), T0 + 40),
        ("evt_paid", "invoice.paid", invoice(), T0 + 30),
        ("evt_upd_older", "customer.subscription.updated", subscription_object(quantity=2), T0 + 20),
        ("evt_failed", "invoice.payment_failed", invoice(), T0 + 10),
    ]
    for event_id, type_, obj, created in early:
        response = post(api, event(type_, obj, event_id=event_id, created=created))
        assert response.status_code == 200 and response.json()["outcome"] == EventOutcome.DEFERRED
    with operator_scope():
        assert not StripeSubscription.objects.exists() and not License.unscoped.filter(name__contains="sub_1")

    done = post(api, event("checkout.session.completed", checkout(quantity=3), created=T0))
    assert done.json()["outcome"] == EventOutcome.PROCESSED
    assert StripeEvent.objects.get(event_id=done.json()["event_id"]).detail["deferred_applied"] == "4"

    # The newest update's quantity; the failure came before the paid invoice, so none is pending.
    assert license_of().max_seats == 5
    assert (link().quantity, link().payment_failed_at, link().suspended_for_payment) == (5, None, False)
    rows = {row.event_id: row for row in StripeEvent.objects.filter(event_id__in=[e[0] for e in early])}
    assert {row.outcome for row in rows.values()} == {EventOutcome.PROCESSED}
    assert {row.detail["applied_with"] for row in rows.values()} == {done.json()["event_id"]}
    assert all(row.payload is None for row in rows.values())  # kept only while waiting
    # Applied oldest first: the seats went 2 then 5, and the failure was recorded, then recovered.
    license = license_of()
    with tenant_scope(license.tenant_id):
        updates = AuditLog.objects.filter(action=Event.LICENSE_UPDATED, target_id=str(license.pk))
        seats = [row.details["changes"]["max_seats"] for row in updates.order_by("created_at", "id")]
        payments = list(
            AuditLog.objects.filter(action__startswith="billing.payment")
            .order_by("created_at", "id")
            .values_list("action", flat=True)
        )
    assert seats == [{"from": 3, "to": 2}, {"from": 2, "to": 5}]
    assert payments == [Event.BILLING_PAYMENT_FAILED, Event.BILLING_PAYMENT_RECOVERED]

    before = everything()
    for event_id, type_, obj, created in early:  # Stripe's redelivery of any of them: a replay
        again = post(api, event(type_, obj, event_id=event_id, created=created))
        assert again.json()["replay"] is True
    assert everything() == before


def test_an_older_update_after_a_newer_one_is_stale_and_changes_nothing(api, prices):
    post(api, event("checkout.session.completed", checkout(quantity=3), created=T0))
    post(api, event("customer.subscription.updated", subscription_object(quantity=5), created=T0 + 20))
    before = everything()
    late = post(
        api,
        event(
            "customer.subscription.updated",
            subscription_object(quantity=2),
            created=T0 + 10,
            event_id="evt_old",
        ),
    )
    assert late.status_code == 200 and late.json()["outcome"] == EventOutcome.STALE
    after = everything()
    assert after.pop("events") == before.pop("events") + 1 and after == before
    assert license_of().max_seats == 5
    assert StripeEvent.objects.get(event_id="evt_old").detail["subscription_id"] == "sub_1"
    # An update in the same second as the last one applied is not older: it applies.
    same = post(api, event("customer.subscription.updated", subscription_object(quantity=4), created=T0 + 20))
    assert same.json()["outcome"] == EventOutcome.PROCESSED and license_of().max_seats == 4


def test_an_update_older_than_the_deletion_does_not_undo_it(api, prices):
    post(api, event("checkout.session.completed", checkout(), created=T0))
    end = int((timezone.now() + timedelta(days=12)).timestamp())
    deleted = subscription_object(period_end=end)
    post(api, event("customer.subscription.deleted", deleted, created=T0 + 30))
    before = everything()
    late = post(api, event("customer.subscription.updated", subscription_object(quantity=9), created=T0 + 5))
    assert late.json()["outcome"] == EventOutcome.STALE
    after = everything()
    assert after.pop("events") == before.pop("events") + 1 and after == before


def test_an_older_failed_payment_after_a_paid_invoice_is_stale(api, prices):
    post(api, event("checkout.session.completed", checkout(), created=T0))
    post(api, event("invoice.paid", invoice(), created=T0 + 20))
    before = everything()
    late = post(api, event("invoice.payment_failed", invoice(), created=T0 + 10))
    assert late.json()["outcome"] == EventOutcome.STALE
    after = everything()
    assert after.pop("events") == before.pop("events") + 1 and after == before
    assert link().payment_failed_at is None
    # Payments and items are kept apart: an invoice newer than an update does not make the update stale.
    update = post(
        api, event("customer.subscription.updated", subscription_object(quantity=7), created=T0 + 15)
    )
    assert update.json()["outcome"] == EventOutcome.PROCESSED and license_of().max_seats == 7


def test_a_deferred_event_of_an_unusable_shape_does_not_stop_the_checkout_or_the_others(api, prices):
    post(
        api,
        event(
            "customer.subscription.updated",
            subscription_object(quantity=5_000_000),
            event_id="evt_bad",
            created=T0 + 5,
        ),
    )
    post(
        api,
        event(
            "customer.subscription.updated",
            subscription_object(quantity=4),
            event_id="evt_ok",
            created=T0 + 9,
        ),
    )
    assert (
        post(api, event("checkout.session.completed", checkout(), created=T0)).json()["outcome"]
        == "processed"
    )
    assert (outcome_of("evt_bad"), outcome_of("evt_ok")) == (EventOutcome.INCOMPLETE, EventOutcome.PROCESSED)
    assert license_of().max_seats == 4


def test_a_deferred_event_is_applied_only_by_its_own_subscriptions_checkout(api, prices):
    post(
        api,
        event("customer.subscription.updated", subscription_object(subscription="sub_2"), event_id="evt_2"),
    )
    post(api, event("checkout.session.completed", checkout(subscription="sub_1")))
    assert outcome_of("evt_2") == EventOutcome.DEFERRED
    assert StripeEvent.objects.get(event_id="evt_2").payload is not None


# --- delayed payment methods: no license until the payment succeeds -------------------------


def test_an_unpaid_checkout_waits_and_its_async_success_makes_the_license(api, prices):
    session = checkout(payment_status="unpaid")
    before = everything()
    waiting = post(api, event("checkout.session.completed", session, event_id="evt_unpaid"))
    assert waiting.status_code == 200 and waiting.json()["outcome"] == EventOutcome.AWAITING_PAYMENT
    after = everything()
    assert after.pop("events") == before.pop("events") + 1 and after == before  # no tenant, no email
    assert mail.outbox == []
    recorded = StripeEvent.objects.get(event_id="evt_unpaid")
    assert (recorded.detail["session_id"], recorded.detail["customer_id"]) == ("cs_sub_1", "cus_1")

    # Meanwhile the buyer changes the quantity: it waits for the license too.
    update = post(api, event("customer.subscription.updated", subscription_object(quantity=6)))
    assert update.json()["outcome"] == EventOutcome.DEFERRED

    paid = checkout(payment_status="paid")
    succeeded = post(api, event("checkout.session.async_payment_succeeded", paid, event_id="evt_settled"))
    assert succeeded.json()["outcome"] == EventOutcome.PROCESSED
    assert license_of().max_seats == 6
    assert sorted(message.to[0] for message in mail.outbox) == ["buyer@initech.test"] * 2
    before = everything()
    again = post(api, event("checkout.session.async_payment_succeeded", paid, event_id="evt_settled"))
    assert again.json()["replay"] is True and everything() == before
    # The unpaid completion delivered again under another id (or late) makes nothing more.
    late = post(api, event("checkout.session.completed", session))
    assert late.json()["outcome"] == EventOutcome.IGNORED and everything()["licenses"] == before["licenses"]


def test_an_async_success_delivered_before_the_completion_makes_one_license(api, prices):
    first = post(api, event("checkout.session.async_payment_succeeded", checkout(payment_status="paid")))
    assert first.json()["outcome"] == EventOutcome.PROCESSED
    before = everything()
    late = post(api, event("checkout.session.completed", checkout(payment_status="unpaid")))
    assert late.json()["outcome"] == EventOutcome.IGNORED
    after = everything()
    assert after.pop("events") == before.pop("events") + 1 and after == before


def test_a_failed_async_payment_is_recorded_and_makes_nothing(api, prices):
    post(api, event("checkout.session.completed", checkout(payment_status="unpaid")))
    before = everything()
    failed = post(api, event("checkout.session.async_payment_failed", checkout(payment_status="unpaid")))
    assert failed.status_code == 200 and failed.json()["outcome"] == EventOutcome.PAYMENT_FAILED
    after = everything()
    assert after.pop("events") == before.pop("events") + 1 and after == before
    assert mail.outbox == []


def test_a_checkout_with_no_payment_required_makes_the_license(api, prices):
    response = post(api, event("checkout.session.completed", checkout(payment_status="no_payment_required")))
    assert response.json()["outcome"] == EventOutcome.PROCESSED
    assert license_of().max_seats == 3


def test_a_payment_status_stripe_does_not_send_makes_nothing(api, prices):
    before = everything()
    response = post(api, event("checkout.session.completed", checkout(payment_status="maybe")))
    assert response.status_code == 200 and response.json()["outcome"] == EventOutcome.INCOMPLETE
    after = everything()
    assert after.pop("events") == before.pop("events") + 1 and after == before


# --- one new customer's first checkouts at once --------------------------------------------


def test_first_checkouts_of_one_new_customer_at_once_make_one_tenant(prices):
    """Workers each handling one of the customer's checkouts at the same moment:
    one tenant, one invite, one license per checkout, and every answer is 200."""
    import threading

    from django.db import connections

    workers = 8
    start, answers, errors = threading.Barrier(workers), [], []

    def deliver(n: int) -> None:
        try:
            payload = event("checkout.session.completed", checkout(subscription=f"sub_race_{n}", quantity=1))
            client = api_client()
            start.wait()
            response = post(client, payload)
            answers.append((response.status_code, response.json().get("outcome")))
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=deliver, args=(n,)) for n in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert answers == [(200, EventOutcome.PROCESSED)] * workers
    with operator_scope():
        assert Tenant.objects.count() == 1
        assert StripeCustomer.objects.get(customer_id="cus_1").tenant_id == Tenant.objects.get().id
        assert Invite.unscoped.count() == 1
        links = list(StripeSubscription.objects.values_list("tenant_id", flat=True))
        assert len(links) == workers and set(links) == {Tenant.objects.get().id}
        assert License.unscoped.filter(name__startswith="Stripe sub_race_").count() == workers


def test_updates_racing_their_checkout_are_each_applied_once_in_order(prices):
    """A subscription's updates delivered at the moment its checkout is
    processed: none is left waiting, and the newest quantity is what remains."""
    import threading

    from django.db import connections

    updates = 7
    payloads = [event("checkout.session.completed", checkout(quantity=1), created=T0)] + [
        event("customer.subscription.updated", subscription_object(quantity=n + 2), created=T0 + n + 1)
        for n in range(updates)
    ]
    start, answers, errors = threading.Barrier(len(payloads)), [], []

    def deliver(payload: str) -> None:
        try:
            client = api_client()
            start.wait()
            answers.append(post(client, payload).status_code)
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=deliver, args=(payload,)) for payload in payloads]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == [] and answers == [200] * len(payloads)
    outcomes = set(StripeEvent.objects.values_list("outcome", flat=True))
    assert EventOutcome.DEFERRED not in outcomes and outcomes <= {EventOutcome.PROCESSED, EventOutcome.STALE}
    assert license_of().max_seats == updates + 1  # the newest update's quantity
