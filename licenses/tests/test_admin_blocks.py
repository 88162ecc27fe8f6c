"""The operator console's blocks, through the admin's own views: the block
form and each live lease's "block this machine" / "block this user" ask for
confirmation first (a POST that changes nothing), then block; the license
page lists the blocks with an unblock button (confirmed the same way); force
release says plainly that the client acquires again unless blocked."""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.models import User
from licenses.tests import test_admin
from licenses.tests.console_forms import confirm, confirm_fields
from licenses.tests.test_admin import audit, fresh, live, messages_shown, url
from tenants.scope import tenant_scope

pytestmark = pytest.mark.postgres

fresh_content_types = test_admin.fresh_content_types
quick_password_hashing = test_admin.quick_password_hashing
operator = test_admin.operator
console = test_admin.console
scene = test_admin.scene


def member_of(tenant) -> User:
    with tenant_scope(tenant.id):
        return User.objects.get(email="member@acme.test")


def page(console, license) -> str:
    response = console.get(reverse("admin:licenses_license_change", args=[license.pk]))
    assert response.status_code == 200
    return response.content.decode()


def test_each_live_lease_offers_to_block_its_machine_and_its_user(console, scene):
    tenant, license, _ = scene
    member = member_of(tenant)

    shown = page(console, license)

    assert 'id="block-form"' in shown
    assert shown.count('value="Block this machine…"') == 2
    assert shown.count('value="Block this user…"') == 2
    assert 'name="value" value="fp-aaaa-0001"' in shown
    assert f'name="value" value="{member.pk}"' in shown


def test_block_asks_first_then_blocks_the_machine_and_ends_its_seat(console, scene, operator):
    _, license, sessions = scene
    posted = {"kind": "machine", "value": "fp-aaaa-0001", "reason": "stolen laptop"}

    asked = console.post(url("block", license), posted)

    assert asked.status_code == 200
    confirmation = asked.content.decode()
    assert "Yes, block this machine" in confirmation and 'value="stolen laptop"' in confirmation
    assert fresh(license).blocks == [] and sorted(live(license)) == sorted(sessions)

    done = console.post(url("block", license), confirm_fields(asked), follow=True)

    assert "cannot acquire again until unblocked" in " ".join(messages_shown(done))
    (block,) = fresh(license).blocks
    assert (block["kind"], block["value"], block["reason"], block["by"]) == (
        "machine",
        "fp-aaaa-0001",
        "stolen laptop",
        operator.email,
    )
    assert live(license) == [sessions[1]]
    (blocked,) = audit(license, "license.blocked")
    assert (blocked.actor, blocked.details["value"]) == (operator.email, "fp-aaaa-0001")
    assert audit(license, "lease.force_released")[0].details["session_id"] == sessions[0]
    listed = done.content.decode().split('id="block-list"')[1].split("</table>")[0]
    assert "fp-aaaa-0001" in listed and "stolen laptop" in listed and "Unblock…" in listed


def test_a_user_is_blocked_from_the_lease_row_and_listed_by_email(console, scene):
    tenant, license, _ = scene
    member = member_of(tenant)

    confirm(console, url("block", license), {"kind": "user", "value": str(member.pk)})

    assert [(block["kind"], block["value"]) for block in fresh(license).blocks] == [("user", str(member.pk))]
    assert live(license) == []  # both seats were the member's
    listed = page(console, license).split('id="block-list"')[1].split("</table>")[0]
    assert "member@acme.test" in listed


def test_unblock_asks_first_then_lifts_the_block(console, scene, operator):
    _, license, _ = scene
    confirm(console, url("block", license), {"kind": "machine", "value": "fp-aaaa-0001"})
    lifted = {"kind": "machine", "value": "fp-aaaa-0001"}

    asked = console.post(url("unblock", license), lifted)

    assert asked.status_code == 200 and "Yes, unblock this machine" in asked.content.decode()
    assert len(fresh(license).blocks) == 1

    done = console.post(url("unblock", license), confirm_fields(asked), follow=True)

    assert "may acquire seats of this license again" in " ".join(messages_shown(done))
    assert fresh(license).blocks == []
    (unblocked,) = audit(license, "license.unblocked")
    assert unblocked.actor == operator.email


def test_a_user_blocked_by_id_is_unblocked_by_email(console, scene):
    tenant, license, _ = scene
    member = member_of(tenant)
    confirm(console, url("block", license), {"kind": "user", "value": str(member.pk)})

    done = confirm(
        console, url("unblock", license), {"kind": "user", "value": "Member@Acme.test "}, follow=True
    )

    assert "may acquire seats of this license again" in " ".join(messages_shown(done))
    assert fresh(license).blocks == []


@pytest.mark.parametrize(
    ("action", "posted", "confirmed", "message", "status"),
    [
        ("block", {"kind": "printer", "value": "x"}, False, "Name a machine", 200),
        ("block", {"kind": "user", "value": "nobody@acme.test"}, False, "No user of", 200),
        ("block", {"kind": "machine", "value": "fp\x00"}, False, "The value given is not usable", 200),
        # No client can send these as its fingerprint: such a block would block nothing.
        ("block", {"kind": "machine", "value": "<b>my laptop</b>"}, False, "named by its fingerprint", 200),
        ("block", {"kind": "machine", "value": "short"}, False, "named by its fingerprint", 200),
        ("block", {"kind": "machine", "value": "f" * 129}, False, "named by its fingerprint", 200),
        ("unblock", {"kind": "printer", "value": "x"}, False, "A block names a machine or a user", 200),
        ("unblock", {"kind": "machine", "value": "fp-aaaa-0001"}, False, "is not blocked", 200),
        # "Yes" without the confirmation page's one-time token.
        ("block", {"kind": "machine", "value": "fp-aaaa-0001", "confirm": "yes"}, False, "out of date", 400),
    ],
)
def test_a_block_that_cannot_be_is_a_message_and_changes_nothing(
    console, scene, action, posted, confirmed, message, status
):
    _, license, sessions = scene

    if confirmed:  # refused by the service, on the confirming POST
        response = confirm(console, url(action, license), posted, follow=True)
    else:
        response = console.post(url(action, license), posted, follow=True)

    assert response.status_code == status
    assert message in " ".join(messages_shown(response))
    assert fresh(license).blocks == [] and sorted(live(license)) == sorted(sessions)
    assert audit(license, "license.blocked") == audit(license, "license.unblocked") == []


def test_force_release_says_the_client_acquires_again_unless_blocked(console, scene):
    _, license, sessions = scene

    response = console.post(url("release", license), {"session_id": sessions[0]}, follow=True)

    assert "will acquire a seat again" in " ".join(messages_shown(response))
    assert "unless its machine or user is blocked" in " ".join(messages_shown(response))
