"""Two jobs setting the roles up at once (the test suite's workers, two
deploys) both succeed: PostgreSQL refuses two changes of one role's catalog
row at once ("tuple concurrently updated"), so tenants.dbroles.ensure_roles
takes its turn under an advisory lock."""

from __future__ import annotations

import threading

import pytest

from coditect.testing import TEST_ADMIN_URL, _test_roles
from tenants.dbroles import ensure_roles

pytestmark = [pytest.mark.postgres]


def test_many_setups_of_the_same_roles_at_once_all_succeed(django_db_setup):
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def setup() -> None:
        start.wait()
        try:
            for _ in range(5):
                ensure_roles(TEST_ADMIN_URL, _test_roles())
        except BaseException as exc:  # collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=setup) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
