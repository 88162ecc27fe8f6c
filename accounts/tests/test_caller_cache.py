"""The caller of acquire and status, read at most every CALLER_CACHE_SECONDS
(issue 18): what this process changes is seen at once, what another process
changes within that age, refusals are never kept, and no caller is ever
another's. Run on both passes."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts import selectors
from accounts.models import RefreshToken, Role, User
from accounts.services import user_set_active
from accounts.tests.factories import TEST_PASSWORD, UserFactory
from coditect.personas import call, tenant_admin, tenant_member
from licenses.tests.factories import LicenseFactory
from tenants.models import Tenant
from tenants.scope import tenant_scope
from tenants.tests.factories import TenantFactory

pytestmark = [pytest.mark.embedded]

STATUS = "/api/v1/licenses/status"
ME = "/api/v1/auth/me"


@pytest.fixture(autouse=True)
def quick_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def fresh_cache():
    selectors._callers.clear()
    yield
    selectors._callers.clear()


@pytest.fixture
def acme(committed_db):
    return TenantFactory(name="Acme", slug="acme")


def sign_in(api, email: str) -> dict:
    response = call(api, "POST", "/api/v1/auth/login", {"email": email, "password": TEST_PASSWORD})
    assert response.status_code == 200, response.content
    return response.json()


def status(api, pair: dict) -> int:
    response = call(api, "GET", STATUS, token=pair["access_token"])
    if response.status_code == 401:
        assert response.json()["error"]["code"] == "not_authenticated"
    return response.status_code


def caller_reads(api, pair: dict, path: str = STATUS) -> list[str]:
    """The statements one call makes that read the caller or its sign-in."""
    with CaptureQueriesContext(connection) as captured:
        assert call(api, "GET", path, token=pair["access_token"]).status_code == 200
    return [
        query["sql"]
        for query in captured.captured_queries
        if '"users"' in query["sql"] or '"refresh_tokens"' in query["sql"]
    ]


def test_a_warm_caller_is_not_read_again_within_its_age_and_is_after(api, acme, settings, cache_clock):
    tenant_admin(acme)
    pair = sign_in(api, "admin@acme.test")
    assert caller_reads(api, pair) != []  # the first call reads the user and the sign-in
    assert caller_reads(api, pair) == []
    cache_clock(settings.CALLER_CACHE_SECONDS + 0.1)
    assert caller_reads(api, pair) != []
    # A view that does not say `caller_cache` reads them on every call.
    assert caller_reads(api, pair, ME) != [] and caller_reads(api, pair, ME) != []


def test_with_the_cache_off_every_call_reads_the_caller(api, acme, settings):
    settings.CALLER_CACHE_SECONDS = 0
    tenant_admin(acme)
    pair = sign_in(api, "admin@acme.test")
    assert caller_reads(api, pair) != [] and caller_reads(api, pair) != []


def test_a_logout_in_this_process_is_refused_at_once(api, acme):
    tenant_admin(acme)
    pair = sign_in(api, "admin@acme.test")
    assert status(api, pair) == 200
    assert (
        call(api, "POST", "/api/v1/auth/logout", {"refresh_token": pair["refresh_token"]}).status_code == 204
    )
    assert status(api, pair) == 401


def test_a_deactivation_in_this_process_is_refused_at_once(api, acme):
    admin = tenant_admin(acme).user
    member = tenant_member(acme).user
    pair = sign_in(api, member.email)
    assert status(api, pair) == 200
    with tenant_scope(acme.id):
        user_set_active(user=member, active=False, actor=admin)
    assert status(api, pair) == 401


def test_a_demotion_in_this_process_is_seen_at_once(api, acme):
    admin = tenant_admin(acme).user
    UserFactory(tenant=acme, role=Role.TENANT_ADMIN, email="second@acme.test")  # the tenant keeps an admin
    license = LicenseFactory(tenant=acme, max_seats=2)
    pair = sign_in(api, admin.email)
    key = {"HTTP_X_LICENSE_KEY": license.key}
    assert call(api, "GET", STATUS, token=pair["access_token"], **key).status_code == 200
    with tenant_scope(acme.id):
        admin.role = Role.READ_ONLY
        admin.save(update_fields=["role"])
    body = {"license_key": license.key, "hardware_fingerprint": "machine-0001"}
    refused = call(api, "POST", "/api/v1/licenses/acquire", body, token=pair["access_token"])
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "permission_denied")


@pytest.mark.parametrize("change", ["user deactivated", "tenant deactivated", "sign-in revoked"])
def test_a_change_another_process_made_is_seen_within_the_age_and_never_kept_past_it(
    api, acme, settings, cache_clock, change
):
    """Another process's change reaches this one's cache only by its age: the
    change is made here as that process would, by a statement this process's
    receivers do not hear."""
    member = tenant_member(acme).user
    tenant_admin(acme)
    pair = sign_in(api, member.email)
    assert status(api, pair) == 200
    with tenant_scope(acme.id):
        if change == "user deactivated":
            User.objects.filter(pk=member.pk).update(is_active=False)
        elif change == "tenant deactivated":
            Tenant.objects.filter(pk=acme.pk).update(is_active=False)
        else:
            RefreshToken.objects.filter(user_id=member.pk).update(revoked_at=member.date_joined)
    # /auth/me reads the caller on every call; status within the cache's age.
    assert call(api, "GET", ME, token=pair["access_token"]).status_code == 401
    cache_clock(settings.CALLER_CACHE_SECONDS - 1)
    assert status(api, pair) == 200
    cache_clock(1.1)
    assert status(api, pair) == 401
    assert status(api, pair) == 401  # a refusal is not kept either way: read again


def test_a_refusal_is_not_kept(api, acme):
    member = tenant_member(acme).user
    admin = tenant_admin(acme).user
    pair = sign_in(api, member.email)
    with tenant_scope(acme.id):
        user_set_active(user=member, active=False, actor=admin)
    assert status(api, pair) == 401
    with tenant_scope(acme.id):
        user_set_active(user=member, active=True, actor=admin)
    # Reactivated: its old sign-in stays ended (issue 13), a new one works at once.
    assert status(api, pair) == 401
    assert status(api, sign_in(api, member.email)) == 200


def test_each_caller_is_its_own_across_users_and_tenants(api, acme):
    """Warm entries for every caller at once: each call still gets the user
    its token names, of its own tenant, and sees that tenant's licenses only."""
    globex = TenantFactory(name="Globex", slug="globex")
    people = {
        "admin@acme.test": (tenant_admin(acme).user, LicenseFactory(tenant=acme, name="Acme Pro")),
        "admin@globex.test": (tenant_admin(globex).user, LicenseFactory(tenant=globex, name="Globex Pro")),
        "member@acme.test": (tenant_member(acme).user, None),
    }
    pairs = {email: sign_in(api, email) for email in people}
    for _ in range(2):
        for email, pair in pairs.items():
            me = call(api, "GET", STATUS, token=pair["access_token"])
            assert me.status_code == 200
            names = [entry["name"] for entry in me.json()["licenses"]]
            tenant = people[email][0].tenant
            assert names == (["Acme Pro"] if tenant.slug == "acme" else ["Globex Pro"])
    assert len(selectors._callers._entries) == 3


