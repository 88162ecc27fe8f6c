"""The audit log: one row per event, append-only in the database, and a hash
chain whose first broken link `audit_verify` names."""

import io
import json
import re

import psycopg
import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, connections, transaction
from django.urls import reverse

from accounts.tests.factories import TEST_PASSWORD, UserFactory
from audit.models import AuditLog
from audit.services import audit_record, audit_record_standalone
from coditect.personas import call
from coditect.testing import owner_connection_url
from tenants.scope import operator_scope, tenant_scope
from tenants.tests.factories import TenantFactory

pytestmark = pytest.mark.usefixtures("test_events")

PASSWORD = "a long enough passphrase 42"


class Log:
    """What the log gained since the last look."""

    def __init__(self):
        self.seen = 0

    def new(self) -> list[tuple[str, object]]:
        with operator_scope():
            rows = list(AuditLog.objects.filter(id__gt=self.seen).order_by("id"))
        if rows:
            self.seen = rows[-1].id
        return [(row.action, row.tenant_id) for row in rows]


def verify(*args) -> dict:
    out = io.StringIO()
    call_command("audit_verify", *args, stdout=out)
    return json.loads(out.getvalue())


@pytest.mark.embedded
def test_each_action_leaves_exactly_one_row(committed_db, api):
    log = Log()
    created = call(
        api,
        "POST",
        "/api/v1/auth/register",
        {"email": "ada@a.test", "password": PASSWORD, "tenant_name": "A"},
    )
    tenant = created.json()["tenant"]["id"]
    assert [a for a, _ in log.new()] == ["tenant.created", "user.registered"]

    ada = call(api, "POST", "/api/v1/auth/login", {"email": "ada@a.test", "password": PASSWORD}).json()
    assert [(a, str(t)) for a, t in log.new()] == [("auth.login", tenant)]

    call(api, "POST", "/api/v1/auth/login", {"email": "ada@a.test", "password": "wrong" * 3})
    assert [(a, str(t)) for a, t in log.new()] == [("auth.login_failed", tenant)]
    call(api, "POST", "/api/v1/auth/login", {"email": "nobody@a.test", "password": "wrong" * 3})
    assert log.new() == [("auth.login_failed", None)]  # no tenant: the operator chain

    invite = call(api, "POST", "/api/v1/invites", {}, token=ada["access_token"]).json()
    assert [a for a, _ in log.new()] == ["invite.created"]
    call(
        api,
        "POST",
        "/api/v1/auth/register",
        {"email": "bob@a.test", "password": PASSWORD, "invite_code": invite["code"]},
    )
    assert [a for a, _ in log.new()] == ["invite.redeemed", "user.registered"]

    bob = call(api, "POST", "/api/v1/auth/login", {"email": "bob@a.test", "password": PASSWORD}).json()
    assert [a for a, _ in log.new()] == ["auth.login"]
    rotated = call(api, "POST", "/api/v1/auth/refresh", {"refresh_token": bob["refresh_token"]}).json()
    assert log.new() == []  # a routine refresh is not an event
    call(api, "POST", "/api/v1/auth/refresh", {"refresh_token": bob["refresh_token"]})
    assert [a for a, _ in log.new()] == ["auth.refresh_reused"]
    call(api, "POST", "/api/v1/auth/logout", {"refresh_token": rotated["refresh_token"]})
    assert [a for a, _ in log.new()] == ["auth.logout"]

    second = call(api, "POST", "/api/v1/invites", {}, token=ada["access_token"]).json()
    log.new()
    call(api, "DELETE", f"/api/v1/invites/{second['id']}", token=ada["access_token"])
    assert [a for a, _ in log.new()] == ["invite.revoked"]

    with operator_scope():
        row = AuditLog.objects.filter(action="auth.login").first()
    assert row.ip_address == "127.0.0.1"
    assert row.request_id
    assert verify()["ok"] is True


# --- the admin site ------------------------------------------------------------------


@pytest.fixture
def operator_client(committed_db, client):
    from django.apps import apps
    from django.contrib.contenttypes.management import create_contenttypes
    from django.contrib.contenttypes.models import ContentType

    from accounts.models import User

    # committed_db empties every table, content types too, after each test; the
    # admin log points at them, so they are made again (and the cache forgotten).
    ContentType.objects.clear_cache()
    for app_config in apps.get_app_configs():
        create_contenttypes(app_config, verbosity=0)
    with operator_scope():
        operator = User.objects.create_superuser("root@coditect.test", TEST_PASSWORD)
        client.force_login(operator)
    return client


