"""The readonly role (tenants.dbroles) and the analytics read path on it (the
`replica` alias, tenants.scope.replica_scope), as PostgreSQL enforces them:
SELECT on the usage rollups and on nothing else (no other tenant table: no
password hash, webhook secret or token); every write refused, by the role's
grants alone and again by the connection's read-only transactions; under a
tenant's scope only that tenant's rows, and with no tenant in scope none. The suite's `replica` is the readonly role on
the test database (coditect/testing.py), so its rows are committed ones."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, connections, transaction

from tenants.dbroles import READONLY_TABLES
from tenants.scope import operator_scope, replica_scope, tenant_scope
from tenants.tests.factories import TenantFactory
from tenants.tests.test_rls import FACTORIES, fetch, tables

TENANT_TABLES = [*tables(), "tenants"]
READ_TABLES = list(READONLY_TABLES)


def replica_fetch(sql: str, params=()) -> list[tuple]:
    with connections["replica"].cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def tenant_column(table: str) -> str:
    return "id" if table == "tenants" else "tenant_id"


def writes(table: str) -> dict[str, str]:
    column = tenant_column(table)
    return {
        "INSERT": f'INSERT INTO "{table}" DEFAULT VALUES',
        "UPDATE": f'UPDATE "{table}" SET "{column}" = "{column}"',
        "DELETE": f'DELETE FROM "{table}"',
        "TRUNCATE": f'TRUNCATE "{table}"',
    }


@pytest.fixture
def both_tenants_have_rows(analytics_on_replica):
    acme, globex = TenantFactory(name="Acme", slug="acme"), TenantFactory(name="Globex", slug="globex")
    for tenant in (acme, globex):
        for factory in FACTORIES.values():
            factory(tenant=tenant)
    return acme, globex


def rows_per_tenant(tenant) -> dict[str, int]:
    """How many rows of each tenant table `tenant` has (read on the primary,
    as the app role: the readonly role may read the rollups only)."""
    with tenant_scope(tenant.id):
        return {table: fetch(f'SELECT count(*) FROM "{table}"')[0][0] for table in TENANT_TABLES}


@pytest.mark.postgres
def test_the_readonly_role_is_not_owner_superuser_or_bypassrls(analytics_on_replica):
    ((user, superuser, bypass, createrole, createdb),) = replica_fetch(
        "SELECT rolname, rolsuper, rolbypassrls, rolcreaterole, rolcreatedb FROM pg_roles "
        "WHERE rolname = current_user"
    )
    assert user == "coditect_test_readonly"
    assert (superuser, bypass, createrole, createdb) == (False, False, False, False)
    owners = {
        row[0]
        for row in replica_fetch(
            "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE relname = ANY(%s)", [TENANT_TABLES]
        )
    }
    assert user not in owners
    # The second guard: every transaction is read-only, by the role's own
    # setting (which a pooler keeps) and the connection's option.
    assert replica_fetch("SHOW default_transaction_read_only") == [("on",)]
    ((config,),) = replica_fetch("SELECT rolconfig FROM pg_roles WHERE rolname = current_user")
    assert "default_transaction_read_only=on" in config
    options = connections["replica"].settings_dict["OPTIONS"]["options"]
    assert "-c default_transaction_read_only=on" in options


@pytest.mark.postgres
def test_it_may_select_the_usage_rollups_and_nothing_else(analytics_on_replica):
    under_rls = {
        row[0]
        for row in replica_fetch(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relrowsecurity AND c.relforcerowsecurity"
        )
    }
    assert under_rls == set(TENANT_TABLES) and set(READ_TABLES) <= under_rls
    privileges = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")
    for table in TENANT_TABLES:
        held = {
            p for p in privileges if replica_fetch("SELECT has_table_privilege(%s, %s)", [table, p])[0][0]
        }
        assert held == ({"SELECT"} if table in READ_TABLES else set()), table
    # The tenant tables that are no chart's: refused whatever tenant a session names.
    for table in ("users", "webhook_endpoints", "refresh_tokens", "licenses"):
        with pytest.raises(DatabaseError, match="permission denied"), transaction.atomic(using="replica"):
            replica_fetch("SELECT set_config('app.current_tenant', gen_random_uuid()::text, true)")
            replica_fetch(f'SELECT count(*) FROM "{table}"')
    # The tables outside RLS (sessions, idempotency records, billing) are not its to read.
    others = [
        row[0]
        for row in replica_fetch(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind = 'r' AND NOT c.relrowsecurity"
        )
    ]
    assert "django_session" in others
    for table in others:
        assert replica_fetch("SELECT has_table_privilege(%s, 'SELECT')", [table]) == [(False,)], table
    with pytest.raises(DatabaseError, match="permission denied"), transaction.atomic(using="replica"):
        replica_fetch("SELECT count(*) FROM django_session")
    # Nor may it make anything, not even a temporary table.
    assert replica_fetch(
        "SELECT has_database_privilege(current_database(), 'TEMPORARY'), "
        "has_schema_privilege('public', 'CREATE')"
    ) == [(False, False)]


@pytest.mark.postgres
def test_every_write_to_a_tenant_table_is_refused_by_the_read_only_transactions(both_tenants_have_rows):
    acme, globex = both_tenants_have_rows
    before = [rows_per_tenant(tenant) for tenant in (acme, globex)]
    for table in TENANT_TABLES:
        for kind, sql in writes(table).items():
            # The read-only transaction refuses first where the role may read.
            with (
                pytest.raises(DatabaseError, match=r"read-only transaction|permission denied"),
                tenant_scope(acme.id, using="replica"),
            ):
                replica_fetch(sql)
            assert not connections["replica"].in_atomic_block, (table, kind)
    assert [rows_per_tenant(tenant) for tenant in (acme, globex)] == before


@pytest.mark.postgres
def test_every_write_to_a_tenant_table_is_refused_by_the_roles_grants_alone(both_tenants_have_rows):
    """With the read-only transaction lifted (as a connection made without
    the option would be), the role's grants still refuse each write."""
    acme, globex = both_tenants_have_rows
    before = [rows_per_tenant(tenant) for tenant in (acme, globex)]
    for table in TENANT_TABLES:
        for kind, sql in writes(table).items():
            with pytest.raises(DatabaseError, match="permission denied"), transaction.atomic(using="replica"):
                with connections["replica"].cursor() as cursor:
                    cursor.execute("SET TRANSACTION READ WRITE")
                    cursor.execute("SELECT set_config('app.current_tenant', %s, true)", [str(acme.id)])
                    cursor.execute(sql)
            assert not connections["replica"].in_atomic_block, (table, kind)
    assert [rows_per_tenant(tenant) for tenant in (acme, globex)] == before


