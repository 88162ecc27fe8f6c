import pytest
from rest_framework.test import APIClient

from accounts.tokens import access_token_issue


def bearer(user) -> dict:
    """Headers that sign a request in as `user`, with a real access token."""
    token = access_token_issue(user_id=user.id, tenant_id=user.tenant_id, role=user.role)
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def api():
    return APIClient()