def admin_url(obj, view="change"):
    return reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_{view}", args=[obj.pk])


def test_every_registered_admin_is_audited():
    from django.contrib import admin

    from audit.admin import AuditedAdminMixin

    assert all(isinstance(model_admin, AuditedAdminMixin) for model_admin in admin.site._registry.values())


@pytest.mark.embedded
def test_an_admin_change_leaves_one_row_in_the_objects_tenant_chain(operator_client):
    tenant = TenantFactory(name="Acme", slug="acme")
    log = Log()
    response = operator_client.post(
        admin_url(tenant), {"name": "Acme Renamed", "slug": "acme", "is_active": "on"}
    )
    assert response.status_code == 302, response.content[:2000]
    assert log.new() == [("admin.changed", tenant.id)]
    with operator_scope():
        row = AuditLog.objects.get(action="admin.changed")
    assert row.actor == "root@coditect.test"
    assert row.details["change"] == [{"changed": {"fields": ["Name"]}}]


@pytest.mark.embedded
def test_an_admin_deletion_leaves_one_row(operator_client):
    user = UserFactory(tenant=TenantFactory())
    log = Log()
    response = operator_client.post(admin_url(user, "delete"), {"post": "yes"})
    assert response.status_code == 302
    assert log.new() == [("admin.deleted", user.tenant_id)]


@pytest.mark.embedded
def test_a_bulk_admin_deletion_leaves_one_row_per_object(operator_client):
    tenant = TenantFactory()
    users = [UserFactory(tenant=tenant) for _ in range(2)]
    log = Log()
    response = operator_client.post(
        reverse("admin:accounts_user_changelist"),
        {"action": "delete_selected", "_selected_action": [str(u.pk) for u in users], "post": "yes"},
    )
    assert response.status_code == 302
    assert log.new() == [("admin.deleted", tenant.id), ("admin.deleted", tenant.id)]


@pytest.mark.embedded
def test_an_admin_addition_a_service_records_is_not_recorded_twice(operator_client):
    tenant = TenantFactory()
    add = reverse("admin:licenses_license_add")
    # The add form's one-time token (a double click creates one license).
    once = re.search(r'name="once" value="([^"]+)"', operator_client.get(add).content.decode()).group(1)
    log = Log()
    response = operator_client.post(
        add,
        {
            "once": once,
            "tenant": str(tenant.id),
            "name": "CAD seats",
            "max_seats": "3",
            "hardware_fingerprints": "[]",
            "entitlements": "{}",
            "lease_ttl": "360",
            "offline_grace": "86400",
            "borrow_limit_hours": "72",
        },
    )
    # 303: to the page that shows the key, once (licenses/admin.py).
    assert response.status_code == 303, response.content.decode()[:3000]
    # license_create wrote its own row for the license: that is the one record.
    assert log.new() == [("license.created", tenant.id)]


# --- append-only ---------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(databases=["default", "operator"])
def test_the_app_and_operator_roles_cannot_update_delete_or_truncate_the_log(tenant_a):
    with tenant_scope(tenant_a.id):
        audit_record(action="test.event", tenant_id=tenant_a.id)
    for alias in ("default", "operator"):
        for statement in (
            "UPDATE audit_logs SET action = 'forged'",
            "DELETE FROM audit_logs",
            "TRUNCATE audit_logs",
        ):
            with pytest.raises(DatabaseError, match="permission denied"), transaction.atomic(using=alias):
                with connections[alias].cursor() as cursor:
                    cursor.execute(statement)
    with tenant_scope(tenant_a.id):
        assert AuditLog.objects.filter(action="test.event").count() == 1


@pytest.mark.postgres
def test_a_regranted_privilege_still_meets_the_trigger(committed_db):
    tenant = TenantFactory()
    with tenant_scope(tenant.id):
        audit_record(action="test.event", tenant_id=tenant.id)
    app_role = connection.settings_dict["USER"]
    with psycopg.connect(owner_connection_url(), autocommit=True) as owner:
        owner.execute(f'GRANT UPDATE, DELETE ON audit_logs TO "{app_role}"')
        try:
            for statement in ("UPDATE audit_logs SET action = 'forged'", "DELETE FROM audit_logs"):
                with pytest.raises(DatabaseError, match="append-only"), tenant_scope(tenant.id):
                    with connection.cursor() as cursor:
                        cursor.execute(statement)
        finally:
            owner.execute(f'REVOKE UPDATE, DELETE ON audit_logs FROM "{app_role}"')


