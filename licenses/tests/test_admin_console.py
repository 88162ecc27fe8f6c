"""The operator console's secret pages, key lookup and expiry controls, tried
through the admin's own views (the browser test, test_admin_browser.py, does
the same in Chromium against the real server).

- A key is shown on a page reached by redirect, once: a reload (or another
  operator, or a stale token) gets "already shown" / "no longer available",
  never a second regeneration or a second license; the session row, which
  the app role can read, never holds the key.
- A pasted key is looked up by a POST; it never comes back in a redirect, a
  page or a log line, and a key typed in the search box is taken out of the
  address without being searched or echoed.
- Extending adds days to the current expiry (or to now for an expired
  license); a perpetual license stays perpetual; a date can be set; an
  expiring license can be made perpetual; each change is audited.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings
from django.contrib.sessions.models import Session
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import Role
from accounts.sessions import SessionStore, session_key_stored
from accounts.tests.factories import UserFactory
from licenses import admin as license_admin
from licenses.models import License
from licenses.tests import test_admin
from licenses.tests.console_forms import at_once, confirm, confirm_fields
from licenses.tests.factories import LicenseFactory
from licenses.tests.test_admin import audit, fresh, make_operator, messages_shown, shown_key, url
from tenants.scope import operator_scope, tenant_scope

pytestmark = pytest.mark.postgres

# The console's fixtures (an operator signed in, Acme's license with two live seats).
fresh_content_types = test_admin.fresh_content_types
quick_password_hashing = test_admin.quick_password_hashing
operator = test_admin.operator
console = test_admin.console
scene = test_admin.scene

ADD_FORM = {
    "name": "New product",
    "max_seats": "4",
    "hardware_fingerprints": "[]",
    "max_machines": "",
    "entitlements": "{}",
    "lease_ttl": "360",
    "offline_grace": "86400",
    "borrow_limit_hours": "72",
    "_save": "Save",
}


def licenses_of(tenant) -> list[License]:
    with tenant_scope(tenant.id):
        return list(License.objects.all())


def session_row(client: Client) -> str:
    """What the app role can read of this client's session: the raw row and
    the data it decodes to."""
    cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
    with operator_scope():
        row = Session.objects.using(settings.OPERATOR_DATABASE).get(session_key=session_key_stored(cookie))
    with operator_scope():
        decoded = SessionStore(session_key=cookie).load()
    assert license_admin.SHOWN_ONCE_SESSION_KEY in decoded
    return row.session_data + json.dumps(decoded)


# --- keys shown once -----------------------------------------------------------------


def regenerate(client: Client, license):
    """Press "Yes, regenerate the key" on its confirmation page."""
    page = client.get(url("regenerate_key", license))
    return client.post(url("regenerate_key", license), confirm_fields(page))


def add_form_token(client: Client) -> str:
    return confirm_fields(client.get(reverse("admin:licenses_license_add")), ["license_form"])["once"]


def test_a_regenerated_key_is_shown_once_and_reloads_regenerate_nothing(console, scene):
    _, license, _ = scene

    posted = regenerate(console, license)
    first, second, third = (console.get(posted["Location"]) for _ in range(3))

    key = shown_key(first)
    assert first.status_code == 200 and key.startswith("CDT-")
    for reload in (second, third):
        assert reload.status_code == 410
        assert key not in reload.content.decode()
        assert "already shown" in reload.content.decode()
        assert "Nothing was regenerated or created again" in reload.content.decode()
        assert "no-store" in reload["Cache-Control"]
    assert len(audit(license, "license.key_regenerated")) == 1
    assert fresh(license).key_prefix == key[: len(fresh(license).key_prefix)]


def test_the_key_page_opened_in_four_tabs_at_once_shows_the_key_in_one(console, scene):
    """Four requests in flight together with one session each read the session
    before any saves it; the token's row lets one of them show the key."""
    _, license, _ = scene
    location = regenerate(console, license)["Location"]

    answers = at_once(console, 4, lambda tab: tab.get(location))

    assert sorted(answer.status_code for answer in answers) == [200, 410, 410, 410]
    (shown,) = (answer for answer in answers if answer.status_code == 200)
    key = shown_key(shown)
    assert all(key not in answer.content.decode() for answer in answers if answer is not shown)
    assert console.get(location).status_code == 410


