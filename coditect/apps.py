from django.apps import AppConfig


class CoditectConfig(AppConfig):
    """The project package, as an app only for its management commands."""

    name = "coditect"
    default_auto_field = "django.db.models.BigAutoField"
