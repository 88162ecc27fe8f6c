import pytest
from rest_framework.test import APIClient

from accounts.tokens import access_token_issue


def access_token(user) -> str:
    """A real access token for `user`, as login would issue it."""
    return access_token_issue(user_id=user.id, tenant_id=user.tenant_id, role=user.role)


def bearer(user) -> dict:
    """Headers that sign a request in as `user`."""
    return {"Authorization": f"Bearer {access_token(user)}"}


@pytest.fixture
def api():
    return APIClient()


def call(api, method: str, path: str, data=None, token: str | None = None, **extra):
    """One JSON request; `token` is an access token for the Authorization header."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return getattr(api, method.lower())(path, data, format="json", headers=headers, **extra)