def test_the_key_page_prints_its_title_once_and_has_a_copy_button(console, scene):
    _, license, _ = scene

    page = console.get(regenerate(console, license)["Location"]).content.decode()

    assert page.count("<h1>New license key</h1>") == 1
    assert 'id="copy-license-key" data-copy-target="license-key"' in page
    assert "/static/licenses/copy-key.js" in page


def test_a_license_added_then_reloaded_is_one_license(console, scene):
    tenant, existing, _ = scene

    posted = console.post(
        reverse("admin:licenses_license_add"),
        {**ADD_FORM, "tenant": str(tenant.id), "once": add_form_token(console)},
    )
    assert posted.status_code == 303
    shown = console.get(posted["Location"])
    reloaded = console.get(posted["Location"])

    key = shown_key(shown)
    assert "License created" in shown.content.decode()
    assert reloaded.status_code == 410 and key not in reloaded.content.decode()
    created = [lic for lic in licenses_of(tenant) if lic.pk != existing.pk]
    assert len(created) == 1 and created[0].name == "New product"
    assert len(audit(created[0], "license.created")) == 1


def test_the_session_row_never_holds_the_key(console, scene):
    _, license, _ = scene

    posted = regenerate(console, license)
    while_pending = session_row(console)
    key = shown_key(console.get(posted["Location"]))
    after = session_row(console)

    assert key not in while_pending and key not in after
    assert key.replace("-", "") not in while_pending.replace("-", "")


def test_another_operator_cannot_open_the_token_and_the_owner_still_can(console, scene):
    _, license, _ = scene
    other = Client()
    with operator_scope():
        other.force_login(make_operator(email="other-ops@coditect.test", is_superuser=True))

    location = regenerate(console, license)["Location"]
    stolen = other.get(location)
    mine = console.get(location)

    assert stolen.status_code == 410 and b"no longer available" in stolen.content
    assert b'id="license-key"' not in stolen.content
    assert mine.status_code == 200 and shown_key(mine).startswith("CDT-")


def test_a_token_of_another_license_or_made_up_or_too_old_shows_nothing(console, scene, monkeypatch):
    tenant, license, _ = scene
    second = LicenseFactory(tenant=tenant, max_seats=1)

    location = regenerate(console, license)["Location"]
    token = location.rstrip("/").rsplit("/", 1)[1]
    elsewhere = console.get(reverse("admin:licenses_license_key", args=[second.pk, token]))
    made_up = console.get(reverse("admin:licenses_license_key", args=[license.pk, "x" * 24]))
    monkeypatch.setattr(license_admin, "SHOWN_ONCE_SECONDS", -1)
    too_old = console.get(location)

    for page in (elsewhere, made_up, too_old):
        assert page.status_code == 410
        assert b'id="license-key"' not in page.content
    monkeypatch.setattr(license_admin, "SHOWN_ONCE_SECONDS", 600)
    later = console.get(location)  # dropped unseen, not kept for later
    assert later.status_code == 410 and b"no longer available" in later.content


def test_a_key_left_unseen_is_dropped_from_the_session_when_the_next_one_is_made(console, scene, monkeypatch):
    _, license, _ = scene
    first = regenerate(console, license)["Location"]
    monkeypatch.setattr(license_admin, "SHOWN_ONCE_SECONDS", -1)
    regenerate(console, license)
    with operator_scope():
        cookie = console.cookies[settings.SESSION_COOKIE_NAME].value
        entries = SessionStore(session_key=cookie).load()[license_admin.SHOWN_ONCE_SESSION_KEY]

    token = first.rstrip("/").rsplit("/", 1)[1]
    assert entries[token]["sealed"] is None
    assert b"no longer available" in console.get(first).content


