"""One persistent connection serves tenant A, then tenant B, then no tenant:
the transaction-local setting must not carry A's scope into the next request."""

import pytest
from django.db import connection

from licenses.tests.factories import LicenseFactory
from tenants.tests.factories import TenantFactory


@pytest.mark.urls("tenants.tests.urls")
def test_a_pooled_connection_never_carries_a_tenant_to_the_next_request(committed_db, client, settings):
    assert connection.settings_dict["CONN_MAX_AGE"] > 0
    tenant_a, tenant_b = TenantFactory(), TenantFactory()
    LicenseFactory(tenant=tenant_a)
    LicenseFactory(tenant=tenant_b)

    as_a = client.get("/rows", headers={"X-Test-Tenant": str(tenant_a.id)}).json()
    as_b = client.get("/rows", headers={"X-Test-Tenant": str(tenant_b.id)}).json()
    anonymous = client.get("/rows")

    assert as_a["raw"] == as_a["orm"] == [str(tenant_a.id)]
    assert as_b["raw"] == as_b["orm"] == [str(tenant_b.id)]
    assert as_a["backend_pid"] == as_b["backend_pid"], "the test must reuse one connection"
    assert anonymous.status_code == 403
    assert anonymous.json()["error"]["code"] == "permission_denied"
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid(), current_setting('app.current_tenant', true)")
        pid, setting = cursor.fetchone()
        cursor.execute("SELECT count(*) FROM licenses")
        assert cursor.fetchone() == (0,)
    assert pid == as_a["backend_pid"]
    assert setting in ("", None)
