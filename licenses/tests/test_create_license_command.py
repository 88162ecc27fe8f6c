import io
import json
import subprocess

import pytest
from django.core.management import call_command
from django.db import connection

from coditect.testing import admin_connection_url
from licenses.keys import license_key_digest
from licenses.models import License, Policy, Product
from tenants.scope import tenant_scope
from tenants.tests.factories import TenantFactory

pytestmark = pytest.mark.embedded


def run(*args) -> dict:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return json.loads(out.getvalue())


def database_dump() -> str:
    if connection.vendor == "postgresql":
        return subprocess.run(
            ["pg_dump", "--data-only", admin_connection_url()], check=True, capture_output=True, text=True
        ).stdout
    return "\n".join(connection.connection.iterdump())


def pro_policy(**fields) -> Policy:
    product = Product.objects.create(name="CODITECT Pro", slug="coditect-pro")
    return Policy.objects.create(
        product=product,
        name="Pro",
        slug="pro",
        entitlements={"pro": "Pro features", "export": "Export"},
        **fields,
    )


def test_create_tenant_and_license_print_json_and_store_only_the_digest(committed_db):
    tenant = run("create_tenant", "--name", "Initech")
    assert tenant["slug"] == "initech"
    pro_policy()

    created = run(
        "create_license",
        "--tenant",
        "initech",
        "--policy",
        "pro",
        "--seats",
        "10",
        "--expires-at",
        "2030-01-01T00:00:00Z",
        "--lease-ttl",
        "120",
        "--fingerprint",
        "fp-1",
        "--entitlements",
        '{"pro": true}',
    )
    key = created["license_key"]
    assert created["max_seats"] == 10 and created["lease_ttl"] == 120
    assert created["policy"] == "pro" and created["entitlements"] == {"pro": True}
    assert created["hardware_fingerprints"] == ["fp-1"]

    with tenant_scope(tenant["id"]):
        license = License.objects.get(id=created["id"])
    assert license.key_digest == license_key_digest(key)
    assert key.startswith(license.key_prefix)

    dump = database_dump()
    assert license.key_digest in dump  # the dump is real and holds the row
    for form in (key, key.lower(), key.replace("-", "")):
        assert form not in dump


def test_create_license_takes_the_tenant_id_too(committed_db):
    tenant = TenantFactory()
    assert run("create_license", "--tenant", str(tenant.id), "--seats", "1")["tenant"]["id"] == str(tenant.id)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--tenant", "nope", "--seats", "1"], "no tenant"),
        (["--tenant", "T", "--seats", "0"], "max_seats"),
        (["--tenant", "T", "--seats", "1", "--expires-at", "tomorrow"], "ISO 8601"),
        (["--tenant", "T", "--seats", "1", "--entitlements", "[1]"], "takes codes"),
        (["--tenant", "T", "--seats", "1", "--policy", "nope"], "no policy with slug 'nope'"),
        (["--tenant", "T", "--policy", "pro", "--entitlements", "pro,cloud"], "catalog of policy pro: cloud"),
    ],
)
def test_create_license_rejects_bad_input_and_creates_nothing(committed_db, args, message):
    from django.core.management import CommandError

    tenant = TenantFactory()
    pro_policy()
    args = [tenant.slug if a == "T" else a for a in args]
    with pytest.raises(CommandError, match=message):
        call_command("create_license", *args, stdout=io.StringIO())
    with tenant_scope(tenant.id):
        assert License.objects.count() == 0


def test_create_license_from_a_policy_takes_its_seats_trial_and_catalog(committed_db):
    from datetime import timedelta

    from django.utils import timezone
    from django.utils.dateparse import parse_datetime

    tenant = TenantFactory()
    pro_policy(seats=7, trial_days=14, lease_ttl=90)
    before = timezone.now()
    created = run("create_license", "--tenant", tenant.slug, "--policy", "pro")
    assert created["policy"] == "pro" and created["max_seats"] == 7 and created["lease_ttl"] == 90
    # No codes named: the whole catalog.
    assert created["entitlements"] == {"pro": True, "export": True}
    ends = parse_datetime(created["expires_at"])
    assert before + timedelta(days=14) <= ends <= timezone.now() + timedelta(days=14)
    with tenant_scope(tenant.id):
        stored = License.objects.get(id=created["id"])
    # Stored as "the policy's": a change to the policy reaches the license.
    assert (stored.lease_ttl, stored.entitlements) == (None, None)
