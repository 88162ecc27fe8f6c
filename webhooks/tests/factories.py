import factory
from django.utils import timezone

from tenants.tests.factories import TenantOwnedFactory
from webhooks.models import Delivery, DeliveryAttempt, Endpoint, Message
from webhooks.signing import webhook_secret_new


class EndpointFactory(TenantOwnedFactory):
    class Meta:
        model = Endpoint

    url = factory.Sequence(lambda n: f"https://hooks{n}.example.com/in")
    event_types = factory.LazyFunction(lambda: ["lease.acquired"])
    secret = factory.LazyFunction(webhook_secret_new)


class MessageFactory(TenantOwnedFactory):
    class Meta:
        model = Message

    event_type = "lease.acquired"
    payload = factory.LazyFunction(lambda: {"type": "lease.acquired", "timestamp": "", "data": {}})
    created_at = factory.LazyFunction(timezone.now)


class DeliveryFactory(TenantOwnedFactory):
    class Meta:
        model = Delivery

    endpoint = factory.SubFactory(EndpointFactory, tenant=factory.SelfAttribute("..tenant"))
    message = factory.SubFactory(MessageFactory, tenant=factory.SelfAttribute("..tenant"))


class DeliveryAttemptFactory(TenantOwnedFactory):
    class Meta:
        model = DeliveryAttempt

    delivery = factory.SubFactory(DeliveryFactory, tenant=factory.SelfAttribute("..tenant"))
    attempted_at = factory.LazyFunction(timezone.now)
    response_code = 200
