"""status() reads one page of the license's leases and asks for the next."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from coditect_license import BearerToken, LicenseClient

KEY = "CDT-AAAAA-BBBBB-CCCCC-DDDDD-EEEEE-FFFFF"
FP = "c0ffee" * 10 + "abcd"


def answer(license_id: str, leases: list[dict], next_cursor: str | None) -> tuple[int, dict, dict]:
    item = {
        "id": license_id,
        "name": "Pro",
        "key_prefix": "CDT-AAAAA",
        "state": "active",
        "expires_at": None,
        "entitlements": {},
        "seats": {"used": 3, "max": 5},
        "leases": leases,
        "leases_next_cursor": next_cursor,
    }
    return 200, {}, {"licenses": [item], "next_cursor": next_cursor}


def test_status_pages_the_leases_with_the_cursor_it_was_given(fake_server, tmp_path):
    pages = {None: (["a", "b"], "page-2"), "page-2": (["c"], None)}

    def reply(request):
        query = parse_qs(urlsplit(request.path).query)
        assert query["limit"] == ["2"]
        assert request.headers["X-License-Key"] == KEY
        sessions, following = pages[query.get("cursor", [None])[0]]
        return answer(fake_server.license_id, [{"session_id": sid} for sid in sessions], following)

    fake_server.stub.route("GET", "/api/v1/licenses/status", reply)
    client = LicenseClient(
        fake_server.stub.url,
        KEY,
        BearerToken("t"),
        fingerprint=FP,
        cache_dir=tmp_path,
        release_at_exit=False,
        **fake_server.trust,
    )
    try:
        first = client.status(limit=2)
        assert [lease["session_id"] for lease in first.leases] == ["a", "b"]
        assert (first.seats_used, first.leases_next_cursor) == (3, "page-2")
        rest = client.status(limit=2, cursor=first.leases_next_cursor)
        assert [lease["session_id"] for lease in rest.leases] == ["c"] and rest.leases_next_cursor is None
    finally:
        client.close(release=False)


def test_status_without_arguments_sends_no_page_parameters(fake_server, tmp_path):
    fake_server.stub.route("GET", "/api/v1/licenses/status", answer(fake_server.license_id, [], None))
    client = LicenseClient(
        fake_server.stub.url,
        KEY,
        BearerToken("t"),
        fingerprint=FP,
        cache_dir=tmp_path,
        release_at_exit=False,
        **fake_server.trust,
    )
    try:
        assert client.status().leases_next_cursor is None
        [call] = fake_server.stub.calls("GET", "/api/v1/licenses/status")
        assert "?" not in call.path
    finally:
        client.close(release=False)
