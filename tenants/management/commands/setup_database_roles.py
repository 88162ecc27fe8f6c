import os

from django.core.management.base import BaseCommand

from tenants.dbroles import RoleNames, ensure_database, ensure_roles


class Command(BaseCommand):
    help = (
        "Create the owner, app and operator PostgreSQL roles and the database with "
        "their grants (idempotent: run it again to change a password). Connects with "
        "--admin-url or DATABASE_ADMIN_URL (a superuser or CREATEROLE role); needs no "
        "other setting (no SECRET_KEY, no signing keys). Passwords come from "
        "DATABASE_OWNER_PASSWORD, DATABASE_APP_PASSWORD and DATABASE_OPERATOR_PASSWORD when set."
    )
    # It runs before the install is configured; the system checks are for a server.
    requires_system_checks: list = []

    def add_arguments(self, parser):
        parser.add_argument(
            "--admin-url",
            default=os.environ.get("DATABASE_ADMIN_URL"),
            required=not os.environ.get("DATABASE_ADMIN_URL"),
            help="A superuser's libpq URL (default: DATABASE_ADMIN_URL).",
        )
        parser.add_argument(
            "--database", default="coditect", help="The database to create (default: coditect)."
        )
        parser.add_argument(
            "--owner",
            default=RoleNames.owner,
            help=f"The role that owns the tables and runs migrations (default: {RoleNames.owner}).",
        )
        parser.add_argument(
            "--app",
            default=RoleNames.app,
            help=f"The role of DATABASE_URL, under row-level security (default: {RoleNames.app}).",
        )
        parser.add_argument(
            "--operator",
            default=RoleNames.operator,
            help=f"The role of DATABASE_OPERATOR_URL, BYPASSRLS (default: {RoleNames.operator}).",
        )

    def handle(self, *args, **options):
        roles = RoleNames(owner=options["owner"], app=options["app"], operator=options["operator"])
        ensure_roles(
            options["admin_url"],
            roles,
            {
                "owner": os.environ.get("DATABASE_OWNER_PASSWORD"),
                "app": os.environ.get("DATABASE_APP_PASSWORD"),
                "operator": os.environ.get("DATABASE_OPERATOR_PASSWORD"),
            },
        )
        ensure_database(options["admin_url"], options["database"], roles)
        self.stdout.write(
            f"Roles {roles.owner} (owner, migrations), {roles.app} (DATABASE_URL) and "
            f"{roles.operator} (DATABASE_OPERATOR_URL) are ready in database {options['database']}."
        )
