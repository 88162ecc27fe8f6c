"""Acquire's lookups from short-lived per-process caches (issue 18): the
caller (accounts.selectors.caller_get_cached) and the license its key names
(licenses.selectors.license_get_by_key_cached). A warm acquire reads neither;
what this process changes is seen at once, what another process changes
within LICENSE_CACHE_SECONDS; a key never names another tenant's license.
On both ledgers and both passes."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts import selectors as account_selectors
from licenses import selectors
from licenses.models import License
from licenses.services import license_delete, license_regenerate_key, license_suspend
from licenses.tests.conftest import acquire, error_code
from licenses.tests.factories import LicenseFactory
from tenants.scope import tenant_scope

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]


@pytest.fixture(autouse=True)
def fresh_caches():
    for cache in (selectors._licenses, selectors._license_ids_by_key, account_selectors._callers):
        cache.clear()
    yield
    for cache in (selectors._licenses, selectors._license_ids_by_key, account_selectors._callers):
        cache.clear()


def lookups(statements: list[dict]) -> list[str]:
    """The statements that read the caller, its sign-in or the license: the
    license as acquire looks it up (by its key, or by id with its policy
    joined), not the database ledger's own read of the row, which is its
    seat count's (FOR UPDATE on PostgreSQL, a plain read on SQLite)."""
    found = []
    for sql in (query["sql"] for query in statements):
        if not sql.lstrip().upper().startswith("SELECT"):
            continue
        caller = '"users"' in sql or '"refresh_tokens"' in sql
        license = '"licenses"' in sql and ("key_digest" in sql or " JOIN " in sql.upper())
        if caller or license:
            found.append(sql)
    return found


def test_a_warm_acquire_reads_neither_the_caller_nor_the_license(ledger, member, license):
    with CaptureQueriesContext(connection) as cold:
        assert acquire(member, license, "machine-0001").status_code == 201
    with CaptureQueriesContext(connection) as warm:
        again = acquire(member, license, "machine-0001")
        other = acquire(member, license, "machine-0002")
    # Cold, the license is read once: found by its key, kept by id too.
    assert len([sql for sql in lookups(cold.captured_queries) if '"licenses"' in sql]) == 1
    assert (again.status_code, other.status_code) == (200, 201)
    assert lookups(warm.captured_queries) == []


def test_with_the_caches_off_every_acquire_reads_them(ledger, member, license, settings):
    settings.CALLER_CACHE_SECONDS = 0
    settings.LICENSE_CACHE_SECONDS = 0
    acquire(member, license, "machine-0001")
    with CaptureQueriesContext(connection) as captured:
        assert acquire(member, license, "machine-0001").status_code == 200
    assert len(lookups(captured.captured_queries)) >= 3  # the caller, the sign-in, the license


def test_a_key_replaced_in_this_process_stops_working_at_once(ledger, member, license):
    old_key = license.key
    assert acquire(member, license, "machine-0001").status_code == 201
    _, new_key = license_regenerate_key(license=license)
    refused = member.client.post(
        "/api/v1/licenses/acquire",
        {"license_key": old_key, "hardware_fingerprint": "machine-0002"},
        format="json",
    )
    assert (refused.status_code, error_code(refused)) == (404, "license_not_found")
    license.key = new_key
    assert acquire(member, license, "machine-0002").status_code == 201


def test_a_license_deleted_or_suspended_in_this_process_is_refused_at_once(ledger, member, acme):
    deleted = LicenseFactory(tenant=acme, max_seats=5)
    suspended = LicenseFactory(tenant=acme, max_seats=5)
    for license in (deleted, suspended):
        assert acquire(member, license, "machine-0001").status_code == 201
    license_delete(license=deleted)
    license_suspend(license=suspended)
    gone, held = acquire(member, deleted, "machine-0002"), acquire(member, suspended, "machine-0002")
    assert (gone.status_code, error_code(gone)) == (404, "license_not_found")
    assert (held.status_code, error_code(held)) == (403, "license_suspended")


@pytest.mark.parametrize("change", ["suspended", "key replaced", "deleted"])
def test_a_change_another_process_made_is_seen_within_the_age(
    ledger, member, license, settings, cache_clock, change
):
    """Made as another process would make it: by a statement this process's
    receivers do not hear."""
    assert acquire(member, license, "machine-0001").status_code == 201
    with tenant_scope(license.tenant_id):
        rows = License.objects.filter(pk=license.pk)
        if change == "suspended":
            rows.update(suspended=True)
        elif change == "key replaced":
            rows.update(key_digest="0" * 64)
        else:
            rows.update(suspended=True, deleted_at=license.created_at)
    cache_clock(settings.LICENSE_CACHE_SECONDS - 1)
    assert acquire(member, license, "machine-0002").status_code == 201
    cache_clock(1.1)
    refused = acquire(member, license, "machine-0003")
    expected = (403, "license_suspended") if change == "suspended" else (404, "license_not_found")
    assert (refused.status_code, error_code(refused)) == expected


def test_a_warm_key_never_opens_another_tenants_license(ledger, member, outsider, globex):
    theirs = LicenseFactory(tenant=globex, max_seats=5)
    assert acquire(outsider, theirs, "machine-0001").status_code == 201  # warm for Globex
    for _ in range(2):
        refused = acquire(member, theirs, "machine-0002")
        assert (refused.status_code, error_code(refused)) == (404, "license_not_found")
    status = member.client.get("/api/v1/licenses/status", HTTP_X_LICENSE_KEY=theirs.key)
    assert (status.status_code, error_code(status)) == (404, "license_not_found")
    by_id = member.client.get("/api/v1/licenses/status", {"license_id": str(theirs.id)})
    assert (by_id.status_code, error_code(by_id)) == (404, "license_not_found")


def test_a_row_read_before_the_change_commits_is_forgotten_when_it_commits(
    license, django_capture_on_commit_callbacks
):
    """Another thread of the process (gthread workers) may read the row after
    the save forgot it and before the change commits: the commit forgets it
    again, so the old row is not kept for the cache's age."""
    key = (str(license.tenant_id), str(license.pk))
    stale = selectors.license_get_cached(license_id=license.pk, tenant_id=license.tenant_id)
    assert stale.suspended is False
    with django_capture_on_commit_callbacks(execute=True):
        license_suspend(license=license)
        selectors._licenses.put(key, stale)  # the other thread's read, before the commit
    assert selectors.license_get_cached(license_id=license.pk, tenant_id=license.tenant_id).suspended is True


def test_a_policy_changed_in_this_process_reaches_acquire_and_status_at_once(ledger, member, acme):
    from licenses.models import Policy

    policy = Policy.default()
    policy.entitlements = {"pro": "Pro"}
    policy.save()
    license = LicenseFactory(tenant=acme, max_seats=5, entitlements=None, policy=policy)
    status = {"HTTP_X_LICENSE_KEY": license.key}
    assert member.client.get("/api/v1/licenses/status", **status).json()["licenses"][0]["entitlements"] == {
        "pro": True
    }
    policy.entitlements = {"pro": "Pro", "export": "Export"}
    policy.save()
    answer = member.client.get("/api/v1/licenses/status", **status).json()["licenses"][0]
    assert answer["entitlements"] == {"pro": True, "export": True}
    acquired = acquire(member, license, "machine-0001")
    assert acquired.json()["license"]["entitlements"] == {"pro": True, "export": True}
