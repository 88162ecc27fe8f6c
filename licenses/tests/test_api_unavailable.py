"""A seat ledger that does not answer is 503 service_unavailable, quickly, and
nothing is half-written."""

from __future__ import annotations

import time

import pytest

from coditect.testing import TcpProxy
from licenses import ledger as ledger_module
from licenses.tests.conftest import acquire, error_code

pytestmark = pytest.mark.django_db


@pytest.fixture
def redis_behind_a_proxy(settings):
    if not settings.REDIS_URL:
        pytest.skip("needs Redis")
    proxy = TcpProxy("127.0.0.1", 6379)
    settings.REDIS_URL = f"redis://127.0.0.1:{proxy.port}/0"
    settings.SEAT_LEDGER = "redis"
    saved = ledger_module._ledgers.pop("redis", None)
    yield proxy
    ledger_module._ledgers.pop("redis", None)
    if saved is not None:
        ledger_module._ledgers["redis"] = saved
    proxy.close()


def test_acquire_answers_503_while_redis_is_down_and_works_when_back(redis_behind_a_proxy, member, license):
    assert acquire(member, license, "machine-0001").status_code == 201

    redis_behind_a_proxy.cut()
    started = time.monotonic()
    response = acquire(member, license, "machine-0002")
    assert (response.status_code, error_code(response)) == (503, "service_unavailable")
    assert response["Retry-After"]
    assert time.monotonic() - started < 10

    redis_behind_a_proxy.restore()
    assert acquire(member, license, "machine-0002").status_code == 201
