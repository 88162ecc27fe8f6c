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
        from tenants.models import Tenant
        from tenants.scope import operator_scope

        with operator_scope():
            namesakes = list(
                Tenant.objects.filter(name__iexact=options["name"].strip()).values_list("slug", flat=True)
            )
        if namesakes:
            # Allowed (two companies may share a name), but said: the slug tells them apart.
            self.stderr.write(
                f"note: a tenant named {options['name']!r} already exists ({', '.join(namesakes)}); "
                "this one gets a slug of its own"
            )
        try:
            tenant = tenant_create(name=options["name"], slug=options.get("slug"))
        except (ValueError, IntegrityError) as exc:
            raise CommandError(f"cannot create tenant: {exc}") from exc
        self.stdout.write(json.dumps({"id": str(tenant.id), "name": tenant.name, "slug": tenant.slug}))