def test_each_call_gets_its_own_copy_of_the_cached_row(acme):
    member = tenant_member(acme).user
    loads = []

    def load():
        loads.append(1)
        return member

    ids = {"tenant_id": acme.id, "user_id": member.id, "family_id": member.id}
    first = selectors.caller_get_cached(**ids, load=load)
    first.full_name = "changed by one request"
    second = selectors.caller_get_cached(**ids, load=load)
    assert loads == [1] and second.pk == member.pk and second.full_name != "changed by one request"
    first.tenant.name = "changed by one request too"
    assert selectors.caller_get_cached(**ids, load=load).tenant.name != "changed by one request too"


def test_a_standing_or_caller_read_before_the_change_commits_is_forgotten_when_it_commits(acme):
    member = tenant_member(acme).user
    standing = (str(acme.id), str(member.pk))
    with tenant_scope(acme.id):  # the change's transaction
        member.is_active = False
        member.save(update_fields=["is_active"])
        # Another thread's reads, after the save forgot them and before the commit.
        selectors._standing.put(standing, "")
        selectors._callers.put((str(acme.id), str(member.pk), "family"), member)
    assert (
        selectors.seat_holder_standing(user_id=str(member.pk), tenant_id=acme.id) == selectors.USER_INACTIVE
    )
    assert selectors._callers._entries == {}


def test_a_change_on_the_operator_path_forgets_again_when_it_commits_there(acme, api, settings):
    """The console saves on the operator database: its commit, not
    `default`'s, is when what another thread read meanwhile goes."""
    from django.db import transaction

    from licenses import selectors as license_selectors
    from tenants.scope import operator_scope

    member = tenant_member(acme).user
    tenant_admin(acme)
    license = LicenseFactory(tenant=acme, max_seats=2)
    pair = sign_in(api, member.email)
    assert status(api, pair) == 200
    [(caller_key, stale_caller)] = selectors._callers._entries.items()
    license_key = (str(acme.id), str(license.pk))
    stale_license = license_selectors.license_get_cached(license_id=license.pk, tenant_id=acme.id)
    with operator_scope(), transaction.atomic(using=settings.OPERATOR_DATABASE):
        row = User.objects.get(pk=member.pk)
        row.is_active = False
        row.save(update_fields=["is_active"])
        suspended = license.__class__.objects.get(pk=license.pk)
        suspended.suspended = True
        suspended.save(update_fields=["suspended"])
        # Another thread's reads, after the saves forgot them and before the commit.
        selectors._callers.put(caller_key, stale_caller[2])
        license_selectors._licenses.put(license_key, stale_license)
    assert status(api, pair) == 401
    assert license_selectors.license_get_cached(license_id=license.pk, tenant_id=acme.id).suspended is True
