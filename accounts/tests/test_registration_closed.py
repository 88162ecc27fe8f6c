"""REGISTRATION_OPEN: with it off, nobody registers a new tenant; an invite
code still registers its holder into the inviting tenant."""

import subprocess
import sys

import pytest
from django.conf import settings

from coditect.personas import call
from tenants.models import Tenant
from tenants.scope import operator_scope

pytestmark = pytest.mark.embedded

PASSWORD = "a long enough passphrase 42"


def register(api, **body):
    return call(api, "POST", "/api/v1/auth/register", body)


def test_closed_registration_refuses_a_new_tenant_and_makes_nothing(committed_db, api, settings):
    settings.REGISTRATION_OPEN = False
    response = register(api, email="eve@example.test", password=PASSWORD, tenant_name="Eve Ltd")
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "permission_denied"
    assert "invite code" in error["message"]
    with operator_scope():
        assert not Tenant.objects.filter(name="Eve Ltd").exists()
    # No credential is checked first: a common password is refused for the closed door, not itself.
    assert register(api, email="x@example.test", password="password1234", tenant_name="X").status_code == 403


def test_closed_registration_still_registers_with_an_invite_code(committed_db, api, settings):
    settings.REGISTRATION_OPEN = True
    created = register(api, email="ada@acme.test", password=PASSWORD, tenant_name="Acme Corp")
    assert created.status_code == 201, created.content
    token = call(api, "POST", "/api/v1/auth/login", {"email": "ada@acme.test", "password": PASSWORD}).json()[
        "access_token"
    ]
    code = call(api, "POST", "/api/v1/invites", {"role": "user"}, token=token).json()["code"]

    settings.REGISTRATION_OPEN = False
    joined = register(api, email="bob@acme.test", password=PASSWORD, invite_code=code)
    assert joined.status_code == 201, joined.content
    assert joined.json()["tenant"]["name"] == "Acme Corp"


def _registration_open(**env: str) -> str:
    clean = {"PATH": "/usr/bin:/bin", "CODITECT_VAR_DIR": str(settings.VAR_DIR), **env}
    return subprocess.run(  # our own command line
        [sys.executable, "-c", "from django.conf import settings; print(settings.REGISTRATION_OPEN)"],
        cwd=settings.BASE_DIR,
        env={**clean, "DJANGO_SETTINGS_MODULE": "coditect.settings"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def test_registration_is_closed_by_default_without_debug_and_open_under_debug():
    assert _registration_open(SECRET_KEY="x" * 50) == "False"
    assert _registration_open(DEBUG="1") == "True"
    assert _registration_open(SECRET_KEY="x" * 50, REGISTRATION_OPEN="true") == "True"
    assert _registration_open(DEBUG="1", REGISTRATION_OPEN="false") == "False"
