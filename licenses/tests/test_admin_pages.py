"""The console's pages that answer a support call, through the admin's own
views (test_admin_pages_browser.py shows the same pages in Chromium):

- the license list: seats in use from the ledger, a state column (active /
  suspended / expired, no red ✗ on a healthy license), expiry with "expiring
  soon", last activity, a tenant filter, search by tenant, name or key prefix;
- the license page: live leases with holder, machine, client_info, since,
  last heartbeat and IP; the suspension's reason, who and when; bound
  machines; 30 days of acquires and denials; a link to its audit rows;
- one date format with its zone ("2026-12-02 14:05 UTC");
- the audit list: filters by tenant, action, date; targets and details as text;
- CSV of licenses and of a license's audit rows;
- bulk suspend / resume / extend, each audited.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import Role
from accounts.tests.factories import UserFactory
from audit.services import audit_record
from core.context import request_context
from core.errors import ApplicationError
from licenses.leases import lease_acquire
from licenses.models import License
from licenses.services import license_suspend
from licenses.tests import test_admin
from licenses.tests.console_forms import confirm_fields
from licenses.tests.factories import LicenseFactory
from licenses.tests.test_admin import audit, fresh
from tenants.scope import tenant_scope
from tenants.tests.factories import TenantFactory

pytestmark = pytest.mark.postgres

fresh_content_types = test_admin.fresh_content_types
quick_password_hashing = test_admin.quick_password_hashing
operator = test_admin.operator
console = test_admin.console

LIST = reverse("admin:licenses_license_changelist")
AUDIT_LIST = reverse("admin:audit_auditlog_changelist")
ONE_FORMAT = re.compile(r"\b20\d\d-\d\d-\d\d \d\d:\d\d(:\d\d)? UTC\b")


def support_scene(operator=None) -> dict:
    """Acme with a full two-seat license (two live leases sent client_info from
    known addresses, one denial), a license expiring in 10 days, one suspended
    with a reason and one expired; Globex with one license."""
    acme = TenantFactory(name="Acme", slug="acme")
    globex = TenantFactory(name="Globex", slug="globex")
    alice = UserFactory(tenant=acme, role=Role.USER, email="alice@acme.test")
    bob = UserFactory(tenant=acme, role=Role.USER, email="bob@acme.test")
    now = timezone.now()
    pro = LicenseFactory(tenant=acme, name="Acme Pro", max_seats=2, max_machines=5)
    soon = LicenseFactory(tenant=acme, name="Acme Soon", max_seats=1, expires_at=now + timedelta(days=10))
    held = LicenseFactory(tenant=acme, name="Acme Held", max_seats=1)
    gone = LicenseFactory(tenant=acme, name="Acme Gone", max_seats=1, expires_at=now - timedelta(days=3))
    other = LicenseFactory(tenant=globex, name="Globex Suite", max_seats=5)
    sessions = {}
    for user, fingerprint, host, ip in (
        (alice, "fp-alice-laptop-0001", "alice-laptop", "198.51.100.7"),
        (bob, "fp-bob-desktop-0002", "bob-desktop", "203.0.113.9"),
    ):
        with request_context(request_id=f"req-{host}", client_ip=ip), tenant_scope(acme.id):
            checkout = lease_acquire(
                user=user,
                license_key=pro.key,
                fingerprint=fingerprint,
                client_info={"hostname": host, "app_version": "4.2.1", "os": "Windows 11"},
            )
        sessions[user.email] = checkout.lease.session_id
    with request_context(request_id="req-denied", client_ip="192.0.2.1"), tenant_scope(acme.id):
        with pytest.raises(ApplicationError):
            lease_acquire(user=alice, license_key=pro.key, fingerprint="fp-third-machine-0003")
    with tenant_scope(acme.id):
        license_suspend(license=held, actor=operator, reason="invoice 4411 unpaid")
    return {
        "acme": acme,
        "globex": globex,
        "pro": fresh(pro),
        "soon": soon,
        "held": fresh(held),
        "gone": gone,
        "other": other,
        "sessions": sessions,
    }


@pytest.fixture
def support(operator):
    return support_scene(operator)


def rows_of(page: str) -> dict[str, str]:
    """The license list's rows by license name: each row's text."""
    rows = {}
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", page, flags=re.S):
        text = re.sub(r"<[^>]+>", " ", row)
        text = re.sub(r"\s+", " ", text).strip()
        for name in ("Acme Pro", "Acme Soon", "Acme Held", "Acme Gone", "Globex Suite"):
            if name in text:
                rows[name] = text
    return rows


def results(response) -> str:
    """The changelist's results table alone (not its filters)."""
    page = response.content.decode()
    found = re.search(r'<table id="result_list">(.*?)</table>', page, flags=re.S)
    return found.group(1) if found else ""