@pytest.mark.postgres
def test_under_a_tenants_scope_it_reads_only_that_tenants_rows(both_tenants_have_rows):
    acme, globex = both_tenants_have_rows
    with tenant_scope(acme.id), replica_scope() as alias:
        assert alias == "replica"
        for table in READ_TABLES:
            owners = {row[0] for row in replica_fetch(f'SELECT tenant_id FROM "{table}"')}
            assert owners == {acme.id}, table
            assert replica_fetch(f'SELECT count(*) FROM "{table}" WHERE tenant_id = %s', [globex.id]) == [
                (0,)
            ]
        # Through the ORM without its own tenant filter (the base manager): RLS alone.
        for model in (model for model in FACTORIES if model._meta.db_table in READ_TABLES):
            seen = set(model._base_manager.using(alias).values_list("tenant_id", flat=True))
            assert seen == {acme.id}, model.__name__


@pytest.mark.postgres
def test_with_no_tenant_in_scope_it_reads_no_tenant_rows(both_tenants_have_rows):
    with replica_scope() as alias:
        assert alias == "replica"
        for table in READ_TABLES:
            assert replica_fetch(f'SELECT count(*) FROM "{table}"') == [(0,)], table
    # Nor outside any transaction (autocommit).
    for table in READ_TABLES:
        assert replica_fetch(f'SELECT count(*) FROM "{table}"') == [(0,)], table


@pytest.mark.postgres
def test_the_tenant_set_on_the_replica_ends_with_its_transaction(both_tenants_have_rows):
    acme, _ = both_tenants_have_rows
    with tenant_scope(acme.id), replica_scope():
        assert replica_fetch("SELECT current_setting('app.current_tenant', true)") == [(str(acme.id),)]
    assert replica_fetch("SELECT current_setting('app.current_tenant', true)")[0][0] in ("", None)
    assert replica_fetch("SELECT count(*) FROM usage_daily") == [(0,)]


@pytest.mark.postgres
def test_nested_in_a_replica_transaction_the_outer_tenant_comes_back(both_tenants_have_rows):
    acme, globex = both_tenants_have_rows
    with tenant_scope(globex.id, using="replica"):
        with tenant_scope(acme.id), replica_scope():
            assert {row[0] for row in replica_fetch("SELECT tenant_id FROM usage_daily")} == {acme.id}
        assert {row[0] for row in replica_fetch("SELECT tenant_id FROM usage_daily")} == {globex.id}


@pytest.mark.embedded
def test_without_a_replica_the_reads_are_the_primarys_and_operator_work_stays_on_its_path(settings):
    settings.REPLICA_DATABASE = "default"
    with replica_scope() as alias:
        assert alias == "default"
    settings.REPLICA_DATABASE = "replica"
    with operator_scope(), replica_scope() as alias:
        # The readonly role has no BYPASSRLS: operator reads would see nothing there.
        assert alias == settings.OPERATOR_DATABASE
