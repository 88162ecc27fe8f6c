"""Print what an application embeds at build time to trust this server's license tokens.

    manage.py license_trust_anchors            # the root public key, as a JWK set (pin this)
    manage.py license_trust_anchors --pem      # the same key as a PEM public key
    manage.py license_trust_anchors --jwks     # the license signing keys of today (optional pin)

The SDK takes the first with `trusted_root_keys=` (CLI `--trusted-root-key FILE`)
and the last with `trusted_jwks=` (CLI `--trusted-jwks FILE`). Only public keys
are printed.
"""

from __future__ import annotations

import json

from cryptography.hazmat.primitives import serialization
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from licenses.keyset import root_jwks, root_keys
from licenses.signing import jwks as license_jwks


class Command(BaseCommand):
    help = "Print the key set root public key (or the license JWKS) for applications to pin at build time."

    def add_arguments(self, parser):
        shown = parser.add_mutually_exclusive_group()
        shown.add_argument("--pem", action="store_true", help="the root public key as PEM, not a JWK set")
        shown.add_argument(
            "--jwks", action="store_true", help="the license signing keys' JWK set instead of the root key"
        )

    def handle(self, *args, pem: bool, jwks: bool, **options):
        try:
            if jwks:
                self.stdout.write(json.dumps(license_jwks(), indent=2, sort_keys=True))
                return
            if not settings.LICENSE_KEYSET_ENABLED:
                raise CommandError("LICENSE_KEYSET_ENABLED is false: this server signs no key set.")
            if pem:
                public_key = root_keys().signer.key.public_key
                self.stdout.write(
                    public_key.public_bytes(
                        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                    ).decode("ascii"),
                    ending="",
                )
                return
            self.stdout.write(json.dumps(root_jwks(), indent=2, sort_keys=True))
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from exc
