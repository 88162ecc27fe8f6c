"""The API's public pages (schema, docs, key set) answer whoever asks, a
caller that sends its bearer token as every API client does included.

Real commits: in a test's wrapping transaction a token could open a tenant
scope that a request outside the tenant-safe base view never has.
"""

import pytest

from coditect.personas import bearer, tenant_admin
from tenants.tests.factories import TenantFactory

pytestmark = pytest.mark.embedded

PUBLIC_PAGES = ["/api/schema/", "/api/docs/", "/.well-known/jwks.json", "/api/v1/.well-known/jwks.json"]


@pytest.fixture
def committed_admin(committed_db):
    return tenant_admin(TenantFactory(name="Public Pages", slug="public-pages"))


@pytest.mark.parametrize("path", PUBLIC_PAGES)
def test_a_public_page_answers_a_caller_with_a_valid_bearer_token(client, committed_admin, path):
    assert client.get(path).status_code == 200
    assert client.get(path, headers=bearer(committed_admin.user)).status_code == 200


@pytest.mark.parametrize("path", PUBLIC_PAGES)
def test_a_public_page_ignores_a_forged_bearer_token(client, db, path):
    assert client.get(path, headers={"Authorization": "Bearer eyJhbGciOiJub25lIn0.e30."}).status_code == 200
