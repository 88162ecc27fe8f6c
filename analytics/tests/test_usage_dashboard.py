"""The dashboard's usage pages through Django's test client (issue 16):
denials as they happen (must-show 4), their filters and pages, top users, the
charts per license, the CSV exports (equal to the usage API's figures, safe
from spreadsheet formulas), the notices form; and another tenant's admin,
who sees none of it. The browser test is test_usage_browser.py."""

from __future__ import annotations

import csv
import io
import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import User
from accounts.tests.factories import TEST_PASSWORD
from analytics.models import HourlyUsage, UsageRollupRun
from analytics.services import usage_rollup_license
from analytics.tests.conftest import EventScript
from analytics.tests.member_world import signed_in
from audit.models import AuditLog
from coditect.personas import api_client, tenant_admin, tenant_member
from licenses.models import License
from licenses.tests.conftest import acquire
from licenses.tests.factories import LicenseFactory
from tenants.scope import tenant_scope
from tenants.tests.factories import TenantFactory

pytestmark = [pytest.mark.embedded]

USAGE_API = "/api/v1/analytics/usage"


@pytest.fixture(autouse=True)
def quick_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def world(committed_db):
    """Acme (an admin, two members, two licenses) and Globex (its admin and a license)."""
    acme, globex = TenantFactory(name="Acme", slug="acme"), TenantFactory(name="Globex", slug="globex")
    admin = tenant_admin(acme)
    member = tenant_member(acme)
    with tenant_scope(acme.id):
        from accounts.tests.factories import UserFactory

        other = UserFactory(tenant=acme, email="other@acme.test")
    outsider = tenant_admin(globex)
    license = LicenseFactory(tenant=acme, name="Acme Pro", max_seats=1)
    second = LicenseFactory(tenant=acme, name="Acme Lite", max_seats=5)
    foreign = LicenseFactory(tenant=globex, name="Globex CAD", max_seats=2)
    return {
        "acme": acme,
        "globex": globex,
        "admin": admin,
        "member": member,
        "other": other,
        "outsider": outsider,
        "license": license,
        "second": second,
        "foreign": foreign,
    }


def denial_rows(html: str) -> list[dict]:
    """The denials table's rows, each cell by its label."""
    table = html.split('data-testid="denials"', 1)[1].split("</table>", 1)[0]
    rows = []
    for row in re.findall(r"<tr data-denial-id=\"\d+\">(.*?)</tr>", table, re.S):
        cells = dict(re.findall(r'<td data-label="([^"]+)">(.*?)</td>', row, re.S))
        rows.append({name: re.sub(r"<[^>]+>", "", text).strip() for name, text in cells.items()})
        rows[-1]["datetime"] = re.search(r'datetime="([^"]+)"', row).group(1)
    return rows


def parse_csv(response) -> list[dict]:
    body = b"".join(response.streaming_content).decode("utf-8")
    return list(csv.DictReader(io.StringIO(body)))


# --- must-show 4: a denial is on the page at once -------------------------------------------


def test_an_acquire_refused_through_the_api_shows_with_user_machine_and_time_before_any_rollup(
    world, license_signing_key
):
    license, member = world["license"], world["member"]
    assert acquire(member, license, "machine-held").status_code == 201
    refused = acquire(member, license, "machine-refused-7f3a")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "no_seats_available"
    denied_at = timezone.now()
    with tenant_scope(world["acme"].id):
        assert not HourlyUsage.objects.exists() and not UsageRollupRun.objects.exists()  # nothing rolled up

    page = signed_in().get("/dashboard/usage/")

    assert page.status_code == 200
    [row] = denial_rows(page.content.decode())
    assert row["User"] == "member@acme.test"
    assert row["Machine"] == "machine-refused-7f3a"
    assert row["Code"] == "no_seats_available"
    assert "Acme Pro" in row["License"]
    shown = datetime.fromisoformat(row["datetime"])
    assert abs((shown - denied_at).total_seconds()) < 60
    assert row["When"] == f"{shown.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"  # the viewer's zone: UTC here


# --- the denials table: filters, pages ------------------------------------------------------


