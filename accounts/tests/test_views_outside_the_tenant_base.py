"""A view that is not a tenant view (the OpenAPI schema) has no tenant scope to
give a caller: tenant credentials sent to it are refused, never a 500."""

import pytest

from coditect.personas import tenant_member
from tenants.tests.factories import TenantFactory

pytestmark = pytest.mark.embedded


def test_tenant_credentials_sent_to_a_non_tenant_view_are_refused_without_a_500(committed_db, api):
    member = tenant_member(TenantFactory())
    assert api.get("/api/schema/").status_code == 200
    response = member.client.get("/api/schema/")
    assert response.status_code == 401
    assert b"not_authenticated" in response.content  # rendered by the schema view's own renderer
