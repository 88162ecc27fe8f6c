"""Must-show 5: a walk of EVERY route of the dashboard (analytics/urls.py,
read from its URL patterns, not listed by hand), each with GET and POST:

- a plain member of Acme gets 403 or 404 on every tenant admin's URL (405
  for a method the route does not take), and their own page;
- Globex's admin (every permission, the wrong tenant) gets 404 on every URL
  that names an object of Acme's;
- an anonymous browser is sent to sign in on every page but the sign-in pages;
- nobody gets a 500, and nothing of Acme's changes (its seats stay live).

A route's parameters are filled with Acme's real objects by the parameter's
name (OBJECT_PARAMS). A route whose parameter the walk cannot fill fails the
walk, so a route added later is walked too, once someone says here what its
parameter names. Every route is a tenant admin's unless it is named in
PUBLIC_ROUTES (no sign-in) or MEMBER_ROUTES (any member's own page).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, reverse

from accounts.tests.factories import InviteFactory
from analytics import urls as dashboard_urls
from analytics.tests.factories import MonthlyReportFactory
from analytics.tests.member_world import build_world, live, signed_in

pytestmark = [pytest.mark.embedded]

# Pages for people who are not signed in (sign-in, password reset, invites).
PUBLIC_ROUTES = {
    "login",
    "login-identity",
    "logout",
    "password-reset",
    "password-reset-confirm",
    "invite",
    "invite-done",
}
# Pages of any signed-in member: their own things only.
MEMBER_ROUTES = {"me", "me-seat-release", "me-password", "me-sign-out-everywhere"}
# Walked last: a POST to them ends the walker's session.
SESSION_ENDING = ("me-sign-out-everywhere", "logout")

# How to fill a route's parameter with one of Acme's objects, by its name.
OBJECT_PARAMS: dict[str, Callable[[dict], object]] = {
    "license_id": lambda world: world["pro"].id,
    "user_id": lambda world: world["member"].id,
    "invite_id": lambda world: world["invite"].id,
    "report_id": lambda world: world["report"].id,
    # The one-time page of a rotated key: a token this session was never given.
    "token": lambda world: "not-a-token-of-this-session",
}


@dataclass(frozen=True)
class Route:
    name: str
    pattern: str
    params: dict

    @property
    def kind(self) -> str:
        if self.name in PUBLIC_ROUTES:
            return "public"
        return "member" if self.name in MEMBER_ROUTES else "admin"

    @property
    def names_an_object(self) -> bool:
        return bool(self.params)


def _patterns(patterns, prefix: str = "") -> Iterator[tuple[str, URLPattern]]:
    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from _patterns(entry.url_patterns, prefix + str(entry.pattern))
        else:
            yield prefix + str(entry.pattern), entry


def dashboard_routes(world: dict) -> list[Route]:
    """Every route of analytics/urls.py with its parameters filled; a route
    the walk cannot fill fails here, with what to add."""
    routes, unfillable = [], []
    for pattern, entry in _patterns(dashboard_urls.urlpatterns):
        if not entry.name:
            unfillable.append(f"{pattern!r} has no name: name it, so the walk can reverse it")
            continue
        params = {}
        for param, converter in getattr(entry.pattern, "converters", {}).items():
            if param in OBJECT_PARAMS:
                params[param] = OBJECT_PARAMS[param](world)
            else:
                unfillable.append(
                    f"{entry.name!r} ({pattern}): the walk does not know how to fill <{param}>; "
                    "add it to OBJECT_PARAMS in analytics/tests/test_dashboard_routes.py"
                )
        routes.append(Route(entry.name, pattern, params))
    assert not unfillable, "\n".join(unfillable)
    ending = [route for name in SESSION_ENDING for route in routes if route.name == name]
    return [route for route in routes if route.name not in SESSION_ENDING] + ending


def url_of(route: Route) -> str:
    return reverse(f"{dashboard_urls.app_name}:{route.name}", kwargs=route.params)


@pytest.fixture(autouse=True)
def quick_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def world(committed_db):
    world = build_world()
    world["invite"] = InviteFactory(tenant=world["acme"], email="invited@people.test")
    world["report"] = MonthlyReportFactory(tenant=world["acme"], license=world["pro"])
    return world


def walk(client: Client, routes: list[Route]) -> Iterator[tuple[Route, str, object]]:
    for route in routes:
        for method in ("get", "post"):
            yield route, method, getattr(client, method)(url_of(route))


def seats_of_acme(world) -> list[str]:
    return sorted(live(world["pro"]) + live(world["cad"]))


def test_the_walk_knows_every_route(world):
    routes = dashboard_routes(world)

    names = [route.name for route in routes]
    assert set(names) >= PUBLIC_ROUTES | MEMBER_ROUTES | {"overview", "audit", "license", "lease-release"}
    assert names[-len(SESSION_ENDING) :] == list(SESSION_ENDING)


@pytest.mark.parametrize("email", ["member@acme.test", "viewer@acme.test"], ids=["user", "read-only"])
def test_a_plain_member_gets_403_or_404_on_every_tenant_admin_url_and_their_own_page(world, email):
    routes = dashboard_routes(world)
    seats = seats_of_acme(world)
    client = signed_in(email)
    wrong, refused = [], set()

    for route, method, response in walk(client, routes):
        status = response.status_code
        if status >= 500:
            wrong.append(f"{method.upper()} {route.pattern}: {status}")
        elif route.kind == "admin":
            if status in (403, 404):
                refused.add(route.name)
            elif status != 405:
                wrong.append(f"{method.upper()} {route.pattern}: {status}, not 403 or 404")
            if status == 403:
                assert "for tenant admins" in response.content.decode()
        elif route.kind == "member" and route.name == "me" and method == "get" and status != 200:
            wrong.append(f"GET {route.pattern}: {status}, not their own page")

    assert not wrong, "\n".join(wrong)
    admin_routes = {route.name for route in routes if route.kind == "admin"}
    assert refused == admin_routes  # each refused by at least the method it serves
    assert seats_of_acme(world) == seats  # nothing released, whatever was posted


def test_a_member_of_another_tenant_gets_404_on_every_url_naming_an_object_of_this_tenant(world):
    routes = dashboard_routes(world)
    seats = seats_of_acme(world)
    client = signed_in("admin@globex.test")
    wrong, named, not_found = [], set(), set()

    for route, method, response in walk(client, routes):
        status = response.status_code
        if status >= 500:
            wrong.append(f"{method.upper()} {route.pattern}: {status}")
        elif route.names_an_object and route.kind != "public":
            named.add(route.name)
            if status == 404:
                not_found.add(route.name)
            elif status != 405:
                wrong.append(f"{method.upper()} {url_of(route)}: {status}, not 404")
        if status == 200:
            body = b"".join(response.streaming_content) if response.streaming else response.content
            page = body.decode()
            for acme_thing in ("Acme Pro", "Acme CAD", "member@acme.test", str(world["pro"].id)):
                if acme_thing in page:
                    wrong.append(f"{method.upper()} {route.pattern} shows {acme_thing!r}")

    assert not wrong, "\n".join(wrong)
    assert named >= {"license", "lease-release", "me-seat-release"}
    assert not_found == named  # each a 404 for at least the method it serves
    assert seats_of_acme(world) == seats


def test_an_anonymous_browser_is_sent_to_sign_in_on_every_page_but_the_sign_in_pages(world):
    routes = dashboard_routes(world)
    seats = seats_of_acme(world)
    wrong = []

    for route, method, response in walk(Client(), routes):
        status = response.status_code
        if status >= 500:
            wrong.append(f"{method.upper()} {route.pattern}: {status}")
        elif route.kind != "public":
            to_sign_in = status == 302 and response["Location"].startswith(reverse("dashboard:login"))
            if not to_sign_in and status != 405:
                wrong.append(f"{method.upper()} {route.pattern}: {status}, not sent to sign in")

    assert not wrong, "\n".join(wrong)
    assert seats_of_acme(world) == seats


def _random_like(value):
    """An id of the same kind that names nothing."""
    if isinstance(value, int):
        return 10**9 + value
    if isinstance(value, uuid.UUID):
        return uuid.uuid4()
    return f"{value}-{uuid.uuid4().hex[:8]}"


def test_a_random_id_is_a_404_for_the_tenant_admin_too(world):
    client = signed_in("admin@acme.test")
    for route in dashboard_routes(world):
        if route.names_an_object and route.kind != "public":
            filled = {name: _random_like(value) for name, value in route.params.items()}
            url = reverse(f"dashboard:{route.name}", kwargs=filled)
            assert client.get(url).status_code in (404, 405), url


def test_the_tenant_admin_walks_every_route_without_an_error_page(world):
    client = signed_in("admin@acme.test")
    wrong = [
        f"{method.upper()} {route.pattern}: {response.status_code}"
        for route, method, response in walk(client, dashboard_routes(world))
        if response.status_code >= 500
    ]

    assert not wrong, "\n".join(wrong)


def _state(world) -> tuple:
    """What a request could change: the tenant's audit rows (every change
    writes one), its users, invites and licenses as stored, and the live seats."""
    from accounts.models import Invite, User
    from audit.models import AuditLog
    from licenses.models import License
    from tenants.scope import tenant_scope

    with tenant_scope(world["acme"].id):
        return (
            AuditLog.objects.count(),
            sorted(User.objects.values_list("email", "role", "is_active")),
            sorted((str(i.pk), i.code_digest, i.revoked_at) for i in Invite.objects.all()),
            sorted(
                (str(lic.pk), lic.key_digest, lic.suspended, str(lic.hardware_fingerprints), str(lic.blocks))
                for lic in License.objects.all()
            ),
            seats_of_acme(world),
        )


@pytest.mark.parametrize("email", ["admin@acme.test", "member@acme.test"])
def test_no_get_changes_anything(world, email):
    """No request that changes state is a GET: every route, read as a tenant
    admin and as a plain member, leaves the tenant as it was."""
    client = signed_in(email)
    before = _state(world)
    wrong = [
        f"GET {url_of(route)}: {response.status_code}"
        for route in dashboard_routes(world)
        if (response := client.get(url_of(route))).status_code >= 500
    ]
    assert not wrong
    assert _state(world) == before
