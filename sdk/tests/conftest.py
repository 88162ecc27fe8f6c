from __future__ import annotations

import pytest
from sdk_testkit import FakeLicenseServer, StubServer


@pytest.fixture
def stub():
    server = StubServer()
    yield server
    server.close()


@pytest.fixture
def fake_server(stub):
    return FakeLicenseServer(stub)
