import pytest

from webhooks.outbox import subscriptions_forget


@pytest.fixture(autouse=True)
def subscriptions_read_anew():
    """A test's rolled-back endpoints must not linger in the process's cache."""
    subscriptions_forget()
    yield
    subscriptions_forget()
