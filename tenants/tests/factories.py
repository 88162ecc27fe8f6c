"""Factories that create rows the way the application does: inside the owning
tenant's scope, so they pass the ORM check and PostgreSQL's WITH CHECK."""

from __future__ import annotations

import uuid

import factory
from factory.django import DjangoModelFactory

from tenants.models import Tenant
from tenants.scope import tenant_scope


class TenantFactory(DjangoModelFactory):
    class Meta:
        model = Tenant

    id = factory.LazyFunction(uuid.uuid4)
    name = factory.Sequence(lambda n: f"Tenant {n}")
    slug = factory.Sequence(lambda n: f"tenant-{n}")

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        with tenant_scope(kwargs["id"]):
            return super()._create(model_class, *args, **kwargs)


class TenantOwnedFactory(DjangoModelFactory):
    """Base for factories of models with a `tenant`."""

    class Meta:
        abstract = True

    tenant = factory.SubFactory(TenantFactory)

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        with tenant_scope(kwargs["tenant"].id):
            return super()._create(model_class, *args, **kwargs)
