"""The ORM layer of isolation alone: it holds on SQLite, where there is no RLS."""

import pytest

from licenses.models import License
from licenses.tests.factories import LicenseFactory
from tenants.models import Tenant
from tenants.scope import ScopeError, operator_scope, tenant_scope
from tenants.tests.factories import TenantFactory

pytestmark = pytest.mark.embedded


@pytest.fixture
def licenses(tenant_a, tenant_b):
    return LicenseFactory(tenant=tenant_a), LicenseFactory(tenant=tenant_b)


@pytest.mark.django_db
def test_it_returns_only_the_scoped_tenants_rows(licenses, tenant_a):
    mine, theirs = licenses
    with tenant_scope(tenant_a.id):
        assert list(License.objects.all()) == [mine]
        assert not License.objects.filter(id=theirs.id).exists()
        assert list(Tenant.objects.all()) == [tenant_a]


@pytest.mark.django_db
def test_it_returns_nothing_without_a_tenant(licenses):
    assert License.objects.count() == 0
    assert Tenant.objects.count() == 0


def test_operator_scope_sees_every_tenant(committed_db):
    # The operator path is its own connection: it sees committed rows only.
    LicenseFactory(tenant=TenantFactory())
    LicenseFactory(tenant=TenantFactory())
    with operator_scope():
        assert License.objects.count() == 2
        assert Tenant.objects.count() == 2


@pytest.mark.django_db
def test_it_refuses_to_write_another_tenants_row(licenses, tenant_a):
    _, theirs = licenses
    with tenant_scope(tenant_a.id):
        theirs.max_seats = 99
        with pytest.raises(ScopeError):
            theirs.save()


@pytest.mark.django_db
def test_it_refuses_to_write_outside_any_scope(tenant_a):
    with pytest.raises(ScopeError):
        License(tenant=tenant_a, key_digest="0" * 64, key_prefix="CDT-X", max_seats=1).save()


@pytest.mark.django_db
def test_the_scope_ends_with_its_block(licenses, tenant_a):
    with tenant_scope(tenant_a.id):
        pass
    assert License.objects.count() == 0


# `fetch`, the hot paths' precompiled lookup, follows the same scope rule.


@pytest.mark.django_db
def test_fetch_finds_only_the_scoped_tenants_row(licenses, tenant_a, tenant_b):
    mine, theirs = licenses
    with tenant_scope(tenant_a.id):
        assert License.objects.fetch(id=mine.id) == mine
        assert License.objects.fetch(id=theirs.id) is None
        assert License.objects.fetch(key_digest=theirs.key_digest) is None
        assert Tenant.objects.fetch(id=tenant_a.id) == tenant_a
        assert Tenant.objects.fetch(id=tenant_b.id) is None


@pytest.mark.django_db
def test_fetch_finds_nothing_without_a_tenant(licenses):
    mine, _ = licenses
    assert License.objects.fetch(id=mine.id) is None
    assert Tenant.objects.fetch(id=mine.tenant_id) is None


def test_fetch_on_the_operator_path_sees_every_tenant(committed_db):
    first, second = LicenseFactory(tenant=TenantFactory()), LicenseFactory(tenant=TenantFactory())
    with operator_scope():
        assert License.objects.fetch(id=first.id) == first
        assert License.objects.fetch(key_digest=second.key_digest) == second


@pytest.mark.django_db
def test_fetch_gives_the_same_values_as_the_queryset(tenant_a):
    """Every column type converted back as the ORM would (UUIDs, JSON, times,
    booleans), on PostgreSQL and on SQLite alike."""
    from datetime import timedelta

    from django.utils import timezone

    with tenant_scope(tenant_a.id):
        made = LicenseFactory(
            tenant=tenant_a,
            entitlements={"features": ["export", "cloud"], "tier": "pro", "n": 3},
            hardware_fingerprints=["fp-000001", "fp-000002"],
            expires_at=timezone.now() + timedelta(days=3),
            suspended=True,
        )
        fetched, queried = License.objects.fetch(pk=made.pk), License.objects.get(pk=made.pk)
        fields = [field.attname for field in License._meta.concrete_fields]
        assert {f: getattr(fetched, f) for f in fields} == {f: getattr(queried, f) for f in fields}
        assert fetched._state.adding is False and fetched._state.db == queried._state.db


@pytest.mark.django_db
def test_fetch_loads_a_related_row_in_the_same_statement(tenant_a, member, outsider):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from accounts.models import User

    mine, theirs = member.user, outsider.user
    with tenant_scope(tenant_a.id):
        with CaptureQueriesContext(connection) as queries:
            user = User.objects.fetch(pk=mine.pk, related="tenant")
            assert user.tenant == tenant_a and user.tenant.name == tenant_a.name
        assert len(queries.captured_queries) == 1
        # The joined tenant row is held to the scope as well, not only the user row.
        assert '"tenants"."id" = ' in queries.captured_queries[0]["sql"]
        assert User.objects.fetch(pk=theirs.pk, related="tenant") is None
        expected = User.objects.select_related("tenant").get(pk=mine.pk)
        for model, fetched, queried in ((User, user, expected), (Tenant, user.tenant, expected.tenant)):
            fields = [field.attname for field in model._meta.concrete_fields]
            assert {f: getattr(fetched, f) for f in fields} == {f: getattr(queried, f) for f in fields}


def test_fetch_with_a_related_row_sees_every_tenant_only_on_the_operator_path(committed_db):
    from accounts.models import User
    from coditect.personas import tenant_member

    acme, globex = TenantFactory(), TenantFactory()
    member = tenant_member(acme).user
    with operator_scope():
        assert User.objects.fetch(pk=member.pk, related="tenant").tenant == acme
    with tenant_scope(globex.id):
        assert User.objects.fetch(pk=member.pk, related="tenant") is None


@pytest.mark.django_db
def test_the_queryset_and_fetch_apply_one_scope_rule(licenses, tenant_a, monkeypatch):
    mine, _ = licenses
    assert License.objects.scope_lookups() is None
    with operator_scope():
        assert License.objects.scope_lookups() == {}
    with tenant_scope(tenant_a.id):
        assert License.objects.scope_lookups() == {"tenant_id": tenant_a.id}
        assert Tenant.objects.scope_lookups() == {"id": tenant_a.id}
        # Closing the one rule closes both reads, even inside the row's own scope.
        monkeypatch.setattr(License.objects, "scope_lookups", lambda: None)
        assert list(License.objects.all()) == []
        assert License.objects.fetch(id=mine.id) is None
