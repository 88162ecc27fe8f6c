import json
import uuid

from django.core.management.base import BaseCommand, CommandError

from audit.selectors import audit_chain_ids, audit_chain_verify
from tenants.models import Tenant
from tenants.scope import operator_scope


class Command(BaseCommand):
    help = (
        "Check the audit log's hash chains (each tenant's and the operator chain) and name the "
        "first broken row. Prints one JSON object; exits 1 when a chain is broken."
    )

    def add_arguments(self, parser):
        parser.add_argument("--tenant", help="Slug or id of one tenant (default: every chain).")

    def handle(self, *args, **options):
        if options.get("tenant"):
            chains = [self._tenant_id(options["tenant"])]
        else:
            chains = audit_chain_ids()
        reports = [audit_chain_verify(tenant_id=tenant_id) for tenant_id in chains]
        self.stdout.write(
            json.dumps(
                {
                    "ok": all(r.ok for r in reports),
                    "chains": [
                        {
                            "tenant": str(r.tenant_id) if r.tenant_id else None,
                            "rows": r.rows,
                            "broken_at": r.broken_at,
                            "problem": r.problem or None,
                        }
                        for r in reports
                    ],
                }
            )
        )
        broken = [r for r in reports if not r.ok]
        if broken:
            first = broken[0]
            chain = f"tenant {first.tenant_id}" if first.tenant_id else "the operator chain"
            raise CommandError(
                f"audit log of {chain} is broken at row {first.broken_at}: {first.problem}"
                + (f" (and {len(broken) - 1} more chain(s))" if len(broken) > 1 else "")
            )

    @staticmethod
    def _tenant_id(value: str) -> uuid.UUID:
        with operator_scope():
            try:
                found = Tenant.objects.filter(id=uuid.UUID(value)).values_list("id", flat=True).first()
            except ValueError:
                found = Tenant.objects.filter(slug=value).values_list("id", flat=True).first()
        if found is None:
            raise CommandError(f"no tenant {value!r}")
        return found
