"""The people every app's tests act as, and the one way they call the API.

Two tenants, Acme and Globex. In Acme: `admin` (a tenant admin), `member` (a
plain user) and `viewer` (a read-only member). `outsider` is Globex's admin:
every permission, in the wrong tenant, so whatever Acme owns must stay out of
their sight. Each persona carries an API client that sends a real access token,
as login issues it (login itself is tested in accounts).

The fixtures are shared through the root conftest.py. Tests that commit their
rows (`committed_db`) cannot use fixtures that hold the `db` transaction, so
they build the same personas with `tenant_admin(tenant)` and its siblings.
"""

from __future__ import annotations

import uuid

import pytest
from rest_framework.test import APIClient

from accounts.models import Role
from accounts.tests.factories import UserFactory
from accounts.tokens import access_token_issue
from tenants.tests.factories import TenantFactory

__all__ = [
    "Persona",
    "access_token",
    "acme",
    "admin",
    "api",
    "api_client",
    "bearer",
    "call",
    "globex",
    "member",
    "outsider",
    "read_only_member",
    "tenant_a",
    "tenant_admin",
    "tenant_b",
    "tenant_member",
    "viewer",
]


def access_token(user) -> str:
    """A real access token for `user`, as login would issue it, of a sign-in of
    its own (a family no refresh token has: nothing but its expiry ends it)."""
    return access_token_issue(
        user_id=user.id, tenant_id=user.tenant_id, role=user.role, family_id=uuid.uuid4()
    )


def bearer(user) -> dict:
    """Headers that sign one request in as `user`, for clients that are not ours
    (Django's test client, a raw request)."""
    return {"Authorization": f"Bearer {access_token(user)}"}


def api_client(user=None, *, token: str | None = None) -> APIClient:
    """A DRF client that sends `user`'s access token on every request, or
    `token` as it is (a license token, a forged one); with neither, anonymous."""
    client = APIClient()
    if user is not None:
        token = access_token(user)
    if token:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def call(api, method: str, path: str, data=None, token: str | None = None, **extra):
    """One JSON request; `token` is an access token for the Authorization header
    (for flows that sign in over HTTP and use the token they were given)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return getattr(api, method.lower())(path, data, format="json", headers=headers, **extra)


class Persona:
    """A member of a tenant and a client carrying their access token."""

    def __init__(self, user) -> None:
        self.user = user
        self.client = api_client(user)

    @property
    def tenant(self):
        return self.user.tenant

    def __repr__(self) -> str:
        return f"<Persona {self.user.email} ({self.user.role})>"


def _persona(tenant, role: str, name: str) -> Persona:
    return Persona(UserFactory(tenant=tenant, role=role, email=f"{name}@{tenant.slug}.test"))


def tenant_admin(tenant) -> Persona:
    return _persona(tenant, Role.TENANT_ADMIN, "admin")


def tenant_member(tenant) -> Persona:
    return _persona(tenant, Role.USER, "member")


def read_only_member(tenant) -> Persona:
    return _persona(tenant, Role.READ_ONLY, "viewer")


@pytest.fixture
def acme(db):
    return TenantFactory(name="Acme", slug="acme")


@pytest.fixture
def globex(db):
    return TenantFactory(name="Globex", slug="globex")


# The older names of the two tenants, which many tests still use.
@pytest.fixture
def tenant_a(acme):
    return acme


@pytest.fixture
def tenant_b(globex):
    return globex


@pytest.fixture
def admin(acme) -> Persona:
    return tenant_admin(acme)


@pytest.fixture
def member(acme) -> Persona:
    return tenant_member(acme)


@pytest.fixture
def viewer(acme) -> Persona:
    return read_only_member(acme)


@pytest.fixture
def outsider(globex) -> Persona:
    """Globex's admin, who must see nothing of Acme's."""
    return tenant_admin(globex)


@pytest.fixture
def api() -> APIClient:
    """An anonymous API client."""
    return api_client()
