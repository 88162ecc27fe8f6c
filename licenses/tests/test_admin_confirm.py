"""The console asks before it acts, and acts once (issue 14), through the
admin's own views on PostgreSQL (the app and operator roles):

- suspend, resume, extend, set expiry and make perpetual answer a page that
  says what will change (a first POST, or a GET, changes nothing); only its
  "Yes" acts; suspending needs a reason; "No, go back" is the license page;
- each confirmation carries a one-time token: the same "Yes" sent twice
  (a double click) acts once: one audit row, 30 days not 60, one new key,
  one new license, and the second lands where the first did;
- bulk suspend asks for a reason and lists the licenses; bulk resume and
  extend list what changes; extend leaves perpetual licenses alone and says
  so;
- each console action writes the admin's LogEntry, so "Recent actions" on
  the admin index shows it (and adds no `admin.changed` audit row).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from django.conf import settings
from django.contrib.admin.models import LogEntry
from django.test import Client
from django.urls import reverse

from licenses.models import License
from licenses.tests import test_admin
from licenses.tests.console_forms import at_once, confirm, confirm_fields
from licenses.tests.factories import LicenseFactory
from licenses.tests.test_admin import audit, fresh, messages_shown, shown_key, url
from licenses.tests.test_admin_pages import LIST, bulk
from tenants.scope import operator_scope, tenant_scope

pytestmark = pytest.mark.postgres

fresh_content_types = test_admin.fresh_content_types
quick_password_hashing = test_admin.quick_password_hashing
operator = test_admin.operator
console = test_admin.console
scene = test_admin.scene


def set_expiry(license, expires_at):
    with tenant_scope(license.tenant_id):
        License.objects.filter(pk=license.pk).update(expires_at=expires_at)


def text(response) -> str:
    return response.content.decode()


def log_entries(license) -> list[str]:
    with operator_scope():
        return list(
            LogEntry.objects.using(settings.OPERATOR_DATABASE)
            .filter(object_id=str(license.pk))
            .order_by("id")
            .values_list("change_message", flat=True)
        )


# --- the confirmation pages ------------------------------------------------------------


def test_suspend_asks_first_says_what_happens_to_live_seats_and_needs_a_reason(console, scene):
    _, license, _ = scene
    change = reverse("admin:licenses_license_change", args=[license.pk])

    asked = console.post(url("suspend", license), {"reason": ""})

    assert asked.status_code == 200 and not fresh(license).suspended
    page = text(asked)
    assert "Suspending stops new checkouts" in page
    # The scene holds two live seats: they run until their next heartbeat.
    assert "The 2 seats in use keep running until their next heartbeat" in page
    assert f'href="{change}" class="button cancel-link">No, go back' in page
    assert audit(license, "license.suspended") == []

    refused = console.post(url("suspend", license), confirm_fields(asked), follow=True)
    assert refused.status_code == 400
    assert any("Give a reason" in shown for shown in messages_shown(refused))
    assert not fresh(license).suspended and audit(license, "license.suspended") == []

    done = console.post(
        url("suspend", license), {**confirm_fields(refused), "reason": "chargeback"}, follow=True
    )
    assert done.redirect_chain[-1] == (change, 303)
    assert fresh(license).suspended
    (row,) = audit(license, "license.suspended")
    assert row.details == {"reason": "chargeback"}


def test_one_seat_is_said_in_the_singular(console, scene):
    _, license, sessions = scene
    console.post(url("release", license), {"session_id": sessions[0]})

    page = text(console.post(url("suspend", license)))

    assert "The 1 seat in use keeps running until its next heartbeat" in page


def test_a_get_of_the_action_address_asks_too_and_cancel_changes_nothing(console, scene):
    _, license, _ = scene

    asked = console.get(url("suspend", license), {"reason": "from a link"})
    cancelled = console.get(reverse("admin:licenses_license_change", args=[license.pk]))

    assert asked.status_code == 200 and 'value="from a link"' in text(asked)
    assert cancelled.status_code == 200
    assert not fresh(license).suspended and audit(license, "license.suspended") == []


def test_extend_says_where_the_expiry_moves_and_acts_once_when_sent_twice(console, scene):
    _, license, _ = scene
    set_expiry(license, datetime(2027, 1, 1, tzinfo=UTC))

    asked = console.post(url("extend", license), {"days": "30"})
    fields = confirm_fields(asked)

    assert "Expiry moves from 2027-01-01 00:00 UTC to 2027-01-31 00:00 UTC." in text(asked)
    assert fresh(license).expires_at == datetime(2027, 1, 1, tzinfo=UTC)

    first = console.post(url("extend", license), fields, follow=True)
    second = console.post(url("extend", license), fields, follow=True)  # the double click

    assert fresh(license).expires_at == datetime(2027, 1, 31, tzinfo=UTC)  # 30 days, not 60
    assert len(audit(license, "license.extended")) == 1
    assert "Extended by 30 days" in " ".join(messages_shown(first))
    assert "done already" in " ".join(messages_shown(second))
    assert first.redirect_chain[-1] == second.redirect_chain[-1]


def test_days_changed_on_the_confirmation_page_are_described_again_not_applied(console, scene):
    _, license, _ = scene
    set_expiry(license, datetime(2027, 1, 1, tzinfo=UTC))
    asked = console.post(url("extend", license), {"days": "30"})

    again = console.post(url("extend", license), {**confirm_fields(asked), "days": "1"})

    assert again.status_code == 200
    assert "Expiry moves from 2027-01-01 00:00 UTC to 2027-01-02 00:00 UTC." in text(again)
    assert fresh(license).expires_at == datetime(2027, 1, 1, tzinfo=UTC)
    confirm_fields(again)  # and its "Yes" acts
    console.post(url("extend", license), confirm_fields(again))
    assert fresh(license).expires_at == datetime(2027, 1, 2, tzinfo=UTC)


@pytest.mark.parametrize(
    ("posted", "message"),
    [
        ({"expires_at": "2027-02-30"}, "is not a date and time"),
        ({"expires_at": "2001-01-01"}, "must be in the future"),
        ({"expires_at": ""}, "Give an expiry"),
        ({"expires_at": "9999-12-31T23:59-01:00"}, "is not a date and time"),
        ({"expires_at": "0001-01-01T00:30+01:00"}, "is not a date and time"),
    ],
    ids=["no-such-day", "past", "nothing", "past-the-calendars-end", "before-its-start"],
)
def test_a_bad_date_on_the_confirmation_page_is_the_form_again(console, scene, posted, message):
    _, license, _ = scene
    asked = console.post(url("set_expiry", license), {"expires_at": "2031-05-04"})
    assert "Expiry moves from never (perpetual) to 2031-05-04 00:00 UTC." in text(asked)

    refused = console.post(url("set_expiry", license), {**confirm_fields(asked), **posted})

    assert refused.status_code == 400
    assert any(message in shown for shown in messages_shown(refused)), messages_shown(refused)
    assert 'name="expires_at"' in text(refused)
    assert fresh(license).expires_at is None and audit(license, "license.extended") == []


def test_resume_and_make_perpetual_say_what_changes(console, scene):
    _, license, _ = scene
    set_expiry(license, datetime(2030, 1, 1, tzinfo=UTC))
    confirm(console, url("suspend", license), {"reason": "unpaid"})

    resume = text(console.post(url("resume", license)))
    perpetual = text(console.post(url("make_perpetual", license)))

    assert "reason: unpaid" in resume and "Resuming lets the license acquire seats again" in resume
    assert "Expiry moves from 2030-01-01 00:00 UTC to never (perpetual)" in perpetual
    assert fresh(license).suspended and fresh(license).expires_at == datetime(2030, 1, 1, tzinfo=UTC)


def test_a_yes_without_its_pages_token_does_nothing(console, scene):
    _, license, _ = scene

    forged = console.post(url("suspend", license), {"reason": "r", "confirm": "yes", "once": "made-up"})
    old = console.post(url("resume", license), {"confirm": "yes"})

    assert forged.status_code == 400 and "out of date" in " ".join(messages_shown(forged))
    assert not fresh(license).suspended
    assert old.status_code == 302  # not suspended: nothing to resume, nothing asked


def test_another_operators_token_does_nothing(console, scene):
    _, license, _ = scene
    asked = console.post(url("suspend", license), {"reason": "mine"})
    other = Client()
    with operator_scope():
        other.force_login(test_admin.make_operator(email="other@coditect.test", is_superuser=True))

    response = other.post(url("suspend", license), confirm_fields(asked))

    assert response.status_code == 400 and not fresh(license).suspended


# --- one key, one license, however many clicks ------------------------------------------


def test_regenerate_sent_twice_with_one_token_regenerates_once_and_lands_on_the_same_page(console, scene):
    _, license, _ = scene
    fields = confirm_fields(console.get(url("regenerate_key", license)))

    first = console.post(url("regenerate_key", license), fields)
    second = console.post(url("regenerate_key", license), fields)

    assert first.status_code == second.status_code == 303
    assert first["Location"] == second["Location"]
    assert len(audit(license, "license.key_regenerated")) == 1
    key = shown_key(console.get(second["Location"]))
    assert fresh(license).key_prefix == key[: len(fresh(license).key_prefix)]
    assert console.get(first["Location"]).status_code == 410  # shown once


def test_regenerate_sent_twice_at_the_same_moment_regenerates_once(console, scene):
    """Two POSTs of one token in flight together (two connections, one
    session): the second waits for the first's lock, then finds it used."""
    _, license, _ = scene
    fields = confirm_fields(console.get(url("regenerate_key", license)))

    answers = at_once(console, 2, lambda tab: tab.post(url("regenerate_key", license), fields))

    assert [answer.status_code for answer in answers] == [303, 303]
    assert answers[0]["Location"] == answers[1]["Location"]
    assert len(audit(license, "license.key_regenerated")) == 1
    assert shown_key(console.get(answers[0]["Location"])).startswith("CDT-")