@pytest.fixture
def denials(world):
    """Scripted refusals over three days, of two licenses and two users."""
    now = timezone.now().replace(microsecond=0)
    script, lite = EventScript(world["license"]), EventScript(world["second"])
    member, other = world["member"].user, world["other"]
    script.deny(now - timedelta(days=2), "no_seats_available", member, "m-old")
    script.deny(now - timedelta(hours=3), "machine_blocked", other, "m-blocked")
    lite.deny(now - timedelta(hours=2), "no_seats_available", other, "m-lite")
    script.deny(now - timedelta(minutes=5), "no_seats_available", member, "m-new")
    script.deny(now - timedelta(minutes=1), "license_not_found", member, "m-nokey", license=False)
    # Globex's own refusal: never on Acme's page.
    EventScript(world["foreign"]).deny(now, "no_seats_available", world["outsider"].user, "m-globex")
    return now


def machines(client, **query) -> list[str]:
    response = client.get("/dashboard/usage/", query)
    assert response.status_code == 200, response.content
    return [row["Machine"] for row in denial_rows(response.content.decode())]


def test_denials_are_newest_first_and_filter_by_license_user_code_and_days(world, denials):
    client = signed_in()
    today, two_days_ago = denials.date(), (denials - timedelta(days=2)).date()

    assert machines(client) == ["m-nokey", "m-new", "m-lite", "m-blocked", "m-old"]
    assert machines(client, license=str(world["second"].id)) == ["m-lite"]
    assert machines(client, user="OTHER@acme.test") == ["m-lite", "m-blocked"]
    assert machines(client, code="machine_blocked") == ["m-blocked"]
    assert machines(client, **{"from": two_days_ago.isoformat(), "to": two_days_ago.isoformat()}) == ["m-old"]
    assert "m-old" not in machines(client, **{"from": today.isoformat()})
    combined = {"license": str(world["license"].id), "user": "member@acme.test", "code": "no_seats_available"}
    assert machines(client, **combined) == ["m-new", "m-old"]
    page = client.get("/dashboard/usage/", {"user": "nobody@acme.test"}).content.decode()
    assert denial_rows(page) == [] and 'data-testid="unknown-user"' in page
    # The refusal of a key that is no license's names none.
    assert "no license (unknown key)" in client.get("/dashboard/usage/").content.decode()


def test_denials_are_paged_by_an_older_link(world, denials, monkeypatch):
    from analytics import usage_views

    monkeypatch.setattr(usage_views, "DENIALS_PER_PAGE", 2)
    client = signed_in()
    seen, url = [], "/dashboard/usage/?code=no_seats_available"
    while url:
        html = client.get(url).content.decode()
        seen.append([row["Machine"] for row in denial_rows(html)])
        older = re.search(r'href="\?([^"]*before=\d+)" rel="next"', html)
        url = f"/dashboard/usage/?{older.group(1).replace('&amp;', '&')}" if older else None
    assert seen == [["m-new", "m-lite"], ["m-old"]]


@pytest.mark.parametrize(
    "query,message",
    [
        ({"from": "yesterday"}, "must be a day"),
        ({"from": "2026-02-30"}, "must be a day"),
        ({"from": "2026-03-02", "to": "2026-03-01"}, "must not be after"),
        ({"from": "2020-01-01", "to": "2026-01-01"}, "At most 366 days"),
        ({"code": "anything_else"}, "Choose a code"),
        ({"license": "not-a-uuid"}, "not one of this tenant"),
        ({"before": "x1"}, "page link is not valid"),
    ],
)
def test_a_filter_that_cannot_be_read_is_400_and_says_why(world, denials, query, message):
    response = signed_in().get("/dashboard/usage/", query)

    assert response.status_code == 400
    html = response.content.decode()
    assert message in html and 'data-testid="denials"' not in html  # no table: nothing half-filtered


# --- another tenant's admin -----------------------------------------------------------------


def test_another_tenants_admin_sees_none_of_this_tenants_usage(world, denials):
    client = signed_in("admin@globex.test")
    acme_license = world["license"]

    assert machines(client) == ["m-globex"]
    for url in (
        f"/dashboard/licenses/{acme_license.id}/usage/",
        f"/dashboard/licenses/{acme_license.id}/notifications/",
        f"/dashboard/usage/?license={acme_license.id}",
        f"/dashboard/usage/usage.csv?license={acme_license.id}",
    ):
        assert client.get(url).status_code == 404, url
    response = client.post(
        f"/dashboard/licenses/{acme_license.id}/notifications/",
        {"notify_email": "on", "notify_webhook": "on"},
    )
    assert response.status_code == 404
    usage = parse_csv(client.get("/dashboard/usage/usage.csv"))
    assert {row["license_name"] for row in usage} == {"Globex CAD"}
    audit = parse_csv(client.get("/dashboard/usage/audit.csv"))
    assert audit and not any("acme" in " ".join(row.values()).lower() for row in audit)
    assert not any("m-new" in row["details"] for row in audit)
    with tenant_scope(world["acme"].id):
        assert License.objects.get(id=acme_license.id).notify_seats is True


