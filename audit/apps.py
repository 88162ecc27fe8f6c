from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "audit"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The admin app (listed first) has imported every admin module by now.
        from django.contrib import admin

        from audit.admin import audit_every_registered_admin

        audit_every_registered_admin(admin.site)
