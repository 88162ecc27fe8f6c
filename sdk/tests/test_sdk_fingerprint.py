"""The default hardware fingerprint: a salted hash, never the machine id."""

from __future__ import annotations

import re

import pytest

from coditect_license.fingerprint import MachineIdUnavailable, fingerprint, machine_id


def test_it_is_a_keyed_hash_that_does_not_contain_the_machine_id():
    value = fingerprint(raw_machine_id="4c4c4544003d3a10804fb4c04f4e3532")
    assert re.fullmatch(r"[0-9a-f]{64}", value)
    assert "4c4c4544" not in value


def test_it_is_stable_for_one_machine_and_differs_by_salt():
    one = fingerprint(raw_machine_id="m-1", salt="app-a")
    assert one == fingerprint(raw_machine_id="m-1", salt="app-a")
    assert one != fingerprint(raw_machine_id="m-1", salt="app-b")
    assert one != fingerprint(raw_machine_id="m-2", salt="app-a")


def test_the_machine_id_comes_from_the_first_readable_file(tmp_path):
    (tmp_path / "machine-id").write_text("abc123\n")
    assert machine_id(environ={}, paths=[tmp_path / "missing", tmp_path / "machine-id"]) == "abc123"


def test_containers_override_the_machine_id_through_the_environment(tmp_path):
    (tmp_path / "machine-id").write_text("baked-into-the-image\n")
    environ = {"CODITECT_LICENSE_MACHINE_ID": "pod-7f9c"}
    assert machine_id(environ=environ, paths=[tmp_path / "machine-id"]) == "pod-7f9c"
    assert fingerprint(environ=environ) == fingerprint(raw_machine_id="pod-7f9c")


def test_no_machine_id_says_how_to_give_one(tmp_path, monkeypatch):
    monkeypatch.setattr("sys.platform", "linux")
    with pytest.raises(MachineIdUnavailable, match="CODITECT_LICENSE_MACHINE_ID"):
        machine_id(environ={}, paths=[tmp_path / "none"])
