"""An audit row's own page in the console is a page a support person reads
(issue 14): the time in the console's one format with its zone, the action in
words, who did it, the tenant and the target named and linked, each detail on
its own row (times formatted, none as "—", user ids as emails), and nothing to
save or delete. Tenants of one name are told apart in the filters.
"""

from __future__ import annotations

import html
import re
from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import Role
from accounts.services import invite_create
from accounts.tests.factories import UserFactory
from audit.events import Event
from audit.models import AuditLog
from audit.readable import ACTION_WORDS, value_text
from audit.services import audit_record
from core.context import request_context
from core.dates import when
from licenses.services import ExpiryChange, license_extend, license_regenerate_key, license_suspend
from licenses.tests import test_admin
from licenses.tests.factories import LicenseFactory
from licenses.tests.test_admin import fresh, make_operator
from tenants.scope import operator_scope, tenant_scope
from tenants.tests.factories import TenantFactory

# Both passes: PostgreSQL (the operator role, under RLS) and the embedded SQLite install.
pytestmark = pytest.mark.embedded

fresh_content_types = test_admin.fresh_content_types
quick_password_hashing = test_admin.quick_password_hashing
operator = test_admin.operator
console = test_admin.console

AUDIT_LIST = reverse("admin:audit_auditlog_changelist")
LICENSE_LIST = reverse("admin:licenses_license_changelist")
WITH_SECONDS = re.compile(r"\b20\d\d-\d\d-\d\d \d\d:\d\d:\d\d UTC\b")
ISO_MOMENT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d")
UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")


def rows_of(operator) -> dict:
    """Acme (acme-east) with a license suspended with a reason, its key then
    regenerated, its expiry set from perpetual, a seat lost with the ledger's
    state (ISO times in its details, a user id) and an invite; a failed sign-in
    of no tenant; a heartbeat refused for an API client."""
    acme = TenantFactory(name="Acme", slug="acme-east")
    boss = UserFactory(tenant=acme, role=Role.TENANT_ADMIN, email="boss@acme.test")
    alice = UserFactory(tenant=acme, role=Role.USER, email="alice@acme.test")
    pro = LicenseFactory(tenant=acme, name="Acme Pro", max_seats=2)
    first_prefix = pro.key_prefix
    acquired = timezone.now() - timedelta(hours=3, seconds=7)
    with tenant_scope(acme.id):
        license_suspend(license=pro, actor=operator, reason="invoice 4411 unpaid")
        license_regenerate_key(license=fresh(pro), actor=operator)
        license_extend(
            license=fresh(pro),
            expires_at=timezone.now() + timedelta(days=30),
            actor=operator,
            how=ExpiryChange.SET,
        )
        audit_record(
            action=Event.LEASE_LOST,
            tenant_id=acme.id,
            target_type="licenses.license",
            target_id=str(pro.pk),
            details={
                "session_id": "sess-0001",
                "fingerprint": "fp-alice-laptop-0001",
                "user_id": str(alice.pk),
                "acquired_at": acquired.isoformat(),
            },
        )
        with request_context(request_id="req-invite", client_ip="198.51.100.7"):
            invite, _ = invite_create(created_by=boss, role=Role.USER, email="new@acme.test")
        with request_context(request_id="req-beat", client_ip="203.0.113.9"):
            audit_record(
                action=Event.LEASE_HEARTBEAT_REJECTED,
                tenant_id=acme.id,
                target_type="licenses.license",
                target_id=str(pro.pk),
                details={"session_id": "sess-0002", "fingerprint": None},
            )
    with request_context(request_id="req-login", client_ip="192.0.2.1"):
        audit_record(
            action=Event.AUTH_LOGIN_FAILED,
            actor="nobody@example.test",
            details={"reason": "unknown_email", "method": "password"},
        )
    with operator_scope():
        rows = {row.action: row for row in AuditLog.objects.order_by("id")}
    return {
        "acme": acme,
        "alice": alice,
        "boss": boss,
        "pro": fresh(pro),
        "first_prefix": first_prefix,
        "acquired": acquired,
        "invite": invite,
        "rows": rows,
    }


@pytest.fixture
def seeded(operator):
    return rows_of(operator)


def page_of(client, row):
    return client.get(reverse("admin:audit_auditlog_change", args=[row.pk]))


def text_of(page: str) -> str:
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page)))


