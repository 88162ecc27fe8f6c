"""The shared personas are who they say they are: every app's access tests
lean on these roles and tenants, so a persona that drifted would make those
tests prove nothing."""

import pytest

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]


def test_each_persona_signs_in_as_itself_with_its_role_and_tenant(
    acme, globex, admin, member, viewer, outsider
):
    expected = {
        "admin@acme.test": ("admin", acme),
        "member@acme.test": ("user", acme),
        "viewer@acme.test": ("readonly", acme),
        "admin@globex.test": ("admin", globex),
    }
    for persona in (admin, member, viewer, outsider):
        body = persona.client.get("/api/v1/auth/me").json()
        role, tenant = expected[persona.user.email]
        assert (body["user"]["email"], body["user"]["role"]) == (persona.user.email, role)
        assert body["tenant"]["id"] == str(tenant.id) == str(persona.tenant.id)


def test_the_old_tenant_names_are_the_same_tenants(acme, globex, tenant_a, tenant_b):
    assert (tenant_a, tenant_b) == (acme, globex)


def test_an_anonymous_client_is_refused(api):
    assert api.get("/api/v1/auth/me").status_code == 401
