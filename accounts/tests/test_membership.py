"""Who is an active member of a tenant: the one test (User.is_active_member)
that authentication, the permissions, sign-in, refresh and the dashboard ask."""

from __future__ import annotations

import pytest

from accounts.models import User
from accounts.permissions import IsTenantMember
from accounts.tests.factories import UserFactory
from tenants.models import Tenant
from tenants.scope import tenant_scope
from tenants.tests.factories import TenantFactory

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]


class _Request:
    def __init__(self, user) -> None:
        self.user = user


def member_of_own_tenant(user) -> tuple[bool, bool]:
    with tenant_scope(user.tenant_id):
        loaded = User.objects.select_related("tenant").get(pk=user.pk)
        return loaded.is_active_member, IsTenantMember().has_permission(_Request(loaded), None)


def test_an_active_user_of_an_active_tenant_is_a_member():
    assert member_of_own_tenant(UserFactory(tenant=TenantFactory())) == (True, True)


def test_a_deactivated_user_is_not():
    assert member_of_own_tenant(UserFactory(tenant=TenantFactory(), is_active=False)) == (False, False)


def test_nobody_of_a_deactivated_tenant_is():
    user = UserFactory(tenant=TenantFactory())
    with tenant_scope(user.tenant_id):
        Tenant.objects.filter(pk=user.tenant_id).update(is_active=False)
    assert member_of_own_tenant(user) == (False, False)


def test_an_operator_is_a_member_of_no_tenant():
    assert User(email="root@coditect.test", is_staff=True).is_active_member is False


def test_a_member_of_another_tenant_is_not_a_member_here():
    user = UserFactory(tenant=TenantFactory())
    with tenant_scope(TenantFactory().id):
        assert IsTenantMember().has_permission(_Request(user), None) is False