def test_the_usage_pages_need_a_signed_in_tenant_admin(world):
    for url in ("/dashboard/usage/", "/dashboard/usage/usage.csv", "/dashboard/usage/audit.csv"):
        response = Client().get(url)
        assert response.status_code == 302 and "/dashboard/login/" in response["Location"], url
    member = Client()
    signed = member.post("/dashboard/login/", {"email": "member@acme.test", "password": TEST_PASSWORD})
    assert signed.status_code == 302 and signed["Location"] == "/dashboard/me/"
    for url in ("/dashboard/usage/", "/dashboard/usage/usage.csv", "/dashboard/usage/audit.csv"):
        assert member.get(url).status_code == 403, url


# --- charts ---------------------------------------------------------------------------------


def test_a_licenses_usage_page_draws_hourly_and_daily_peaks_with_the_seat_limit_and_as_of(world):
    license = world["license"]
    now = timezone.now()
    hour = now.replace(minute=0, second=0, microsecond=0)
    script = EventScript(license)
    member = world["member"].user
    script.acquire(hour - timedelta(hours=3), "s1", member, "m1")
    script.end(hour - timedelta(hours=2), "lease.released", "s1", member, "m1", hour - timedelta(hours=3))
    script.deny(hour - timedelta(hours=3) + timedelta(minutes=5), "no_seats_available", member, "m2")
    usage_rollup_license(
        license_id=license.id, tenant_id=license.tenant_id, start=now - timedelta(days=2), end=now
    )
    client = signed_in()

    html = client.get(f"/dashboard/licenses/{license.id}/usage/").content.decode()

    hourly = html.split('data-testid="hourly-chart"', 1)[1].split("</figure>", 1)[0]
    daily = html.split('data-testid="daily-chart"', 1)[1].split("</figure>", 1)[0]
    assert 'data-testid="seat-limit"' in hourly and 'data-testid="seat-limit"' in daily
    assert hourly.count('class="bar bar-peak"') >= 1 and hourly.count('class="bar bar-denials"') == 1
    assert 'data-peak="1"' in html
    assert re.search(r'data-testid="usage-as-of" data-as-of="[^"]+">as of', html)
    assert "m2" in html.split('data-testid="recent-denials"', 1)[1]  # the latest refusals are listed
    day = (hour - timedelta(hours=3)).date().isoformat()
    chosen = client.get(f"/dashboard/licenses/{license.id}/usage/", {"day": day})
    assert chosen.status_code == 200 and f"Per hour, {day}" in chosen.content.decode()
    assert client.get(f"/dashboard/licenses/{license.id}/usage/", {"day": "soon"}).status_code == 400
    assert client.get(f"/dashboard/licenses/{uuid.uuid4()}/usage/").status_code == 404


# --- top users ------------------------------------------------------------------------------


def test_top_users_by_session_time_add_up_to_the_usage_apis_session_seconds(world):
    license = world["license"]
    member, other = world["member"].user, world["other"]
    day = (timezone.now() - timedelta(days=1)).replace(hour=8, minute=0, second=0, microsecond=0)
    script = EventScript(license)
    for index, (user, start, minutes) in enumerate(
        [(member, 0, 90), (other, 100, 20), (member, 130, 30), (other, 200, 5)]
    ):
        began = day + timedelta(minutes=start)
        script.acquire(began, f"s{index}", user, f"m{index}")
        script.end(
            began + timedelta(minutes=minutes), "lease.released", f"s{index}", user, f"m{index}", began
        )
    usage_rollup_license(
        license_id=license.id, tenant_id=license.tenant_id, start=day - timedelta(days=1), end=timezone.now()
    )
    client = signed_in()

    html = client.get("/dashboard/usage/").content.decode()

    top = re.findall(
        r'<tr data-user-id="([^"]+)" data-seconds="([^"]+)">\s*<td data-label="User">([^<]+)</td>', html
    )
    assert [(email, float(seconds)) for _, seconds, email in top] == [
        ("member@acme.test", 120 * 60.0),
        ("other@acme.test", 25 * 60.0),
    ]
    start = (timezone.now() - timedelta(days=29)).replace(hour=0, minute=0, second=0, microsecond=0)
    end = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    body = api_client(world["admin"].user).get(
        USAGE_API, {"license_id": str(license.id), "from": start.isoformat(), "to": end.isoformat()}
    )
    api_seconds = sum(period["session_seconds"] for period in body.json()["licenses"][0]["periods"])
    assert sum(float(seconds) for _, seconds, _ in top) == api_seconds


