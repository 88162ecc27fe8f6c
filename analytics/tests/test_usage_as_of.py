"""An "as of" on every usage figure: the usage API answers when the rollup it
reads last ran (per license, and for the answer), and the dashboard shows
"as of HH:MM UTC" beside the rolled-up figures, with the live seat count from
the ledger beside them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from analytics.models import UsageRollupRun
from analytics.services import usage_rollup_license
from analytics.tests.test_dashboard import signed_in, world  # noqa: F401 (a fixture)
from licenses.tests.factories import LicenseFactory
from tenants.scope import tenant_scope

pytestmark = [pytest.mark.embedded]

URL = "/api/v1/analytics/usage"


def rollup(license, *, end, start=None):
    return usage_rollup_license(
        license_id=license.id,
        tenant_id=license.tenant_id,
        start=start or end - timedelta(hours=2),
        end=end,
        now=end,
    )


def as_of(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.mark.django_db
def test_before_any_rollup_the_usage_api_says_so_with_a_null_as_of(acme, admin):
    LicenseFactory(tenant=acme, name="Acme Pro")

    body = admin.client.get(URL).json()

    assert body["as_of"] is None
    assert [license["as_of"] for license in body["licenses"]] == [None]


@pytest.mark.django_db
def test_the_usage_api_answers_when_each_license_was_last_rolled_up_and_the_oldest(acme, admin):
    first = LicenseFactory(tenant=acme, name="A")
    second = LicenseFactory(tenant=acme, name="B")
    early = timezone.now().replace(microsecond=0) - timedelta(minutes=20)
    late = early + timedelta(minutes=10)
    rollup(first, end=early)
    rollup(second, end=late)

    body = admin.client.get(URL).json()

    by_id = {license["license_id"]: as_of(license["as_of"]) for license in body["licenses"]}
    assert by_id == {str(first.id): early, str(second.id): late}
    assert as_of(body["as_of"]) == early  # every figure of the answer counts activity up to at least this
    one = admin.client.get(URL, {"license_id": str(second.id)}).json()
    assert as_of(one["as_of"]) == late


@pytest.mark.django_db
def test_a_backfill_of_older_periods_does_not_move_as_of_back(acme, admin):
    license = LicenseFactory(tenant=acme)
    now = timezone.now().replace(microsecond=0)
    rollup(license, end=now)
    rollup(license, start=now - timedelta(days=5), end=now - timedelta(days=3))

    assert as_of(admin.client.get(URL).json()["as_of"]) == now
    later = now + timedelta(minutes=10)
    rollup(license, end=later)
    assert as_of(admin.client.get(URL).json()["as_of"]) == later


@pytest.mark.django_db
def test_another_tenants_rollup_runs_are_not_seen(acme, globex, admin):
    theirs = LicenseFactory(tenant=globex)
    rollup(theirs, end=timezone.now())

    with tenant_scope(acme.id):
        assert not UsageRollupRun.objects.exists()
    with tenant_scope(globex.id):
        assert UsageRollupRun.objects.filter(license_id=theirs.id).count() == 1
    assert admin.client.get(URL).json()["licenses"] == []


def test_the_dashboard_shows_as_of_beside_the_history_and_the_live_seats(world):  # noqa: F811
    client = signed_in()
    page = client.get("/dashboard/").content.decode()
    assert "not rolled up yet" in page
    assert 'data-testid="seat-gauge" data-used="1" data-max="3"' in page  # live, from the ledger

    moment = timezone.now().astimezone(UTC).replace(second=0, microsecond=0)
    rollup(world["license"], end=moment)

    for url in ("/dashboard/", f"/dashboard/licenses/{world['license'].id}/"):
        page = client.get(url).content.decode()
        if moment.date() == timezone.now().astimezone(UTC).date():
            assert f"as of {moment:%H:%M} UTC" in page, url
        else:  # the run was just before midnight: the day is shown too
            assert f"as of {moment:%Y-%m-%d %H:%M} UTC" in page, url
        assert "live, from the seat ledger" in page, url
        assert 'data-testid="seat-gauge" data-used="1"' in page, url


def test_an_as_of_of_an_earlier_day_shows_its_date(world):  # noqa: F811
    client = signed_in()
    rollup(world["license"], end=datetime(2026, 3, 4, 5, 6, tzinfo=UTC))

    page = client.get(f"/dashboard/licenses/{world['license'].id}/").content.decode()

    assert "as of 2026-03-04 05:06 UTC" in page
