"""Monthly usage reports (issue 16, must-show 6): scripted events of a past
month, the beat task run for that month, and what each tenant admin gets: one
email per license with a CSV whose figures are the usage API's for the month.
Run twice (or twice at once) it sends nothing new; the dashboard lists the
report and serves the very CSV that was attached; a year on it is pruned.
The task reads across tenants (operator path), so these tests commit."""

from __future__ import annotations

import csv
import io
import threading
from datetime import timedelta

import pytest
from django.conf import settings
from django.core import mail
from django.core.management import CommandError, call_command
from django.db import connections
from django.test import Client
from django.utils import timezone

from accounts.models import Role
from accounts.tests.factories import TEST_PASSWORD, UserFactory
from analytics.models import MonthlyReport
from analytics.report_services import (
    month_add,
    month_bounds,
    month_first,
    monthly_report_figures,
    monthly_report_run,
    monthly_reports_prune,
)
from analytics.tasks import monthly_reports_prune_task, monthly_reports_task
from analytics.tests.conftest import EventScript
from analytics.tests.member_world import signed_in
from audit.models import AuditLog
from coditect.personas import tenant_admin, tenant_member
from licenses.tests.factories import LicenseFactory
from tenants.scope import operator_scope, tenant_scope
from tenants.tests.factories import TenantFactory

pytestmark = pytest.mark.embedded

# Two months back: a past month, still on the dashboard's list of twelve.
MONTH = month_add(month_first(timezone.now()), -2)
START, END = month_bounds(MONTH)
MONTH_TEXT = f"{MONTH:%Y-%m}"


def at(day: int, hhmm: str):
    hours, minutes = hhmm.split(":")
    return START + timedelta(days=day - 1, hours=int(hours), minutes=int(minutes))


@pytest.fixture(autouse=True)
def quick_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def world(committed_db, eager_tasks):
    """Acme: two active admins, an admin who left, a plain user, and one
    license with a month of scripted use; Globex: its admin and its license."""
    mail.outbox = []
    acme, globex = TenantFactory(name="Acme", slug="acme"), TenantFactory(name="Globex", slug="globex")
    admin = tenant_admin(acme)
    second = UserFactory(tenant=acme, role=Role.TENANT_ADMIN, email="second@acme.test")
    UserFactory(tenant=acme, role=Role.TENANT_ADMIN, email="gone@acme.test", is_active=False)
    member = tenant_member(acme)
    outsider = tenant_admin(globex)
    u1, u2, u3 = (UserFactory(tenant=acme, role=Role.USER, email=f"u{n}@acme.test") for n in (1, 2, 3))
    license = LicenseFactory(tenant=acme, name="Acme Pro", max_seats=2)
    foreign = LicenseFactory(tenant=globex, name="Globex CAD", max_seats=2)
    for lic in (license, foreign):  # made before the month began
        with operator_scope():
            type(lic).objects.filter(id=lic.id).update(created_at=START - timedelta(days=40))

    script = EventScript(license)
    # A session across the month's start: it ends (and counts, whole) in the month.
    script.acquire(START - timedelta(hours=1), "S0", u3, "m3")
    script.end(at(1, "01:00"), "lease.released", "S0", u3, "m3", START - timedelta(hours=1))
    # Day 3: two seats at once, a refusal, both released.
    script.acquire(at(3, "09:00"), "S1", u1, "m1")
    script.acquire(at(3, "09:30"), "S2", u2, "m2")
    script.deny(at(3, "09:45"), "no_seats_available", u3, "m3")
    script.acquire(at(3, "09:50"), "S1", u1, "m1", created=False)  # a renewal is no acquisition
    script.end(at(3, "10:00"), "lease.released", "S1", u1, "m1", at(3, "09:00"))
    script.end(at(3, "11:00"), "lease.released", "S2", u2, "m2", at(3, "09:30"))
    # Day 17: one seat that stopped beating (expired 15:30, swept 16:10), a refusal.
    script.acquire(at(17, "14:00"), "S3", u1, "m1")
    script.deny(at(17, "14:20"), "license_suspended", u2, "m2")
    script.expire(at(17, "16:10"), "S3", u1, "m1", at(17, "14:00"), at(17, "15:30"))
    # The next month's use is not this month's.
    script.acquire(END + timedelta(hours=3), "S9", u2, "m2")
    script.end(END + timedelta(hours=4), "lease.released", "S9", u2, "m2", END + timedelta(hours=3))
    EventScript(foreign).acquire(at(5, "08:00"), "G1", outsider.user, "g1")
    return {
        "acme": acme,
        "admin": admin,
        "second": second,
        "member": member,
        "outsider": outsider,
        "license": license,
        "foreign": foreign,
    }


