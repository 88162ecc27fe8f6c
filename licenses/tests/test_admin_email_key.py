"""The console's "Email the key to…" (issue 15, email): the license page asks
first, saying plainly that the current key stops working when the link is
claimed; its "Yes" emails one claim link (no key in it), audited and in the
admin's LogEntry; the same "Yes" twice sends one; a bad address is refused
and changes nothing. Through the admin's own views on PostgreSQL."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.urls import reverse

from licenses.keys import license_key_digest
from licenses.models import LicenseClaim
from licenses.tests import test_admin
from licenses.tests.console_forms import confirm_fields
from licenses.tests.test_admin import audit, fresh, messages_shown, url
from licenses.tests.test_admin_confirm import log_entries, text
from tenants.scope import tenant_scope

pytestmark = pytest.mark.postgres

fresh_content_types = test_admin.fresh_content_types
quick_password_hashing = test_admin.quick_password_hashing
operator = test_admin.operator
console = test_admin.console
scene = test_admin.scene

CLAIM_LINK = re.compile(r"https?://\S+/claim\?t=([\w.-]+)")
A_KEY = re.compile(r"CDT-[0-9A-Z]{5}-")


@pytest.fixture(autouse=True)
def empty_outbox(eager_tasks):
    mail.outbox = []


def claims(license) -> list[LicenseClaim]:
    with tenant_scope(license.tenant_id):
        return list(LicenseClaim.objects.filter(license_id=license.id))


def test_the_license_page_offers_it_and_the_confirmation_says_the_current_key_stops(console, scene):
    _, license, _ = scene
    page = text(console.get(reverse("admin:licenses_license_change", args=[license.pk])))
    assert f'action="{url("email_key", license)}"' in page and "Email the key…" in page

    asked = console.post(url("email_key", license), {"email": "buyer@example.test"})

    assert asked.status_code == 200
    page = text(asked)
    assert "Email the key?" in page
    assert f"the current key ({license.key_prefix}…) stops working" in page
    assert "The email carries no key" in page
    assert 'value="buyer@example.test"' in page and 'type="email"' in page
    # Asking sends nothing and records nothing.
    assert mail.outbox == [] and claims(license) == []
    assert audit(license, "license.delivery_sent") == []


def test_yes_emails_one_claim_link_without_the_key_audited_and_logged(console, scene, operator):
    _, license, _ = scene
    change = reverse("admin:licenses_license_change", args=[license.pk])
    asked = console.post(url("email_key", license), {"email": "Buyer@Example.test"})

    done = console.post(url("email_key", license), confirm_fields(asked), follow=True)

    assert done.redirect_chain[-1] == (change, 303)
    assert any("claim link was emailed to buyer@example.test" in m for m in messages_shown(done))
    [message] = mail.outbox
    assert message.to == ["buyer@example.test"]
    [(html, _)] = message.alternatives
    assert CLAIM_LINK.search(message.body)
    assert not A_KEY.search(message.body + html + message.subject)
    # The key is unchanged until the link is claimed.
    assert fresh(license).key_digest == license_key_digest(license.key)
    [claim] = claims(license)
    assert claim.email == "buyer@example.test" and claim.requested_by == operator.email
    [row] = audit(license, "license.delivery_sent")
    assert row.user_id == operator.pk and row.details["email"] == "buyer@example.test"
    assert row.details["claim_id"] == str(claim.id)
    assert log_entries(license)[-1] == (
        "Claim link emailed to buyer@example.test (the key is replaced when it is claimed)."
    )


def test_the_same_yes_twice_sends_one_email(console, scene):
    _, license, _ = scene
    asked = console.post(url("email_key", license), {"email": "buyer@example.test"})
    fields = confirm_fields(asked)

    first = console.post(url("email_key", license), fields)
    second = console.post(url("email_key", license), fields, follow=True)

    assert first.status_code == 303
    assert any("done already" in m for m in messages_shown(second))
    assert len(mail.outbox) == 1 and len(claims(license)) == 1
    assert len(audit(license, "license.delivery_sent")) == 1


@pytest.mark.parametrize("address", ["", "not-an-address", "a@b", "two@example.test, more@example.test"])
def test_a_bad_address_is_refused_and_changes_nothing(console, scene, address):
    _, license, _ = scene
    asked = console.post(url("email_key", license), {"email": address})

    refused = console.post(url("email_key", license), {**confirm_fields(asked), "email": address})

    assert refused.status_code == 400
    assert "Give an email address" in text(refused) and "Nothing was sent" in text(refused)
    assert mail.outbox == [] and claims(license) == []
    assert audit(license, "license.delivery_sent") == []
    assert fresh(license).key_digest == license_key_digest(license.key)


def test_an_unusable_address_is_refused(console, scene):
    _, license, _ = scene
    refused = console.post(url("email_key", license), {"email": "a\x00@example.test", "confirm": "yes"})
    assert refused.status_code == 302
    assert mail.outbox == [] and claims(license) == []


def email_key(console, license, address: str) -> str:
    """Email the key through the console; the claim link's token."""
    asked = console.post(url("email_key", license), {"email": address})
    console.post(url("email_key", license), confirm_fields(asked))
    return CLAIM_LINK.search(mail.outbox[-1].body).group(1)


@pytest.mark.parametrize("then", ["regenerate", "delete"])
def test_a_new_key_or_a_deletion_ends_the_claim_links_still_open(console, scene, then):
    """Claimed later, an old link would mint yet another key and stop the new one
    (or give a key to a deleted license)."""
    from django.test import Client

    from licenses.services import license_delete, license_regenerate_key

    _, license, _ = scene
    tokens = [email_key(console, license, "a@example.test"), email_key(console, license, "b@example.test")]
    with tenant_scope(license.tenant_id):
        if then == "regenerate":
            license_regenerate_key(license=fresh(license))
        else:
            license_delete(license=fresh(license))
    before = fresh(license).key_digest

    visitor = Client()
    for token in tokens:
        assert visitor.get("/claim", {"t": token}).status_code == 404
        assert visitor.post("/claim", {"t": token}).status_code == 404
    assert fresh(license).key_digest == before


def test_claiming_one_link_ends_the_others(console, scene):
    from django.test import Client

    _, license, _ = scene
    first, second = (
        email_key(console, license, "a@example.test"),
        email_key(console, license, "b@example.test"),
    )
    visitor = Client()
    assert visitor.post("/claim", {"t": first}).status_code == 200
    claimed = fresh(license).key_digest
    assert visitor.post("/claim", {"t": second}).status_code == 404
    assert fresh(license).key_digest == claimed
