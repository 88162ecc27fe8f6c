"""deploy/memorystore/instance.sh gives Memorystore the settings the Redis seat
ledger needs (maxmemory-policy noeviction, RDB snapshots), and its `check`
refuses an instance without them. A stand-in `gcloud` on PATH records what the
script asks for and answers `describe` as Memorystore would."""

from __future__ import annotations

import json
import os
import shlex
import subprocess

import pytest
import yaml

from deploy.tests.tools import DEPLOY, K8S

SCRIPT = DEPLOY / "memorystore" / "instance.sh"

FAKE_GCLOUD = """#!/bin/sh
printf '%s\\n' "$*" >> "$GCLOUD_CALLS"
case "$*" in *" describe "*) cat "$GCLOUD_DESCRIBE" ;; esac
"""


@pytest.fixture
def gcloud(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "gcloud").write_text(FAKE_GCLOUD)
    (bin_dir / "gcloud").chmod(0o755)
    calls, describe = tmp_path / "calls", tmp_path / "describe.json"

    def run(environment: str, action: str, described: dict | None = None) -> subprocess.CompletedProcess:
        calls.write_text("")
        describe.write_text(json.dumps(described or {}))
        env = {
            "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
            "GCLOUD_CALLS": str(calls),
            "GCLOUD_DESCRIBE": str(describe),
        }
        result = subprocess.run(
            ["bash", str(SCRIPT), environment, action], capture_output=True, text=True, env=env, timeout=30
        )
        result.calls = [shlex.split(line) for line in calls.read_text().splitlines()]
        return result

    return run


@pytest.mark.parametrize("environment", ["dev", "prod"])
def test_a_new_instance_never_evicts_and_snapshots_every_hour(gcloud, environment):
    result = gcloud(environment, "create")

    assert result.returncode == 0, result.stderr
    [argv] = result.calls
    assert argv[:4] == ["redis", "instances", "create", "coditect"]
    assert f"--project=coditect-{environment}" in argv
    for flag in (
        "--redis-config=maxmemory-policy=noeviction",
        "--persistence-mode=rdb",
        "--rdb-snapshot-period=1h",
        "--tier=standard",
        "--enable-auth",
        "--transit-encryption-mode=server-authentication",
    ):
        assert flag in argv


def test_an_existing_instance_is_brought_to_the_same_settings(gcloud):
    result = gcloud("prod", "update")

    assert result.returncode == 0, result.stderr
    [argv] = result.calls
    assert argv[:4] == ["redis", "instances", "update", "coditect"]
    assert "--update-redis-config=maxmemory-policy=noeviction" in argv
    assert "--persistence-mode=rdb" in argv


def test_check_passes_only_on_noeviction_with_rdb_snapshots(gcloud):
    good = {
        "redisConfigs": {"maxmemory-policy": "noeviction"},
        "persistenceConfig": {"persistenceMode": "RDB"},
    }
    assert gcloud("prod", "check", good).returncode == 0

    memorystore_default = {"persistenceConfig": {"persistenceMode": "RDB"}}
    refused = gcloud("prod", "check", memorystore_default)
    assert refused.returncode == 1
    assert "volatile-lru" in refused.stderr

    evicting = {**good, "redisConfigs": {"maxmemory-policy": "allkeys-lru"}}
    assert gcloud("prod", "check", evicting).returncode == 1

    no_snapshots = {**good, "persistenceConfig": {"persistenceMode": "DISABLED"}}
    assert "DISABLED" in gcloud("prod", "check", no_snapshots).stderr


def test_the_script_refuses_an_unknown_environment_or_action(gcloud):
    assert gcloud("staging", "create").returncode == 2
    assert gcloud("prod", "delete").returncode == 2
    assert gcloud("staging", "create").calls == []


@pytest.mark.parametrize("environment", ["dev", "prod"])
def test_the_web_tier_vouches_for_the_policy_memorystore_will_not_show(environment):
    # Memorystore refuses CONFIG; without this every pod's /ready would fail.
    component = yaml.safe_load((K8S / "overlays" / environment / "env" / "kustomization.yaml").read_text())
    [config] = [c for c in component["configMapGenerator"] if c["name"] == "coditect-config"]
    assert "REDIS_EVICTION_POLICY_VERIFIED=true" in config["literals"]
    assert "SEAT_LEDGER=redis" in config["literals"]
