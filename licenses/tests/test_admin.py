"""The operator console: a logged-in operator drives the admin's own views;
each action changes the ledger or the license and leaves an audit row; anyone
who is not staff is refused.

The admin runs on the operator database connection, so these tests commit
their rows (committed_db) for it to see them.
"""

from __future__ import annotations

import pytest
from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.test import Client
from django.urls import reverse

from accounts.models import Role, User
from accounts.tests.factories import TEST_PASSWORD, UserFactory
from audit.models import AuditLog
from licenses.keys import license_key_digest
from licenses.ledger import get_seat_ledger
from licenses.models import License
from licenses.selectors import LicenseNotFound, license_get_by_key
from licenses.tests.console_forms import confirm, confirm_fields
from licenses.tests.factories import LicenseFactory
from tenants.scope import operator_scope, tenant_scope
from tenants.tests.factories import TenantFactory

pytestmark = pytest.mark.postgres


@pytest.fixture(autouse=True)
def fresh_content_types():
    # committed_db empties every table after a test, django_content_type too, so
    # the ids this process cached may be gone; the admin's log needs real ones.
    ContentType.objects.clear_cache()


@pytest.fixture(autouse=True)
def quick_password_hashing(settings):
    # The real hasher is slow on purpose; these tests are not about it.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def make_operator(email="ops@coditect.test", **fields) -> User:
    with operator_scope(), transaction.atomic(using=settings.OPERATOR_DATABASE):
        return User.objects.create_user(email, TEST_PASSWORD, is_staff=True, **fields)


@pytest.fixture
def operator(committed_db):
    return make_operator(is_superuser=True)


@pytest.fixture
def console(operator) -> Client:
    client = Client()
    # Logging in saves last_login: the operator's row is written on the operator path.
    with operator_scope():
        client.force_login(operator)
    return client


@pytest.fixture
def scene(committed_db):
    tenant = TenantFactory(name="Acme", slug="acme")
    member = UserFactory(tenant=tenant, role=Role.USER, email="member@acme.test")
    license = LicenseFactory(
        tenant=tenant, max_seats=3, hardware_fingerprints=["fp-aaaa-0001", "fp-bbbb-0002"]
    )
    ledger = get_seat_ledger()
    with tenant_scope(tenant.id):
        sessions = [
            ledger.acquire(
                license_id=license.id,
                tenant_id=tenant.id,
                max_seats=3,
                fingerprint=fingerprint,
                user_id=str(member.pk),
                ttl=600,
            ).lease.session_id
            for fingerprint in ("fp-aaaa-0001", "fp-bbbb-0002")
        ]
    return tenant, license, sessions


def url(name: str, license) -> str:
    return reverse(f"admin:licenses_license_{name}", args=[license.pk])


def audit(license, action: str) -> list[AuditLog]:
    with tenant_scope(license.tenant_id):
        return list(AuditLog.objects.filter(action=action, target_id=str(license.id)).order_by("id"))


def fresh(license) -> License:
    with tenant_scope(license.tenant_id):
        return License.objects.get(pk=license.pk)


def live(license) -> list[str]:
    with tenant_scope(license.tenant_id):
        return [lease.session_id for lease in get_seat_ledger().live_leases(license_id=license.id)]


def test_an_operator_logs_in_through_the_admin_login_page(operator):
    client = Client()
    response = client.post(
        reverse("admin:login"), {"username": operator.email, "password": TEST_PASSWORD, "next": "/admin/"}
    )
    assert response.status_code == 302, response.content
    assert client.get(reverse("admin:index")).status_code == 200


def test_the_license_page_shows_live_seats_from_the_ledger(console, scene):
    _, license, sessions = scene

    response = console.get(reverse("admin:licenses_license_change", args=[license.pk]))

    assert response.status_code == 200
    page = response.content.decode()
    assert '<span id="seats-used">2</span> of 3' in page
    assert all(session in page for session in sessions)
    assert "member@acme.test" in page


def test_force_release_frees_the_seat_and_is_audited(console, scene, operator):
    _, license, sessions = scene

    response = console.post(url("release", license), {"session_id": sessions[0]})

    assert response.status_code == 302
    assert live(license) == [sessions[1]]
    (event,) = audit(license, "lease.force_released")
    assert event.details["session_id"] == sessions[0]
    assert (event.user_id, event.actor) == (operator.pk, operator.email)
    assert event.details["acquired_at"]


def test_suspend_and_resume_change_the_license_and_are_audited(console, scene):
    _, license, _ = scene

    confirm(console, url("suspend", license), {"reason": "unpaid invoice"})
    assert fresh(license).suspended is True
    confirm(console, url("resume", license))
    assert fresh(license).suspended is False

    (suspended,) = audit(license, "license.suspended")
    assert suspended.details == {"reason": "unpaid invoice"}
    assert len(audit(license, "license.resumed")) == 1


