"""Personas and helpers for the license API tests: a tenant with an admin, a
user and a read-only member, an outsider tenant, and a license of each."""

from __future__ import annotations

import pytest
from django.conf import settings as django_settings
from rest_framework.test import APIClient

from accounts.models import Role
from accounts.tests.conftest import access_token
from accounts.tests.factories import UserFactory
from licenses.ledger import get_seat_ledger
from licenses.tests.factories import LicenseFactory
from tenants.scope import tenant_scope
from tenants.tests.factories import TenantFactory

LEDGERS = ["redis", "database"] if django_settings.REDIS_URL else ["database"]


@pytest.fixture(params=LEDGERS)
def ledger(request, settings):
    settings.SEAT_LEDGER = request.param
    return get_seat_ledger(request.param)


def bearer_client(token: str | None = None) -> APIClient:
    client = APIClient()
    if token:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


class Persona:
    """A member of a tenant with a client carrying their access token (as
    login issues it; login itself is tested in accounts)."""

    def __init__(self, user):
        self.user = user
        self.client = bearer_client(access_token(user))


@pytest.fixture
def acme(db):
    return TenantFactory(name="Acme", slug="acme")


@pytest.fixture
def globex(db):
    return TenantFactory(name="Globex", slug="globex")


@pytest.fixture
def admin(acme):
    return Persona(UserFactory(tenant=acme, role=Role.TENANT_ADMIN, email="admin@acme.test"))


@pytest.fixture
def member(acme):
    return Persona(UserFactory(tenant=acme, role=Role.USER, email="member@acme.test"))


@pytest.fixture
def viewer(acme):
    return Persona(UserFactory(tenant=acme, role=Role.READ_ONLY, email="viewer@acme.test"))


@pytest.fixture
def outsider(globex):
    return Persona(UserFactory(tenant=globex, role=Role.TENANT_ADMIN, email="admin@globex.test"))


@pytest.fixture
def license(acme):
    return LicenseFactory(tenant=acme, max_seats=2, entitlements={"pro": True}, borrow_limit_hours=48)


def live_sessions(ledger, license) -> list[str]:
    with tenant_scope(license.tenant_id):
        return sorted(lease.session_id for lease in ledger.live_leases(license_id=license.id))


def acquire(persona, license, fingerprint="machine-0001", **extra):
    body = {"license_key": license.key, "hardware_fingerprint": fingerprint, **extra}
    return persona.client.post("/api/v1/licenses/acquire", body, format="json")


def error_code(response) -> str:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}, body
    return body["error"]["code"]