def test_the_license_list_shows_seats_state_expiry_and_last_use(console, support):
    response = console.get(LIST)

    assert response.status_code == 200
    page = response.content.decode()
    rows = rows_of(page)
    assert "2 / 2" in rows["Acme Pro"] and "active" in rows["Acme Pro"]
    assert "0 / 5" in rows["Globex Suite"]
    assert "suspended" in rows["Acme Held"]
    assert "expired" in rows["Acme Gone"]
    assert "expiring soon" in rows["Acme Soon"] and ONE_FORMAT.search(rows["Acme Soon"])
    assert "expiring soon" not in rows["Acme Pro"] and "never (perpetual)" in rows["Acme Pro"]
    # Last use: the customer's, not the console's. Pro holds seats now; Held was
    # only suspended by an operator; Soon was never used.
    assert "in use now" in rows["Acme Pro"]
    assert "never used" in rows["Acme Held"] and "never used" in rows["Acme Soon"]
    # No "Suspended" yes/no column: no red ✗ on a healthy license.
    assert "icon-no.svg" not in page and "icon-yes.svg" not in page


def test_the_license_list_seats_take_one_query_per_page_for_last_activity(
    console, support, django_assert_max_num_queries
):
    # The page's queries do not grow with its rows: five licenses, a bounded count.
    with django_assert_max_num_queries(20):
        assert console.get(LIST).status_code == 200


def test_the_license_list_filters_by_tenant_and_state_and_searches(console, support):
    by_tenant = rows_of(console.get(LIST, {"tenant__id__exact": str(support["globex"].id)}).content.decode())
    assert set(by_tenant) == {"Globex Suite"}

    expiring = rows_of(console.get(LIST, {"state": "expiring"}).content.decode())
    assert set(expiring) == {"Acme Soon"}
    assert set(rows_of(console.get(LIST, {"state": "suspended"}).content.decode())) == {"Acme Held"}
    assert set(rows_of(console.get(LIST, {"state": "expired"}).content.decode())) == {"Acme Gone"}

    assert set(rows_of(console.get(LIST, {"q": "globex"}).content.decode())) == {"Globex Suite"}
    assert set(rows_of(console.get(LIST, {"q": "Acme Soon"}).content.decode())) == {"Acme Soon"}
    prefix = support["held"].key_prefix
    assert set(rows_of(console.get(LIST, {"q": prefix}).content.decode())) == {"Acme Held"}


def test_the_license_page_shows_leases_with_client_info_heartbeat_and_ip(console, support):
    pro = support["pro"]

    page = console.get(reverse("admin:licenses_license_change", args=[pro.pk])).content.decode()

    assert '<span id="seats-used">2</span> of 2' in page
    for email, host, ip in (
        ("alice@acme.test", "alice-laptop", "198.51.100.7"),
        ("bob@acme.test", "bob-desktop", "203.0.113.9"),
    ):
        session = support["sessions"][email]
        row = re.search(rf'<tr data-session-id="{session}">(.*?)</tr>', page, flags=re.S).group(1)
        assert email in row and host in row and "v4.2.1" in row and ip in row
        assert "os: Windows 11" in row  # all the application sent, not only host and version
        assert len(ONE_FORMAT.findall(row)) >= 3  # since, last heartbeat, expires
    assert "fp-alice-laptop-0001" in page  # bound machines
    assert 'id="bound-machines"' in page
    # 30 days of usage: two acquires, one denial, as of now.
    assert '<span id="usage-acquired">2</span> acquires' in page
    assert '<span id="usage-denied">1</span> denial (' in page  # not "1 denials"
    assert "Denials by answer: <code>no_seats_available</code> 1." in page
    assert f'href="{AUDIT_LIST}?target_id={pro.pk}"' in page


