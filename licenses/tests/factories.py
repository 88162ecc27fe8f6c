from datetime import timedelta

import factory
from django.utils import timezone

from licenses.keys import generate_license_key, license_key_digest, license_key_display_prefix
from licenses.ledger.base import new_session_id
from licenses.models import BorrowedLease, Lease, LeaseTicket, License, LicenseClaim, LicenseNotice
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


class LeaseFactory(TenantOwnedFactory):
    """A row of the database seat ledger, live for an hour by default. Times come
    from the test's clock; the ledger itself only ever uses the database's."""

    class Meta:
        model = Lease

    license = factory.SubFactory(LicenseFactory, tenant=factory.SelfAttribute("..tenant"))
    session_id = factory.LazyFunction(new_session_id)
    fingerprint = factory.Sequence(lambda n: f"machine-{n:04d}")
    created_at = factory.LazyFunction(timezone.now)
    expires_at = factory.LazyAttribute(lambda lease: lease.created_at + timedelta(hours=1))


class BorrowedLeaseFactory(TenantOwnedFactory):
    """A borrowed seat of the Redis ledger, kept in the database (ending in 48 h)."""

    class Meta:
        model = BorrowedLease

    license = factory.SubFactory(LicenseFactory, tenant=factory.SelfAttribute("..tenant"))
    session_id = factory.LazyFunction(new_session_id)
    fingerprint = factory.Sequence(lambda n: f"machine-{n:04d}")
    created_at = factory.LazyFunction(timezone.now)
    borrowed_until = factory.LazyAttribute(lambda lease: lease.created_at + timedelta(hours=48))


class LeaseTicketFactory(TenantOwnedFactory):
    """A place in a license's queue on the database ledger (one minute to live)."""

    class Meta:
        model = LeaseTicket

    license = factory.SubFactory(LicenseFactory, tenant=factory.SelfAttribute("..tenant"))
    ticket_id = factory.LazyFunction(new_session_id)
    fingerprint = factory.Sequence(lambda n: f"machine-{n:04d}")
    created_at = factory.LazyFunction(timezone.now)
    expires_at = factory.LazyAttribute(lambda ticket: ticket.created_at + timedelta(minutes=1))


class LicenseClaimFactory(TenantOwnedFactory):
    """A one-time delivery link (licenses.delivery); `.token` is kept on the instance, for tests."""

    class Meta:
        model = LicenseClaim

    license = factory.LazyAttribute(lambda o: LicenseFactory(tenant=o.tenant))
    email = factory.Sequence(lambda n: f"buyer{n}@example.test")
    expires_at = factory.LazyFunction(lambda: timezone.now() + timedelta(hours=1))

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        from licenses.delivery import claim_token_digest, claim_token_new

        token = claim_token_new(kwargs["tenant"].id)
        kwargs["token_digest"] = claim_token_digest(token)
        claim = super()._create(model_class, *args, **kwargs)
        claim.token = token
        return claim


class LicenseNoticeFactory(TenantOwnedFactory):
    class Meta:
        model = LicenseNotice

    license = factory.LazyAttribute(lambda o: LicenseFactory(tenant=o.tenant))
    kind = "seats"
    key = factory.Sequence(lambda n: f"2026-01-{n % 28 + 1:02d}-{n}")
