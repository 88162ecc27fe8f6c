from licenses.tests.conftest import ledger  # noqa: F401 - the seat ledgers, each in turn
