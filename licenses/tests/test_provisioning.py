"""The provisioning API over HTTP, with API keys: the whole lifecycle of a
tenant and a license, a tenant-scoped key trying another tenant's ids, revoked
and unknown keys, idempotent creates, tenant admins' reads, and lowering seats
under live leases (DESIGN.md invariant 6).

The rows commit (`committed_db`): an operator-wide key reads on the operator
path, another connection, which must see what the test and the requests wrote,
as it does in production."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.apikeys import api_key_create, api_key_revoke
from accounts.models import Role
from accounts.tests.factories import ApiKeyFactory, UserFactory
from audit.models import AuditLog
from coditect.personas import Persona, tenant_admin, tenant_member
from core.logging import redact
from licenses.models import IdempotencyRecord, License, Policy, Product
from licenses.tests.conftest import error_code
from licenses.tests.factories import LicenseFactory
from tenants.models import Tenant
from tenants.scope import operator_scope, tenant_scope
from tenants.tests.factories import TenantFactory

pytestmark = [pytest.mark.embedded]

BASE = "/api/v1/provisioning"


def key_client(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


@pytest.fixture
def acme(committed_db):
    return TenantFactory(name="Acme", slug="acme")


@pytest.fixture
def globex(committed_db):
    return TenantFactory(name="Globex", slug="globex")


@pytest.fixture
def admin(acme):
    return tenant_admin(acme)


@pytest.fixture
def member(acme):
    return tenant_member(acme)


@pytest.fixture
def outsider(globex):
    return tenant_admin(globex)


@pytest.fixture
def operator_key(committed_db):
    _, key = api_key_create(name="billing backend")
    return key


@pytest.fixture
def acme_key(acme):
    return ApiKeyFactory(tenant=acme).key


def acquire(user, key: str, fingerprint: str = "machine-0001"):
    body = {"license_key": key, "hardware_fingerprint": fingerprint}
    return Persona(user).client.post("/api/v1/licenses/acquire", body, format="json")


def audit_actions(target_id) -> list[str]:
    with operator_scope():
        return list(
            AuditLog.objects.filter(target_id=str(target_id)).order_by("id").values_list("action", flat=True)
        )


def test_the_whole_lifecycle_with_an_operator_key(operator_key):
    api = key_client(operator_key)
    with operator_scope():
        product = Product.objects.create(name="CODITECT Pro", slug="coditect-pro")
        pro = Policy.objects.create(
            product=product, name="Pro", slug="pro", seats=3, entitlements={"pro": "Pro", "cloud": "Cloud"}
        )
    # A tenant: create, read, list, rename.
    response = api.post(f"{BASE}/tenants", {"name": "Initech", "slug": "initech"}, format="json")
    assert response.status_code == 201, response.content
    tenant = response.json()
    assert tenant["slug"] == "initech" and tenant["state"] == "active"
    assert api.get(f"{BASE}/tenants/{tenant['id']}").json()["name"] == "Initech"
    assert tenant["id"] in [item["id"] for item in api.get(f"{BASE}/tenants").json()["tenants"]]
    renamed = api.patch(f"{BASE}/tenants/{tenant['id']}", {"name": "Initech Ltd"}, format="json")
    assert renamed.status_code == 200 and renamed.json()["name"] == "Initech Ltd"

    # A license in it: the key is in the create answer, and only there.
    response = api.post(
        f"{BASE}/licenses",
        {
            "tenant_id": tenant["id"],
            "policy": pro.slug,
            "name": "CODITECT Pro",
            "max_seats": 2,
            "entitlements": ["pro"],
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    created = response.json()
    license_id, key = created["id"], created["license_key"]
    assert key.startswith(created["key_prefix"]) and created["expires_at"] is None
    assert (created["policy"], created["entitlements"]) == ("pro", {"pro": True})
    read = api.get(f"{BASE}/licenses/{license_id}").json()
    assert "license_key" not in read and read["seats"] == {"used": 0, "max": 2}
    listed = api.get(f"{BASE}/licenses", {"tenant_id": tenant["id"]}).json()
    assert [item["id"] for item in listed["licenses"]] == [license_id]

    # A member of the tenant takes a seat with the key.
    with operator_scope():
        initech = Tenant.objects.get(pk=tenant["id"])
    member = UserFactory(tenant=initech, role=Role.USER)
    assert acquire(member, key).status_code == 201
    assert api.get(f"{BASE}/licenses/{license_id}").json()["seats"]["used"] == 1

    # Update: seats, entitlements, name, machine limit, expiry.
    end = (timezone.now() + timedelta(days=30)).replace(microsecond=0)
    response = api.patch(
        f"{BASE}/licenses/{license_id}",
        {
            "max_seats": 5,
            "entitlements": ["pro", "cloud"],
            "name": "Pro",
            "max_machines": 10,
            "expires_at": end.isoformat(),
        },
        format="json",
    )
    assert response.status_code == 200, response.content
    updated = response.json()
    assert (updated["max_seats"], updated["entitlements"], updated["name"], updated["max_machines"]) == (
        5,
        {"pro": True, "cloud": True},
        "Pro",
        10,
    )
    assert updated["expires_at"].startswith(end.strftime("%Y-%m-%dT%H:%M:%S"))

    # Suspend, resume.
    suspended = api.post(f"{BASE}/licenses/{license_id}/suspend", {"reason": "unpaid"}, format="json")
    assert suspended.json()["state"] == "suspended"
    assert error_code(acquire(member, key, "machine-0002")) == "license_suspended"
    assert api.post(f"{BASE}/licenses/{license_id}/resume").json()["state"] == "active"

    # Renew by days: added to the current end.
    renewed = api.post(f"{BASE}/licenses/{license_id}/renew", {"days": 10}, format="json").json()
    assert renewed["changed"] is True
    assert renewed["expires_at"].startswith((end + timedelta(days=10)).strftime("%Y-%m-%dT%H:%M"))

    # A new key: the old one stops at once.
    response = api.post(f"{BASE}/licenses/{license_id}/regenerate-key")
    assert response.status_code == 200
    new_key = response.json()["license_key"]
    assert new_key != key
    assert error_code(acquire(member, key, "machine-0003")) == "license_not_found"
    assert acquire(member, new_key, "machine-0003").status_code == 201

    # Delete (soft): gone from reads, lists and acquire; its audit stays.
    assert api.delete(f"{BASE}/licenses/{license_id}").status_code == 204
    assert error_code(api.get(f"{BASE}/licenses/{license_id}")) == "license_not_found"
    assert api.get(f"{BASE}/licenses", {"tenant_id": tenant["id"]}).json()["licenses"] == []
    assert error_code(acquire(member, new_key, "machine-0004")) == "license_not_found"
    assert error_code(api.delete(f"{BASE}/licenses/{license_id}")) == "license_not_found"
    with operator_scope():
        assert License.objects.get(pk=license_id).deleted_at is not None
    actions = audit_actions(license_id)
    for action in (
        "license.created",
        "license.updated",
        "license.extended",
        "license.suspended",
        "license.resumed",
        "license.key_regenerated",
        "license.deleted",
    ):
        assert action in actions
    with operator_scope():
        row = AuditLog.objects.filter(target_id=license_id, action="license.deleted").get()
    assert row.actor.startswith("api-key:cdt_pk_") and row.user_id is None

    # Suspend and resume the tenant.
    assert api.post(f"{BASE}/tenants/{tenant['id']}/suspend").json()["state"] == "suspended"
    assert api.post(f"{BASE}/tenants/{tenant['id']}/resume").json()["state"] == "active"
    assert audit_actions(tenant["id"]).count("tenant.updated") == 1


def test_a_tenant_scoped_key_cannot_touch_another_tenant(acme, globex, acme_key):
    theirs = LicenseFactory(tenant=globex, max_seats=3, name="Globex's")
    ours = LicenseFactory(tenant=acme, max_seats=1)
    api = key_client(acme_key)
    unknown = uuid.uuid4()
    for license_id in (theirs.id, unknown):
        assert error_code(api.get(f"{BASE}/licenses/{license_id}")) == "license_not_found"
        assert error_code(api.patch(f"{BASE}/licenses/{license_id}", {"max_seats": 99}, format="json")) == (
            "license_not_found"
        )
        for action in ("suspend", "resume", "regenerate-key"):
            assert error_code(api.post(f"{BASE}/licenses/{license_id}/{action}")) == "license_not_found"
        assert error_code(api.post(f"{BASE}/licenses/{license_id}/renew", {"days": 1}, format="json")) == (
            "license_not_found"
        )
        assert error_code(api.delete(f"{BASE}/licenses/{license_id}")) == "license_not_found"
    for tenant_id in (globex.id, unknown):
        assert error_code(api.get(f"{BASE}/tenants/{tenant_id}")) == "tenant_not_found"
        assert error_code(api.patch(f"{BASE}/tenants/{tenant_id}", {"name": "x"}, format="json")) == (
            "tenant_not_found"
        )
        response = api.post(f"{BASE}/licenses", {"tenant_id": str(tenant_id), "max_seats": 1}, format="json")
        assert error_code(response) == "tenant_not_found"
    # Its lists are its tenant's; it makes no tenants and suspends none.
    assert [item["id"] for item in api.get(f"{BASE}/licenses").json()["licenses"]] == [str(ours.id)]
    assert api.get(f"{BASE}/licenses", {"tenant_id": str(globex.id)}).json()["licenses"] == []
    assert [item["id"] for item in api.get(f"{BASE}/tenants").json()["tenants"]] == [str(acme.id)]
    assert error_code(api.post(f"{BASE}/tenants", {"name": "Mine"}, format="json")) == "permission_denied"
    assert error_code(api.post(f"{BASE}/tenants/{acme.id}/suspend")) == "permission_denied"
    # What it may do, it does in its own tenant.
    response = api.post(f"{BASE}/licenses", {"max_seats": 2}, format="json")
    assert response.status_code == 201 and response.json()["tenant_id"] == str(acme.id)
    # Globex's license is as it was, and no one wrote to it.
    with tenant_scope(globex.id):
        theirs.refresh_from_db()
    assert (theirs.max_seats, theirs.suspended, theirs.deleted_at, theirs.name) == (
        3,
        False,
        None,
        "Globex's",
    )
    assert audit_actions(theirs.id) == []
    with operator_scope():
        assert not Tenant.objects.filter(name="Mine").exists()


def test_revoked_and_unknown_keys_are_401_and_an_inactive_tenants_key_is_403(acme, globex):
    api_key, key = api_key_create(name="old backend", tenant=acme)
    api = key_client(key)
    assert api.get(f"{BASE}/licenses").status_code == 200
    with operator_scope():
        api_key.refresh_from_db()
    assert api_key.last_used_at is not None
    api_key_revoke(api_key=api_key)
    response = api.get(f"{BASE}/licenses")
    assert response.status_code == 401 and error_code(response) == "not_authenticated"
    assert error_code(api.post(f"{BASE}/licenses", {"max_seats": 1}, format="json")) == "not_authenticated"
    for forged in ("cdt_pk_" + "A" * 43, "cdt_pk_short"):
        assert error_code(key_client(forged).get(f"{BASE}/licenses")) == "not_authenticated"
    assert error_code(APIClient().get(f"{BASE}/licenses")) == "not_authenticated"
    assert audit_actions(api_key.pk) == ["api_key.created", "api_key.revoked"]
    # A suspended tenant's keys are refused.
    other = ApiKeyFactory(tenant=globex)
    with tenant_scope(globex.id):
        Tenant.objects.filter(pk=globex.id).update(is_active=False)
    assert error_code(key_client(other.key).get(f"{BASE}/licenses")) == "tenant_inactive"


def test_the_same_idempotency_key_twice_makes_one_license(acme, operator_key):
    api = key_client(operator_key)
    body = {"tenant_id": str(acme.id), "max_seats": 3, "name": "Once"}
    first = api.post(f"{BASE}/licenses", body, format="json", headers={"Idempotency-Key": "order-1001"})
    second = api.post(f"{BASE}/licenses", body, format="json", headers={"Idempotency-Key": "order-1001"})
    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert second.headers["Idempotent-Replayed"] == "true"
    with tenant_scope(acme.id):
        assert License.objects.filter(name="Once").count() == 1
    # The stored answer holds no readable key.
    record = IdempotencyRecord.objects.get(key="order-1001")
    assert first.json()["license_key"] not in record.sealed_answer
    # Another body under the same key is refused and creates nothing.
    other = api.post(
        f"{BASE}/licenses", {**body, "max_seats": 4}, format="json", headers={"Idempotency-Key": "order-1001"}
    )
    assert other.status_code == 422 and error_code(other) == "idempotency_key_reused"
    with tenant_scope(acme.id):
        assert License.objects.filter(name="Once").count() == 1
    # Keys are per API key: another key's same Idempotency-Key is its own.
    _, another = api_key_create(name="second backend")
    third = key_client(another).post(
        f"{BASE}/licenses", body, format="json", headers={"Idempotency-Key": "order-1001"}
    )
    assert third.status_code == 201 and third.json()["id"] != first.json()["id"]
    # Tenants too.
    for _ in range(2):
        response = api.post(
            f"{BASE}/tenants", {"name": "Hooli"}, format="json", headers={"Idempotency-Key": "t-1"}
        )
        assert response.status_code == 201
    with operator_scope():
        assert Tenant.objects.filter(name="Hooli").count() == 1


def test_a_refused_create_keeps_no_idempotency_key_and_a_malformed_one_is_400(acme, operator_key):
    api = key_client(operator_key)
    refused = api.post(
        f"{BASE}/licenses",
        {"tenant_id": str(uuid.uuid4()), "max_seats": 1},
        format="json",
        headers={"Idempotency-Key": "k-1"},
    )
    assert error_code(refused) == "tenant_not_found"
    assert not IdempotencyRecord.objects.filter(key="k-1").exists()
    ok = api.post(
        f"{BASE}/licenses",
        {"tenant_id": str(acme.id), "max_seats": 1},
        format="json",
        headers={"Idempotency-Key": "k-1"},
    )
    assert ok.status_code == 201
    bad = api.post(
        f"{BASE}/licenses",
        {"tenant_id": str(acme.id), "max_seats": 1},
        format="json",
        headers={"Idempotency-Key": "has a space"},
    )
    assert (
        error_code(bad) == "invalid_request" and "Idempotency-Key" in bad.json()["error"]["details"]["fields"]
    )


def test_an_idempotency_key_is_kept_a_day(acme, operator_key, settings):
    api = key_client(operator_key)
    body = {"tenant_id": str(acme.id), "max_seats": 1, "name": "Daily"}
    api.post(f"{BASE}/licenses", body, format="json", headers={"Idempotency-Key": "d-1"})
    IdempotencyRecord.objects.filter(key="d-1").update(created_at=timezone.now() - timedelta(hours=25))
    again = api.post(f"{BASE}/licenses", body, format="json", headers={"Idempotency-Key": "d-1"})
    assert again.status_code == 201 and "Idempotent-Replayed" not in again.headers
    with tenant_scope(acme.id):
        assert License.objects.filter(name="Daily").count() == 2


def test_lowering_seats_never_ends_live_leases(acme, acme_key, admin, member):
    license = LicenseFactory(tenant=acme, max_seats=2)
    api = key_client(acme_key)
    first, second = (
        acquire(admin.user, license.key, "machine-0001"),
        acquire(member.user, license.key, "machine-0002"),
    )
    assert first.status_code == second.status_code == 201
    response = api.patch(f"{BASE}/licenses/{license.id}", {"max_seats": 1}, format="json")
    assert response.status_code == 200 and response.json()["seats"] == {"used": 2, "max": 1}
    for checkout in (first, second):
        beat = APIClient()
        beat.credentials(HTTP_AUTHORIZATION=f"Bearer {checkout.json()['token']}")
        assert beat.post("/api/v1/licenses/heartbeat").status_code == 200
    third = acquire(UserFactory(tenant=acme, role=Role.USER), license.key, "machine-0003")
    assert error_code(third) == "no_seats_available"


def test_tenant_admins_read_their_licenses_with_their_access_token(acme, admin, member, outsider):
    license = LicenseFactory(tenant=acme)
    listed = admin.client.get(f"{BASE}/licenses")
    assert listed.status_code == 200 and [item["id"] for item in listed.json()["licenses"]] == [
        str(license.id)
    ]
    assert admin.client.get(f"{BASE}/licenses/{license.id}").json()["key_prefix"] == license.key_prefix
    # Read-only: no writes with an access token, and no tenants.
    assert (
        error_code(admin.client.post(f"{BASE}/licenses", {"max_seats": 1}, format="json"))
        == "permission_denied"
    )
    assert error_code(
        admin.client.patch(f"{BASE}/licenses/{license.id}", {"max_seats": 9}, format="json")
    ) == ("permission_denied")
    assert error_code(admin.client.post(f"{BASE}/licenses/{license.id}/suspend")) == "permission_denied"
    assert error_code(admin.client.get(f"{BASE}/tenants")) == "permission_denied"
    # Not a plain member; and another tenant's admin finds nothing of Acme's.
    assert error_code(member.client.get(f"{BASE}/licenses")) == "permission_denied"
    assert error_code(outsider.client.get(f"{BASE}/licenses/{license.id}")) == "license_not_found"
    assert outsider.client.get(f"{BASE}/licenses").json()["licenses"] == []


def test_renewing_a_perpetual_license_by_days_keeps_it_perpetual(acme, acme_key):
    license = LicenseFactory(tenant=acme, expires_at=None)
    api = key_client(acme_key)
    answer = api.post(f"{BASE}/licenses/{license.id}/renew", {"days": 30}, format="json").json()
    assert answer["changed"] is False and answer["expires_at"] is None
    assert "license.extended" not in audit_actions(license.id)
    end = timezone.now() + timedelta(days=5)
    answer = api.post(
        f"{BASE}/licenses/{license.id}/renew", {"expires_at": end.isoformat()}, format="json"
    ).json()
    assert answer["changed"] is True and answer["expires_at"] is not None


@pytest.mark.parametrize(
    ("path", "method", "body"),
    [
        ("renew", "post", {"days": 1, "expires_at": "2999-01-01T00:00:00Z"}),
        ("renew", "post", {}),
        ("renew", "post", {"expires_at": "2000-01-01T00:00:00Z"}),
        ("", "patch", {"max_seats": 0}),
        ("", "patch", {"max_seats": "5"}),
        ("", "patch", {"expires_at": "2000-01-01T00:00:00Z"}),
        ("", "patch", {"max_machines": 2147483648}),
        ("", "patch", {"max_machines": 10**20}),
    ],
)
def test_bad_input_is_400_and_changes_nothing(acme, acme_key, path, method, body):
    license = LicenseFactory(tenant=acme, max_seats=4, expires_at=None)
    api = key_client(acme_key)
    url = f"{BASE}/licenses/{license.id}" + (f"/{path}" if path else "")
    response = getattr(api, method)(url, body, format="json")
    assert response.status_code == 400 and error_code(response) == "invalid_request"
    with tenant_scope(acme.id):
        license.refresh_from_db()
    assert (license.max_seats, license.expires_at) == (4, None)
    assert audit_actions(license.id) == []


def test_api_keys_are_redacted_from_log_lines(committed_db):
    _, key = api_key_create(name="leaky")
    assert redact(f"Authorization: Bearer {key}") == "Authorization: Bearer [redacted]"
    assert redact("key cdt_pk_Ab12Cd") == "key cdt_pk_Ab12Cd"  # a display prefix is not a secret


def test_a_code_the_policys_catalog_lacks_or_an_unknown_policy_is_a_400_and_makes_nothing(operator_key, acme):
    api = key_client(operator_key)
    before = count_licenses(acme)
    for body in (
        {"tenant_id": str(acme.id), "max_seats": 1, "entitlements": ["no-such-code"]},
        {"tenant_id": str(acme.id), "max_seats": 1, "policy": "no-such-policy"},
        {"tenant_id": str(acme.id), "max_seats": 1, "entitlements": ["Not A Code"]},
    ):
        response = api.post(f"{BASE}/licenses", body, format="json")
        assert response.status_code == 400, response.content
        assert response.json()["error"]["code"] == "invalid_request"
    assert count_licenses(acme) == before


def test_a_license_made_without_terms_answers_its_policys(operator_key, acme):
    api = key_client(operator_key)
    created = api.post(f"{BASE}/licenses", {"tenant_id": str(acme.id)}, format="json").json()
    default = Policy.default()
    assert created["policy"] == default.slug and created["max_seats"] == default.seats
    assert created["lease_ttl"] == default.lease_ttl and created["offline_grace"] == default.offline_grace


def count_licenses(tenant) -> int:
    with tenant_scope(tenant.id):
        return License.objects.count()


def test_a_license_moves_to_another_policy_and_the_audit_names_both(operator_key, acme):
    api = key_client(operator_key)
    with operator_scope():
        product = Product.objects.create(name="CODITECT Team", slug="coditect-team")
        team = Policy.objects.create(product=product, name="Team", slug="team", seats=5, lease_ttl=240)
    created = api.post(f"{BASE}/licenses", {"tenant_id": str(acme.id), "max_seats": 2}, format="json").json()

    moved = api.patch(f"{BASE}/licenses/{created['id']}", {"policy": "team"}, format="json")

    assert moved.status_code == 200, moved.content
    assert (moved.json()["policy"], moved.json()["lease_ttl"]) == ("team", team.lease_ttl)
    with tenant_scope(acme.id):
        from audit.models import AuditLog

        (row,) = AuditLog.objects.filter(action="license.updated", target_id=created["id"])
    assert row.details["changes"]["policy"] == {"from": Policy.default().slug, "to": "team"}


def test_a_deleted_tenant_is_gone_its_licenses_too_and_its_audit_stays(operator_key, acme, acme_key, member):
    api = key_client(operator_key)
    created = api.post(f"{BASE}/licenses", {"tenant_id": str(acme.id), "max_seats": 2}, format="json").json()
    assert acquire(member.user, created["license_key"]).status_code == 201

    # A tenant-scoped key may not delete its own tenant.
    refused = key_client(acme_key).delete(f"{BASE}/tenants/{acme.id}")
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "permission_denied")

    assert api.delete(f"{BASE}/tenants/{acme.id}").status_code == 204

    gone = api.get(f"{BASE}/tenants/{acme.id}")
    assert (gone.status_code, gone.json()["error"]["code"]) == (404, "tenant_not_found")
    assert str(acme.id) not in [t["id"] for t in api.get(f"{BASE}/tenants").json()["tenants"]]
    assert api.get(f"{BASE}/licenses/{created['id']}").status_code == 404
    assert key_client(acme_key).get(f"{BASE}/licenses").json()["error"]["code"] == "tenant_inactive"
    assert audit_actions(acme.id)[-1] == "tenant.deleted"
    assert "license.deleted" in audit_actions(created["id"])
    # Again: nothing more to delete.
    assert api.delete(f"{BASE}/tenants/{acme.id}").status_code == 404


def test_a_move_to_a_policy_whose_catalog_lacks_the_licenses_codes_is_refused(operator_key, acme):
    api = key_client(operator_key)
    with operator_scope():
        product = Product.objects.create(name="Sim", slug="sim")
        Policy.objects.create(product=product, name="Sim", slug="sim", entitlements={"sim": "Simulation"})
        Policy.objects.create(product=product, name="Plain", slug="plain", entitlements={"cad": "CAD"})
    body = {"tenant_id": str(acme.id), "max_seats": 1, "policy": "sim", "entitlements": ["sim"]}
    created = api.post(f"{BASE}/licenses", body, format="json").json()

    later = (timezone.now() + timedelta(days=9)).isoformat()
    refused = api.patch(
        f"{BASE}/licenses/{created['id']}", {"policy": "plain", "expires_at": later}, format="json"
    )
    assert api.get(f"{BASE}/licenses/{created['id']}").json()["expires_at"] is None  # nothing changed
    moved = api.patch(
        f"{BASE}/licenses/{created['id']}", {"policy": "plain", "entitlements": ["cad"]}, format="json"
    )

    assert refused.status_code == 400 and "Send `entitlements`" in refused.content.decode()
    assert (moved.json()["policy"], moved.json()["entitlements"]) == ("plain", {"cad": True})


def test_a_suspended_tenant_may_be_given_a_license_that_serves_once_it_is_resumed(operator_key, acme, member):
    api = key_client(operator_key)
    assert api.post(f"{BASE}/tenants/{acme.id}/suspend").status_code == 200
    created = api.post(f"{BASE}/licenses", {"tenant_id": str(acme.id), "max_seats": 1}, format="json")
    assert created.status_code == 201, created.content
    # Its members' sign-ins ended with the suspension.
    refused = acquire(member.user, created.json()["license_key"])
    assert (refused.status_code, error_code(refused)) == (401, "not_authenticated")

    assert api.post(f"{BASE}/tenants/{acme.id}/resume").status_code == 200
    assert acquire(member.user, created.json()["license_key"]).status_code == 201


def test_a_tenant_name_is_kept_on_one_line(operator_key, acme):
    """A name is an email's subject and a page's title: a newline in it cut the subject."""
    api = key_client(operator_key)
    created = api.post(f"{BASE}/tenants", {"name": "Initech\r\nBcc: x@evil.test\u2028 Ltd\t"}, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["name"] == "Initech Bcc: x@evil.test Ltd"
    renamed = api.patch(f"{BASE}/tenants/{acme.id}", {"name": "Acme\n\nCorp"}, format="json")
    assert renamed.json()["name"] == "Acme Corp"
    blank = api.patch(f"{BASE}/tenants/{acme.id}", {"name": "\n\x00\x07"}, format="json")
    assert blank.status_code == 400


def test_a_provisioned_tenants_first_admin_is_invited_by_email_and_accepts_in_the_browser(
    operator_key, acme_key, globex, eager_tasks
):
    """A tenant made over the API gets its first admin from the API too: the
    invite is emailed with the link to the page that accepts it."""
    import re

    from django.core import mail
    from django.test import Client

    mail.outbox = []
    api = key_client(operator_key)
    tenant = api.post(f"{BASE}/tenants", {"name": "Initech"}, format="json").json()
    invited = api.post(
        f"{BASE}/tenants/{tenant['id']}/invites", {"email": "Boss@Initech.test"}, format="json"
    )
    assert invited.status_code == 201, invited.content
    assert invited.json()["role"] == "admin" and invited.json()["email"] == "boss@initech.test"
    [message] = [m for m in mail.outbox if m.to == ["boss@initech.test"]]
    [link] = re.findall(r"https?://\S+/dashboard/invite/\?code=\S+", message.body)
    browser = Client()
    page = browser.get(link[link.index("/dashboard/") :], follow=True)
    assert page.status_code == 200 and "Initech" in page.content.decode()

    # An email that already has an account, another tenant's id with a tenant key, bad input.
    taken = api.post(f"{BASE}/tenants/{tenant['id']}/invites", {"email": "boss@initech.test"}, format="json")
    assert taken.status_code == 201  # an invite is not an account: a second one may be sent
    member = tenant_member(globex)
    refused = api.post(f"{BASE}/tenants/{tenant['id']}/invites", {"email": member.user.email}, format="json")
    assert (refused.status_code, error_code(refused)) == (400, "invalid_request")
    # A tenant's own key may not: the account check reads across tenants.
    own = key_client(acme_key).post(
        f"{BASE}/tenants/{globex.id}/invites", {"email": "x@y.test"}, format="json"
    )
    assert (own.status_code, error_code(own)) == (403, "permission_denied")
    unknown = api.post(f"{BASE}/tenants/{uuid.uuid4()}/invites", {"email": "x@y.test"}, format="json")
    assert (unknown.status_code, error_code(unknown)) == (404, "tenant_not_found")
    bad = api.post(
        f"{BASE}/tenants/{tenant['id']}/invites", {"email": "x@y.test", "role": "owner"}, format="json"
    )
    assert bad.status_code == 400


def test_the_monthly_unbind_cap_is_the_policys_unless_the_license_overrides_it(acme, acme_key):
    """Issue 16: `max_unbinds_per_month` is an override like the others."""
    api = key_client(acme_key)
    with operator_scope():
        product = Product.objects.create(name="CODITECT Node", slug="coditect-node")
        Policy.objects.create(
            product=product, name="Node-locked", slug="node-locked", max_unbinds_per_month=3
        )

    made = api.post(f"{BASE}/licenses", {"policy": "node-locked"}, format="json")
    assert made.status_code == 201, made.content
    assert made.json()["max_unbinds_per_month"] == 3
    license_id = made.json()["id"]
    for sent, effective in ((0, 0), (5, 5), (None, 3)):
        changed = api.patch(f"{BASE}/licenses/{license_id}", {"max_unbinds_per_month": sent}, format="json")
        assert changed.status_code == 200, changed.content
        assert changed.json()["max_unbinds_per_month"] == effective
    refused = api.patch(f"{BASE}/licenses/{license_id}", {"max_unbinds_per_month": -1}, format="json")
    assert refused.status_code == 400 and error_code(refused) == "invalid_request"
    with tenant_scope(acme.id):
        assert License.objects.get(pk=license_id).max_unbinds_per_month is None