def test_the_license_page_says_who_suspended_it_when_and_why(console, support, operator):
    held = support["held"]

    page = console.get(reverse("admin:licenses_license_change", args=[held.pk])).content.decode()

    (row,) = audit(held, "license.suspended")
    assert '<span class="license-state state-suspended">suspended</span>' in page
    assert f'<strong class="suspended-by">{operator.email}</strong>' in page
    assert f'<strong class="suspended-at">{row.created_at:%Y-%m-%d %H:%M} UTC</strong>' in page
    assert '<strong class="suspension-reason">invoice 4411 unpaid</strong>' in page


def test_the_license_form_shows_the_state_not_a_red_cross(console, support):
    page = console.get(reverse("admin:licenses_license_change", args=[support["pro"].pk])).content.decode()

    assert "icon-no.svg" not in page and "icon-yes.svg" not in page
    assert '<span class="license-state state-active">active</span>' in page


def test_the_audit_link_of_a_license_lists_its_rows_only_as_text(console, support):
    pro = support["pro"]

    page = results(console.get(AUDIT_LIST, {"target_id": str(pro.pk)}))

    assert "lease.acquired" in page and "lease.denied" in page
    assert "license.suspended" not in page  # another license's
    assert "License Acme Pro" in page  # the target named, not a UUID
    assert "code: " in page and "fingerprint: fp-third-machine-0003" in page
    assert ONE_FORMAT.search(page)


def test_the_audit_list_filters_by_tenant_action_and_date(console, support):
    acme, globex = support["acme"], support["globex"]
    by_action = results(console.get(AUDIT_LIST, {"action": "license.suspended"}))
    assert "invoice 4411 unpaid" in by_action and "lease.acquired" not in by_action

    by_tenant = results(console.get(AUDIT_LIST, {"tenant": str(globex.id)}))
    assert "lease.acquired" not in by_tenant
    assert "lease.acquired" in results(console.get(AUDIT_LIST, {"tenant": str(acme.id)}))

    # As the date filter's own links give them: aware midnights.
    today = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    assert (
        "lease.acquired"
        in console.get(
            AUDIT_LIST, {"created_at__gte": str(today), "created_at__lt": str(today + timedelta(days=1))}
        ).content.decode()
    )
    assert "lease.acquired" not in results(
        console.get(AUDIT_LIST, {"created_at__lt": str(today - timedelta(days=1))})
    )


def test_the_tenant_page_shows_its_licenses_users_seats_and_audit(console, support):
    acme = support["acme"]

    page = console.get(reverse("admin:tenants_tenant_change", args=[acme.pk])).content.decode()

    assert "Licenses (4)" in page and '<span id="tenant-seats">2 of 5</span>' in page
    assert "Acme Pro" in page and "Globex Suite" not in page
    assert "alice@acme.test" in page and "bob@acme.test" in page
    assert "Users (2)" in page
    assert "license.suspended" in page and "invoice 4411 unpaid" in page
    assert f"{AUDIT_LIST}?tenant={acme.pk}" in page


