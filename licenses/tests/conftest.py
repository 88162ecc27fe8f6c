"""Helpers for the license API tests: the seat ledgers, Acme's license, and
requests for seats (the personas are shared: coditect/personas.py)."""

from __future__ import annotations

import pytest
from django.conf import settings as django_settings

from licenses.ledger import get_seat_ledger
from licenses.tests.factories import LicenseFactory
from tenants.scope import tenant_scope

LEDGERS = ["redis", "database"] if django_settings.REDIS_URL else ["database"]


@pytest.fixture(params=LEDGERS)
def ledger(request, settings):
    settings.SEAT_LEDGER = request.param
    return get_seat_ledger(request.param)


@pytest.fixture
def license(acme):
    return LicenseFactory(tenant=acme, max_seats=2, entitlements={"pro": True}, borrow_limit_hours=48)


def live_sessions(ledger, license) -> list[str]:
    with tenant_scope(license.tenant_id):
        return sorted(lease.session_id for lease in ledger.live_leases(license_id=license.id))


def acquire(persona, license, fingerprint="machine-0001", **extra):
    body = {"license_key": license.key, "hardware_fingerprint": fingerprint, **extra}
    return persona.client.post("/api/v1/licenses/acquire", body, format="json")


def drain_ledger_events(license) -> int:
    """Run the drainer for one license: the audit events a ledger kept with its
    changes (the Redis ledger's releases, borrows, refusals) reach the log."""
    from licenses.leases import lease_events_drain_license

    return lease_events_drain_license(license_id=license.id, tenant_id=license.tenant_id)


def error_code(response) -> str:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}, body
    return body["error"]["code"]
