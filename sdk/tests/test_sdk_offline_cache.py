"""The offline cache file: atomic, private, and refused when edited or moved."""

from __future__ import annotations

import json
import os
import stat

import pytest

from coditect_license import CacheTampered
from coditect_license.cache import CacheEntry, OfflineCache

KEY = "CDT-AAAAA-BBBBB-CCCCC-DDDDD-EEEEE-FFFFF"


def entry(**changes):
    values = {
        "token": "header.payload.signature",
        "jwks": {"keys": [{"kid": "k1", "kty": "OKP", "crv": "Ed25519", "x": "abc"}]},
        "license_id": "5b0c0f3e-0000-0000-0000-000000000000",
        "last_seen": 1_700_000_000.5,
        "lease": {"session_id": "s1", "heartbeat_interval": 120},
    }
    values.update(changes)
    return CacheEntry(**values)


def test_what_is_stored_loads_back_the_same(tmp_path):
    cache = OfflineCache(tmp_path, license_key=KEY, fingerprint="a" * 64)
    cache.store(entry())
    assert cache.load() == entry()


def test_the_file_is_readable_by_its_owner_only_and_no_temporary_file_is_left(tmp_path):
    cache = OfflineCache(tmp_path / "cache", license_key=KEY, fingerprint="a" * 64)
    cache.store(entry())
    cache.store(entry(token="x.y.z"))
    assert stat.S_IMODE(os.stat(cache.path).st_mode) == 0o600
    assert os.listdir(tmp_path / "cache") == [cache.path.name]


def test_the_file_name_says_nothing_of_the_key(tmp_path):
    cache = OfflineCache(tmp_path, license_key=KEY, fingerprint="a" * 64)
    cache.store(entry())
    assert "AAAAA" not in cache.path.name
    assert KEY not in cache.path.read_text()


def test_no_file_is_no_entry(tmp_path):
    assert OfflineCache(tmp_path, license_key=KEY, fingerprint="a" * 64).load() is None


@pytest.mark.parametrize(
    "edit",
    [
        lambda data: data.update(token="header.payload.signaturf"),
        lambda data: data["jwks"]["keys"][0].update(x="abd"),
        lambda data: data.update(last_seen=data["last_seen"] - 86400),
        lambda data: data.update(license_id="another"),
        lambda data: data.pop("mac"),
    ],
    ids=["token", "public key", "last seen", "license", "mac removed"],
)
def test_a_file_edited_by_hand_is_refused(tmp_path, edit):
    cache = OfflineCache(tmp_path, license_key=KEY, fingerprint="a" * 64)
    cache.store(entry())
    data = json.loads(cache.path.read_text())
    edit(data)
    cache.path.write_text(json.dumps(data))
    with pytest.raises(CacheTampered):
        cache.load()


def test_a_corrupt_file_is_refused(tmp_path):
    cache = OfflineCache(tmp_path, license_key=KEY, fingerprint="a" * 64)
    cache.path.write_bytes(b"\x00{not json")
    with pytest.raises(CacheTampered):
        cache.load()


def test_a_file_copied_from_another_machine_is_refused(tmp_path):
    theirs = OfflineCache(tmp_path, license_key=KEY, fingerprint="b" * 64)
    ours = OfflineCache(tmp_path, license_key=KEY, fingerprint="a" * 64)
    theirs.store(entry())
    ours.path.write_bytes(theirs.path.read_bytes())
    with pytest.raises(CacheTampered):
        ours.load()


def test_the_key_is_matched_as_the_server_matches_it(tmp_path):
    OfflineCache(tmp_path, license_key=KEY.lower() + " ", fingerprint="a" * 64).store(entry())
    assert OfflineCache(tmp_path, license_key=KEY, fingerprint="a" * 64).load() == entry()
