import os

from django.core.management.base import BaseCommand

from tenants.dbroles import RoleNames, ensure_database, ensure_roles, ensure_statement_bounds


class Command(BaseCommand):
    help = (
        "Create the owner, app, operator and readonly PostgreSQL roles and the database "
        "with their grants (idempotent: run it again to change a password, or after an "
        "upgrade). Connects with --admin-url or DATABASE_ADMIN_URL (a superuser or "
        "CREATEROLE role); needs no other setting (no SECRET_KEY, no signing keys). "
        "Passwords come from DATABASE_OWNER_PASSWORD, DATABASE_APP_PASSWORD, "
        "DATABASE_OPERATOR_PASSWORD and DATABASE_READONLY_PASSWORD when set."
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
        parser.add_argument(
            "--readonly",
            default=RoleNames.readonly,
            help=f"The role of DATABASE_REPLICA_URL, SELECT on the tenant tables under row-level "
            f"security (default: {RoleNames.readonly}).",
        )
        parser.add_argument(
            "--statement-timeout",
            type=float,
            default=float(os.environ.get("DATABASE_STATEMENT_TIMEOUT") or 5),
            help="Seconds any statement or lock wait of the app, operator and readonly roles may take "
            "in the database, set on the roles themselves: the bound behind a transaction-pooling "
            "PgBouncer, which refuses the app's own (0: none; default: DATABASE_STATEMENT_TIMEOUT, else 5).",
        )

    def handle(self, *args, **options):
        roles = RoleNames(
            owner=options["owner"],
            app=options["app"],
            operator=options["operator"],
            readonly=options["readonly"],
        )
        ensure_roles(
            options["admin_url"],
            roles,
            {
                "owner": os.environ.get("DATABASE_OWNER_PASSWORD"),
                "app": os.environ.get("DATABASE_APP_PASSWORD"),
                "operator": os.environ.get("DATABASE_OPERATOR_PASSWORD"),
                "readonly": os.environ.get("DATABASE_READONLY_PASSWORD"),
            },
        )
        ensure_database(options["admin_url"], options["database"], roles)
        ensure_statement_bounds(
            options["admin_url"], options["database"], roles, options["statement_timeout"]
        )
        self.stdout.write(
            f"Roles {roles.owner} (owner, migrations), {roles.app} (DATABASE_URL), "
            f"{roles.operator} (DATABASE_OPERATOR_URL) and {roles.readonly} (DATABASE_REPLICA_URL) "
            f"are ready in database {options['database']}."
        )
