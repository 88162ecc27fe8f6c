"""The operator console's Product and Policy pages, and the license form's
policy and entitlement codes, through the admin's own views."""

from __future__ import annotations

import pytest
from django.urls import reverse

from audit.models import AuditLog
from licenses.models import License, Policy, Product
from licenses.tests import test_admin
from licenses.tests.console_forms import confirm_fields
from tenants.scope import operator_scope, tenant_scope
from tenants.tests.factories import TenantFactory

pytestmark = pytest.mark.postgres

fresh_content_types = test_admin.fresh_content_types
quick_password_hashing = test_admin.quick_password_hashing
operator = test_admin.operator
console = test_admin.console

POLICY_FORM = {
    "name": "Pro annual",
    "slug": "pro-annual",
    "seats": "5",
    "lease_ttl": "300",
    "offline_grace": "86400",
    "borrow_limit_hours": "72",
    "max_machines": "",
    "overdraft_seats": "2",
    "linger_seconds": "30",
    "idle_timeout": "0",
    "seat_mode": "per_machine",
    "reassign_cooldown_hours": "24",
    "queue_max_tickets": "0",
    "queue_ticket_ttl": "60",
    "trial_days": "",
    "expiry_grace_days": "7",
    "maintenance_end": "2027-03-31",
    "max_version": "3.1",
    "entitlements": '{"cad": "CAD", "cam": "CAM"}',
    "_save": "Save",
}


def operator_rows(action: str) -> list[AuditLog]:
    with operator_scope():
        return list(AuditLog.objects.filter(action=action, tenant_id=None).order_by("id"))


def test_an_operator_adds_a_product_and_a_policy_and_each_is_audited(console):
    response = console.post(
        reverse("admin:licenses_product_add"),
        {"name": "CODITECT Pro", "slug": "coditect-pro", "_save": "Save"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    product = Product.objects.get(slug="coditect-pro")

    response = console.post(reverse("admin:licenses_policy_add"), {**POLICY_FORM, "product": str(product.pk)})
    assert response.status_code == 302, response.content.decode()[:2000]
    policy = Policy.objects.get(slug="pro-annual")
    assert (policy.seats, policy.expiry_grace_days, policy.max_version) == (5, 7, "3.1")
    assert policy.entitlements == {"cad": "CAD", "cam": "CAM"}
    assert (policy.overdraft_seats, policy.linger_seconds, policy.idle_timeout) == (2, 30, 0)
    added = {row.target_type for row in operator_rows("admin.added")}
    assert {"licenses.product", "licenses.policy"} <= added

    listing = console.get(reverse("admin:licenses_policy_changelist")).content.decode()
    assert "Pro annual" in listing and "2027-03-31, up to 3.1" in listing and "7 days" in listing
    page = console.get(reverse("admin:licenses_policy_change", args=[policy.pk])).content.decode()
    assert "Entitlement catalog" in page and " UTC" in page  # the console's one date format
    assert "Floating seats" in page


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("entitlements", '["cad"]', "JSON object of codes and names"),
        ("entitlements", '{"Bad Code": "x"}', "is not a code"),
        ("max_version", "three", "dotted numbers"),
        ("seats", "0", "greater than or equal to 1"),
    ],
)
def test_a_bad_policy_is_refused_and_nothing_is_made(console, field, value, message):
    product = Product.objects.create(name="CODITECT", slug="coditect-x")
    response = console.post(
        reverse("admin:licenses_policy_add"), {**POLICY_FORM, "product": str(product.pk), field: value}
    )
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not Policy.objects.filter(slug="pro-annual").exists()


def test_the_default_policy_cannot_be_deleted(console):
    default = Policy.default()
    response = console.get(reverse("admin:licenses_policy_delete", args=[default.pk]))
    assert response.status_code == 403


def test_the_license_form_picks_a_policy_and_codes_of_its_catalog(console):
    tenant = TenantFactory(name="Acme", slug="acme")
    product = Product.objects.create(name="CODITECT Pro", slug="coditect-pro")
    policy = Policy.objects.create(
        product=product, name="Pro", slug="pro", seats=5, entitlements={"cad": "CAD", "cam": "CAM"}
    )
    add = reverse("admin:licenses_license_add")
    form = {
        "tenant": str(tenant.id),
        "policy": str(policy.pk),
        "name": "Acme Pro",
        "max_seats": "4",
        "hardware_fingerprints": "[]",
        "max_machines": "",
        "lease_ttl": "",
        "offline_grace": "",
        "borrow_limit_hours": "",
        "_save": "Save",
    }

    refused = console.post(
        add,
        {
            **form,
            "once": confirm_fields(console.get(add), ["license_form"])["once"],
            "entitlements": "cad, cloud",
        },
    )
    assert refused.status_code == 200
    assert "Not in the catalog of policy pro: cloud" in refused.content.decode()
    with tenant_scope(tenant.id):
        assert not License.objects.exists()

    made = console.post(
        add,
        {**form, "once": confirm_fields(console.get(add), ["license_form"])["once"], "entitlements": "cad"},
    )
    assert made.status_code == 303, made.content.decode()[:2000]
    with tenant_scope(tenant.id):
        license = License.objects.get()
    assert license.policy == policy and license.entitlements == {"cad": True}
    # Empty fields follow the policy.
    assert license.lease_ttl is None and license.terms.lease_ttl == policy.lease_ttl
    with tenant_scope(tenant.id):
        (created,) = AuditLog.objects.filter(action="license.created", target_id=str(license.pk))
    assert created.details["policy"] == "pro"


def test_a_license_added_without_seats_takes_its_policys(console):
    tenant = TenantFactory(name="Acme", slug="acme")
    product = Product.objects.create(name="CODITECT Team", slug="coditect-team")
    policy = Policy.objects.create(product=product, name="Team", slug="team", seats=7)
    add = reverse("admin:licenses_license_add")

    made = console.post(
        add,
        {
            "tenant": str(tenant.id),
            "policy": str(policy.pk),
            "name": "Acme Team",
            "max_seats": "",
            "hardware_fingerprints": "[]",
            "entitlements": "",
            "_save": "Save",
            "once": confirm_fields(console.get(add), ["license_form"])["once"],
        },
    )

    assert made.status_code == 303, made.context_data["adminform"].form.errors
    with tenant_scope(tenant.id):
        assert License.objects.get().max_seats == 7
