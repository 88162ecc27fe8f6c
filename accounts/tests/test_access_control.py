"""Broken access control, tried on every tenant API route a user's token opens.

ROUTES lists each route once; every test below runs against all that apply.
A new tenant endpoint joins by adding a TenantRoute (with `make_object` when
the request names an object, in its path or its body), and is then tried for:
no token (401), a plain or read-only member on an admin route (403), a
read-only member writing (403), and another tenant's admin asking for this
tenant's object (404, no data, nothing changed). The license-token routes
(heartbeat, release, borrow) take no user token; their tests live in licenses.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from accounts.models import Invite, Role, User
from accounts.tests.factories import InviteFactory
from coditect.personas import call
from licenses.tests.factories import LicenseFactory
from tenants.scope import tenant_scope

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]


@dataclass(frozen=True)
class TenantRoute:
    method: str
    path: str  # "{id}" and "{key}" stand for the object's id and (license) key
    admin_only: bool = False
    make_object: Callable[[Any], Any] | None = None  # tenant -> an object the request names
    body: dict | Callable[[Any], dict] | None = None  # or object -> body
    not_found_code: str = "not_found"

    @property
    def writes(self) -> bool:
        return self.method not in ("GET", "HEAD", "OPTIONS")

    def url(self, obj=None) -> str:
        if obj is None:
            return self.path
        return self.path.format(id=obj.pk, key=getattr(obj, "key", ""))

    def data(self, obj=None):
        return self.body(obj) if callable(self.body) else self.body

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def an_invite(tenant):
    return InviteFactory(tenant=tenant)


def a_license(tenant):
    return LicenseFactory(tenant=tenant)


ROUTES = [
    TenantRoute("GET", "/api/v1/auth/me"),
    TenantRoute("GET", "/api/v1/invites", admin_only=True),
    TenantRoute("POST", "/api/v1/invites", admin_only=True, body={"role": "user"}),
    TenantRoute("GET", "/api/v1/invites/{id}", admin_only=True, make_object=an_invite),
    TenantRoute("DELETE", "/api/v1/invites/{id}", admin_only=True, make_object=an_invite),
    TenantRoute(
        "POST",
        "/api/v1/licenses/acquire",
        make_object=a_license,
        body=lambda license: {"license_key": license.key, "hardware_fingerprint": "fp-access-control-1"},
        not_found_code="license_not_found",
    ),
    TenantRoute("GET", "/api/v1/licenses/status"),
    TenantRoute(
        "GET",
        "/api/v1/licenses/status?license_id={id}",
        make_object=a_license,
        not_found_code="license_not_found",
    ),
    TenantRoute("GET", "/api/v1/analytics/usage", admin_only=True),
    TenantRoute(
        "GET",
        "/api/v1/analytics/usage?license_id={id}",
        admin_only=True,
        make_object=a_license,
        not_found_code="license_not_found",
    ),
]


def routes(condition=lambda route: True):
    return pytest.mark.parametrize("route", [r for r in ROUTES if condition(r)], ids=str)


def request(client, route, obj=None):
    return getattr(client, route.method.lower())(route.url(obj), route.data(obj), format="json")


@routes()
def test_no_token_is_401(api, route, tenant_a):
    obj = route.make_object(tenant_a) if route.make_object else None
    response = request(api, route, obj=obj)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


@routes(lambda r: r.admin_only)
def test_a_plain_or_read_only_member_gets_403_on_admin_routes(route, tenant_a, admin, member, viewer):
    obj = route.make_object(tenant_a) if route.make_object else None
    for persona in (member, viewer):
        response = request(persona.client, route, obj)
        assert response.status_code == 403, persona.user.role
        assert response.json()["error"]["code"] == "permission_denied"
    assert request(admin.client, route, obj).status_code < 300


@routes(lambda r: r.writes and not r.admin_only)
def test_a_read_only_member_cannot_write(route, tenant_a, viewer):
    obj = route.make_object(tenant_a) if route.make_object else None
    response = request(viewer.client, route, obj)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"


@routes(lambda r: not r.writes and not r.admin_only)
def test_a_read_only_member_can_read(route, tenant_a, viewer):
    obj = route.make_object(tenant_a) if route.make_object else None
    assert request(viewer.client, route, obj).status_code == 200


@routes(lambda r: r.make_object is not None)
def test_another_tenants_object_is_404_not_403_not_data(route, tenant_a, outsider):
    theirs = route.make_object(tenant_a)
    response = request(outsider.client, route, theirs)  # every permission, in the wrong tenant
    assert response.status_code == 404
    assert response.json()["error"]["code"] == route.not_found_code
    assert str(theirs.pk) not in response.content.decode()
    # And it is untouched.
    with tenant_scope(tenant_a.id):
        fresh = type(theirs).objects.get(pk=theirs.pk)
    assert {f.attname: getattr(fresh, f.attname) for f in fresh._meta.concrete_fields} == {
        f.attname: getattr(theirs, f.attname) for f in theirs._meta.concrete_fields
    }


def test_tenant_and_creator_in_an_invite_body_are_ignored(tenant_a, tenant_b, admin, outsider):
    body = {
        "role": "user",
        "tenant": str(tenant_b.id),
        "tenant_id": str(tenant_b.id),
        "created_by": str(outsider.user.id),
    }
    response = admin.client.post("/api/v1/invites", body, format="json")
    assert response.status_code == 201
    with tenant_scope(tenant_a.id):
        invite = Invite.objects.get(pk=response.json()["id"])
    assert (invite.tenant_id, invite.created_by_id) == (tenant_a.id, admin.user.id)


def test_tenant_and_role_in_a_register_body_are_ignored(api, tenant_a, tenant_b):
    invite = InviteFactory(tenant=tenant_a, role=Role.READ_ONLY)
    response = call(
        api,
        "POST",
        "/api/v1/auth/register",
        {
            "email": "eve@acme.test",
            "password": "a long enough passphrase 42",
            "invite_code": invite.code,
            "role": "admin",
            "tenant": str(tenant_b.id),
            "tenant_id": str(tenant_b.id),
            "is_staff": True,
            "is_superuser": True,
        },
    )
    assert response.status_code == 201, response.content
    assert response.json()["user"]["role"] == "readonly"
    assert response.json()["tenant"]["id"] == str(tenant_a.id)
    with tenant_scope(tenant_a.id):
        eve = User.objects.get(email="eve@acme.test")
    assert (eve.tenant_id, eve.role, eve.is_staff, eve.is_superuser) == (
        tenant_a.id,
        "readonly",
        False,
        False,
    )


def test_a_new_tenants_owner_is_its_admin_whatever_the_body_says(api, tenant_b):
    response = call(
        api,
        "POST",
        "/api/v1/auth/register",
        {
            "email": "zed@new.test",
            "password": "a long enough passphrase 42",
            "tenant_name": "New Co",
            "role": "readonly",
            "tenant": str(tenant_b.id),
        },
    )
    assert response.status_code == 201
    assert response.json()["user"]["role"] == "admin"
    assert response.json()["tenant"]["id"] != str(tenant_b.id)