def test_the_key_page_and_regeneration_refuse_who_is_not_staff(console, scene):
    tenant, license, _ = scene
    boss = UserFactory(tenant=tenant, role=Role.TENANT_ADMIN, email="boss@acme.test")
    client = Client()
    with tenant_scope(tenant.id):
        client.force_login(boss)

    location = regenerate(console, license)["Location"]

    assert client.get(location).status_code == 302  # to the admin's login
    assert client.post(url("regenerate_key", license)).status_code == 302
    assert len(audit(license, "license.key_regenerated")) == 1
    assert shown_key(console.get(location)).startswith("CDT-")


# --- find by a pasted key ----------------------------------------------------------


@pytest.fixture
def every_log_line(caplog):
    caplog.set_level(logging.DEBUG)
    return caplog


def test_a_pasted_key_opens_its_license_by_id_and_is_not_repeated(console, scene, every_log_line):
    _, license, _ = scene

    found = console.post(reverse("admin:licenses_license_find_by_key"), {"license_key": license.key})
    page = console.get(found["Location"])

    assert found.status_code == 303
    assert found["Location"] == reverse("admin:licenses_license_change", args=[license.pk])
    assert page.status_code == 200
    body = page.content.decode()
    assert license.key not in body
    assert "Found by its key" in body
    assert license.key not in every_log_line.text


@pytest.mark.parametrize(
    ("pasted", "message"),
    [
        ("CDT-AAAAA-BBBBB-CCCCC-DDDDD", "No license has that key"),
        ("CDT-ZZ9QX", "not a whole license key"),
        ("x" * 5000, "not a whole license key"),
        ("CDT-AAAAA-BBBBB\x00-CCCCC", "not a whole license key"),
    ],
    ids=["unknown", "a-prefix", "too-long", "nul"],
)
def test_a_key_that_opens_nothing_is_a_message_without_the_key(
    console, scene, pasted, message, every_log_line
):
    found = console.post(reverse("admin:licenses_license_find_by_key"), {"license_key": pasted}, follow=True)

    assert found.redirect_chain[-1] == (reverse("admin:licenses_license_changelist"), 303)
    assert any(message in shown for shown in messages_shown(found)), messages_shown(found)
    if len(pasted) < 100:
        assert pasted not in found.content.decode()
        assert pasted not in every_log_line.text


@pytest.mark.parametrize(
    "page",
    [
        "admin:licenses_license_changelist",
        "admin:audit_auditlog_changelist",
        "admin:tenants_tenant_changelist",
        "admin:accounts_user_changelist",
    ],
)
@pytest.mark.parametrize("parameter", ["q", "name", "request_id"])
def test_a_key_in_any_console_address_is_taken_out_and_not_searched(
    console, scene, every_log_line, page, parameter
):
    _, license, _ = scene
    address = reverse(page)

    found = console.get(address, {parameter: f" {license.key.lower()} ", "o": "1"}, follow=True)

    assert found.redirect_chain[0] == (f"{address}?o=1", 302)
    assert any("Find by license key" in shown for shown in messages_shown(found))
    assert license.key not in found.content.decode() and license.key.lower() not in found.content.decode()
    assert license.key not in every_log_line.text


@pytest.mark.parametrize(
    "carrying",
    [
        lambda key: {"q": f"acme {key}"},
        lambda key: {"next": f"/admin/licenses/license/?q={key}"},
        lambda key: {"_changelist_filters": f"q%3D{key}"},
    ],
    ids=["among-words", "in-an-address", "encoded-in-an-address"],
)
def test_a_key_anywhere_in_a_console_value_is_taken_out(console, scene, carrying):
    _, license, _ = scene
    address = reverse("admin:licenses_license_changelist")

    found = console.get(address, {**carrying(license.key), "o": "1"})
    head = console.head(address, carrying(license.key))

    assert (found.status_code, found["Location"]) == (302, f"{address}?o=1")
    assert (head.status_code, head["Location"]) == (302, address)


