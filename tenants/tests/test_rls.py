"""Row-level security, tried as the app role. These need PostgreSQL: the
embedded default (SQLite) has only the ORM layer."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.db import DatabaseError, connection, transaction

from accounts.models import ApiKey, Invite, RefreshToken, User
from accounts.tests.factories import ApiKeyFactory, InviteFactory, RefreshTokenFactory, UserFactory
from analytics.models import DailyUsage, HourlyUsage, MonthlyReport, UsageRollupRun
from analytics.tests.factories import (
    DailyUsageFactory,
    HourlyUsageFactory,
    MonthlyReportFactory,
    UsageRollupRunFactory,
)
from audit.models import AuditLog
from audit.tests.factories import AuditLogFactory
from licenses.models import BorrowedLease, Lease, LeaseTicket, License, LicenseClaim, LicenseNotice
from licenses.tests.factories import (
    BorrowedLeaseFactory,
    LeaseFactory,
    LeaseTicketFactory,
    LicenseClaimFactory,
    LicenseFactory,
    LicenseNoticeFactory,
)
from tenants.models import Tenant
from tenants.scope import tenant_scope
from webhooks.models import Delivery, DeliveryAttempt, Endpoint, Message
from webhooks.tests.factories import DeliveryAttemptFactory, DeliveryFactory, EndpointFactory, MessageFactory

# Every tenant-owned model, with a factory to make its rows. A new model with a
# tenant foreign key fails `test_every_tenant_owned_model_is_covered` until it
# is added here, and then every test below tries to break into it.
FACTORIES = {
    User: UserFactory,
    License: LicenseFactory,
    AuditLog: AuditLogFactory,
    Lease: LeaseFactory,
    BorrowedLease: BorrowedLeaseFactory,
    LeaseTicket: LeaseTicketFactory,
    Invite: InviteFactory,
    RefreshToken: RefreshTokenFactory,
    ApiKey: ApiKeyFactory,
    HourlyUsage: HourlyUsageFactory,
    DailyUsage: DailyUsageFactory,
    UsageRollupRun: UsageRollupRunFactory,
    MonthlyReport: MonthlyReportFactory,
    LicenseClaim: LicenseClaimFactory,
    LicenseNotice: LicenseNoticeFactory,
    Endpoint: EndpointFactory,
    Message: MessageFactory,
    Delivery: DeliveryFactory,
    DeliveryAttempt: DeliveryAttemptFactory,
}

pytestmark = pytest.mark.django_db


def tenant_owned_models() -> list:
    return [
        model
        for model in apps.get_models()
        if any(field.many_to_one and field.related_model is Tenant for field in model._meta.fields)
    ]


def tables() -> list[str]:
    return [model._meta.db_table for model in tenant_owned_models()]


def fetch(sql: str, params=()) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


@pytest.fixture
def both_tenants_have_rows(tenant_a, tenant_b):
    for tenant in (tenant_a, tenant_b):
        for factory in FACTORIES.values():
            factory(tenant=tenant)
    return tenant_a, tenant_b


def test_every_tenant_owned_model_is_covered():
    missing = [model.__name__ for model in tenant_owned_models() if model not in FACTORIES]
    assert not missing, f"add a factory for {missing} to FACTORIES so isolation is tested"


def test_app_role_reads_only_the_scoped_tenants_rows(both_tenants_have_rows):
    tenant_a, tenant_b = both_tenants_have_rows
    with tenant_scope(tenant_a.id):
        for table in tables():
            owners = {row[0] for row in fetch(f'SELECT tenant_id FROM "{table}"')}
            assert owners == {tenant_a.id}, table
            assert fetch(f'SELECT count(*) FROM "{table}" WHERE tenant_id = %s', [tenant_b.id]) == [(0,)]
        assert {row[0] for row in fetch("SELECT id FROM tenants")} == {tenant_a.id}


@pytest.mark.parametrize("model", tenant_owned_models(), ids=lambda m: m._meta.db_table)
def test_app_role_cannot_insert_a_row_for_another_tenant(model, tenant_a, tenant_b):
    row = FACTORIES[model].build(tenant=tenant_b)
    with tenant_scope(tenant_a.id):
        with pytest.raises(DatabaseError, match="row-level security"), transaction.atomic():
            # bulk_create skips the ORM's own scope check: only RLS stands in the way.
            model.objects.bulk_create([row])


def test_app_role_cannot_create_a_tenant_outside_its_scope(tenant_a):
    with tenant_scope(tenant_a.id):
        with pytest.raises(DatabaseError, match="row-level security"), transaction.atomic():
            fetch(
                "INSERT INTO tenants (id, name, slug, is_active, created_at, updated_at) "
                "VALUES (gen_random_uuid(), 'Evil', 'evil', true, now(), now()) RETURNING id"
            )


@pytest.mark.parametrize("table", [t for t in tables() if t != "audit_logs"])
def test_app_role_cannot_move_a_row_to_another_tenant(table, both_tenants_have_rows):
    tenant_a, tenant_b = both_tenants_have_rows
    with tenant_scope(tenant_a.id):
        with pytest.raises(DatabaseError, match="row-level security"), transaction.atomic():
            fetch(
                f'UPDATE "{table}" SET tenant_id = %s WHERE tenant_id = %s RETURNING 1',
                [tenant_b.id, tenant_a.id],
            )
        # And the other tenant's rows are out of reach of UPDATE and DELETE alike.
        with connection.cursor() as cursor:
            cursor.execute(f'UPDATE "{table}" SET tenant_id = tenant_id WHERE tenant_id = %s', [tenant_b.id])
            assert cursor.rowcount == 0


def test_no_tenant_in_scope_means_zero_rows(both_tenants_have_rows):
    with transaction.atomic():
        assert fetch("SELECT current_setting('app.current_tenant', true)")[0][0] in ("", None)
        for table in [*tables(), "tenants"]:
            assert fetch(f'SELECT count(*) FROM "{table}"') == [(0,)], table


def test_app_role_is_not_owner_superuser_or_bypassrls():
    ((user, superuser, bypass),) = fetch(
        "SELECT rolname, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user"
    )
    assert (superuser, bypass) == (False, False)
    for table in [*tables(), "tenants"]:
        ((owner, rls, forced),) = fetch(
            "SELECT pg_get_userbyid(relowner), relrowsecurity, relforcerowsecurity FROM pg_class "
            "WHERE relname = %s AND relkind = 'r'",
            [table],
        )
        assert owner != user, table
        assert rls and forced, f"{table} lacks ENABLE/FORCE ROW LEVEL SECURITY"
        policies = fetch("SELECT qual, with_check FROM pg_policies WHERE tablename = %s", [table])
        assert len(policies) == 1, table
        using, check = policies[0]
        assert "app.current_tenant" in using and "app.current_tenant" in check, table
