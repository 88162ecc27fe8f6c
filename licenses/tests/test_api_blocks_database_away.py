"""A block is enforced on the Redis ledger's heartbeat with PostgreSQL cut:
the block rides on the cached license, so the blocked machine's heartbeat
answers 403 `machine_blocked` and its seat is released in Redis, the other
machine's heartbeat answers 200, and the `lease.ended` row arrives with the
drain once PostgreSQL is back."""

from __future__ import annotations

import pytest
from django.db import connections

from audit.events import Detail, Event
from coditect.personas import api_client, tenant_member
from licenses.ledger.gateway import seat_ledger
from licenses.tests.conftest import acquire, error_code
from licenses.tests.factories import LicenseFactory
from licenses.tests.test_api_audit_never_lost import audit_rows, drain_when_back
from licenses.tests.test_api_blocks import block_behind_the_cache
from licenses.tests.test_api_hung_dependencies import postgresql_behind_a_proxy  # noqa: F401 - a fixture
from tenants.tests.factories import TenantFactory

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

HEARTBEAT = "/api/v1/licenses/heartbeat"


def test_a_blocked_machines_heartbeat_needs_no_database(
    postgresql_behind_a_proxy,  # noqa: F811 - the fixture imported above
    settings,
):
    if not settings.REDIS_URL:
        pytest.skip("needs Redis")
    settings.SEAT_LEDGER = "redis"
    settings.LICENSE_CACHE_SECONDS = 600
    tenant = TenantFactory()
    member = tenant_member(tenant)
    license = LicenseFactory(tenant=tenant, max_seats=2)
    blocked, other = (acquire(member, license, f"machine-000{n}").json() for n in (1, 2))
    block_behind_the_cache(license, "machine", "machine-0001")
    # The caches are warm, the block in the license's.
    assert api_client(token=other["token"]).post(HEARTBEAT).status_code == 200

    postgresql_behind_a_proxy.cut()
    refused = api_client(token=blocked["token"]).post(HEARTBEAT)
    carried_on = api_client(token=other["token"]).post(HEARTBEAT)
    live = [
        lease.session_id for lease in seat_ledger().live_leases(license_id=license.id, tenant_id=tenant.id)
    ]
    postgresql_behind_a_proxy.restore()
    connections.close_all()

    assert (refused.status_code, error_code(refused)) == (403, "machine_blocked")
    assert carried_on.status_code == 200
    assert live == [other["session_id"]]
    drain_when_back(license)
    (ended,) = audit_rows(license, Event.LEASE_ENDED)
    assert (ended[Detail.SESSION_ID], ended[Detail.REASON]) == (blocked["session_id"], "machine_blocked")
