"""Django's createsuperuser, on the operator database path: an operator has no
tenant, and only that path may write such a user (`create_operator` is the
documented way, with the password from a file or the environment)."""

from django.conf import settings
from django.contrib.auth.management.commands import createsuperuser
from django.db import DEFAULT_DB_ALIAS

from tenants.scope import operator_scope


class Command(createsuperuser.Command):
    help = "Create an operator (staff, no tenant); see also `manage.py create_operator`."

    def handle(self, *args, **options):
        if options.get("database") in (None, DEFAULT_DB_ALIAS):
            options["database"] = settings.OPERATOR_DATABASE
        with operator_scope():
            return super().handle(*args, **options)