# --- the hash chain ---------------------------------------------------------------------------


def _rows(tenant, count=3):
    rows = []
    for n in range(count):
        with tenant_scope(tenant.id):
            rows.append(audit_record(action="test.event", tenant_id=tenant.id, details={"n": n}))
    return rows


@pytest.mark.postgres
def test_editing_a_row_as_the_owner_makes_audit_verify_name_it(committed_db):
    acme, globex = TenantFactory(slug="acme"), TenantFactory(slug="globex")
    rows, _ = _rows(acme), _rows(globex)
    assert verify()["ok"] is True

    with psycopg.connect(owner_connection_url(), autocommit=True) as owner:
        # FORCE row-level security holds for the owner too: it must name the tenant.
        owner.execute("SELECT set_config('app.current_tenant', %s, false)", [str(acme.id)])
        updated = owner.execute(
            "UPDATE audit_logs SET details = '{\"n\": 99}' WHERE id = %s", [rows[1].id]
        ).rowcount
    assert updated == 1

    with pytest.raises(CommandError, match=f"broken at row {rows[1].id}") as broken:
        verify()
    assert broken.value.returncode == 1
    with pytest.raises(CommandError, match=f"broken at row {rows[1].id}"):
        verify("--tenant", "acme")
    assert verify("--tenant", "globex")["ok"] is True


@pytest.mark.postgres
def test_deleting_a_row_as_the_owner_breaks_the_next_link(committed_db):
    acme = TenantFactory(slug="acme")
    rows = _rows(acme)
    with psycopg.connect(owner_connection_url(), autocommit=True) as owner:
        owner.execute("SELECT set_config('app.current_tenant', %s, false)", [str(acme.id)])
        owner.execute("DELETE FROM audit_logs WHERE id = %s", [rows[1].id])
    out = io.StringIO()
    with pytest.raises(CommandError, match=f"broken at row {rows[2].id}"):
        call_command("audit_verify", "--tenant", str(acme.id), stdout=out)
    report = json.loads(out.getvalue())
    assert report["ok"] is False
    assert report["chains"][0]["broken_at"] == rows[2].id


@pytest.mark.embedded
def test_audit_verify_names_an_edited_row_on_the_embedded_default(committed_db):
    if connection.vendor != "sqlite":
        pytest.skip("PostgreSQL is tried as the owner above")
    acme = TenantFactory(slug="acme")
    rows = _rows(acme)
    AuditLog.unscoped.filter(id=rows[0].id).update(actor="mallory")
    with pytest.raises(CommandError, match=f"broken at row {rows[0].id}"):
        verify("--tenant", "acme")


def test_audit_verify_refuses_an_unknown_tenant(committed_db):
    with pytest.raises(CommandError, match="no tenant"):
        call_command("audit_verify", "--tenant", "nope")