# --- CSV exports ----------------------------------------------------------------------------


@pytest.fixture
def rolled_up(world):
    """Two days of sessions and refusals on Acme Pro, rolled up."""
    license, member = world["license"], world["member"].user
    script = EventScript(license)
    base = (timezone.now() - timedelta(days=2)).replace(hour=10, minute=0, second=0, microsecond=0)
    for index in range(3):
        began = base + timedelta(hours=index * 7)
        script.acquire(began, f"s{index}", member, f"m{index}")
        script.end(began + timedelta(minutes=45), "lease.released", f"s{index}", member, f"m{index}", began)
        script.deny(began + timedelta(minutes=10), "no_seats_available", world["other"], "m-x")
    for lic in (license, world["second"]):
        usage_rollup_license(
            license_id=lic.id, tenant_id=lic.tenant_id, start=base - timedelta(days=1), end=timezone.now()
        )
    return base


def api_figures(admin, granularity: str, start: datetime, end: datetime) -> list[dict]:
    body = api_client(admin).get(
        USAGE_API,
        {"granularity": granularity, "from": start.isoformat(), "to": end.isoformat(), "limit": 500},
    )
    assert body.status_code == 200, body.content
    rows = []
    for item in body.json()["licenses"]:
        for period in item["periods"]:
            rows.append(
                {
                    "license_id": item["license_id"],
                    "period_start": period["period_start"],
                    **{
                        name: str(period[name])
                        for name in (
                            "peak_seats",
                            "acquisitions",
                            "denials",
                            "distinct_users",
                            "sessions_ended",
                        )
                    },
                    "session_seconds": str(period["session_seconds"]),
                    "denials_by_code": period["denials_by_code"],
                }
            )
    return rows


def csv_figures(rows: list[dict]) -> list[dict]:
    return [
        {
            "license_id": row["license_id"],
            "period_start": row["period_start"],
            **{
                name: row[name]
                for name in ("peak_seats", "acquisitions", "denials", "distinct_users", "sessions_ended")
            },
            "session_seconds": row["session_seconds"],
            "denials_by_code": {
                code: int(count)
                for code, count in (part.split(": ") for part in row["denials_by_code"].split("; ") if part)
            },
        }
        for row in rows
    ]


@pytest.mark.parametrize("granularity", ["day", "hour"])
def test_the_usage_csv_parses_and_equals_the_usage_apis_figures_for_the_same_range(
    world, rolled_up, granularity
):
    first, last = rolled_up.date() - timedelta(days=1), rolled_up.date() + timedelta(days=1)
    response = signed_in().get(
        "/dashboard/usage/usage.csv",
        {"granularity": granularity, "from": first.isoformat(), "to": last.isoformat()},
    )

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"] == (
        f'attachment; filename="usage-acme-{granularity}-{first:%Y%m%d}-{last:%Y%m%d}.csv"'
    )
    rows = parse_csv(response)
    periods = 3 if granularity == "day" else 72
    assert len(rows) == 2 * periods  # both of Acme's licenses, every period, none of Globex's
    start = datetime.combine(first, datetime.min.time(), tzinfo=UTC)
    expected = api_figures(world["admin"].user, granularity, start, start + timedelta(days=3))
    for row in expected:
        row["period_start"] = row["period_start"].replace("+00:00", "Z")
    assert csv_figures(rows) == expected
    assert sum(int(row["denials"]) for row in rows) == 3
    assert {row["as_of"] != "" for row in rows} == {True}


def test_the_usage_csv_of_one_license_and_its_refusals(world, rolled_up):
    client = signed_in()
    one = parse_csv(client.get("/dashboard/usage/usage.csv", {"license": str(world["second"].id)}))
    assert {row["license_name"] for row in one} == {"Acme Lite"} and len(one) == 30
    too_long = client.get(
        "/dashboard/usage/usage.csv", {"granularity": "hour", "from": "2026-01-01", "to": "2026-03-01"}
    )
    assert too_long.status_code == 400 and "At most 744 periods" in too_long.content.decode()
    assert client.get("/dashboard/usage/usage.csv", {"granularity": "week"}).status_code == 400
    assert client.get("/dashboard/usage/usage.csv", {"to": "never"}).status_code == 400


