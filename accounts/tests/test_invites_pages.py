"""GET /api/v1/invites pages the tenant's invites, newest first, as every list does."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.tests.factories import InviteFactory

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]

URL = "/api/v1/invites"


def test_invites_come_a_page_at_a_time_newest_first_each_once(admin, acme, globex):
    now = timezone.now()
    # Two share a creation time: the id breaks the tie, so neither is lost between pages.
    made = [InviteFactory(tenant=acme, created_at=now - timedelta(minutes=n // 2)) for n in range(7)]
    InviteFactory(tenant=globex)

    pages, cursor = [], None
    while True:
        body = admin.client.get(URL, {"limit": 3, **({"cursor": cursor} if cursor else {})}).json()
        pages.append([invite["id"] for invite in body["results"]])
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert [len(page) for page in pages] == [3, 3, 1]
    listed = [invite_id for page in pages for invite_id in page]
    assert sorted(listed) == sorted(str(invite.id) for invite in made)
    created = {str(invite.id): invite.created_at for invite in made}
    assert [created[invite_id] for invite_id in listed] == sorted(created.values(), reverse=True)


def test_the_invite_list_defaults_to_fifty_and_refuses_a_bad_page(admin, acme):
    for _ in range(51):
        InviteFactory(tenant=acme)
    body = admin.client.get(URL).json()
    assert len(body["results"]) == 50 and body["next_cursor"]
    for query in ({"limit": 0}, {"limit": 501}, {"cursor": "bogus"}):
        response = admin.client.get(URL, query)
        assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_request", query
