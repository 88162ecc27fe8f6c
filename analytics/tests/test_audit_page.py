"""The audit log page, /dashboard/audit/, read by people: who by email (or
"operator", an API key, the system), targets by name, actions in words,
details as text, times in the viewer's zone; filters by action, user and
days, kept by the pager; a filter that cannot be read is a 400."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from django.utils import timezone

from accounts.models import User
from analytics.tests.member_world import build_world, signed_in
from audit.services import audit_record
from tenants.scope import operator_scope, tenant_scope

pytestmark = [pytest.mark.embedded, pytest.mark.usefixtures("test_events")]


@pytest.fixture(autouse=True)
def quick_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def world(committed_db):
    return build_world()


def rows(page: str) -> list[str]:
    return re.findall(r"<tr data-action=.*?</tr>", page, flags=re.S)


def cells(row: str) -> list[str]:
    return [re.sub(r"\s+", " ", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, flags=re.S)]


def page_of(client, query: str = "", **options):
    response = client.get(f"/dashboard/audit/{query}", **options)
    return response, response.content.decode()


def record_at(tenant, moment, action, **event):
    from unittest import mock

    with mock.patch.object(timezone, "now", return_value=moment), tenant_scope(tenant.id):
        return audit_record(action=action, tenant_id=tenant.id, **event)


def test_a_row_names_who_what_and_which_in_words_not_ids(world):
    client = signed_in("admin@acme.test")

    _, page = page_of(client, "?action=lease.acquired")

    laptop = next(row for row in rows(page) if "member-laptop" in row)
    when, action, who, target, details = cells(laptop)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", when)
    assert action == "Seat taken"
    assert who == "member@acme.test"
    assert target.startswith("License Acme Pro ") and str(world["pro"].id) not in laptop
    assert "Machine (fingerprint): member-laptop" in details and "Created: yes" in details


def test_the_holder_in_the_details_is_named_by_email(world):
    with tenant_scope(world["acme"].id):
        audit_record(
            action="lease.expired",
            tenant_id=world["acme"].id,
            target=world["pro"],
            details={
                "session_id": "s-1",
                "fingerprint": "member-laptop",
                "user_id": str(world["member"].pk),
                "acquired_at": "2026-12-01T10:00:00+00:00",
                "expired_at": "2026-12-01T11:00:00+00:00",
            },
        )
    _, page = page_of(signed_in("admin@acme.test"), "?action=lease.expired")

    (row,) = rows(page)
    assert "User: member@acme.test" in row and str(world["member"].pk) not in row
    assert "Acquired at: 2026-12-01 10:00:00 UTC" in row
    assert cells(row)[2] == "system"


def test_an_operators_action_says_operator_and_an_api_keys_names_the_key(world):
    with operator_scope():
        operator = User.objects.create_superuser("ops@vendor.test", "an-operators-password-1")
    with tenant_scope(world["acme"].id):
        audit_record(
            action="license.suspended", tenant_id=world["acme"].id, user=operator, target=world["pro"]
        )
        audit_record(
            action="tenant.updated",
            tenant_id=world["acme"].id,
            actor="api-key:cdt_pk_ab12 (billing sync)",
            target=world["acme"],
            details={"changes": ["name"]},
        )
    _, page = page_of(signed_in("admin@acme.test"))

    suspended = next(row for row in rows(page) if 'data-action="license.suspended"' in row)
    assert cells(suspended)[1:3] == ["License suspended", "operator"] and "ops@vendor.test" not in page
    updated = next(row for row in rows(page) if 'data-action="tenant.updated"' in row)
    assert cells(updated)[2:4] == ["API key cdt_pk_ab12 (billing sync)", "Tenant Acme (acme)"]


def test_times_are_in_the_viewers_zone_and_the_page_says_which(world):
    client = signed_in("admin@acme.test")
    record_at(world["acme"], datetime(2026, 7, 1, 22, 30, tzinfo=UTC), "test.event", details={"n": 1})
    client.cookies["tz"] = "Europe/Berlin"

    _, page = page_of(client, "?action=test.event")

    assert "Times in Europe/Berlin (CET)" in page or "Times in Europe/Berlin (CEST)" in page
    assert cells(rows(page)[0])[0] == "2026-07-02 00:30:00 CEST"
    assert 'data-tz="Europe/Berlin"' in page


@pytest.mark.parametrize("cookie", ["Not/AZone", "../../etc/passwd", "x" * 300, ""])
def test_a_zone_the_server_does_not_know_is_utc(world, cookie):
    client = signed_in("admin@acme.test")
    record_at(world["acme"], datetime(2026, 7, 1, 22, 30, tzinfo=UTC), "test.event", details={"n": 1})
    client.cookies["tz"] = cookie

    response, page = page_of(client, "?action=test.event")

    assert response.status_code == 200 and "Times in UTC" in page
    assert cells(rows(page)[0])[0] == "2026-07-01 22:30:00 UTC"


def test_filters_by_action(world):
    _, page = page_of(signed_in("admin@acme.test"), "?action=lease.acquired")

    assert len(rows(page)) == 5  # Acme's five checkouts (four live, one old)
    assert all('data-action="lease.acquired"' in row for row in rows(page))
    assert '<option value="lease.acquired" selected>' in page


def test_filters_by_user_email_what_they_did_and_what_was_done_to_them(world):
    acme, member = world["acme"], world["member"]
    with tenant_scope(acme.id):
        audit_record(action="auth.sign_ins_ended", tenant_id=acme.id, user=world["admin"], target=member)
        audit_record(action="auth.login_failed", tenant_id=acme.id, actor="member@acme.test")

    _, page = page_of(signed_in("admin@acme.test"), "?user=Member@Acme.test")

    actions = [re.search(r'data-action="([^"]+)"', row).group(1) for row in rows(page)]
    assert {"auth.login_failed", "auth.sign_ins_ended", "lease.acquired"} <= set(actions)
    assert actions.count("lease.acquired") == 3
    assert "other-pc" not in page and "other-cad" not in page
    assert 'data-action="auth.login"' not in page  # the admin's own sign-in is not about the member


def test_an_email_of_nobody_here_finds_nothing_and_names_nothing(world):
    _, page = page_of(signed_in("admin@acme.test"), "?user=admin@globex.test")

    assert rows(page) == [] and "No event matches the filter" in page


def test_filters_by_days_in_the_viewers_zone_both_days_included(world):
    acme = world["acme"]
    for n, moment in enumerate(
        [
            datetime(2026, 3, 9, 22, 59, tzinfo=UTC),  # 23:59 in Berlin, 9 March: before
            datetime(2026, 3, 9, 23, 0, tzinfo=UTC),  # 00:00 on 10 March in Berlin: in
            datetime(2026, 3, 11, 22, 59, tzinfo=UTC),  # 23:59 on 11 March in Berlin: in
            datetime(2026, 3, 11, 23, 0, tzinfo=UTC),  # 12 March in Berlin: after
        ]
    ):
        record_at(acme, moment, "test.event", details={"n": n})
    client = signed_in("admin@acme.test")
    client.cookies["tz"] = "Europe/Berlin"

    _, page = page_of(client, "?action=test.event&from=2026-03-10&to=2026-03-11")

    assert [cells(row)[4] for row in rows(page)] == ["N: 2", "N: 1"]


@pytest.mark.parametrize(
    "query,field",
    [
        ("?action=no.such_event", "action"),
        ("?user=not-an-email", "user"),
        ("?from=2026-13-01", "from"),
        ("?to=yesterday", "to"),
        ("?from=2026-03-12&to=2026-03-10", "to"),
        ("?to=9999-12-31", "to"),  # a day whose end is past the calendar
        ("?from=0001-01-01", "from"),
    ],
)
def test_a_filter_that_cannot_be_read_is_a_400_that_says_which(world, query, field):
    response, page = page_of(signed_in("admin@acme.test"), query)

    assert response.status_code == 400
    assert f'data-testid="error-{field}"' in page and rows(page) == []


def test_a_nul_in_a_filter_is_a_400_not_an_error_page(world):
    # The site refuses a NUL in any query before a view sees it (core.middleware).
    response, _ = page_of(signed_in("admin@acme.test"), "?user=a%00b@acme.test")

    assert response.status_code == 400


def test_the_pager_keeps_the_filters(world):
    acme = world["acme"]
    with tenant_scope(acme.id):
        for n in range(55):
            audit_record(action="test.event", tenant_id=acme.id, details={"n": n})
        audit_record(action="test.event", tenant_id=acme.id, actor="someone@acme.test", details={"n": 99})
    client = signed_in("admin@acme.test")

    _, first = page_of(client, "?action=test.event")
    assert len(rows(first)) == 50
    older = re.search(r'href="\?([^"]*before=\d+[^"]*)" rel="next"', first).group(1).replace("&amp;", "&")
    assert "action=test.event" in older
    _, second = page_of(client, f"?{older}")
    assert [cells(row)[4] for row in rows(second)] == [f"N: {n}" for n in range(5, -1, -1)]
    newer = re.search(r'href="\?([^"]*after=\d+[^"]*)" rel="prev"', second).group(1).replace("&amp;", "&")
    _, back = page_of(client, f"?{newer}")
    assert cells(rows(back)[0])[4] == "N: 99" and len(rows(back)) == 50


def test_another_tenants_rows_are_never_shown(world):
    with tenant_scope(world["globex"].id):
        audit_record(action="test.event", tenant_id=world["globex"].id, details={"n": 424242})

    _, page = page_of(signed_in("admin@acme.test"), "?action=test.event")
    assert "424242" not in page
    _, page = page_of(signed_in("admin@acme.test"), "?user=admin@globex.test")
    assert "424242" not in page and "globex-pc" not in page


def test_a_plain_member_gets_the_403_page(world):
    response, page = page_of(signed_in("member@acme.test"))

    assert response.status_code == 403 and "for tenant admins" in page and "audit-log" not in page


def test_the_license_pages_write_times_in_the_viewers_zone_and_rollup_days_in_utc(world):
    from analytics.tests.factories import DailyUsageFactory

    pro = world["pro"]
    with tenant_scope(world["acme"].id):
        pro.expires_at = datetime(2027, 1, 1, 0, 30, tzinfo=UTC)
        pro.save(update_fields=["expires_at"])
    today = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    DailyUsageFactory(tenant=world["acme"], license=pro, period_start=today, peak_seats=2)
    client = signed_in("admin@acme.test")
    client.cookies["tz"] = "America/Los_Angeles"

    overview = client.get("/dashboard/").content.decode()
    license_page = client.get(f"/dashboard/licenses/{pro.id}/").content.decode()

    # One format with its zone, the viewer's, everywhere a moment is shown.
    assert "expires 2026-12-31 16:30 PST" in overview and "2026-12-31 16:30 PST" in license_page
    assert f"<td>{today:%Y-%m-%d}</td>" in license_page  # the rollup's UTC day, not the day before
    assert re.search(r"<td>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d P[SD]T</td>", license_page)  # a live lease, local


def test_a_target_since_removed_or_a_sign_in_is_named_without_an_id(world):
    from accounts.services import auth_login_password, auth_logout
    from accounts.tests.factories import TEST_PASSWORD

    pair = auth_login_password(email="member@acme.test", password=TEST_PASSWORD)
    auth_logout(refresh_token=pair.refresh_token)
    gone = "6b0c3f7e-2f1d-4c55-9a1e-2d3c4b5a6f70"
    with tenant_scope(world["acme"].id):
        audit_record(
            action="license.deleted",
            tenant_id=world["acme"].id,
            target_type="licenses.license",
            target_id=gone,
        )

    _, page = page_of(signed_in("admin@acme.test"))

    logout = next(row for row in rows(page) if 'data-action="auth.logout"' in row)
    assert cells(logout)[3] == "A sign-in of member@acme.test"
    deleted = next(row for row in rows(page) if 'data-action="license.deleted"' in row)
    assert cells(deleted)[3] == "License (since removed)" and gone not in page
