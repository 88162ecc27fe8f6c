"""Policies end to end (issue 15, "It must show" 1): the real server on a
loopback port, driven through the real SDK.

A policy with a catalog, a grace period after expiry and a maintenance end; a
license made from it with overrides. The token carries the effective values;
the license, expired yesterday, acquires inside its grace period with
`grace_until`; an application newer than the maintenance covers is refused by
the SDK (MaintenanceExpired, its seat given back) and an older one accepted.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from test_sdk_end_to_end import QUICK, TTL, Account, make_client, server  # noqa: F401 - fixtures

from coditect_license import LicenseClient, MaintenanceExpired, PasswordLogin, fingerprint

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

MAINTENANCE_END = date(2026, 6, 30)


@pytest.fixture
def graced(server):  # noqa: F811 - the fixture imported above
    """A license of the Pro policy that expired a day ago, inside its 7-day grace."""
    from accounts.tests.factories import TEST_PASSWORD, TenantAdminFactory
    from licenses.models import Policy, Product
    from licenses.services import license_create
    from tenants.tests.factories import TenantFactory

    tenant = TenantFactory()
    admin = TenantAdminFactory(tenant=tenant)
    product = Product.objects.create(name="CODITECT Pro", slug="coditect-pro-sdk")
    policy = Policy.objects.create(
        product=product,
        name="Pro (SDK)",
        slug="pro-sdk",
        seats=3,
        lease_ttl=600,
        offline_grace=7200,
        expiry_grace_days=7,
        maintenance_end=MAINTENANCE_END,
        max_version="2.4",
        entitlements={"cad": "CAD", "cam": "CAM", "render": "Rendering"},
    )
    expired = datetime.now(UTC) - timedelta(days=1)
    license, key = license_create(
        tenant=tenant,
        policy=policy,
        expires_at=expired,
        # Overrides: a short lease and two of the catalog's three codes.
        lease_ttl=TTL,
        entitlements=["cad", "cam"],
    )
    account = Account(server.url, key, admin.email, TEST_PASSWORD, str(license.id))
    return account, expired, expired + timedelta(days=7)


def client_for(server, account: Account, tmp_path, **kwargs) -> LicenseClient:  # noqa: F811
    return LicenseClient(
        account.url,
        account.key,
        PasswordLogin(account.email, account.password),
        fingerprint=fingerprint(raw_machine_id="policy-machine", salt="e2e"),
        retry=QUICK,
        release_at_exit=False,
        cache_dir=tmp_path / kwargs.pop("machine", "m"),
        trusted_root_keys=server.keyset_root_jwks,
        **kwargs,
    )


def test_the_token_carries_the_effective_terms_and_a_graced_license_acquires(server, graced, tmp_path):  # noqa: F811
    account, _, grace_until = graced
    with client_for(server, account, tmp_path, app_version="2.4.0") as app:
        lease = app.lease
        assert lease is not None and lease.created
        # The license's override (TTL) and its codes, not the policy's 600 s and three codes.
        assert lease.heartbeat_interval == TTL // 3
        assert lease.entitlements == {"cad": True, "cam": True}
        assert lease.in_grace and abs(lease.license_grace_until - grace_until) < timedelta(seconds=1)
        claims = app.verify()
        assert claims.entitlements == {"cad": True, "cam": True}
        assert claims.grace_until == pytest.approx(grace_until.timestamp(), abs=1)
        assert claims.maintenance_end == MAINTENANCE_END and claims.max_version == "2.4"
        # The token never outlives the grace period; the offline grace (7200 s) is shorter here.
        assert claims.expires_at <= grace_until.timestamp()
        status = app.status()
        assert status.state == "grace"
        assert status.seats_used == 1


def test_an_application_newer_than_the_maintenance_is_refused_and_gives_its_seat_back(
    server,  # noqa: F811
    graced,
    tmp_path,
):
    account, _, _ = graced
    newer = client_for(server, account, tmp_path, app_version="2.5", machine="newer")
    with pytest.raises(MaintenanceExpired) as refused:
        newer.acquire()
    assert refused.value.details == {"ver_max": "2.4", "app_version": "2.5"}
    assert newer.lease is None and not newer.is_licensed()

    released_late = client_for(
        server, account, tmp_path, app_released=MAINTENANCE_END + timedelta(days=1), machine="late"
    )
    with pytest.raises(MaintenanceExpired, match="maintenance ended on 2026-06-30"):
        released_late.acquire()

    older = client_for(
        server, account, tmp_path, app_version="2.3.9", app_released=MAINTENANCE_END, machine="older"
    )
    with older:
        assert older.is_licensed()
        # The refused ones hold no seat: theirs were given back.
        assert older.status().seats_used == 1
    for client in (newer, released_late):
        client.close(release=False)