def table(page: str, table_id: str) -> dict[str, str]:
    """The page's table `table_id` as {row label: cell text}."""
    found = re.search(rf'<div class="module aligned" id="{table_id}">(.*?)</div>', page, flags=re.S)
    assert found, table_id
    cells = {}
    for label, cell in re.findall(r"<th[^>]*>(.*?)</th>\s*<td>(.*?)</td>", found.group(1), flags=re.S):
        cells[text_of(label).strip()] = text_of(cell).strip()
    return cells


def assert_readable(page: str, *hidden_ids) -> None:
    """Read-only; times in the one format; no ISO time, no "None", and no
    UUID of what the page names (links may carry them, the text does not)."""
    text = text_of(re.sub(r"<(script|style)\b.*?</\1>", " ", page, flags=re.S))
    assert 'name="_save"' not in page and 'name="_continue"' not in page
    assert 'name="_addanother"' not in page and "deletelink" not in page
    assert WITH_SECONDS.search(text)
    # Not one without its zone (the breadcrumbs and heading included), nor an ISO one.
    assert not re.search(r"\b20\d\d-\d\d-\d\d \d\d:\d\d(:\d\d)?(?! UTC)(?!:)\b", text)
    assert not ISO_MOMENT.search(text), ISO_MOMENT.search(text)
    assert not re.search(r"\bNone\b", text)
    for hidden in hidden_ids:
        assert str(hidden) not in text


def test_a_suspension_reads_as_when_what_who_tenant_target_and_reason(console, seeded):
    acme, pro, row = seeded["acme"], seeded["pro"], seeded["rows"]["license.suspended"]

    response = page_of(console, row)

    assert response.status_code == 200
    page = response.content.decode()
    assert_readable(page, pro.pk, acme.pk, row.user_id)
    fields = table(page, "audit-row")
    assert fields["When"] == when(row.created_at, seconds=True)
    assert fields["Action"] == "License suspended license.suspended"
    assert fields["Who"] == "ops@coditect.test (operator)"
    assert fields["Tenant"] == "Acme (acme-east)"
    assert fields["Target"] == f"License Acme Pro {pro.key_prefix}…"  # as it is now
    assert table(page, "audit-details") == {"Reason": "invoice 4411 unpaid"}
    license_page = reverse("admin:licenses_license_change", args=[pro.pk])
    tenant_page = reverse("admin:tenants_tenant_change", args=[acme.pk])
    assert f'<a href="{license_page}">License Acme Pro' in page
    assert f'<a href="{tenant_page}">Acme (acme-east)</a>' in page
    # The heading names the event and its time, not a zone-less stamp.
    assert f"License suspended, {when(row.created_at, seconds=True)}" in page


def test_a_regenerated_key_shows_the_old_and_new_prefixes(console, seeded):
    pro, row = seeded["pro"], seeded["rows"]["license.key_regenerated"]

    page = page_of(console, row).content.decode()

    assert_readable(page, pro.pk)
    details = table(page, "audit-details")
    assert details == {"Previous key prefix": seeded["first_prefix"], "Key prefix": pro.key_prefix}
    assert table(page, "audit-row")["Action"].startswith("License key regenerated")


def test_an_expiry_set_from_perpetual_reads_dash_to_a_time_with_its_zone(console, seeded):
    pro, row = seeded["pro"], seeded["rows"]["license.extended"]

    page = page_of(console, row).content.decode()

    assert_readable(page, pro.pk)
    details = table(page, "audit-details")
    assert details["From"] == "—"
    assert details["To"] == when(pro.expires_at, seconds=True)
    assert details["How"] == "set"


def test_a_lost_seat_shows_its_times_formatted_and_its_user_as_an_email(console, seeded):
    alice, row = seeded["alice"], seeded["rows"]["lease.lost"]

    page = page_of(console, row).content.decode()

    assert_readable(page, alice.pk, seeded["pro"].pk)
    details = table(page, "audit-details")
    assert details == {
        "Session": "sess-0001",
        "Machine (fingerprint)": "fp-alice-laptop-0001",
        "User": "alice@acme.test",
        "Acquired at": when(seeded["acquired"], seconds=True),
    }
    fields = table(page, "audit-row")
    assert fields["Who"] == "system"  # the ledger's restore: no request, no user
    assert fields["Request id"] == "—" and fields["Client IP"] == "—"


