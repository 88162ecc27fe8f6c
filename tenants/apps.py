from django.apps import AppConfig
from django.db import connections
from django.db.models.signals import post_migrate


def readonly_grant_after_migrate(*, using: str = "default", **kwargs) -> None:
    """After every migrate, the readonly role (tenants.dbroles) gets SELECT on
    the usage rollup tables the migrations made (READONLY_TABLES), and no
    other: they run as the owner, who may grant on its own tables. Nothing happens on SQLite, on a database that
    setup_database_roles did not set up, or as a role that owns no table (a
    test's flush as the app role)."""
    from tenants.dbroles import readonly_grant, readonly_role_recorded

    connection = connections[using]
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        role = readonly_role_recorded(cursor)
        if role:
            readonly_grant(cursor, role)


class TenantsConfig(AppConfig):
    name = "tenants"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Sent once per app; with this sender, once per migrate.
        post_migrate.connect(readonly_grant_after_migrate, sender=self, dispatch_uid="tenants.readonly_grant")
