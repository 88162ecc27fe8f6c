"""The served OpenAPI schema tells the truth: it is valid OpenAPI 3 for a
standard validator, and schemathesis, run with every check against the real
server, finds no server error and no answer the schema does not describe.

The schemathesis run drives the production-like live server (gunicorn,
PostgreSQL, the Redis ledger; coditect/testing.LiveServer) with a seeded
tenant admin's access token and a license token from a real acquire, so the
authenticated operations are exercised past their authentication. Its
examples are bounded and its seed fixed, so a run is repeatable and takes
about a minute.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from django.conf import settings
from openapi_spec_validator import validate

# Test cases per operation and phase; with the coverage phase's own cases this
# keeps the whole run near a minute on two busy cores.
MAX_EXAMPLES = 25
SEED = 20261013
BORROW_LIMIT_HOURS = 24
HOOKS = "coditect.tests.schemathesis_hooks"


def test_the_served_schema_is_valid_openapi_3(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = json.loads(response.content)
    assert schema["openapi"].startswith("3.")
    validate(schema)  # raises on the first violation of the OpenAPI 3 specification


CONFIG = """\
[auth.openapi.bearerAuth]
bearer = "${CONFORMANCE_ACCESS_TOKEN}"

[auth.openapi.licenseToken]
bearer = "${CONFORMANCE_LICENSE_TOKEN}"
"""


@pytest.fixture
def seeded(live_server_e2e):
    """A tenant admin who signed in over HTTP, and a live lease of theirs."""
    from accounts.tests.factories import TEST_PASSWORD, TenantAdminFactory
    from licenses.services import license_create
    from tenants.tests.factories import TenantFactory

    tenant = TenantFactory()
    admin = TenantAdminFactory(tenant=tenant)
    _, key = license_create(
        tenant=tenant,
        max_seats=1000,
        borrow_limit_hours=BORROW_LIMIT_HOURS,
        entitlements={"modules": ["cad"]},
    )
    url = live_server_e2e.url
    login = requests.post(
        f"{url}/api/v1/auth/login", json={"email": admin.email, "password": TEST_PASSWORD}, timeout=10
    )
    assert login.status_code == 200, login.text
    access_token = login.json()["access_token"]
    acquire = requests.post(
        f"{url}/api/v1/licenses/acquire",
        json={"license_key": key, "hardware_fingerprint": "conformance-machine-0001"},
        headers={"Authorization": f"Bearer {access_token}"},
        timeout=10,
    )
    assert acquire.status_code == 201, acquire.text
    return live_server_e2e, access_token, acquire.json()["token"], key


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.redis
def test_schemathesis_with_every_check_finds_no_failure(seeded, tmp_path):
    server, access_token, license_token, license_key = seeded
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    report = tmp_path / "report"
    argv = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file",
        str(config),
        "--no-color",
        "run",
        f"{server.url}/api/schema/",
        "--checks",
        "all",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        str(SEED),
        "--workers",
        "1",
        "--generation-database",
        "none",
        "--request-timeout",
        "10",
        "--report",
        "ndjson",
        "--report-dir",
        str(report),
    ]
    env = {
        **os.environ,
        "CONFORMANCE_ACCESS_TOKEN": access_token,
        "CONFORMANCE_LICENSE_TOKEN": license_token,
        "CONFORMANCE_LICENSE_KEY": license_key,
        "CONFORMANCE_BORROW_LIMIT_HOURS": str(BORROW_LIMIT_HOURS),
        "SCHEMATHESIS_HOOKS": HOOKS,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(settings.BASE_DIR), os.environ.get("PYTHONPATH")])),
    }
    run = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    (Path("/tmp") / "conformance-last.txt").write_text(run.stdout + run.stderr)
    assert run.returncode == 0, (
        f"{run.stdout[-20000:]}\n{run.stderr[-4000:]}\nserver log:\n{server.log_tail()}"
    )
