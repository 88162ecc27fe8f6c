"""A database that goes away is 503 service_unavailable, not a 500, even when
it fails where DRF's handler does not reach (opening the request's transaction)."""

from __future__ import annotations

import pytest

from coditect.testing import TcpProxy
from licenses.tests.conftest import error_code


def test_a_database_gone_before_the_request_begins_is_503_not_500(committed_db):
    from django.db import connections

    from coditect.personas import tenant_admin
    from tenants.tests.factories import TenantFactory

    default = connections["default"]
    if default.vendor != "postgresql":
        pytest.skip("needs PostgreSQL")
    client = tenant_admin(TenantFactory()).client
    proxy = TcpProxy(
        default.settings_dict.get("HOST") or "127.0.0.1", int(default.settings_dict.get("PORT") or 5432)
    )
    original = dict(default.settings_dict)
    default.close()
    default.settings_dict.update(HOST="127.0.0.1", PORT=str(proxy.port))
    try:
        first = client.get("/api/v1/licenses/status")
        assert first.status_code == 200, first.content
        proxy.cut()
        response = client.get("/api/v1/licenses/status")
        assert (response.status_code, error_code(response)) == (503, "service_unavailable")
        assert response["Retry-After"]
        proxy.restore()
        assert client.get("/api/v1/licenses/status").status_code == 200
    finally:
        default.close()
        default.settings_dict.clear()
        default.settings_dict.update(original)
        proxy.close()