def test_the_key_is_taken_out_wherever_the_console_is_mounted(settings):
    from django.contrib.messages.storage.cookie import CookieStorage
    from django.http import HttpResponse
    from django.test import RequestFactory

    from coditect.middleware import KeyOutOfAdminAddressMiddleware

    settings.ADMIN_URL = "ops-console/"
    middleware = KeyOutOfAdminAddressMiddleware(lambda request: HttpResponse("the page"))
    request = RequestFactory().get(
        "/ops-console/licenses/license/", {"q": "CDT-AAAAA-BBBBB-CCCCC-DDDDD-EEEEE"}
    )
    request._messages = CookieStorage(request)

    answer = middleware(request)

    assert (answer.status_code, answer["Location"]) == (302, "/ops-console/licenses/license/")


@pytest.mark.parametrize("lookup", ["key_digest", "key_digest__startswith"])
def test_the_list_takes_no_filter_on_the_keys_digest(console, scene, lookup):
    _, license, _ = scene
    answer = console.get(reverse("admin:licenses_license_changelist"), {lookup: license.key_digest[:1]})
    # Django's answer to a lookup an admin does not allow (DisallowedModelAdminLookup).
    assert answer.status_code == 400


def test_a_key_in_another_tenant_is_found_by_the_operator(console, scene):
    # The operator sees every tenant: the lookup is by digest over all of them.
    from tenants.tests.factories import TenantFactory

    other = LicenseFactory(tenant=TenantFactory(name="Globex", slug="globex"), max_seats=1)

    found = console.post(reverse("admin:licenses_license_find_by_key"), {"license_key": other.key})

    assert found["Location"] == reverse("admin:licenses_license_change", args=[other.pk])


def test_find_by_key_is_post_only_and_staff_only(console, scene):
    tenant, license, _ = scene
    boss = UserFactory(tenant=tenant, role=Role.TENANT_ADMIN, email="boss@acme.test")
    client = Client()
    with tenant_scope(tenant.id):
        client.force_login(boss)
    find = reverse("admin:licenses_license_find_by_key")

    # A GET carrying the key is sent back without it, then on to the list.
    got = console.get(find, {"license_key": license.key}, follow=True)
    assert got.redirect_chain[-1][0] == reverse("admin:licenses_license_changelist")
    assert all(license.key not in hop for hop, _ in got.redirect_chain)
    refused = client.post(find, {"license_key": license.key})
    assert refused.status_code == 302 and reverse("admin:login") in refused["Location"]


def test_a_key_typed_in_the_search_box_is_taken_out_of_the_address_and_not_searched(console, scene):
    _, license, _ = scene
    changelist = reverse("admin:licenses_license_changelist")

    response = console.get(changelist, {"q": license.key, "suspended__exact": "0"})
    page = console.get(response["Location"])

    assert response.status_code == 302
    assert license.key not in response["Location"] and "q=" not in response["Location"]
    assert "suspended__exact=0" in response["Location"]
    assert license.key not in page.content.decode()
    assert "Find by license key" in page.content.decode()
    assert any("does not go in the search box" in shown for shown in messages_shown(page))


def test_the_license_list_has_the_find_by_key_form_as_a_post(console, scene):
    page = console.get(reverse("admin:licenses_license_changelist")).content.decode()

    form = page.split('<div id="find-by-key">')[1].split("</form>")[0]
    assert 'method="post"' in form and reverse("admin:licenses_license_find_by_key") in form
    assert 'name="license_key"' in form and 'autocomplete="off"' in form


# --- expiry --------------------------------------------------------------------------


def set_expiry(license, expires_at):
    with tenant_scope(license.tenant_id):
        License.objects.filter(pk=license.pk).update(expires_at=expires_at)


