"""/metrics is behind a bearer token (METRICS_TOKEN): without it the page is
refused, whatever forwarding headers a request carries or lacks; with no
token configured it is served only with DEBUG on. Seat gauges name tenants
by id unless METRICS_TENANT_LABELS allows their slugs."""

import pytest
from prometheus_client.parser import text_string_to_metric_families

from licenses.metrics import seat_collector
from licenses.tests.factories import LicenseFactory
from tenants.tests.factories import TenantFactory

pytestmark = pytest.mark.embedded

TOKEN = "metrics-token-for-tests-0123456789"

FORWARDING = {
    "no forwarding header": {},
    "X-Forwarded-For": {"X-Forwarded-For": "10.0.0.7"},
    "X-Real-IP": {"X-Real-IP": "10.0.0.7"},
    "Forwarded": {"Forwarded": "for=10.0.0.7;proto=https"},
    "all of them": {"X-Forwarded-For": "10.0.0.7", "X-Real-IP": "10.0.0.7", "Forwarded": "for=10.0.0.7"},
}
WRONG_CREDENTIALS = {
    "none": {},
    "a wrong token": {"Authorization": "Bearer not-the-token"},
    "the token with a byte more": {"Authorization": f"Bearer {TOKEN}x"},
    "a prefix of the token": {"Authorization": f"Bearer {TOKEN[:-1]}"},
    "the token as Basic": {"Authorization": f"Basic {TOKEN}"},
    "the token bare": {"Authorization": TOKEN},
    "an empty bearer": {"Authorization": "Bearer "},
    "a user's access token": None,  # filled in by the test
}


def error(response) -> dict:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    return body["error"]


@pytest.mark.parametrize("forwarding", FORWARDING, ids=list(FORWARDING))
@pytest.mark.parametrize("credential", WRONG_CREDENTIALS, ids=list(WRONG_CREDENTIALS))
def test_metrics_without_the_token_are_refused_whatever_the_forwarding_headers(
    client, admin, settings, forwarding, credential
):
    settings.METRICS_TOKEN = TOKEN
    headers = WRONG_CREDENTIALS[credential]
    if headers is None:
        from coditect.personas import bearer

        headers = bearer(admin.user)
    response = client.get("/metrics", headers={**FORWARDING[forwarding], **headers})
    assert response.status_code == 401
    assert error(response)["code"] == "not_authenticated"
    assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert b"coditect_" not in response.content


@pytest.mark.django_db(databases="__all__")
@pytest.mark.parametrize("forwarding", FORWARDING, ids=list(FORWARDING))
def test_metrics_with_the_token_are_served(client, settings, forwarding):
    settings.METRICS_TOKEN = TOKEN
    response = client.get("/metrics", headers={**FORWARDING[forwarding], "Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    assert b"coditect_dependency_up" in response.content


@pytest.mark.parametrize("forwarding", FORWARDING, ids=list(FORWARDING))
def test_metrics_are_off_in_production_when_no_token_is_set(client, db, settings, forwarding):
    settings.METRICS_TOKEN = ""
    settings.DEBUG = False
    for headers in ({}, {"Authorization": "Bearer "}, {"Authorization": "Bearer anything"}):
        response = client.get("/metrics", headers={**FORWARDING[forwarding], **headers})
        assert response.status_code == 403
        assert error(response)["code"] == "permission_denied"


@pytest.mark.django_db(databases="__all__")
def test_metrics_are_open_on_a_development_machine_without_a_token(client, settings):
    settings.METRICS_TOKEN = ""
    settings.DEBUG = True
    assert client.get("/metrics").status_code == 200


def _seat_labels(client) -> list[dict]:
    # The collector reads through the operator's connection: real commits (committed_db).
    seat_collector().forget()
    page = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).content.decode()
    return [
        sample.labels
        for family in text_string_to_metric_families(page)
        for sample in family.samples
        if sample.name == "coditect_license_seats_max"
    ]


def test_seat_gauges_name_the_tenant_by_id_not_by_slug(client, committed_db, settings):
    settings.METRICS_TOKEN = TOKEN
    tenant = TenantFactory(name="Secret Customer Ltd", slug="secret-customer")
    license = LicenseFactory(tenant=tenant, max_seats=3)
    [labels] = [labels for labels in _seat_labels(client) if labels["license"] == str(license.id)]
    assert labels["tenant"] == str(tenant.id)
    page = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).content
    assert b"secret-customer" not in page and b"Secret Customer" not in page


def test_tenant_slugs_are_labels_only_when_the_setting_allows_them(client, committed_db, settings):
    settings.METRICS_TOKEN = TOKEN
    settings.METRICS_TENANT_LABELS = True
    tenant = TenantFactory(name="Named Customer", slug="named-customer")
    license = LicenseFactory(tenant=tenant, max_seats=3)
    [labels] = [labels for labels in _seat_labels(client) if labels["license"] == str(license.id)]
    assert labels["tenant"] == "named-customer"