def mails_to(address: str) -> list:
    return [message for message in mail.outbox if message.to == [address]]


def sections(text: str) -> tuple[list[dict], list[dict], list[dict]]:
    summary, days, users = text.split("\r\n\r\n")
    return tuple(list(csv.DictReader(io.StringIO(block))) for block in (summary, days, users))


def codes(cell: str) -> dict:
    return {code: int(count) for code, count in (part.split("=") for part in cell.split("; ") if part)}


def usage_api(persona, license, granularity: str) -> list[dict]:
    response = persona.client.get(
        "/api/v1/analytics/usage",
        {
            "license_id": str(license.id),
            "from": START.isoformat(),
            "to": END.isoformat(),
            "granularity": granularity,
        },
    )
    assert response.status_code == 200, response.content
    (item,) = response.json()["licenses"]
    return item["periods"]


def test_each_tenant_admin_gets_one_email_whose_csv_figures_equal_the_usage_api(world):
    license = world["license"]

    assert monthly_reports_task.delay(month=MONTH_TEXT).get() == 2  # Acme's license and Globex's

    (message,) = mails_to("admin@acme.test")
    (again,) = mails_to("second@acme.test")
    assert mails_to("gone@acme.test") == []
    assert mails_to(world["member"].user.email) == []
    (foreign_message,) = mails_to(world["outsider"].user.email)
    assert "Acme" not in foreign_message.subject and "Acme Pro" not in foreign_message.body
    assert "Acme Pro" in message.subject and f"{MONTH:%B %Y}" in message.subject

    ((filename, text, mimetype),) = message.attachments
    assert (filename, mimetype) == (f"usage-{license.key_prefix}-{MONTH_TEXT}.csv", "text/csv")
    assert again.attachments == message.attachments
    (summary,), days, users = sections(text)

    # Day by day, the CSV is the usage API's answer for the month.
    api_days = usage_api(world["admin"], license, "day")
    assert [row["date"] for row in days] == [p["period_start"][:10] for p in api_days]
    for row, period in zip(days, api_days, strict=True):
        for name in ("peak_seats", "acquisitions", "denials", "distinct_users", "distinct_machines"):
            assert int(row[name]) == period[name], (row["date"], name)
        assert int(row["sessions_ended"]) == period["sessions_ended"]
        assert float(row["session_seconds"]) == period["session_seconds"]
        assert codes(row["denials_by_code"]) == period["denials_by_code"]

    # The month's figures are the API's days (and hours) added up...
    api_hours = usage_api(world["admin"], license, "hour")
    assert int(summary["peak_seats"]) == max(p["peak_seats"] for p in api_days)
    assert int(summary["acquisitions"]) == sum(p["acquisitions"] for p in api_days)
    assert int(summary["denials"]) == sum(p["denials"] for p in api_days)
    assert float(summary["session_seconds"]) == sum(p["session_seconds"] for p in api_days)
    assert float(summary["average_seats"]) == round(
        sum(p["peak_seats"] for p in api_hours) / len(api_hours), 2
    )
    # ...and what the script made them.
    assert (summary["month"], summary["license"], summary["max_seats"]) == (MONTH_TEXT, "Acme Pro", "2")
    assert (int(summary["peak_seats"]), int(summary["acquisitions"]), int(summary["denials"])) == (2, 3, 2)
    assert codes(summary["denials_by_code"]) == {"license_suspended": 1, "no_seats_available": 1}
    assert (int(summary["sessions_ended"]), float(summary["session_seconds"])) == (
        4,
        7200 + 3600 + 5400 + 5400,
    )
    assert summary["overdraft_seats"] == "0"
    assert [(u["user_email"], float(u["session_seconds"]), int(u["sessions"])) for u in users] == [
        ("u1@acme.test", 9000.0, 2),
        ("u3@acme.test", 7200.0, 1),
        ("u2@acme.test", 5400.0, 1),
    ]
    assert "Peak seats: 2 of 2" in message.body and "u1@acme.test: 9000 s in 2 sessions" in message.body

    with tenant_scope(world["acme"].id):
        report = MonthlyReport.objects.get(license=license)
        assert report.csv_text == text and report.emailed_at is not None and report.emailed_to == 2
        (event,) = AuditLog.objects.filter(action="report.emailed")
        assert event.details == {"month": MONTH_TEXT, "report_id": report.id, "recipients": 2}
        assert event.target_id == str(license.id)


