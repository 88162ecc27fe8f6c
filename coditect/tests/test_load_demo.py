"""`make run`'s demo: a tenant, its admin, an operator and a license, with
what a new user needs to sign in kept in var/demo.json, and made once."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command

from licenses.models import License
from tenants.scope import operator_scope

pytestmark = pytest.mark.embedded


def test_the_demo_keeps_who_signs_in_where_and_is_made_once(committed_db, settings, tmp_path):
    # Committed: the demo reads back through the operator path, another connection.
    settings.DEBUG = True
    settings.VAR_DIR = tmp_path
    out = StringIO()
    call_command("load_demo", stdout=out)
    state = json.loads((tmp_path / "demo.json").read_text())
    assert state["admin_email"] in out.getvalue() and state["operator_email"] in out.getvalue()
    assert {"admin_password", "operator_password", "license_key"} <= set(state)

    call_command("load_demo", stdout=StringIO())
    assert json.loads((tmp_path / "demo.json").read_text()) == state
    with operator_scope():
        assert License.objects.count() == 1


def test_a_demo_whose_key_was_regenerated_gets_no_second_license(committed_db, settings, tmp_path):
    from licenses.services import license_regenerate_key

    settings.DEBUG = True
    settings.VAR_DIR = tmp_path
    call_command("load_demo", stdout=StringIO())
    with operator_scope():
        license_regenerate_key(license=License.objects.get())
    out = StringIO()
    call_command("load_demo", stdout=out)
    with operator_scope():
        assert License.objects.count() == 1
    assert "regenerated in the admin" in out.getvalue()
