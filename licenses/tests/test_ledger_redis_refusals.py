"""A Redis that answers but refuses work (a replica after a failover, a full
memory) is a ledger that is unavailable: 503 upstream, never a 500.

Each test starts a real redis-server of its own on a free port."""

from __future__ import annotations

import shutil
import uuid

import pytest

from licenses.ledger import LedgerUnavailable
from licenses.ledger.redis import RedisSeatLedger

pytestmark = pytest.mark.skipif(not shutil.which("redis-server"), reason="needs redis-server")


@pytest.fixture
def own_redis(redis_servers):
    """`own_redis(*options)`: the URL of a redis-server of the test's own."""
    return lambda *options: redis_servers(*options).url


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