def test_csv_cells_that_would_be_formulas_get_a_leading_quote(world):
    license, member = world["license"], world["member"].user
    with tenant_scope(license.tenant_id):
        License.objects.filter(id=license.id).update(name='=HYPERLINK("http://evil.test","x")')
    script = EventScript(license)
    script.deny(timezone.now(), "no_seats_available", member, "+cmd|' /C calc'!A0")
    script.deny(timezone.now(), "no_seats_available", member, "@SUM(1+1)")
    client = signed_in()

    usage = parse_csv(client.get("/dashboard/usage/usage.csv"))
    assert {row["license_name"] for row in usage} >= {'\'=HYPERLINK("http://evil.test","x")'}
    audit = parse_csv(client.get("/dashboard/usage/audit.csv", {"action": "lease.denied"}))
    assert [row["details"] for row in audit] == [
        "Code: no_seats_available; Machine (fingerprint): @SUM(1+1)",
        "Code: no_seats_available; Machine (fingerprint): +cmd|' /C calc'!A0",
    ]  # in the middle of a cell, a formula's first character is harmless
    from analytics.exports import csv_safe

    assert [csv_safe(v) for v in ("=1", "+1", "-1", "@a", "\tx", "\rx", "a=b", 7)] == [
        "'=1",
        "'+1",
        "'-1",
        "'@a",
        "'\tx",
        "'\rx",
        "a=b",
        "7",
    ]