def test_extend_moves_the_expiry_and_is_audited(console, scene):
    _, license, _ = scene
    confirm(console, url("set_expiry", license), {"expires_at": "2099-01-01 00:00"})

    confirm(console, url("extend", license), {"days": "30"})

    expires = fresh(license).expires_at
    assert expires.isoformat() == "2099-01-31T00:00:00+00:00"
    _, event = audit(license, "license.extended")
    assert event.details["to"] == expires.isoformat()
    assert (event.details["how"], event.details["days"]) == ("extended", 30)


def messages_shown(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


@pytest.mark.parametrize(
    ("action", "posted", "message"),
    [
        ("extend", {"days": "²"}, "whole number of days"),
        ("extend", {"days": "٣"}, "whole number of days"),
        ("extend", {"days": "9" * 5000}, "whole number of days"),
        ("extend", {"days": "0"}, "whole number of days"),
        ("extend", {}, "whole number of days"),
        ("set_expiry", {"expires_at": "2025-02-30 10:00"}, "is not a date and time"),
        ("set_expiry", {"expires_at": "tomorrow"}, "is not a date and time"),
        ("set_expiry", {"expires_at": "9999-12-31 23:59+00:00\x00"}, "is not a date and time"),
        ("set_expiry", {"expires_at": "2001-01-01 00:00"}, "must be in the future"),
        ("set_expiry", {}, "Give an expiry"),
    ],
    ids=[
        "superscript-two",
        "arabic-indic-three",
        "5000-digits",
        "zero",
        "no-days",
        "february-30",
        "words",
        "nul",
        "past",
        "nothing",
    ],
)
def test_an_unusable_expiry_is_a_message_on_the_page_and_changes_nothing(
    console, scene, action, posted, message
):
    _, license, _ = scene

    response = console.post(url(action, license), posted, follow=True)

    # The form again, with the message: nothing to confirm.
    assert response.status_code == 400
    assert 'value="Yes, ' not in response.content.decode()
    assert any(message in shown for shown in messages_shown(response)), messages_shown(response)
    assert fresh(license).expires_at == license.expires_at
    assert audit(license, "license.extended") == []


def test_an_extension_past_the_last_storable_date_is_a_message(console, scene):
    _, license, _ = scene
    confirm(console, url("set_expiry", license), {"expires_at": "9999-12-30 00:00"})

    response = console.post(url("extend", license), {"days": "3660"}, follow=True)

    assert any("past the last date" in shown for shown in messages_shown(response))
    assert fresh(license).expires_at.year == 9999


@pytest.fixture
def database_ledger(settings):
    # The database ledger hands a session id to PostgreSQL, which refuses NUL.
    settings.SEAT_LEDGER = "database"


@pytest.mark.parametrize(
    ("action", "field"),
    [("release", "session_id"), ("suspend", "reason"), ("unbind", "fingerprint")],
)
@pytest.mark.parametrize("value", ["fp-aaaa-0001\x00", "x" * 5000], ids=["nul", "too-long"])
def test_a_nul_or_an_absurd_length_in_a_posted_field_is_a_message_not_an_error(
    database_ledger, console, scene, action, field, value
):
    _, license, sessions = scene
    if field == "session_id" and value.endswith("\x00"):
        value = sessions[0] + "\x00"

    response = console.post(url(action, license), {field: value}, follow=True)

    assert response.status_code == 200
    label = field.replace("_", " ")
    assert f"The {label} given is not usable" in " ".join(messages_shown(response))
    assert sorted(live(license)) == sorted(sessions)
    stored = fresh(license)
    assert (stored.suspended, stored.hardware_fingerprints) == (False, ["fp-aaaa-0001", "fp-bbbb-0002"])


def test_unbind_takes_the_machine_off_and_ends_its_lease(console, scene):
    _, license, sessions = scene

    console.post(url("unbind", license), {"fingerprint": "fp-aaaa-0001"})

    assert fresh(license).hardware_fingerprints == ["fp-bbbb-0002"]
    assert live(license) == [sessions[1]]
    assert audit(license, "license.machine_unbound")[0].details == {"fingerprint": "fp-aaaa-0001"}
    assert audit(license, "lease.force_released")[0].details["session_id"] == sessions[0]


def shown_key(response) -> str:
    return response.content.decode().split('<code id="license-key">')[1].split("</code>")[0]


def test_regenerate_key_shows_the_new_key_once_and_the_old_one_stops_working(console, scene):
    tenant, license, _ = scene
    old_key = license.key

    page = console.get(url("regenerate_key", license))
    assert page.status_code == 200 and b"Yes, regenerate" in page.content
    response = console.post(url("regenerate_key", license), confirm_fields(page))

    # Post/redirect/get: the POST answers a redirect that names a token, not the key.
    assert response.status_code == 303
    assert old_key not in response["Location"]
    page = console.get(response["Location"])
    assert page.status_code == 200
    assert "no-store" in page["Cache-Control"]
    new_key = shown_key(page)
    assert new_key.startswith("CDT-") and new_key != old_key
    assert new_key not in response["Location"]
    stored = fresh(license)
    assert stored.key_digest == license_key_digest(new_key)
    with tenant_scope(tenant.id):
        assert license_get_by_key(license_key=new_key).pk == license.pk
        with pytest.raises(LicenseNotFound):
            license_get_by_key(license_key=old_key)
    (event,) = audit(license, "license.key_regenerated")
    assert new_key not in str(event.details)
    # The key page shows it once; the license page never.
    again = console.get(response["Location"])
    assert again.status_code == 410 and new_key not in again.content.decode()
    assert b"already shown" in again.content
    assert (
        new_key
        not in console.get(reverse("admin:licenses_license_change", args=[license.pk])).content.decode()
    )


def test_a_pasted_key_finds_its_license_by_a_post_and_a_prefix_by_the_search_box(console, scene):
    _, license, _ = scene
    other = LicenseFactory(tenant=TenantFactory(), max_seats=1)
    changelist = reverse("admin:licenses_license_changelist")

    by_prefix = console.get(changelist, {"q": other.key_prefix}).content.decode()
    found = console.post(
        reverse("admin:licenses_license_find_by_key"), {"license_key": f"  {license.key.lower()} "}
    )

    assert found.status_code == 303
    assert found["Location"] == reverse("admin:licenses_license_change", args=[license.pk])
    assert other.key_prefix in by_prefix and license.key_prefix not in by_prefix


def test_the_audit_log_is_read_only_in_the_admin(console, scene):
    _, license, _ = scene
    confirm(console, url("suspend", license), {"reason": "audit page"})
    with tenant_scope(license.tenant_id):
        event = AuditLog.objects.first()

    page = console.get(reverse("admin:audit_auditlog_change", args=[event.pk]))
    assert page.status_code == 200
    assert b'name="_save"' not in page.content
    assert console.post(reverse("admin:audit_auditlog_delete", args=[event.pk])).status_code == 403


def test_a_user_who_is_not_staff_is_refused(scene):
    tenant, license, sessions = scene
    admin_of_tenant = UserFactory(tenant=tenant, role=Role.TENANT_ADMIN, email="boss@acme.test")
    client = Client()
    with tenant_scope(tenant.id):
        client.force_login(admin_of_tenant)

    page = client.get(reverse("admin:licenses_license_change", args=[license.pk]))
    release = client.post(url("release", license), {"session_id": sessions[0]})
    suspend = client.post(url("suspend", license))
    login = client.post(reverse("admin:login"), {"username": "boss@acme.test", "password": TEST_PASSWORD})

    assert page.status_code == release.status_code == suspend.status_code == 302
    assert reverse("admin:login") in page["Location"]
    assert login.status_code == 200  # the form again: not staff
    assert sorted(live(license)) == sorted(sessions)
    assert fresh(license).suspended is False


def test_staff_without_the_change_permission_cannot_act(scene):
    _, license, sessions = scene
    viewer = make_operator(email="viewer@coditect.test")
    client = Client()
    with operator_scope():
        client.force_login(viewer)

    assert client.post(url("release", license), {"session_id": sessions[0]}).status_code == 403
    assert sorted(live(license)) == sorted(sessions)


def test_editing_the_license_form_goes_through_the_audited_update_service(console, scene):
    _, license, _ = scene
    # Entitlements are codes of the license's policy's catalog.
    license.policy.entitlements = {"pro": "Pro features"}
    license.policy.save()

    response = console.post(
        reverse("admin:licenses_license_change", args=[license.pk]),
        {
            "name": "Renamed",
            "max_seats": "7",
            "max_machines": "",
            "entitlements": '{"pro": true}',
            "lease_ttl": "360",
            "offline_grace": "86400",
            "borrow_limit_hours": "72",
            "_save": "Save",
        },
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    stored = fresh(license)
    assert (stored.name, stored.max_seats, stored.entitlements) == ("Renamed", 7, {"pro": True})
    (event,) = audit(license, "license.updated")
    assert event.details["changes"]["max_seats"] == {"from": 3, "to": 7}
    assert audit(license, "admin.changed") == []  # the service's row is the record


def test_adding_a_license_redirects_to_the_page_that_shows_its_key(console, scene):
    tenant, _, _ = scene

    add = reverse("admin:licenses_license_add")
    response = console.post(
        add,
        {
            "once": confirm_fields(console.get(add), ["license_form"])["once"],
            "tenant": str(tenant.id),
            "name": "New product",
            "max_seats": "4",
            "hardware_fingerprints": "[]",
            "max_machines": "",
            "entitlements": "{}",
            "lease_ttl": "360",
            "offline_grace": "86400",
            "borrow_limit_hours": "72",
            "_save": "Save",
        },
    )

    assert response.status_code == 303, response.content.decode()[:2000]
    key = shown_key(console.get(response["Location"]))
    with tenant_scope(tenant.id):
        created = license_get_by_key(license_key=key)
    assert (created.name, created.max_seats) == ("New product", 4)
    assert len(audit(created, "license.created")) == 1
    assert audit(created, "admin.added") == []