def test_the_add_form_sent_twice_creates_one_license(console, scene):
    tenant, _, _ = scene
    add = reverse("admin:licenses_license_add")
    fields = {
        "once": confirm_fields(console.get(add), ["license_form"])["once"],
        "tenant": str(tenant.id),
        "name": "Twice clicked",
        "max_seats": "2",
        "hardware_fingerprints": "[]",
        "max_machines": "",
        "entitlements": "{}",
        "lease_ttl": "360",
        "offline_grace": "86400",
        "borrow_limit_hours": "72",
        "_save": "Save",
    }

    first = console.post(add, fields)
    second = console.post(add, fields)
    without = console.post(add, {**fields, "once": ""})

    assert first.status_code == second.status_code == 303
    assert first["Location"] == second["Location"]
    with tenant_scope(tenant.id):
        assert License.objects.filter(name="Twice clicked").count() == 1
    assert shown_key(console.get(first["Location"])).startswith("CDT-")
    assert without["Location"] == add  # an old form, or none: nothing created


def test_an_invalid_add_form_keeps_its_token_for_the_corrected_one(console, scene):
    tenant, _, _ = scene
    add = reverse("admin:licenses_license_add")
    once = confirm_fields(console.get(add), ["license_form"])["once"]
    form = {
        "once": once,
        "tenant": str(tenant.id),
        "name": "Fixed",
        "max_seats": "0",
        "lease_ttl": "360",
        "offline_grace": "86400",
        "borrow_limit_hours": "72",
        "entitlements": "{}",
        "hardware_fingerprints": "[]",
        "_save": "Save",
    }

    invalid = console.post(add, form)
    fixed = console.post(add, {**form, "max_seats": "3"})

    assert invalid.status_code == 200 and f'value="{once}"' in text(invalid)
    assert fixed.status_code == 303


