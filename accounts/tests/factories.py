import uuid
from datetime import timedelta

import factory
from django.utils import timezone

from accounts.models import ApiKey, Invite, RefreshToken, Role, User
from accounts.tokens import tenant_secret_digest, tenant_secret_new
from tenants.tests.factories import TenantOwnedFactory

TEST_PASSWORD = "correct-horse-battery-staple"


class UserFactory(TenantOwnedFactory):
    class Meta:
        model = User

    email = factory.Sequence(lambda n: f"user{n}@example.test")
    role = Role.USER
    password = factory.django.Password(TEST_PASSWORD)


class TenantAdminFactory(UserFactory):
    role = Role.TENANT_ADMIN


class ReadOnlyUserFactory(UserFactory):
    role = Role.READ_ONLY


class InviteFactory(TenantOwnedFactory):
    """The plaintext code is kept on the returned instance as `.code`, for tests only."""

    class Meta:
        model = Invite

    role = Role.USER
    expires_at = factory.LazyFunction(lambda: timezone.now() + timedelta(days=1))

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        code = tenant_secret_new(kwargs["tenant"].id)
        kwargs["code_digest"] = tenant_secret_digest(code)
        invite = super()._create(model_class, *args, **kwargs)
        invite.code = code
        return invite

    @classmethod
    def _build(cls, model_class, *args, **kwargs):
        kwargs.setdefault("code_digest", tenant_secret_digest(tenant_secret_new(kwargs["tenant"].id)))
        return super()._build(model_class, *args, **kwargs)


class RefreshTokenFactory(TenantOwnedFactory):
    class Meta:
        model = RefreshToken

    user = factory.SubFactory(UserFactory, tenant=factory.SelfAttribute("..tenant"))
    family_id = factory.LazyFunction(uuid.uuid4)
    token_digest = factory.LazyFunction(lambda: tenant_secret_digest(uuid.uuid4().hex))
    expires_at = factory.LazyFunction(lambda: timezone.now() + timedelta(days=7))


class ApiKeyFactory(TenantOwnedFactory):
    """A tenant-scoped API key; the secret is kept on the instance as `.key`,
    for tests only (an operator-wide one: accounts.apikeys.api_key_create)."""

    class Meta:
        model = ApiKey

    name = factory.Sequence(lambda n: f"backend {n}")

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        from accounts.apikeys import DISPLAY_PREFIX_LENGTH, api_key_digest, api_key_generate

        key = api_key_generate()
        kwargs["key_digest"] = api_key_digest(key)
        kwargs["key_prefix"] = key[:DISPLAY_PREFIX_LENGTH]
        api_key = super()._create(model_class, *args, **kwargs)
        api_key.key = key
        return api_key
