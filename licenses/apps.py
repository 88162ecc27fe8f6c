from django.apps import AppConfig


class LicensesConfig(AppConfig):
    name = "licenses"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Here rather than as a system check: gunicorn runs no checks, and a
        # server without a signing key must not start at all.
        from licenses.signing import signing_startup_check

        signing_startup_check()
