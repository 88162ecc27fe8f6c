"""The products-and-policies migration, run by the migration executor: a
license made before it (with its own TTLs, borrow limit and free-form
entitlements) points to the default policy after it and acquires exactly as
before. Migrations run as the tables' owner, as in production (RLS forced on
it: the migration lifts that for its own update and forces it again)."""

from __future__ import annotations

import contextlib

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from coditect.personas import api_client
from coditect.testing import _test_roles
from licenses.keys import generate_license_key, license_key_digest, license_key_display_prefix
from licenses.models import DEFAULT_POLICY_SLUG, License
from licenses.signing import license_token_verify
from tenants.scope import tenant_scope

pytestmark = pytest.mark.embedded

BEFORE = ("licenses", "0009_license_claims_and_notices")
AFTER = ("licenses", "0010_products_and_policies")


@contextlib.contextmanager
def as_owner():
    """The default connection as the owner role (PostgreSQL), then the app role again."""
    if connection.vendor != "postgresql":
        yield
        return
    connection.close()
    app_role = connection.settings_dict["USER"]
    connection.settings_dict["USER"] = _test_roles().owner
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict["USER"] = app_role


def migrate(target):
    executor = MigrationExecutor(connection)
    executor.migrate([target])
    return executor.loader.project_state([target]).apps


def test_a_license_made_before_policies_acquires_the_same_after(committed_db):
    from accounts.tests.factories import UserFactory
    from tenants.tests.factories import TenantFactory

    tenant = TenantFactory()
    with tenant_scope(tenant.id):
        user = UserFactory(tenant=tenant)
    key = generate_license_key()
    with as_owner():
        old = migrate(BEFORE)
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:  # the owner is under RLS too (FORCE)
                cursor.execute("SELECT set_config('app.current_tenant', %s, false)", [str(tenant.id)])
        made = old.get_model("licenses", "License").objects.create(
            tenant_id=tenant.id,
            name="Made before policies",
            key_digest=license_key_digest(key),
            key_prefix=license_key_display_prefix(key),
            max_seats=2,
            lease_ttl=123,
            offline_grace=4567,
            borrow_limit_hours=5,
            max_machines=None,
            hardware_fingerprints=[],
            entitlements={"pro": True, "tier": "gold"},
        )
        migrate(AFTER)
        # And every later migration back on (the test database stays whole).
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())

    with tenant_scope(tenant.id):
        license = License.objects.select_related("policy").get(id=made.id)
    policy = license.policy
    assert policy.slug == DEFAULT_POLICY_SLUG
    # Its entitlement keys are codes of the default policy's catalog now.
    assert {"pro", "tier"} <= set(policy.entitlements)
    # Its own values stayed as overrides.
    assert (license.lease_ttl, license.offline_grace, license.borrow_limit_hours) == (123, 4567, 5)

    response = api_client(user).post(
        "/api/v1/licenses/acquire",
        {"license_key": key, "hardware_fingerprint": "machine-before-0001"},
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["heartbeat_interval"] == 123 // 3
    assert body["seats"] == {"used": 1, "max": 2}
    assert body["license"]["entitlements"] == {"pro": True, "tier": "gold"}
    assert body["license"]["grace_until"] is None and body["license"]["in_grace"] is False
    claims = license_token_verify(body["token"])
    assert claims["ent"] == {"pro": True, "tier": "gold"}
    assert claims["exp"] - claims["iat"] == 4567
    # No terms the old license did not have.
    assert not {"grace_until", "maint", "ver_max"} & set(claims)
