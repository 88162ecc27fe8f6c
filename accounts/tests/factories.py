import factory

from accounts.models import Role, User
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
