from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "audit"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The admin app (listed first) has imported every admin module by now.
        from django.contrib import admin

        from audit.admin import audit_every_registered_admin

        audit_every_registered_admin(admin.site)

        # tenants (the floor below) cannot import audit: it announces each new
        # tenant, and its audit row is written here, in the creating transaction.
        from audit.receivers import tenant_created_record
        from tenants.signals import tenant_created

        tenant_created.connect(tenant_created_record, dispatch_uid="audit.tenant_created")