def test_running_it_twice_sends_nothing_new(world):
    monthly_reports_task.delay(month=MONTH_TEXT).get()
    sent = len(mail.outbox)
    with tenant_scope(world["acme"].id):
        first = MonthlyReport.objects.get()

    assert monthly_reports_task.delay(month=MONTH_TEXT).get() == 0  # nothing is due any more
    # Even asked for one license outright, an emailed report is not sent again.
    assert monthly_report_run(license_id=world["license"].id, tenant_id=world["acme"].id, month=MONTH) == 0
    call_command("monthly_reports", "--month", MONTH_TEXT, stdout=io.StringIO())

    assert len(mail.outbox) == sent == 3
    with tenant_scope(world["acme"].id):
        assert list(MonthlyReport.objects.values_list("id", "emailed_at")) == [(first.id, first.emailed_at)]
        assert AuditLog.objects.filter(action="report.emailed").count() == 1


@pytest.mark.postgres
def test_two_runs_at_once_send_once(world):
    if connections["default"].vendor != "postgresql":
        pytest.skip("two workers at once need PostgreSQL's row locks")
    license, acme = world["license"], world["acme"]
    barrier = threading.Barrier(2)
    results, errors = [], []

    def worker() -> None:
        try:
            barrier.wait(timeout=10)
            results.append(monthly_report_run(license_id=license.id, tenant_id=acme.id, month=MONTH))
        except Exception as error:
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert errors == []
    assert sorted(results) == [0, 2]
    assert len(mails_to("admin@acme.test")) == len(mails_to("second@acme.test")) == 1
    with tenant_scope(acme.id):
        assert MonthlyReport.objects.count() == 1
        assert AuditLog.objects.filter(action="report.emailed").count() == 1


def test_the_dashboard_lists_the_report_and_its_download_is_the_attachment(world):
    monthly_reports_task.delay(month=MONTH_TEXT).get()
    (message,) = mails_to("admin@acme.test")
    with tenant_scope(world["acme"].id):
        report = MonthlyReport.objects.get()
    with tenant_scope(world["foreign"].tenant_id):
        foreign_report = MonthlyReport.objects.get()
    client = signed_in("admin@acme.test")

    page = client.get("/dashboard/reports/")
    assert page.status_code == 200
    html = page.content.decode()
    assert f'data-report-id="{report.id}"' in html and "Acme Pro" in html
    assert f'data-report-id="{foreign_report.id}"' not in html and "Globex CAD" not in html
    assert 'href="/dashboard/reports/"' in html  # the nav link

    download = client.get(f"/dashboard/reports/{report.id}.csv")
    assert download.status_code == 200
    assert download["Content-Type"].startswith("text/csv")
    assert f'filename="{message.attachments[0][0]}"' in download["Content-Disposition"]
    assert download.content.decode() == message.attachments[0][1]

    # Another tenant's report is no report; without a sign-in, the sign-in page.
    assert client.get(f"/dashboard/reports/{foreign_report.id}.csv").status_code == 404
    assert (
        signed_in(world["outsider"].user.email).get(f"/dashboard/reports/{report.id}.csv").status_code == 404
    )
    anonymous = Client().get(f"/dashboard/reports/{report.id}.csv")
    assert anonymous.status_code == 302 and "/dashboard/login/" in anonymous["Location"]
    assert client.post("/dashboard/reports/").status_code == 405