def test_the_audit_csv_is_readable_and_filters_by_action_user_and_days(world, denials):
    client = signed_in()

    response = client.get("/dashboard/usage/audit.csv", {"action": "lease.denied", "user": "other@acme.test"})

    assert response.status_code == 200
    assert re.match(r'attachment; filename="audit-acme-\d{8}-\d{8}\.csv"', response["Content-Disposition"])
    rows = parse_csv(response)
    assert list(rows[0]) == ["time_utc", "actor", "action", "action_code", "target", "details"]
    assert [(row["actor"], row["action"], row["action_code"]) for row in rows] == [
        ("other@acme.test", "Seat refused", "lease.denied")
    ] * 2
    assert rows[0]["target"] == f"License {world['second']}" and "m-lite" in rows[0]["details"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", rows[0]["time_utc"])
    two_days_ago = (denials - timedelta(days=2)).date().isoformat()
    old = parse_csv(client.get("/dashboard/usage/audit.csv", {"from": two_days_ago, "to": two_days_ago}))
    assert [row["details"].split("; ")[-1] for row in old if row["action_code"] == "lease.denied"] == [
        "Machine (fingerprint): m-old"
    ]
    assert client.get("/dashboard/usage/audit.csv", {"action": "made.up"}).status_code == 400
    # As on the audit page: an email of nobody here finds only rows that name it.
    nobody = client.get("/dashboard/usage/audit.csv", {"user": "nobody@acme.test"})
    assert nobody.status_code == 200 and parse_csv(nobody) == []


def test_the_audit_csv_of_a_user_holds_the_rows_the_audit_page_shows_for_them(world, denials):
    """What they did, and what was done to them: the file and the page agree."""
    from audit.events import Event
    from audit.services import audit_record

    acme = world["acme"]
    with tenant_scope(acme.id):
        other = User.objects.get(email="other@acme.test")
        admin = User.objects.get(email="admin@acme.test")
        audit_record(
            action=Event.USER_ROLE_CHANGED,
            tenant_id=acme.id,
            user=admin,
            target=other,
            details={"role": {"from": "user", "to": "readonly"}},
        )
    client = signed_in()

    rows = parse_csv(client.get("/dashboard/usage/audit.csv", {"user": "other@acme.test"}))
    page = client.get("/dashboard/audit/", {"user": "other@acme.test"}).content.decode()

    assert sorted(row["action_code"] for row in rows) == ["lease.denied", "lease.denied", "user.role_changed"]
    changed = next(row for row in rows if row["action_code"] == "user.role_changed")
    assert changed["actor"] == "admin@acme.test"
    assert page.count("data-audit-id=") == len(rows)


def test_an_audit_export_over_the_cap_is_refused_not_cut_short(world, denials, monkeypatch):
    from analytics import exports

    monkeypatch.setattr(exports, "AUDIT_EXPORT_MAX_ROWS", 3)
    response = signed_in().get("/dashboard/usage/audit.csv")
    assert response.status_code == 400 and "More than 3 events" in response.content.decode()


def test_the_audit_csv_streams_in_batches(world, denials, monkeypatch):
    from analytics import exports

    monkeypatch.setattr(exports, "AUDIT_ROWS_PER_BATCH", 2)
    rows = parse_csv(signed_in().get("/dashboard/usage/audit.csv", {"action": "lease.denied"}))
    assert len(rows) == 5
    assert [row["time_utc"] for row in rows] == sorted((row["time_utc"] for row in rows), reverse=True)


# --- notices --------------------------------------------------------------------------------


def notices_of(license) -> dict:
    with tenant_scope(license.tenant_id):
        fresh = License.objects.get(id=license.id)
    return {
        name: getattr(fresh, name)
        for name in (
            "notify_seats",
            "notify_seats_percent",
            "notify_expiry",
            "notify_expiry_days",
            "notify_email",
            "notify_webhook",
        )
    }


def test_the_notices_form_saves_by_post_then_redirect_and_is_audited(world):
    license = world["license"]
    client = signed_in()
    url = f"/dashboard/licenses/{license.id}/notifications/"
    page = client.get(url).content.decode()
    assert 'name="notify_seats" checked' in page and 'name="notify_webhook" checked' in page
    assert 'for="notify-seats-percent"' in page and "csrfmiddlewaretoken" in page

    response = client.post(
        url,
        {
            "notify_seats": "on",
            "notify_seats_percent": "75",
            "notify_expiry_days": "30",
            "notify_email": "on",
        },
    )

    assert response.status_code == 302 and response["Location"] == url
    assert notices_of(license) == {
        "notify_seats": True,
        "notify_seats_percent": 75,
        "notify_expiry": False,
        "notify_expiry_days": 30,
        "notify_email": True,
        "notify_webhook": False,
    }
    assert "The notices of this license are saved." in client.get(url).content.decode()
    with tenant_scope(license.tenant_id):
        [row] = AuditLog.objects.filter(action="license.updated")
    assert row.user_id == world["admin"].user.id
    assert row.details["changes"]["notify_seats_percent"] == {"from": None, "to": 75}
    summary = client.get(f"/dashboard/licenses/{license.id}/usage/").content.decode()
    assert "on, at 75% of the seats" in summary and "Before expiry: off" in summary


@pytest.mark.parametrize(
    "form,message",
    [
        ({"notify_seats": "on", "notify_seats_percent": "0", "notify_email": "on"}, "from 1 to 100"),
        ({"notify_seats": "on", "notify_seats_percent": "101", "notify_email": "on"}, "from 1 to 100"),
        ({"notify_seats": "on", "notify_seats_percent": "half", "notify_email": "on"}, "from 1 to 100"),
        ({"notify_expiry": "on", "notify_expiry_days": "400", "notify_email": "on"}, "from 1 to 365"),
        ({"notify_seats": "on", "notify_expiry": "on"}, "needs a channel"),
    ],
)
def test_bad_notice_values_are_400_and_change_nothing(world, form, message):
    license = world["license"]
    before = notices_of(license)

    response = signed_in().post(f"/dashboard/licenses/{license.id}/notifications/", form)

    assert response.status_code == 400 and message in response.content.decode()
    assert notices_of(license) == before
    with tenant_scope(license.tenant_id):
        assert not AuditLog.objects.filter(action="license.updated").exists()


def test_the_notices_page_changes_nothing_on_get_and_refuses_a_post_without_csrf(world):
    license = world["license"]
    before = notices_of(license)
    client = Client(enforce_csrf_checks=True)
    token = client.get("/dashboard/login/").cookies["csrftoken"].value
    signed = client.post(
        "/dashboard/login/",
        {"email": "admin@acme.test", "password": TEST_PASSWORD, "csrfmiddlewaretoken": token},
    )
    assert signed.status_code == 302
    url = f"/dashboard/licenses/{license.id}/notifications/"
    assert client.get(url, {"notify_seats_percent": "5", "notify_email": "on"}).status_code == 200
    assert client.post(url, {"notify_email": "on"}).status_code == 403
    assert notices_of(license) == before


def test_the_usage_pages_need_no_seat_ledger(world, denials, monkeypatch):
    from analytics import services
    from core.errors import ServiceUnavailable

    def away(*args, **kwargs):
        raise ServiceUnavailable("The seat ledger does not answer.")

    monkeypatch.setattr(services, "seat_ledger", away)
    client = signed_in()

    assert client.get("/dashboard/usage/").status_code == 200
    assert client.get(f"/dashboard/licenses/{world['license'].id}/usage/").status_code == 200
    assert len(parse_csv(client.get("/dashboard/usage/usage.csv"))) == 60
