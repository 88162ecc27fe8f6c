import json
import uuid

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.core.validators import validate_email
from django.utils.dateparse import parse_datetime

from licenses.mailing import license_delivery_send
from licenses.models import Policy
from licenses.services import license_create
from tenants.models import Tenant
from tenants.scope import operator_scope


def _find_tenant(ref: str) -> Tenant:
    with operator_scope():
        try:
            return Tenant.objects.get(id=uuid.UUID(ref))
        except (ValueError, Tenant.DoesNotExist):
            pass
        try:
            return Tenant.objects.get(slug=ref)
        except Tenant.DoesNotExist:
            raise CommandError(f"no tenant with slug or id {ref!r}") from None


def _find_policy(slug: str | None) -> Policy | None:
    if not slug:
        return None
    policy = Policy.objects.filter(slug=slug).first()
    if policy is None:
        known = ", ".join(Policy.objects.values_list("slug", flat=True)) or "none"
        raise CommandError(f"no policy with slug {slug!r} (policies: {known})")
    return policy


def _entitlements(text: str | None) -> list[str] | None:
    if text is None:
        return None
    text = text.strip()
    if text.startswith(("[", "{")):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CommandError(f"--entitlements is not JSON: {exc}") from exc
        if isinstance(value, dict) and all(item is True for item in value.values()):
            return list(value)
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return value
        raise CommandError('--entitlements takes codes: "pro,export", a JSON list of codes or {"pro": true}')
    return [code.strip() for code in text.split(",") if code.strip()]


class Command(BaseCommand):
    help = "Create a license and print it as one JSON object, with its key (shown this once only)."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", required=True, help="Tenant slug or id.")
        parser.add_argument(
            "--policy",
            help="Policy slug (the template: seats, TTLs, trial, catalog); default: the default policy.",
        )
        parser.add_argument("--seats", type=int, help="Default: the policy's seats.")
        parser.add_argument("--name", default="")
        parser.add_argument("--expires-at", help="ISO 8601; default: perpetual.")
        parser.add_argument("--lease-ttl", type=int, help="Seconds a seat lives without a heartbeat.")
        parser.add_argument("--offline-grace", type=int, help="Seconds a license token is valid offline.")
        parser.add_argument("--borrow-limit-hours", type=int)
        parser.add_argument("--max-machines", type=int, help="Bind up to this many machines.")
        parser.add_argument(
            "--fingerprint", action="append", default=[], help="Node-lock to this fingerprint (repeatable)."
        )
        parser.add_argument(
            "--entitlements",
            help="Codes of the policy's catalog, comma-separated (or a JSON list); default: the whole catalog.",
        )
        parser.add_argument(
            "--email",
            help="Email this address a one-time link that shows the key, instead of printing the key.",
        )

    def handle(self, *args, **options):
        email = (options.get("email") or "").strip()
        if options.get("email") is not None:
            try:
                validate_email(email)
            except ValidationError:
                raise CommandError(f"--email {email!r} is not an email address") from None
        tenant = _find_tenant(options["tenant"])
        expires_at = None
        if options.get("expires_at"):
            expires_at = parse_datetime(options["expires_at"])
            if expires_at is None or expires_at.tzinfo is None:
                raise CommandError(
                    "--expires-at must be an ISO 8601 time with a zone, e.g. 2027-01-31T00:00:00Z"
                )
        policy = _find_policy(options.get("policy"))
        entitlements = _entitlements(options.get("entitlements"))
        try:
            license, key = license_create(
                tenant=tenant,
                policy=policy,
                max_seats=options.get("seats"),
                name=options["name"],
                expires_at=expires_at,
                lease_ttl=options.get("lease_ttl"),
                offline_grace=options.get("offline_grace"),
                borrow_limit_hours=options.get("borrow_limit_hours"),
                max_machines=options.get("max_machines"),
                fingerprints=options["fingerprint"],
                entitlements=entitlements,
            )
        except (ValueError, ValidationError) as exc:
            raise CommandError(f"cannot create license: {exc}") from exc
        output = {"id": str(license.id), "tenant": {"id": str(tenant.id), "slug": tenant.slug}}
        if email:
            # The key is never printed: the claim link shows a new one, once.
            claim = license_delivery_send(license=license, email=email, requested_by="create_license")
            output["claim"] = {
                "id": str(claim.id),
                "email": claim.email,
                "expires_at": claim.expires_at.isoformat(),
            }
        else:
            output["license_key"] = key
        terms = license.terms
        self.stdout.write(
            json.dumps(
                {
                    **output,
                    "key_prefix": license.key_prefix,
                    "policy": license.policy.slug,
                    "max_seats": terms.max_seats,
                    "expires_at": terms.expires_at.isoformat() if terms.expires_at else None,
                    "lease_ttl": terms.lease_ttl,
                    "hardware_fingerprints": license.hardware_fingerprints,
                    "entitlements": terms.entitlements,
                }
            )
        )
