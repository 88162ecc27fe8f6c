import json

from django.core.management.base import BaseCommand, CommandError
from django.db import IntegrityError

from tenants.services import tenant_create


class Command(BaseCommand):
    help = "Create a tenant and print it as one JSON object."

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True)
        parser.add_argument("--slug", help="Default: made from the name.")

    def handle(self, *args, **options):
        try:
            tenant = tenant_create(name=options["name"], slug=options.get("slug"))
        except (ValueError, IntegrityError) as exc:
            raise CommandError(f"cannot create tenant: {exc}") from exc
        self.stdout.write(json.dumps({"id": str(tenant.id), "name": tenant.name, "slug": tenant.slug}))
