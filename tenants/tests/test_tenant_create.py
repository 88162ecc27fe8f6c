"""Every tenant is made by one service, `tenant_create`, from every door
(registration, `create_tenant`, the admin, the demo), and each one's
`tenant.created` audit row commits with it or not at all."""

from __future__ import annotations

import io
import json

import pytest
from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.core.management import CommandError, call_command
from django.db import transaction
from django.test import Client
from django.urls import reverse

from accounts.models import User
from accounts.tests.factories import TEST_PASSWORD
from audit.models import AuditLog
from tenants.models import Tenant
from tenants.scope import operator_scope, tenant_scope
from tenants.services import tenant_create
from tenants.signals import tenant_created


def creation_rows(tenant_id) -> list[tuple[str, object, str]]:
    with tenant_scope(tenant_id):
        return [
            (row.action, row.user_id, row.target_id)
            for row in AuditLog.objects.filter(action__in=["tenant.created", "admin.added"])
        ]


@pytest.mark.embedded
@pytest.mark.django_db
def test_creating_a_tenant_records_it_with_its_creator():
    creator = User(email="founder@initech.test")
    tenant = tenant_create(name="  Initech ", actor=creator)

    assert (tenant.name, tenant.slug) == ("Initech", "initech")
    assert creation_rows(tenant.id) == [("tenant.created", creator.pk, str(tenant.id))]


@pytest.mark.embedded
def test_a_tenant_whose_record_fails_is_not_created(committed_db):
    def refuse(sender, **kwargs):
        raise RuntimeError("the audit row could not be written")

    tenant_created.connect(refuse, dispatch_uid="test.refuse")
    try:
        with pytest.raises(RuntimeError):
            tenant_create(name="Vanishing Ltd")
    finally:
        tenant_created.disconnect(dispatch_uid="test.refuse")
    with operator_scope():
        assert not Tenant.objects.filter(slug="vanishing-ltd").exists()


@pytest.mark.embedded
def test_the_create_tenant_command_prints_one_json_object_and_records_it(committed_db):
    out = io.StringIO()
    call_command("create_tenant", "--name", "Initech", "--slug", "initech-hq", stdout=out)
    printed = json.loads(out.getvalue())

    assert set(printed) == {"id", "name", "slug"}
    assert (printed["name"], printed["slug"]) == ("Initech", "initech-hq")
    assert creation_rows(printed["id"]) == [("tenant.created", None, printed["id"])]
    with pytest.raises(CommandError, match="cannot create tenant"):
        call_command("create_tenant", "--name", "Initech", "--slug", "initech-hq", stdout=io.StringIO())


@pytest.mark.embedded
def test_a_second_tenant_of_the_same_name_is_made_and_said(committed_db):
    call_command("create_tenant", "--name", "Example Ltd", stdout=io.StringIO(), stderr=io.StringIO())
    out, err = io.StringIO(), io.StringIO()

    call_command("create_tenant", "--name", "example ltd", stdout=out, stderr=err)

    second = json.loads(out.getvalue())
    assert second["slug"] != "example-ltd"
    assert "already exists (example-ltd)" in err.getvalue()


@pytest.mark.postgres
def test_a_tenant_added_in_the_admin_is_made_by_the_service(committed_db):
    ContentType.objects.clear_cache()  # committed_db empties the content types too
    with operator_scope(), transaction.atomic(using=settings.OPERATOR_DATABASE):
        operator = User.objects.create_user(
            "ops@coditect.test", TEST_PASSWORD, is_staff=True, is_superuser=True
        )
    console = Client()
    with operator_scope():
        console.force_login(operator)

    response = console.post(reverse("admin:tenants_tenant_add"), {"name": "Globex", "slug": "globex"})

    assert response.status_code == 302, response.content
    with operator_scope():
        tenant = Tenant.objects.get(slug="globex")
    assert tenant.is_active
    # The service's row is the record; the admin adds none of its own.
    assert creation_rows(tenant.id) == [("tenant.created", operator.pk, str(tenant.id))]