def test_extending_a_perpetual_license_leaves_it_perpetual_and_says_so(console, scene):
    _, license, _ = scene
    assert fresh(license).expires_at is None

    response = console.post(url("extend", license), {"days": "30"}, follow=True)

    assert fresh(license).expires_at is None
    shown = " ".join(messages_shown(response))
    assert "perpetual and stays perpetual" in shown and "Set a date" in shown
    assert audit(license, "license.extended") == []  # nothing changed


def test_setting_a_date_makes_a_perpetual_license_expire(console, scene):
    _, license, _ = scene

    response = confirm(console, url("set_expiry", license), {"expires_at": "2031-05-04"}, follow=True)

    assert fresh(license).expires_at == datetime(2031, 5, 4, tzinfo=UTC)
    assert "2031-05-04 00:00 UTC" in " ".join(messages_shown(response))
    (event,) = audit(license, "license.extended")
    assert event.details == {"from": None, "to": "2031-05-04T00:00:00+00:00", "how": "set"}
    assert event.user_id is not None


def test_making_an_expiring_license_perpetual(console, scene, operator):
    _, license, _ = scene
    set_expiry(license, datetime(2030, 1, 1, tzinfo=UTC))

    response = confirm(console, url("make_perpetual", license), follow=True)

    assert fresh(license).expires_at is None
    assert "now perpetual" in " ".join(messages_shown(response))
    (event,) = audit(license, "license.extended")
    assert event.details == {"from": "2030-01-01T00:00:00+00:00", "to": None, "how": "perpetual"}
    assert event.actor == operator.email
    # Once perpetual, "extend" keeps it so, and "make perpetual" changes nothing.
    console.post(url("extend", license), {"days": "10"})
    again = console.post(url("make_perpetual", license), follow=True)
    assert fresh(license).expires_at is None
    assert "already perpetual" in " ".join(messages_shown(again))
    assert len(audit(license, "license.extended")) == 1


def test_extending_adds_days_to_the_current_expiry(console, scene):
    _, license, _ = scene
    end = (timezone.now() + timedelta(days=5)).replace(microsecond=0)
    set_expiry(license, end)

    confirm(console, url("extend", license), {"days": "30"})

    assert fresh(license).expires_at == end + timedelta(days=30)
    (event,) = audit(license, "license.extended")
    assert (event.details["how"], event.details["days"]) == ("extended", 30)
    assert event.details["from"] == end.isoformat()


def test_extending_an_expired_license_counts_from_now(console, scene):
    _, license, _ = scene
    set_expiry(license, timezone.now() - timedelta(days=100))
    before = timezone.now()

    confirm(console, url("extend", license), {"days": "30"})

    expires = fresh(license).expires_at
    assert before + timedelta(days=30) <= expires <= timezone.now() + timedelta(days=30)


def test_the_license_page_says_perpetual_and_offers_the_three_controls(console, scene):
    _, license, _ = scene
    change = reverse("admin:licenses_license_change", args=[license.pk])

    perpetual = console.get(change).content.decode()
    set_expiry(license, datetime(2030, 1, 1, tzinfo=UTC))
    expiring = console.get(change).content.decode()

    assert "never (perpetual)" in perpetual
    assert url("extend", license) in perpetual and url("set_expiry", license) in perpetual
    assert url("make_perpetual", license) not in perpetual
    assert "2030-01-01 00:00 UTC" in expiring and url("make_perpetual", license) in expiring


@pytest.mark.parametrize("action", ["extend", "set_expiry", "make_perpetual"])
def test_a_get_of_an_expiry_control_asks_first_and_changes_nothing(console, scene, action):
    _, license, _ = scene
    set_expiry(license, datetime(2030, 1, 1, tzinfo=UTC))

    page = console.get(url(action, license), {"days": "30", "expires_at": "2031-01-01"})

    assert page.status_code == 200
    assert 'value="Yes, ' in page.content.decode()
    assert "Expiry moves from 2030-01-01 00:00 UTC to " in page.content.decode()
    assert fresh(license).expires_at == datetime(2030, 1, 1, tzinfo=UTC)
    assert audit(license, "license.extended") == []
