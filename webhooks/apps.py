from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "webhooks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Audit (a floor below) offers a hook: each audit row a subscribed
        # endpoint wants leaves a message in the outbox, in the row's transaction.
        from audit.hooks import audit_hook_connect
        from webhooks import receivers, tasks  # noqa: F401 - the tasks the services enqueue by name
        from webhooks.outbox import outbox_hook

        audit_hook_connect("webhooks.outbox", outbox_hook)
        receivers.connect()
