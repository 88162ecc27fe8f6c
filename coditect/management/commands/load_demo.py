"""A small, idempotent demo: one tenant, its admin, an operator, one license.

The generated passwords and the license key are kept in var/demo.json (never
in the repository) so that running it again prints the same login. The banner
it prints names the configuration the server actually runs (read from
settings): bin/run-embedded holds it back until the server answers /health.
"""

import json
import os
import secrets
from urllib.parse import urlsplit

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import connections, transaction

from accounts.models import Role, User
from licenses.keys import license_key_digest
from licenses.models import License
from licenses.services import license_create
from tenants.models import Tenant
from tenants.scope import operator_scope, tenant_scope
from tenants.services import tenant_create

DEMO_SLUG = "demo"
DEMO_LICENSE_NAME = "CODITECT Pro (demo)"
ADMIN_EMAIL = "admin@demo.example"
OPERATOR_EMAIL = "operator@demo.example"


def _where(url: str) -> str:
    """host:port/path of a URL, never its user or password (a Redis Cluster
    URL may name several nodes: host:port,host:port)."""
    parts = urlsplit(url)
    hosts = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{hosts}{parts.path}"


def describe_configuration() -> str:
    """What this process serves with, from its settings: the database, the
    seat ledger, Redis and the broker (credentials left out)."""
    database = settings.DATABASES["default"]
    if connections["default"].vendor == "sqlite":
        db = f"SQLite ({database['NAME']})"
    else:
        where = f"{database.get('HOST') or 'local socket'}"
        if database.get("PORT"):
            where += f":{database['PORT']}"
        db = f"PostgreSQL ({where}/{database['NAME']})"
    ledger = "Redis seat ledger" if settings.SEAT_LEDGER == "redis" else "database seat ledger"
    redis = f"Redis at {_where(settings.REDIS_URL)}" if settings.REDIS_URL else "no Redis"
    if settings.CELERY_TASK_ALWAYS_EAGER:
        broker = "no broker (periodic tasks run in-process)"
    else:
        broker = (
            f"broker at {_where(settings.CELERY_BROKER_URL)} (periodic tasks are queued: "
            "a Celery worker runs them, `celery -A coditect worker`)"
        )
    embedded = (
        db.startswith("SQLite")
        and settings.SEAT_LEDGER == "database"
        and not settings.REDIS_URL
        and settings.CELERY_TASK_ALWAYS_EAGER
    )
    return f"{db}, {ledger}, {redis}, {broker}" + ("  [the embedded default]" if embedded else "")


class Command(BaseCommand):
    help = "Load the demo tenant, tenant admin, operator and license (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--base-url", default="http://127.0.0.1:8000")

    def handle(self, *args, **options):
        if not settings.DEBUG:
            self.stderr.write("load_demo only runs with DEBUG on; it creates known logins.")
            return
        state_path = settings.VAR_DIR / "demo.json"
        state = json.loads(state_path.read_text()) if state_path.exists() else {}
        state.setdefault("admin_password", secrets.token_urlsafe(12))
        state.setdefault("operator_password", secrets.token_urlsafe(12))
        # Who signs in where, beside their passwords (the banner says it once).
        state.update(admin_email=ADMIN_EMAIL, operator_email=OPERATOR_EMAIL)

        with operator_scope():
            tenant = Tenant.objects.filter(slug=DEMO_SLUG).first()
            operator_exists = User.objects.filter(email=OPERATOR_EMAIL).exists()
        if tenant is None:
            tenant = tenant_create(name="Demo Company", slug=DEMO_SLUG)
        if not operator_exists:
            with operator_scope(), transaction.atomic(using=settings.OPERATOR_DATABASE):
                User.objects.create_superuser(
                    OPERATOR_EMAIL, state["operator_password"], full_name="Demo Operator"
                )

        with tenant_scope(tenant.id):
            if not User.objects.filter(email=ADMIN_EMAIL).exists():
                User.objects.create_user(
                    ADMIN_EMAIL,
                    state["admin_password"],
                    tenant=tenant,
                    role=Role.TENANT_ADMIN,
                    full_name="Demo Admin",
                )
            key = state.get("license_key")
            has_license = key and License.objects.filter(key_digest=license_key_digest(key)).exists()
            if not has_license and License.objects.filter(tenant=tenant, name=DEMO_LICENSE_NAME).exists():
                # Its key was regenerated in the admin since: the demo license
                # is there, with a key only the admin showed. No second one.
                has_license, state["license_key"] = True, None
        if not has_license:
            _, state["license_key"] = license_create(
                tenant=tenant,
                max_seats=5,
                name=DEMO_LICENSE_NAME,
                policy=_demo_policy(),
                entitlements=["pro", "export"],
            )

        state_path.parent.mkdir(parents=True, exist_ok=True)
        state_path.write_text(json.dumps(state, indent=2))
        os.chmod(state_path, 0o600)

        base = options["base_url"].rstrip("/")
        shown_key = state["license_key"] or "CDT-..."
        key_line = (
            f"{state['license_key']}   (kept in {state_path})"
            if state["license_key"]
            else "regenerated in the admin since: use the key it showed"
        )
        self.stdout.write(
            f"""
CODITECT License Server on {base}
  Runs on:                  {describe_configuration()}
  Admin site (operators):   {base}/admin/      {OPERATOR_EMAIL} / {state["operator_password"]}
  Dashboard (tenant admin): {base}/dashboard/  {ADMIN_EMAIL} / {state["admin_password"]}
  API docs:                 {base}/api/docs/  (ReDoc: {base}/api/redoc/)
  Demo license key:         {key_line}

Try it:
  TOKEN=$(curl -s {base}/api/v1/auth/login -H 'Content-Type: application/json' \\
    -d '{{"email": "{ADMIN_EMAIL}", "password": "{state["admin_password"]}"}}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
  curl -s {base}/api/v1/licenses/acquire -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \\
    -d '{{"license_key": "{shown_key}", "hardware_fingerprint": "demo-machine-1"}}'
"""
        )


def _demo_policy():
    """The demo's policy: CODITECT Pro, with a catalog of two codes."""
    from licenses.models import Policy, Product

    product, _ = Product.objects.get_or_create(slug="coditect-pro", defaults={"name": "CODITECT Pro"})
    policy, _ = Policy.objects.get_or_create(
        slug="pro",
        defaults={
            "name": "Pro",
            "product": product,
            "seats": 5,
            "entitlements": {"pro": "Pro features", "export": "Export"},
        },
    )
    return policy
