import factory

from licenses.keys import generate_license_key, license_key_digest, license_key_display_prefix
from licenses.models import License
from tenants.tests.factories import TenantOwnedFactory


class LicenseFactory(TenantOwnedFactory):
    """`LicenseFactory(key=...)` sets a known key; the plaintext is kept on the
    returned instance as `.key`, for tests only."""

    class Meta:
        model = License

    name = factory.Sequence(lambda n: f"Product {n}")
    max_seats = 5

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        key = kwargs.pop("key", None) or generate_license_key()
        kwargs["key_digest"] = license_key_digest(key)
        kwargs["key_prefix"] = license_key_display_prefix(key)
        license = super()._create(model_class, *args, **kwargs)
        license.key = key
        return license