def test_licenses_export_as_csv(console, support):
    ids = [str(support[name].pk) for name in ("pro", "held")]

    response = console.post(LIST, {"action": "export_csv", "_selected_action": ids})

    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = {row["name"]: row for row in csv.DictReader(io.StringIO(response.content.decode()))}
    assert set(rows) == {"Acme Pro", "Acme Held"}
    assert rows["Acme Pro"]["seats_in_use"] == "2" and rows["Acme Pro"]["state"] == "active"
    assert rows["Acme Held"]["state"] == "suspended" and rows["Acme Pro"]["tenant"] == "Acme"
    assert rows["Acme Pro"]["tenant_slug"] == "acme"  # two tenants may share a name
    assert ONE_FORMAT.fullmatch(rows["Acme Pro"]["last_activity"])  # its denial, the latest lease event
    assert rows["Acme Held"]["last_activity"] == ""  # suspended by an operator: no use


def test_a_license_audit_exports_as_csv(console, support):
    pro = support["pro"]

    response = console.get(reverse("admin:licenses_license_audit_csv", args=[pro.pk]))

    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [row["action"] for row in rows].count("lease.acquired") == 2
    assert {row["ip_address"] for row in rows} >= {"198.51.100.7", "203.0.113.9"}
    assert all(ONE_FORMAT.fullmatch(row["created_at"]) for row in rows)


def test_a_csv_cell_is_never_a_formula(console, support):
    evil = LicenseFactory(tenant=support["acme"], name='=HYPERLINK("http://x")', max_seats=1)

    response = console.post(LIST, {"action": "export_csv", "_selected_action": [str(evil.pk)]})

    (row,) = csv.DictReader(io.StringIO(response.content.decode()))
    assert row["name"].startswith("'=")


def test_no_column_of_either_csv_carries_a_formula(console, support):
    """A tenant names itself (open registration), a client picks its request id,
    a name may hide its formula behind spaces: every text cell is guarded."""
    evil_tenant = TenantFactory(name='=HYPERLINK("http://evil.test/","Open")')
    evil = LicenseFactory(tenant=evil_tenant, name=" =1+1", max_seats=1)
    with request_context(request_id="-A1-A1"), tenant_scope(evil_tenant.id):
        audit_record(
            action="license.suspended",
            tenant_id=evil_tenant.id,
            actor="-A1-A1",
            target=evil,
            details={"reason": "@SUM(A1)"},
        )

    listed = console.post(LIST, {"action": "export_csv", "_selected_action": [str(evil.pk)]})
    audited = console.get(reverse("admin:licenses_license_audit_csv", args=[evil.pk]))

    (row,) = csv.DictReader(io.StringIO(listed.content.decode()))
    assert row["tenant"] == "'" + evil_tenant.name and row["name"] == "' =1+1"
    (event,) = csv.DictReader(io.StringIO(audited.content.decode()))
    assert event["request_id"] == event["actor"] == "'-A1-A1"
    assert "@SUM(A1)" in event["details"] and event["details"].lstrip("'")[:1] not in "=+-@"


def bulk(client, action: str, selected: list[str], **fields):
    """Run a bulk action as the list does: its confirmation page, then "Yes"."""
    asked = client.post(LIST, {"action": action, "_selected_action": selected})
    assert asked.status_code == 200, asked.content.decode()[:2000]
    return client.post(LIST, {**confirm_fields(asked, ["bulk-confirm-form"]), **fields}, follow=True)


def test_bulk_suspend_resume_and_extend_go_through_the_services_and_are_audited(console, support):
    pro, soon, held = support["pro"], support["soon"], support["held"]
    selected = [str(pro.pk), str(soon.pk)]

    bulk(console, "suspend_selected", selected, reason="contract ended")
    assert fresh(pro).suspended and fresh(soon).suspended
    assert len(audit(pro, "license.suspended")) == 1 and len(audit(soon, "license.suspended")) == 1

    bulk(console, "resume_selected", [*selected, str(held.pk)])
    assert not any(fresh(license).suspended for license in (pro, soon, held))
    assert len(audit(held, "license.resumed")) == 1

    before = fresh(soon).expires_at
    response = bulk(console, "extend_selected_30_days", selected)
    assert fresh(soon).expires_at == before + timedelta(days=30)
    assert fresh(pro).expires_at is None  # perpetual stays perpetual
    (extended,) = audit(soon, "license.extended")
    assert extended.details["days"] == 30
    assert audit(pro, "license.extended") == []
    shown = response.content.decode()
    assert f"Extended by 30 days: 1 license ({soon})." in shown
    assert f"Left alone: 1 license: {pro}, perpetual, and it stays so" in shown


