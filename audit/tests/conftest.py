import pytest

from tenants.tests.factories import TenantFactory

# The export copies rows whatever their action; its tests write these.
EXPORT_TEST_EVENTS = {
    "test.yesterday": frozenset(),
    "test.first": frozenset({"n"}),
    "test.second": frozenset({"n"}),
    "test.other_tenant": frozenset(),
    "test.tomorrow": frozenset(),
    "test.operator": frozenset(),
    "test.acme": frozenset(),
    "test.globex": frozenset(),
}


@pytest.fixture
def export_test_events(monkeypatch):
    from audit import events

    for name, fields in EXPORT_TEST_EVENTS.items():
        monkeypatch.setitem(events.DETAIL_FIELDS, name, fields)


@pytest.fixture
def acme(db):
    return TenantFactory(name="Acme", slug="acme")


@pytest.fixture
def globex(db):
    return TenantFactory(name="Globex", slug="globex")
