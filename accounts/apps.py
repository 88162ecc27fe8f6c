from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Here rather than as a system check: gunicorn runs no checks, and a
        # server without an auth signing key must not start at all.
        from accounts import receivers  # noqa: F401  (connects them)
        from accounts.tokens import auth_keys_startup_check

        auth_keys_startup_check()