def test_a_viewer_only_staff_member_cannot_run_bulk_actions(committed_db, support):
    from django.contrib.auth.models import Permission

    from licenses.tests.test_admin import make_operator
    from tenants.scope import operator_scope

    viewer = make_operator("viewer@coditect.test")
    with operator_scope():
        viewer.user_permissions.add(Permission.objects.get(codename="view_license"))
        client = Client()
        client.force_login(viewer)
    pro = support["pro"]

    client.post(LIST, {"action": "suspend_selected", "_selected_action": [str(pro.pk)]})

    assert not fresh(pro).suspended


def test_every_date_in_the_console_pages_has_one_format_and_its_zone(console, support):
    pages = [
        LIST,
        reverse("admin:licenses_license_change", args=[support["pro"].pk]),
        reverse("admin:licenses_license_change", args=[support["held"].pk]),
        reverse("admin:tenants_tenant_change", args=[support["acme"].pk]),
        AUDIT_LIST,
    ]
    for address in pages:
        page = console.get(address).content.decode()
        text = re.sub(r"<[^>]+>", " ", page)
        assert ONE_FORMAT.search(text), address
        # No date of Django's localized forms ("Dec. 2, 2026", "2 December 2026").
        assert not re.search(
            r"\b(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]*\.? \d{1,2}, 20\d\d", text
        ), address
        assert not re.search(r"\b20\d\d-\d\d-\d\d \d\d:\d\d(:\d\d)?(?! UTC)(?!:)\b", text), address


@pytest.mark.parametrize(
    "address",
    [
        f"{AUDIT_LIST}?action=%00",
        f"{AUDIT_LIST}?target_id=%00",
        f"{AUDIT_LIST}?target_type=%00",
        f"{AUDIT_LIST}?request_id=%00",
        f"{AUDIT_LIST}?actor=%00",
        f"{LIST}?name=%00",
        f"{LIST}?key_prefix=%00",
        "/admin/tenants/tenant/?slug=%00",
        "/admin/accounts/user/?email=%00",
        f"{LIST}?q=%00",
    ],
)
def test_a_nul_in_a_console_filter_is_a_400_not_a_500(console, support, address):
    """PostgreSQL text holds no NUL: a filter given one would fail there."""
    response = console.get(address)
    assert response.status_code == 400


def _queries_of(send) -> int:
    from contextlib import ExitStack

    from django.db import connections
    from django.test.utils import CaptureQueriesContext

    with ExitStack() as stack:
        captured = [stack.enter_context(CaptureQueriesContext(c)) for c in connections.all()]
        send()
    return sum(len(c.captured_queries) for c in captured)


def test_the_csv_export_and_the_tenant_page_read_no_row_per_license(console, support):
    """Each license's state needs its policy (its grace): read with the page,
    not one query per license."""
    acme = support["acme"]

    def export():
        with tenant_scope(acme.id):
            ids = [str(pk) for pk in License.objects.values_list("pk", flat=True)]
        assert console.post(LIST, {"action": "export_csv", "_selected_action": ids}).status_code == 200

    def tenant_page():
        assert console.get(reverse("admin:tenants_tenant_change", args=[acme.pk])).status_code == 200

    export(), tenant_page()  # once first: what a session does once (its save, caches) is not counted
    before = (_queries_of(export), _queries_of(tenant_page))
    for n in range(6):
        LicenseFactory(tenant=acme, name=f"Acme Extra {n}", max_seats=1)
    assert (_queries_of(export), _queries_of(tenant_page)) == before