@pytest.mark.embedded
def test_racing_appends_to_one_chain_leave_one_unbroken_chain(committed_db):
    """Threads appending to the same tenant's chain (and to the operator chain)
    at once: every row lands, each links to exactly one predecessor, and the
    hash the database computed is the one Python recomputes."""
    import threading

    acme = TenantFactory(slug="acme")
    threads, per_thread = 8, 15
    start, errors = threading.Barrier(threads), []

    def append(n):
        try:
            start.wait()
            for i in range(per_thread):
                if n % 2:  # half in a transaction of their own, as the license-token endpoints write
                    audit_record_standalone(
                        action="test.race", tenant_id=acme.id, details={"thread": n, "i": i}
                    )
                else:
                    with tenant_scope(acme.id):
                        audit_record(action="test.race", tenant_id=acme.id, details={"thread": n, "i": i})
                if i % 5 == 0:
                    audit_record(action="test.race", actor="system", details={"thread": n, "i": i})
        except Exception as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    workers = [threading.Thread(target=append, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert errors == []

    with operator_scope():
        rows = list(AuditLog.objects.filter(tenant_id=acme.id, action="test.race").order_by("id"))
        links = list(AuditLog.objects.filter(tenant_id=acme.id).values_list("prev_hash", flat=True))
    assert len(rows) == threads * per_thread
    assert len(set(links)) == len(links)  # no two rows claim the same predecessor: no fork
    report = verify()
    assert report["ok"] is True
    assert {chain["tenant"]: chain["rows"] for chain in report["chains"]}[None] >= threads * 3


@pytest.mark.embedded
def test_the_returned_row_is_the_stored_row(committed_db):
    from audit.services import audit_row_hash

    acme = TenantFactory(slug="acme")
    with tenant_scope(acme.id):
        first = audit_record(action="test.one", tenant_id=acme.id, details={"a": [1, "x"], "b": None})
        second = audit_record(action="test.two", tenant_id=acme.id, actor="someone")
        stored = {row.id: row for row in AuditLog.objects.filter(id__in=[first.id, second.id])}
    assert second.prev_hash == first.hash
    for row in (first, second):
        assert (stored[row.id].prev_hash, stored[row.id].hash) == (row.prev_hash, row.hash)
        assert audit_row_hash(stored[row.id]) == row.hash


@pytest.mark.postgres
def test_a_standalone_event_is_one_statement_that_leaves_no_tenant_behind(committed_db):
    from django.test.utils import CaptureQueriesContext

    from audit.services import audit_row_hash

    acme, globex = TenantFactory(slug="acme"), TenantFactory(slug="globex")
    with CaptureQueriesContext(connection) as queries:
        row = audit_record_standalone(action="test.alone", tenant_id=acme.id, details={"n": 1})
    assert [q["sql"].split("(")[0] for q in queries.captured_queries] == [
        "SELECT id, prev_hash, hash FROM audit_append"
    ]
    with connection.cursor() as cursor:
        cursor.execute("SELECT coalesce(current_setting('app.current_tenant', true), '')")
        assert cursor.fetchone() == ("",)  # the setting ended with its statement
    with tenant_scope(acme.id):
        stored = AuditLog.objects.get(id=row.id)
    assert audit_row_hash(stored) == stored.hash == row.hash
    with tenant_scope(globex.id):
        assert not AuditLog.objects.filter(id=row.id).exists()


@pytest.mark.embedded
def test_a_standalone_event_inside_a_transaction_stands_or_falls_with_it(committed_db):
    acme = TenantFactory(slug="acme")
    with pytest.raises(RuntimeError), tenant_scope(acme.id):
        audit_record_standalone(action="test.rolled_back", tenant_id=acme.id)
        raise RuntimeError
    audit_record_standalone(action="test.kept", tenant_id=acme.id)
    with tenant_scope(acme.id):
        actions = list(AuditLog.objects.filter(action__startswith="test.").values_list("action", flat=True))
    assert actions == ["test.kept"]


@pytest.mark.postgres
def test_a_chain_begun_before_the_link_changed_still_verifies_and_still_catches_edits(committed_db):
    """Rows linked the old way (one JSON document of fields and prev_hash),
    followed by rows of audit_append(): one chain, verified whole."""
    from audit.services import audit_row_hash_before_0003

    acme = TenantFactory(slug="acme")
    rows = _rows(acme, count=2)
    with psycopg.connect(owner_connection_url(), autocommit=True) as owner:
        owner.execute("SELECT set_config('app.current_tenant', %s, false)", [str(acme.id)])
        previous = ""
        for row in rows:  # relink both the way rows were linked before migration 0003
            row.prev_hash = previous
            row.hash = audit_row_hash_before_0003(row)
            owner.execute(
                "UPDATE audit_logs SET prev_hash = %s, hash = %s WHERE id = %s",
                [row.prev_hash, row.hash, row.id],
            )
            previous = row.hash
    with tenant_scope(acme.id):
        newer = audit_record(action="test.after", tenant_id=acme.id)
    assert newer.prev_hash == rows[-1].hash
    assert verify("--tenant", "acme")["ok"] is True

    with psycopg.connect(owner_connection_url(), autocommit=True) as owner:
        owner.execute("SELECT set_config('app.current_tenant', %s, false)", [str(acme.id)])
        owner.execute("UPDATE audit_logs SET actor = 'mallory' WHERE id = %s", [rows[0].id])
    with pytest.raises(CommandError, match=f"broken at row {rows[0].id}"):
        verify("--tenant", "acme")
