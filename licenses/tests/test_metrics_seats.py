"""Seats in use per license, as /metrics reads them, on both ledgers."""

import pytest

from licenses.ledger import get_seat_ledger
from licenses.metrics import SeatCollector
from licenses.tests.conftest import LEDGERS
from licenses.tests.factories import LicenseFactory
from tenants.scope import tenant_scope
from tenants.tests.factories import TenantFactory

pytestmark = pytest.mark.embedded


@pytest.mark.parametrize("backend", LEDGERS)
def test_the_seat_collector_reads_seats_in_use_from_the_ledger(committed_db, settings, backend):
    settings.SEAT_LEDGER = backend
    ledger = get_seat_ledger(backend)
    license = LicenseFactory(tenant=TenantFactory(), max_seats=3)
    with tenant_scope(license.tenant_id):
        for n in range(2):
            ledger.acquire(
                license_id=license.id,
                tenant_id=license.tenant_id,
                max_seats=3,
                fingerprint=f"metrics-fp-{n}",
                user_id=None,
                ttl=60,
            )

    usage, truncated, ok = SeatCollector(max_licenses=10, cache_seconds=0).read()

    assert ok and not truncated
    [mine] = [row for row in usage if row.license == str(license.id)]
    assert (mine.used, mine.max_seats) == (2, 3)
    with tenant_scope(license.tenant_id):
        for lease in ledger.live_leases(license_id=license.id):
            ledger.release(license_id=license.id, session_id=lease.session_id)
