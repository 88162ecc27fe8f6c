from django.conf import settings

from tenants.scope import in_operator_scope


class OperatorRouter:
    """Send operator-scope queries to the operator alias (BYPASSRLS role)."""

    def db_for_read(self, model, **hints):
        return settings.OPERATOR_DATABASE if in_operator_scope() else None

    def db_for_write(self, model, **hints):
        return settings.OPERATOR_DATABASE if in_operator_scope() else None

    def allow_relation(self, obj1, obj2, **hints):
        return True

    def allow_migrate(self, db, app_label, **hints):
        # Migrations run on `default`, connected as the owner role.
        return db == "default"