def test_a_plain_user_reaches_no_report(world):
    monthly_reports_task.delay(month=MONTH_TEXT).get()
    with tenant_scope(world["acme"].id):
        report = MonthlyReport.objects.get()
    client = Client()
    client.post("/dashboard/login/", {"email": world["member"].user.email, "password": TEST_PASSWORD})

    for path in ("/dashboard/reports/", f"/dashboard/reports/{report.id}.csv"):
        response = client.get(path)
        assert response.status_code in (302, 403, 404), path
        assert b"Acme Pro" not in response.content


def test_reports_older_than_the_retention_are_pruned(world):
    monthly_reports_task.delay(month=MONTH_TEXT).get()
    with operator_scope():
        assert MonthlyReport.objects.count() == 2
        made = MonthlyReport.objects.order_by("id").first().created_at
    retention = timedelta(days=settings.MONTHLY_REPORT_RETENTION_DAYS)

    assert monthly_reports_prune(now=made + retention - timedelta(minutes=1)) == 0
    assert monthly_reports_prune_task.delay().get() == 0  # today: well within the year
    assert monthly_reports_prune(now=made + retention + timedelta(minutes=1), batch=1) == 2

    with operator_scope():
        assert MonthlyReport.objects.count() == 0


def test_overdraft_is_the_peak_beyond_the_seat_limit(world):
    """The ledger never oversells; a limit lowered below the seats in use
    (DESIGN.md invariant 6) is the one way a peak goes beyond it."""
    license = LicenseFactory(tenant=world["acme"], name="Lowered", max_seats=1)
    user = UserFactory(tenant=world["acme"], role=Role.USER)
    script = EventScript(license)
    script.acquire(at(8, "10:00"), "L1", user, "x1")
    script.acquire(at(8, "10:05"), "L2", user, "x2")
    script.end(at(8, "11:00"), "lease.released", "L1", user, "x1", at(8, "10:00"))
    script.end(at(8, "11:00"), "lease.released", "L2", user, "x2", at(8, "10:05"))
    from analytics.report_services import _month_rollup

    _month_rollup(license.id, license.tenant_id, MONTH, timezone.now())
    with tenant_scope(license.tenant_id):
        figures = monthly_report_figures(license=license, month=MONTH)
    assert (figures["peak_seats"], figures["max_seats"], figures["overdraft_seats"]) == (2, 1, 1)


def test_the_command_refuses_a_month_that_is_not_past_or_not_a_month(world):
    with pytest.raises(CommandError, match="YYYY-MM"):
        call_command("monthly_reports", "--month", "last month")
    with pytest.raises(CommandError, match="not ended"):
        call_command("monthly_reports", "--month", f"{timezone.now():%Y-%m}")
    out = io.StringIO()
    call_command("monthly_reports", "--month", MONTH_TEXT, stdout=out)
    assert f"{MONTH_TEXT}: 2 reports due, 3 emails sent" in out.getvalue()


def test_beat_runs_the_reports_and_their_prune():
    tasks = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert {"analytics.monthly_reports", "analytics.monthly_reports_prune"} <= tasks


def test_a_report_id_that_is_no_report_is_a_404(world):
    client = signed_in("admin@acme.test")
    for report_id in ("0", "12345", "9" * 30):
        assert client.get(f"/dashboard/reports/{report_id}.csv").status_code == 404, report_id
    assert client.get("/dashboard/reports/abc.csv").status_code == 404