def test_an_invite_names_who_sent_it_and_to_whom(console, seeded):
    invite, boss, row = seeded["invite"], seeded["boss"], seeded["rows"]["invite.created"]

    page = page_of(console, row).content.decode()

    assert_readable(page, invite.pk, boss.pk)
    fields = table(page, "audit-row")
    assert fields["Who"] == "boss@acme.test"
    assert fields["Target"] == f"Invite for new@acme.test, role user, expiring {when(invite.expires_at)}"
    assert fields["Request id"] == "req-invite" and fields["Client IP"] == "198.51.100.7"
    details = table(page, "audit-details")
    assert details == {
        "Role": "user",
        "Email": "new@acme.test",
        "Expires at": when(invite.expires_at, seconds=True),
    }


def test_an_api_client_and_a_sign_in_of_no_tenant_say_so(console, seeded):
    beat = page_of(console, seeded["rows"]["lease.heartbeat_rejected"]).content.decode()
    login = page_of(console, seeded["rows"]["auth.login_failed"]).content.decode()

    assert_readable(beat, seeded["pro"].pk)
    assert table(beat, "audit-row")["Who"] == "API client (no signed-in user)"
    assert table(beat, "audit-details")["Machine (fingerprint)"] == "—"
    assert_readable(login)
    fields = table(login, "audit-row")
    assert fields["Who"] == "nobody@example.test (not signed in)"
    assert fields["Tenant"] == "— (operator: no tenant)" and fields["Target"] == "—"


def test_an_audit_row_cannot_be_changed_or_deleted_from_its_page(console, seeded):
    row = seeded["rows"]["license.suspended"]
    address = reverse("admin:audit_auditlog_change", args=[row.pk])

    posted = console.post(address, {"action": "license.resumed", "details": "{}"})
    deleted = console.post(reverse("admin:audit_auditlog_delete", args=[row.pk]), {"post": "yes"})

    assert posted.status_code == 403 and deleted.status_code == 403
    with operator_scope():
        again = AuditLog.objects.get(pk=row.pk)
    assert (again.action, again.details, again.hash) == (row.action, row.details, row.hash)
    assert "Back to the audit list" in page_of(console, row).content.decode()


def test_a_staff_member_who_may_only_view_the_log_reads_a_row_on_the_operator_path(committed_db, seeded):
    viewer = make_operator("viewer@coditect.test")
    with operator_scope():
        viewer.user_permissions.add(Permission.objects.get(codename="view_auditlog"))
        client = Client()
        client.force_login(viewer)

    response = page_of(client, seeded["rows"]["lease.lost"])

    assert response.status_code == 200
    assert table(response.content.decode(), "audit-details")["User"] == "alice@acme.test"


def test_a_tenant_admin_does_not_reach_an_audit_row(committed_db, seeded):
    client = Client()
    with tenant_scope(seeded["acme"].id):
        client.force_login(seeded["boss"])

    response = page_of(client, seeded["rows"]["invite.created"])

    assert response.status_code == 302 and reverse("admin:login") in response["Location"]


def filter_of(page: str) -> str:
    found = re.search(r'id="changelist-filter"(.*?)</nav>', page, flags=re.S)
    assert found
    return text_of(found.group(1))


def test_tenants_of_one_name_are_told_apart_in_the_audit_and_license_filters(console, seeded):
    # Made west before north: ordered by name alone they could keep that order.
    west = TenantFactory(name="Acme", slug="acme-west")
    TenantFactory(name="Acme", slug="acme-north")
    TenantFactory(name="Beta", slug="beta")
    told_apart = ["Acme (acme-east)", "Acme (acme-north)", "Acme (acme-west)", "Beta (beta)"]

    audit_page = console.get(AUDIT_LIST).content.decode()
    license_page = console.get(LICENSE_LIST).content.decode()

    for page in (audit_page, license_page):
        names = re.findall(r"\b(?:Acme|Beta) \([a-z-]+\)", filter_of(page))
        assert names == told_apart
    assert f"?tenant={west.pk}" in audit_page


def test_the_list_and_the_tenant_page_write_detail_times_in_the_one_format(console, seeded):
    acme = seeded["acme"]

    listed = console.get(AUDIT_LIST, {"action": "lease.lost"}).content.decode()
    tenant_page = console.get(reverse("admin:tenants_tenant_change", args=[acme.pk])).content.decode()

    for page in (listed, tenant_page):
        text = text_of(page)
        assert f"acquired_at: {when(seeded['acquired'], seconds=True)}" in text
        assert not ISO_MOMENT.search(text)
    assert "API client" in text_of(console.get(AUDIT_LIST).content.decode())


