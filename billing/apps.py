from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"
    default_auto_field = "django.db.models.BigAutoField"
    verbose_name = "Billing (Stripe)"

    def ready(self) -> None:
        from billing import tasks  # noqa: F401 - the periodic task, registered by name
