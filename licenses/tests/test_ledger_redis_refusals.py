"""A Redis that answers but refuses work (a replica after a failover, a full
memory) is a ledger that is unavailable: 503 upstream, never a 500.

Each test starts a real redis-server of its own on a free port."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import uuid

import pytest
import redis

from licenses.ledger import LedgerUnavailable
from licenses.ledger.redis import RedisSeatLedger

pytestmark = pytest.mark.skipif(not shutil.which("redis-server"), reason="needs redis-server")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def own_redis(tmp_path):
    started = []

    def start(*options: str) -> str:
        port = free_port()
        process = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(tmp_path), *options],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        started.append(process)
        client = redis.Redis(port=port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
        return f"redis://127.0.0.1:{port}/0"

    yield start
    for process in started:
        process.terminate()
        process.wait(timeout=10)


def acquire(ledger: RedisSeatLedger):
    return ledger.acquire(
        license_id=uuid.uuid4(),
        tenant_id=uuid.uuid4(),
        max_seats=1,
        fingerprint="fp-refusal-1",
        user_id=None,
        ttl=60,
    )


def test_a_read_only_replica_is_unavailable_not_an_error(own_redis):
    primary = own_redis()
    replica = own_redis("--replicaof", "127.0.0.1", primary.rsplit(":", 1)[1].split("/")[0])
    ledger = RedisSeatLedger.from_url(replica, socket_timeout=2)
    with pytest.raises(LedgerUnavailable):
        acquire(ledger)


def test_a_full_memory_is_unavailable_not_an_error(own_redis):
    url = own_redis("--maxmemory", "1", "--maxmemory-policy", "noeviction")
    ledger = RedisSeatLedger.from_url(url, socket_timeout=2)
    with pytest.raises(LedgerUnavailable):
        acquire(ledger)