def test_a_tenants_history_page_writes_its_times_in_the_one_format(console, seeded):
    acme = seeded["acme"]
    tenant_page = reverse("admin:tenants_tenant_change", args=[acme.pk])
    console.post(tenant_page, {"name": "Acme East", "slug": "acme-east", "is_active": "on"})

    page = console.get(reverse("admin:tenants_tenant_history", args=[acme.pk])).content.decode()

    text = text_of(page)
    assert "Changed Name." in text and WITH_SECONDS.search(text)
    assert not re.search(r"\b(a\.m\.|p\.m\.|noon|midnight)", text)
    assert f"{AUDIT_LIST}?target_id={acme.pk}" in page
    with operator_scope():
        changed = AuditLog.objects.get(action=Event.ADMIN_CHANGED, target_id=str(acme.pk))
    row_page = page_of(console, changed).content.decode()
    assert_readable(row_page, acme.pk)
    assert table(row_page, "audit-details") == {"Object": "Acme East (acme-east)", "Change": "Changed Name."}
    assert table(row_page, "audit-row")["Target"] == "Tenant Acme East (acme-east)"


def test_every_declared_event_has_words():
    assert set(ACTION_WORDS) == set(Event)


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (None, "—"),
        ("", "—"),
        (True, "yes"),
        ("2026-12-02T05:41:07.123456+00:00", "2026-12-02 05:41:07 UTC"),
        ("2026-12-02T07:41:07+02:00", "2026-12-02 05:41:07 UTC"),
        ("2026-12-02", "2026-12-02"),  # a day, not an instant
        ("20261202", "20261202"),  # a session id that happens to parse
        ({"from": 2, "to": None}, "2 → —"),
        (["a", None], "a, —"),
    ],
)
def test_a_detail_value_reads_as_text(value, shown):
    assert value_text(value) == shown


def test_an_audit_rows_page_reads_what_it_names_in_one_query_per_kind(
    console, seeded, django_assert_max_num_queries
):
    # The session and its user, the row, its license, the users it names (its
    # own and the detail's, together), its tenant, the content types, and the
    # view's transaction.
    with django_assert_max_num_queries(10, using=settings.OPERATOR_DATABASE):
        response = page_of(console, seeded["rows"]["lease.lost"])

    assert response.status_code == 200


def test_the_list_names_the_user_a_detail_holds_and_the_sweep_as_the_server(console, seeded):
    acme, alice, pro = seeded["acme"], seeded["alice"], seeded["pro"]
    with request_context(request_id="task-5f0c2a"), tenant_scope(acme.id):
        audit_record(
            action=Event.LEASE_EXPIRED,
            tenant_id=acme.id,
            target=pro,
            details={
                "session_id": "sess-0003",
                "fingerprint": "fp-alice-laptop-0001",
                "user_id": str(alice.pk),
                "acquired_at": seeded["acquired"].isoformat(),
                "expired_at": timezone.now().isoformat(),
            },
        )

    listed = text_of(console.get(AUDIT_LIST, {"tenant": acme.pk}).content.decode())
    tenant_page = text_of(
        console.get(reverse("admin:tenants_tenant_change", args=[acme.pk])).content.decode()
    )

    for page in (listed, tenant_page):
        assert "user_id: alice@acme.test" in page
        assert str(alice.pk) not in page
        assert "server (expiry sweep)" in page


def test_a_detail_nested_past_any_page_renders_cut_short(console, seeded):
    """A JSON field saved in the console may nest far deeper than the stack."""
    acme, pro = seeded["acme"], seeded["pro"]
    deep = "end"
    for _ in range(450):  # as deep as the console's JSON field took (the attack pass)
        deep = {"k": deep}
    with tenant_scope(acme.id):
        row = audit_record(
            action=Event.LICENSE_UPDATED,
            tenant_id=acme.id,
            target=pro,
            details={"changes": {"entitlements": deep}},
        )

    for address in (
        AUDIT_LIST,
        reverse("admin:audit_auditlog_change", args=[row.pk]),
        reverse("admin:tenants_tenant_change", args=[acme.pk]),
        reverse("admin:licenses_license_audit_csv", args=[pro.pk]),
    ):
        answer = console.get(address)
        assert answer.status_code == 200, address
        assert "…" in answer.content.decode()


@pytest.mark.parametrize(
    "change", [[{"changed": {}}], [{"added": {"name": 1}}], [{"deleted": {"name": "x"}}]], ids=str
)
def test_a_console_change_row_in_no_shape_django_knows_still_opens(console, seeded, change):
    with operator_scope():
        row = audit_record(action=Event.ADMIN_CHANGED, details={"object": "x", "change": change})
    assert console.get(reverse("admin:audit_auditlog_change", args=[row.pk])).status_code == 200