# --- bulk actions ------------------------------------------------------------------


@pytest.fixture
def three(scene):
    tenant, license, _ = scene
    dated = LicenseFactory(
        tenant=tenant, name="Dated", max_seats=1, expires_at=datetime(2030, 1, 1, tzinfo=UTC)
    )
    forever = LicenseFactory(tenant=tenant, name="Forever", max_seats=1)
    return license, dated, forever


def test_bulk_suspend_lists_the_licenses_needs_a_reason_and_audits_it(console, three):
    selected = [str(license.pk) for license in three]

    asked = console.post(LIST, {"action": "suspend_selected", "_selected_action": selected})
    page = text(asked)
    assert asked.status_code == 200 and "To suspend (3 licenses)" in page
    assert all(str(license) in page for license in three)
    assert not any(fresh(license).suspended for license in three)

    refused = console.post(LIST, {**confirm_fields(asked, ["bulk-confirm-form"]), "reason": "  "})
    assert refused.status_code == 400 and "Give a reason" in text(refused)
    assert not any(fresh(license).suspended for license in three)

    done = bulk(console, "suspend_selected", selected, reason="fraud review 77")
    assert all(fresh(license).suspended for license in three)
    for license in three:
        (row,) = audit(license, "license.suspended")
        assert row.details == {"reason": "fraud review 77"}
        assert log_entries(license) == ["Suspended (bulk; reason: fraud review 77)."]
    assert "Suspended: 3 licenses" in text(done)


