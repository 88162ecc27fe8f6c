"""The dashboard's license page through Django's test client (issue 16,
"Licenses"): what it shows, rotating the key (shown once), unbinding machines
under the monthly cap, blocks, and another tenant's admin finding none of it.
The browser test is test_license_page_browser.py. Sign-in finds the user's
tenant on the operator path, so these tests commit their rows."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from unittest import mock
from zoneinfo import ZoneInfo

import pytest
from django.test import Client
from django.utils import timezone

from accounts.tests.factories import TEST_PASSWORD
from analytics.tests.member_world import signed_in
from audit.models import AuditLog
from coditect.personas import tenant_admin, tenant_member
from licenses.models import License, Policy, Product
from licenses.services import license_unbind_machine
from licenses.tests.conftest import error_code
from licenses.tests.factories import LicenseFactory
from tenants.scope import operator_scope, tenant_scope
from tenants.tests.factories import TenantFactory

pytestmark = [pytest.mark.embedded, pytest.mark.usefixtures("test_events")]

MACHINES = ["machine-aaaa-0001", "machine-bbbb-0002", "machine-cccc-0003"]


@pytest.fixture(autouse=True)
def quick_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def world(committed_db):
    acme, globex = TenantFactory(name="Acme", slug="acme"), TenantFactory(name="Globex", slug="globex")
    admin = tenant_admin(acme)
    member = tenant_member(acme)
    outsider = tenant_admin(globex)
    product = Product.objects.create(name="CODITECT Studio", slug="studio")
    policy = Policy.objects.create(
        product=product,
        name="Studio Pro",
        slug="studio-pro",
        expiry_grace_days=7,
        max_unbinds_per_month=2,
        entitlements={"render": "GPU rendering", "export": "Export to PDF", "api": "Scripting API"},
    )
    license = LicenseFactory(
        tenant=acme,
        name="Acme Studio",
        policy=policy,
        max_seats=3,
        hardware_fingerprints=list(MACHINES),
        entitlements={"render": True, "export": True},
    )
    foreign = LicenseFactory(tenant=globex, name="Globex CAD", max_seats=2)
    return {
        "acme": acme,
        "admin": admin,
        "member": member,
        "outsider": outsider,
        "policy": policy,
        "license": license,
        "foreign": foreign,
    }


def fresh(license) -> License:
    with tenant_scope(license.tenant_id):
        return License.objects.get(pk=license.pk)


def unbound_rows(license) -> list[AuditLog]:
    with tenant_scope(license.tenant_id):
        return list(
            AuditLog.objects.filter(action="license.machine_unbound", target_id=str(license.pk)).order_by(
                "id"
            )
        )


def url(license, tail: str = "") -> str:
    return f"/dashboard/licenses/{license.id}/{tail}"


def test_the_page_shows_policy_state_entitlements_by_name_machines_and_key_prefix(world):
    license = world["license"]

    page = signed_in().get(url(license)).content.decode()

    assert 'data-testid="product">CODITECT Studio<' in page
    assert 'data-testid="policy">Studio Pro<' in page
    assert '<span class="state state-active">active</span>' in page
    assert "GPU rendering" in page and "Export to PDF" in page
    assert "Scripting API" not in page  # in the catalog, not granted to this license
    assert f"{license.key_prefix}…" in page
    for machine in MACHINES:
        assert f'data-fingerprint="{machine}"' in page
    assert "0 of 2 unbinds used this month" in page
    assert 'data-testid="seat-gauge"' in page and 'data-testid="usage-chart"' in page
    assert "7 days" in page  # the grace after expiry


def test_an_expired_license_past_its_grace_says_expired(world):
    license = world["license"]
    with tenant_scope(license.tenant_id):
        License.objects.filter(pk=license.pk).update(expires_at=timezone.now() - timezone.timedelta(days=30))

    page = signed_in().get(url(license)).content.decode()

    assert '<span class="state state-expired">expired</span>' in page
    assert "its grace period ended" in page


# --- the key ------------------------------------------------------------------------------


def test_rotating_a_key_asks_first_shows_the_new_key_once_and_the_old_one_stops(world, license_signing_key):
    license, member = world["license"], world["member"]
    old_key = license.key
    client = signed_in()

    confirm = client.get(url(license, "key/rotate/"))
    assert confirm.status_code == 200
    assert "Are you sure?" in confirm.content.decode()
    assert fresh(license).key_digest == license.key_digest  # asking changed nothing
    once = re.search(r'name="once" value="([^"]+)"', confirm.content.decode()).group(1)

    rotated = client.post(url(license, "key/rotate/"), {"once": once})
    assert rotated.status_code == 302
    key_page = rotated["Location"]
    assert key_page.startswith(url(license, "key/"))
    shown = client.get(key_page)
    assert shown.status_code == 200 and "no-store" in shown["Cache-Control"]
    new_key = re.search(r'id="new-key"[^>]*value="([^"]+)"', shown.content.decode()).group(1)
    assert new_key != old_key and new_key.startswith(fresh(license).key_prefix)

    again = client.get(key_page)  # a reload
    assert again.status_code == 410
    assert new_key not in again.content.decode()
    double = client.post(url(license, "key/rotate/"), {"once": once})  # the same form sent twice
    assert double.status_code == 302
    with tenant_scope(license.tenant_id):
        assert AuditLog.objects.filter(action="license.key_regenerated").count() == 1

    refused = member.client.post(
        "/api/v1/licenses/acquire",
        {"license_key": old_key, "hardware_fingerprint": MACHINES[0]},
        format="json",
    )
    assert refused.status_code == 404 and error_code(refused) == "license_not_found"
    granted = member.client.post(
        "/api/v1/licenses/acquire",
        {"license_key": new_key, "hardware_fingerprint": MACHINES[0]},
        format="json",
    )
    assert granted.status_code == 201, granted.content


def test_a_rotation_without_its_confirmation_token_changes_nothing(world):
    license = world["license"]

    response = signed_in().post(url(license, "key/rotate/"), {"once": "forged"})

    assert response.status_code == 400
    assert "Are you sure?" in response.content.decode()
    assert fresh(license).key_digest == license.key_digest


def test_a_key_page_of_another_session_shows_nothing(world):
    license = world["license"]
    client = signed_in()
    confirm = client.get(url(license, "key/rotate/")).content.decode()
    once = re.search(r'name="once" value="([^"]+)"', confirm).group(1)
    key_page = client.post(url(license, "key/rotate/"), {"once": once})["Location"]

    other = signed_in().get(key_page)

    assert other.status_code == 410 and 'id="new-key"' not in other.content.decode()


# --- unbinding machines under the monthly cap ------------------------------------------------


def unbind(client, license, machine):
    """Ask, then confirm; a refusal before asking (the cap used) is the answer."""
    asked = client.post(url(license, "machines/unbind/"), {"fingerprint": machine})
    if asked.status_code != 200:
        return asked
    assert "Are you sure?" in asked.content.decode(), asked.content
    return client.post(url(license, "machines/unbind/"), {"fingerprint": machine, "confirm": "yes"})


def test_machines_unbind_up_to_the_monthly_cap_then_are_refused(world):
    license = world["license"]
    client = signed_in()

    assert unbind(client, license, MACHINES[0]).status_code == 302
    assert "1 of 2 unbinds used this month" in client.get(url(license)).content.decode()
    assert unbind(client, license, MACHINES[1]).status_code == 302
    refused = unbind(client, license, MACHINES[2])

    assert refused.status_code == 409
    text = refused.content.decode()
    assert "2 unbinds of the month are used" in text and 'data-testid="license-error"' in text
    assert fresh(license).hardware_fingerprints == [MACHINES[2]]
    confirmed = client.post(url(license, "machines/unbind/"), {"fingerprint": MACHINES[2], "confirm": "yes"})
    assert confirmed.status_code == 409  # a confirmation sent anyway is refused as well
    assert fresh(license).hardware_fingerprints == [MACHINES[2]]
    rows = unbound_rows(license)
    assert [row.details for row in rows] == [
        {"fingerprint": MACHINES[0], "via": "dashboard"},
        {"fingerprint": MACHINES[1], "via": "dashboard"},
    ]
    assert all(row.user_id == world["admin"].user.id for row in rows)


def test_asking_to_unbind_changes_nothing(world):
    license = world["license"]

    signed_in().post(url(license, "machines/unbind/"), {"fingerprint": MACHINES[0]})

    assert set(fresh(license).hardware_fingerprints) == set(MACHINES)
    assert unbound_rows(license) == []


def test_a_licenses_own_cap_overrides_its_policys(world):
    license = world["license"]
    with tenant_scope(license.tenant_id):
        License.objects.filter(pk=license.pk).update(max_unbinds_per_month=1)
    client = signed_in()

    assert unbind(client, license, MACHINES[0]).status_code == 302
    assert unbind(client, license, MACHINES[1]).status_code == 409


def test_a_cap_of_zero_lets_no_tenant_admin_unbind(world):
    license, policy = world["license"], world["policy"]
    Policy.objects.filter(pk=policy.pk).update(max_unbinds_per_month=0)
    client = signed_in()

    page = client.get(url(license)).content.decode()
    assert "cannot be unbound here" in page and "Unbind…" not in page
    refused = client.post(url(license, "machines/unbind/"), {"fingerprint": MACHINES[0], "confirm": "yes"})

    assert refused.status_code == 409
    assert set(fresh(license).hardware_fingerprints) == set(MACHINES)


def test_no_cap_unbinds_freely(world):
    Policy.objects.filter(pk=world["policy"].pk).update(max_unbinds_per_month=None)
    license = world["license"]
    client = signed_in()

    for machine in MACHINES:
        assert unbind(client, license, machine).status_code == 302
    assert fresh(license).hardware_fingerprints == []


def test_an_operators_unbinds_and_last_months_do_not_count(world):
    license = world["license"]
    license_unbind_machine(license=license, fingerprint=MACHINES[0])  # as the console does
    last_month = datetime.now(UTC).replace(
        day=1, hour=0, minute=0, second=0, microsecond=0
    ) - timezone.timedelta(minutes=1)
    with mock.patch.object(timezone, "now", return_value=last_month):
        license_unbind_machine(license=license, fingerprint=MACHINES[1], capped=True)
    with tenant_scope(license.tenant_id):
        License.objects.filter(pk=license.pk).update(max_unbinds_per_month=1)

    assert unbind(signed_in(), license, MACHINES[2]).status_code == 302
    assert fresh(license).hardware_fingerprints == []


def test_a_machine_that_is_not_bound_is_a_400_that_changes_nothing(world):
    license = world["license"]
    client = signed_in()

    for fingerprint in ("machine-not-bound-9", "", "x\x00y", "a" * 400):
        response = client.post(
            url(license, "machines/unbind/"), {"fingerprint": fingerprint, "confirm": "yes"}
        )
        assert response.status_code == 400
        assert "not bound to the license" in response.content.decode()
    assert set(fresh(license).hardware_fingerprints) == set(MACHINES)


@pytest.mark.redis
def test_an_unbind_while_the_seat_ledger_does_not_answer_says_so_and_changes_nothing(world, redis_ledger_cut):
    license = world["license"]
    client = signed_in()
    redis_ledger_cut()
    response = client.post(url(license, "machines/unbind/"), {"fingerprint": MACHINES[0], "confirm": "yes"})

    assert response.status_code == 503
    assert "seat ledger does not answer" in response.content.decode()
    assert set(fresh(license).hardware_fingerprints) == set(MACHINES)
    assert unbound_rows(license) == []


# --- blocks ---------------------------------------------------------------------------------


def block(client, license, kind, value, reason=""):
    asked = client.post(url(license, "blocks/"), {"kind": kind, "value": value, "reason": reason})
    if asked.status_code != 200 or "Are you sure?" not in asked.content.decode():
        return asked
    return client.post(
        url(license, "blocks/"), {"kind": kind, "value": value, "reason": reason, "confirm": "yes"}
    )


def test_a_tenant_admin_blocks_a_machine_and_a_user_and_unblocks_them(world):
    license, member = world["license"], world["member"].user
    client = signed_in()

    assert block(client, license, "machine", MACHINES[0], "lost laptop").status_code == 302
    assert block(client, license, "user", member.email, "left the team").status_code == 302

    blocks = fresh(license).blocks
    assert [(b["kind"], b["value"], b["reason"], b["by"]) for b in blocks] == [
        ("machine", MACHINES[0], "lost laptop", "admin@acme.test"),
        ("user", str(member.pk), "left the team", "admin@acme.test"),
    ]
    page = client.get(url(license)).content.decode()
    assert f'data-block-value="{member.pk}"' in page and member.email in page

    removed = client.post(url(license, "blocks/remove/"), {"kind": "user", "value": str(member.pk)})
    assert removed.status_code == 302
    assert [b["kind"] for b in fresh(license).blocks] == ["machine"]
    with tenant_scope(license.tenant_id):
        actions = list(AuditLog.objects.filter(target_id=str(license.pk)).values_list("action", flat=True))
    assert actions.count("license.blocked") == 2 and actions.count("license.unblocked") == 1


def test_asking_to_block_changes_nothing(world):
    license = world["license"]

    asked = signed_in().post(url(license, "blocks/"), {"kind": "machine", "value": MACHINES[0]})

    assert asked.status_code == 200 and "Are you sure?" in asked.content.decode()
    assert fresh(license).blocks == []


def test_another_tenants_user_cannot_be_blocked(world):
    license, outsider = world["license"], world["outsider"].user
    client = signed_in()

    for value in (outsider.email, str(outsider.pk)):
        refused = client.post(url(license, "blocks/"), {"kind": "user", "value": value, "confirm": "yes"})
        assert refused.status_code == 400
        assert "No user of the license" in refused.content.decode()
    assert fresh(license).blocks == []


@pytest.mark.parametrize(
    "data",
    [
        {"kind": "planet", "value": "machine-aaaa-0001"},
        {"kind": "machine", "value": ""},
        {"kind": "machine", "value": "no spaces allowed"},
        {"kind": "machine", "value": "bad\x00value"},
        {"kind": "user", "value": "nobody@acme.test"},
    ],
    ids=["kind", "empty", "not-a-fingerprint", "nul", "unknown-user"],
)
def test_a_bad_block_is_a_400_that_changes_nothing(world, data):
    license = world["license"]

    response = signed_in().post(url(license, "blocks/"), {**data, "confirm": "yes"})

    assert response.status_code == 400
    assert 'data-testid="license-error"' in response.content.decode()
    assert fresh(license).blocks == []


def test_unblocking_what_is_not_blocked_is_a_400(world):
    response = signed_in().post(
        url(world["license"], "blocks/remove/"), {"kind": "machine", "value": MACHINES[0]}
    )

    assert response.status_code == 400


# --- another tenant's admin, a plain member ---------------------------------------------------


def every_url(license) -> list[tuple[str, str, dict]]:
    return [
        ("get", url(license), {}),
        ("get", url(license, "key/rotate/"), {}),
        ("post", url(license, "key/rotate/"), {"once": "x"}),
        ("get", url(license, "key/abcdefghijklmnop/"), {}),
        ("post", url(license, "machines/unbind/"), {"fingerprint": MACHINES[0]}),
        ("post", url(license, "machines/unbind/"), {"fingerprint": MACHINES[0], "confirm": "yes"}),
        ("post", url(license, "blocks/"), {"kind": "machine", "value": MACHINES[0], "confirm": "yes"}),
        ("post", url(license, "blocks/remove/"), {"kind": "machine", "value": MACHINES[0]}),
        ("post", url(license, "release/confirm/"), {"session_id": "abc"}),
        ("post", url(license, "groups/"), {"name": "g", "members": MACHINES[0], "reserve": "1"}),
        ("post", url(license, "groups/remove/"), {"name": "g"}),
    ]


def test_another_tenants_admin_gets_404_on_every_url_of_the_license_and_changes_nothing(world):
    license = world["license"]
    client = signed_in("admin@globex.test")

    for method, path, data in every_url(license):
        response = getattr(client, method)(path, data)
        assert response.status_code == 404, (method, path)
    after = fresh(license)
    assert (after.key_digest, set(after.hardware_fingerprints), after.blocks, after.seat_rules) == (
        license.key_digest,
        set(MACHINES),
        [],
        [],
    )


def test_a_plain_member_is_refused_and_a_visitor_is_sent_to_sign_in_on_every_url(world):
    license = world["license"]
    member = Client()
    signed = member.post("/dashboard/login/", {"email": "member@acme.test", "password": TEST_PASSWORD})
    assert signed.status_code == 302 and signed["Location"] == "/dashboard/me/"

    for method, path, data in every_url(license):
        assert getattr(member, method)(path, data).status_code == 403, (method, path)
        response = getattr(Client(), method)(path, data)
        assert response.status_code == 302 and "/dashboard/login/" in response["Location"], (method, path)
    assert fresh(license).key_digest == license.key_digest


def test_changing_requests_refuse_get(world):
    client = signed_in()
    for tail in ("machines/unbind/", "blocks/", "blocks/remove/", "groups/", "groups/remove/"):
        assert client.get(url(world["license"], tail)).status_code == 405


# --- the cap under load, and the operator console ---------------------------------------------


@pytest.mark.postgres
def test_unbinds_sent_at_once_never_pass_the_cap_together(world):
    from licenses.tests.console_forms import at_once

    license = world["license"]
    with tenant_scope(license.tenant_id):
        License.objects.filter(pk=license.pk).update(max_unbinds_per_month=1)
    client = signed_in()
    machines = iter(MACHINES)
    picked = {}

    def send(each):
        import threading

        machine = picked.setdefault(threading.get_ident(), next(machines))
        return each.post(
            url(license, "machines/unbind/"), {"fingerprint": machine, "confirm": "yes"}
        ).status_code

    answers = at_once(client, 3, send)

    assert sorted(answers) == [302, 409, 409]
    assert len(fresh(license).hardware_fingerprints) == 2
    assert len(unbound_rows(license)) == 1


@pytest.fixture
def console(world):
    from django.contrib.contenttypes.models import ContentType

    from licenses.tests.test_admin import make_operator

    ContentType.objects.clear_cache()
    client = Client()
    with operator_scope():
        client.force_login(make_operator(is_superuser=True))
    return client


@pytest.mark.postgres
def test_the_console_shows_the_cap_on_policy_and_license_and_its_unbinds_are_not_capped(world, console):
    from django.urls import reverse

    license, policy = world["license"], world["policy"]
    Policy.objects.filter(pk=policy.pk).update(max_unbinds_per_month=0)

    policy_page = console.get(reverse("admin:licenses_policy_change", args=[policy.pk])).content.decode()
    assert 'name="max_unbinds_per_month"' in policy_page
    license_page = console.get(reverse("admin:licenses_license_change", args=[license.pk])).content.decode()
    assert 'name="max_unbinds_per_month"' in license_page
    assert "Unbinding here is not capped" in license_page and "they may not unbind" in license_page

    response = console.post(
        reverse("admin:licenses_license_unbind", args=[license.pk]), {"fingerprint": MACHINES[0]}
    )

    assert response.status_code in (302, 303)
    assert MACHINES[0] not in fresh(license).hardware_fingerprints
    assert [row.details for row in unbound_rows(license)] == [{"fingerprint": MACHINES[0]}]


@pytest.mark.parametrize(
    "now, start, end",
    [
        (
            datetime(2026, 12, 31, 23, 59, tzinfo=UTC),
            datetime(2026, 12, 1, tzinfo=UTC),
            datetime(2027, 1, 1, tzinfo=UTC),
        ),
        (
            datetime(2027, 1, 1, 0, 0, tzinfo=UTC),
            datetime(2027, 1, 1, tzinfo=UTC),
            datetime(2027, 2, 1, tzinfo=UTC),
        ),
        # 23:30 on 31 January in New York is already 1 February in UTC: the month is UTC's.
        (
            datetime(2027, 1, 31, 23, 30, tzinfo=ZoneInfo("America/New_York")),
            datetime(2027, 2, 1, tzinfo=UTC),
            datetime(2027, 3, 1, tzinfo=UTC),
        ),
    ],
    ids=["december", "new-year", "utc-not-local"],
)
def test_the_cap_counts_a_calendar_month_in_utc(now, start, end):
    from licenses.selectors import unbind_month

    assert unbind_month(now) == (start, end)


def test_releasing_a_live_seat_asks_first(world):
    from licenses.ledger import get_seat_ledger

    license, member = world["license"], world["member"].user
    with tenant_scope(license.tenant_id):
        session_id = (
            get_seat_ledger()
            .acquire(
                license_id=license.id,
                tenant_id=license.tenant_id,
                max_seats=license.max_seats,
                fingerprint=MACHINES[0],
                user_id=str(member.pk),
                ttl=600,
            )
            .lease.session_id
        )
    client = signed_in()
    assert url(license, "release/confirm/") in client.get(url(license)).content.decode()

    asked = client.post(url(license, "release/confirm/"), {"session_id": session_id})

    text = asked.content.decode()
    assert asked.status_code == 200 and "Are you sure?" in text
    assert member.email in text and MACHINES[0] in text
    assert f'action="/dashboard/licenses/{license.id}/release/"' in text
    with tenant_scope(license.tenant_id):
        assert [lease.session_id for lease in get_seat_ledger().live_leases(license_id=license.id)] == [
            session_id
        ]
    released = client.post(url(license, "release/"), {"session_id": session_id})
    assert released.status_code == 302
    with tenant_scope(license.tenant_id):
        assert get_seat_ledger().live_leases(license_id=license.id) == []


def test_the_terms_name_the_floating_rules_and_an_overdraft_seat_is_marked(world, settings):
    from licenses.ledger.gateway import seat_ledger

    settings.SEAT_LEDGER = "database"
    license = world["license"]
    with tenant_scope(license.tenant_id):
        License.objects.filter(pk=license.pk).update(max_seats=1, overdraft_seats=1, linger_seconds=45)
        for machine in MACHINES[:2]:
            seat_ledger().acquire(
                license_id=license.id,
                tenant_id=license.tenant_id,
                max_seats=1,
                fingerprint=machine,
                user_id=str(world["member"].user.pk),
                ttl=300,
                overdraft=1,
            )

    page = signed_in().get(url(license)).content.decode()

    assert "up to 1 seat past the limit" in page and "for 45 s" in page
    assert page.count('data-testid="overdraft-seat"') == 1


# --- named seats ----------------------------------------------------------------------------


@pytest.fixture
def named_license(world):
    license = world["license"]
    with tenant_scope(license.tenant_id):
        License.objects.filter(pk=license.pk).update(seat_mode="named", max_seats=1)
    return fresh(license)


def test_a_tenant_admin_gives_a_named_seat_and_takes_it_back_after_asking(world, named_license):
    client = signed_in()
    page = client.get(url(named_license)).content.decode()
    assert 'data-testid="named-seats"' in page and "nobody can use this license" in page

    given = client.post(url(named_license, "seats/give/"), {"email": "member@acme.test"})
    assert given.status_code == 302
    member_id = str(world["member"].user.pk)
    assert fresh(named_license).assignment_of(member_id)["email"] == "member@acme.test"
    full = client.post(url(named_license, "seats/give/"), {"email": "admin@acme.test"})
    assert full.status_code == 409 and "All 1 seats are assigned" in full.content.decode()

    asked = client.post(url(named_license, "seats/take-back/"), {"user_id": member_id})
    assert asked.status_code == 200 and "Yes, take it back" in asked.content.decode()
    assert fresh(named_license).assignment_of(member_id) is not None  # asking changed nothing
    done = client.post(url(named_license, "seats/take-back/"), {"user_id": member_id, "confirm": "yes"})
    assert done.status_code == 302 and fresh(named_license).assignment_of(member_id) is None
    with tenant_scope(named_license.tenant_id):
        actions = list(
            AuditLog.objects.filter(action__startswith="license.seat_").values_list("action", flat=True)
        )
    assert sorted(actions) == ["license.seat_assigned", "license.seat_unassigned"]
    # The seat cools down: the page says so and offers no seat to give.
    page = client.get(url(named_license)).content.decode()
    assert "taken back in the last 24 hours" in page and 'data-testid="give-seat"' not in page


def test_a_plain_member_cannot_give_or_take_back_named_seats(world, named_license):
    member = signed_in("member@acme.test")
    assert member.post(url(named_license, "seats/give/"), {"email": "member@acme.test"}).status_code == 403
    assert fresh(named_license).assignments == []


# --- seat groups (reservations, limits, queue priority) -------------------------------------


def test_a_tenant_admin_adds_changes_and_removes_a_seat_group(world):
    license = world["license"]
    client = signed_in()
    page = client.get(url(license)).content.decode()
    assert 'data-testid="seat-groups"' in page and "No groups: every seat is open to everyone." in page

    saved = client.post(
        url(license, "groups/"),
        {"name": "Design", "members": f"member@acme.test\n{MACHINES[0]}", "reserve": "1", "max": "2"},
    )
    assert saved.status_code == 302
    [rule] = fresh(license).seat_rules
    assert rule == {
        "name": "Design",
        "users": [str(world["member"].user.pk)],
        "machines": [MACHINES[0]],
        "reserve": 1,
        "max": 2,
        "priority": 0,
    }
    page = client.get(url(license)).content.decode()
    assert 'data-group="Design"' in page and "member@acme.test" in page

    # The same name changes the group in place.
    client.post(url(license, "groups/"), {"name": "Design", "members": "MEMBER@acme.test", "priority": "3"})
    [rule] = fresh(license).seat_rules
    assert (rule["reserve"], rule["max"], rule["priority"], rule["machines"]) == (0, None, 3, [])

    assert client.post(url(license, "groups/remove/"), {"name": "Design"}).status_code == 302
    assert fresh(license).seat_rules == []
    with tenant_scope(license.tenant_id):
        changes = list(
            AuditLog.objects.filter(action="license.seat_rules_changed")
            .order_by("id")
            .values_list("details", flat=True)
        )
    assert changes == [{"groups": ["Design"]}, {"groups": ["Design"]}, {"groups": []}]


@pytest.mark.parametrize(
    "data, says",
    [
        ({"name": "x", "members": "nobody@acme.test", "reserve": "1"}, "is not one of this tenant"),
        ({"name": "x", "members": "admin@globex.test"}, "is not one of this tenant"),
        ({"name": "x", "members": "short"}, "neither an email nor a machine fingerprint"),
        ({"name": "x", "members": "member@acme.test", "reserve": "-1"}, "Reserve is a whole number"),
        ({"name": "x", "members": "member@acme.test", "reserve": "99"}, "the license has"),
        ({"name": "x", "members": "member@acme.test", "reserve": "2", "max": "1"}, "cannot reserve more"),
        (
            {"name": "x", "members": "member@acme.test", "priority": "10"},
            "Priority is a whole number, 0 to 9",
        ),
        (
            {"name": "x", "members": "member@acme.test", "priority": "-1"},
            "Priority is a whole number, 0 to 9",
        ),
        (
            {"name": "x", "members": "member@acme.test", "reserve": "²"},
            "Reserve is a whole number, 0 or more",
        ),
        ({"name": "!bad", "members": "member@acme.test"}, "A group&#x27;s name is"),
        ({"name": "x", "members": ""}, "has no users and no machines"),
    ],
)
def test_a_bad_group_is_a_400_that_says_why_and_changes_nothing(world, data, says):
    license = world["license"]
    refused = signed_in().post(url(license, "groups/"), data)
    assert refused.status_code == 400 and says in refused.content.decode()
    assert fresh(license).seat_rules == []


def test_the_license_page_shows_the_queue_when_the_license_queues(world):
    license = world["license"]
    page = signed_in().get(url(license)).content.decode()
    assert "none: with every seat taken, a request is refused" in page
    with operator_scope():
        License.unscoped.filter(pk=license.pk).update(queue_max_tickets=5)
    page = signed_in().get(url(license)).content.decode()
    assert "up to 5 waiting for a seat" in page and "0 waiting now" in page


def test_groups_past_a_lowered_seat_count_can_still_be_cut_down_or_removed(world):
    license = world["license"]
    rules = [
        {"name": name, "users": [], "machines": [machine], "reserve": 1, "max": None, "priority": 0}
        for name, machine in (
            ("one", "machine-one-0001"),
            ("two", "machine-two-0002"),
            ("three", "machine-three-03"),
        )
    ]
    with operator_scope():
        License.unscoped.filter(pk=license.pk).update(seat_rules=rules, max_seats=2)
    client = signed_in()
    # Removing one is allowed though the other two still reserve as many seats as there are.
    assert client.post(url(license, "groups/remove/"), {"name": "three"}).status_code == 302
    assert [rule["name"] for rule in fresh(license).seat_rules] == ["one", "two"]
    # Raising a reservation past the seats is not.
    refused = client.post(
        url(license, "groups/"), {"name": "one", "members": "machine-one-0001", "reserve": "2"}
    )
    assert refused.status_code == 400 and "the license has 2" in refused.content.decode()


def test_a_member_listed_in_an_earlier_group_is_pointed_out(world):
    license = world["license"]
    client = signed_in()
    client.post(url(license, "groups/"), {"name": "first", "members": "member@acme.test"})
    saved = client.post(
        url(license, "groups/"), {"name": "second", "members": "member@acme.test"}, follow=True
    )
    assert (
        "listed in a group before it" in saved.content.decode()
        and "member@acme.test (first)" in saved.content.decode()
    )
