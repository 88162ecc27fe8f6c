"""A view that is not a tenant view (the OpenAPI schema) has no tenant scope to
give a caller: it runs no authentication, so tenant credentials sent to it are
not read (issue 13: a public page must not refuse a caller's token), never a 500."""

import pytest

from coditect.personas import tenant_member
from tenants.tests.factories import TenantFactory

pytestmark = pytest.mark.embedded


def test_tenant_credentials_sent_to_a_non_tenant_view_are_ignored_without_a_500(committed_db, api):
    member = tenant_member(TenantFactory())
    assert api.get("/api/schema/").status_code == 200
    assert member.client.get("/api/schema/").status_code == 200