def test_bulk_extend_leaves_a_perpetual_license_perpetual_and_says_so_once(console, three):
    _, dated, forever = three
    selected = [str(dated.pk), str(forever.pk)]

    asked = console.post(LIST, {"action": "extend_selected_30_days", "_selected_action": selected})
    page = text(asked)
    assert "To extend (1 license)" in page and "Left alone (1 license)" in page
    assert "expiry moves from 2030-01-01 00:00 UTC to 2030-01-31 00:00 UTC" in page
    assert f"<strong>{forever}</strong> of Acme (acme): perpetual, and it stays so" in page

    fields = confirm_fields(asked, ["bulk-confirm-form"])
    done = console.post(LIST, fields, follow=True)
    again = console.post(LIST, fields, follow=True)  # the double click

    assert fresh(dated).expires_at == datetime(2030, 1, 31, tzinfo=UTC)  # once: 30 days, not 60
    assert fresh(forever).expires_at is None
    assert audit(forever, "license.extended") == [] and len(audit(dated, "license.extended")) == 1
    shown = " ".join(messages_shown(done))
    assert f"Extended by 30 days: 1 license ({dated})." in shown
    assert f"Left alone: 1 license: {forever}, perpetual, and it stays so" in shown
    assert "done already" in " ".join(messages_shown(again))


def test_bulk_resume_lists_what_changes(console, three):
    _, dated, forever = three
    confirm(console, url("suspend", dated), {"reason": "hold"})

    asked = text(
        console.post(
            LIST, {"action": "resume_selected", "_selected_action": [str(dated.pk), str(forever.pk)]}
        )
    )

    assert (
        "To resume (1 license)" in asked
        and f"<strong>{forever}</strong> of Acme (acme): not suspended" in asked
    )
    assert fresh(dated).suspended


# --- Recent actions ------------------------------------------------------------------


def test_console_actions_show_in_recent_actions_and_add_no_audit_row_of_their_own(console, scene):
    _, license, sessions = scene
    set_expiry(license, datetime(2030, 1, 1, tzinfo=UTC))

    confirm(console, url("suspend", license), {"reason": "unpaid"})
    confirm(console, url("extend", license), {"days": "1"})
    console.post(url("release", license), {"session_id": sessions[0]})
    index = text(console.get(reverse("admin:index")))

    assert log_entries(license) == [
        "Suspended (reason: unpaid).",
        "Expiry extended by 1 day: from 2030-01-01 00:00 UTC to 2030-01-02 00:00 UTC.",
        f"Lease {sessions[0][:8]}… force-released.",
    ]
    recent = index.split('id="recent-actions-module"')[1]
    assert str(license) in recent
    # Each says what was done (its change message) and when, in UTC.
    assert "Suspended (reason: unpaid)." in recent and f"Lease {sessions[0][:8]}… force-released." in recent
    assert re.search(r"20\d\d-\d\d-\d\d \d\d:\d\d UTC", recent)
    assert audit(license, "admin.changed") == []
    history = text(console.get(reverse("admin:licenses_license_history", args=[license.pk])))
    assert "Suspended (reason: unpaid)." in history
