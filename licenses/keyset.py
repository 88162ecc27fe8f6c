"""The signed license key set: the license JWKS, signed by a long-lived root key.

Applications pin the root key's public half at build time (`manage.py
license_trust_anchors`); the SDK then accepts a license signing key it was
not shipped with only through this document, after checking its signature
under a pinned root key and its `exp`. A rotation of the license signing key
(core.keyring) therefore needs no application update; the root key changes
only with one.

The document is a compact JWS (`typ` "coditect-keyset+jwt", `kid` the root
key's RFC 7638 thumbprint) whose claims are `iss` (LICENSE_TOKEN_ISSUER),
`iat`, `exp` (iat + LICENSE_KEYSET_LIFETIME) and `keys`, the JWKS's keys as
/.well-known/jwks.json publishes them. It is signed per request: signing
with a local key costs microseconds, and every answer carries a fresh `iat`,
which the SDK uses to refuse an older set replayed after a newer one.

The root key is one PEM private key (Ed25519, or RSA of 2048 bits or more)
in LICENSE_KEYSET_ROOT_KEY_FILE; under DEBUG a development key is made under
VAR_DIR. It must not be a license signing key.
"""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from core.keyring import Keyring, KeySet
from licenses.signing import jwks, signing_keys

KEYSET_TYP = "coditect-keyset+jwt"

_MISSING_ROOT = (
    "No key set root key: set LICENSE_KEYSET_ROOT_KEY_FILE (a PEM private key file, Ed25519 or RSA, "
    "kept apart from the license signing keys), or LICENSE_KEYSET_ENABLED=false to serve no signed "
    "key set (applications must then ship every license signing key). DEBUG is off, so no "
    "development key is made."
)

KEYSET_ROOT_KEYRING = Keyring(
    name="key set root key",
    tokens="signed key sets",
    algorithms=("EdDSA", "RS256"),
    key_files_setting="LICENSE_KEYSET_ROOT_KEY_FILE",
    dev_key_file_setting="LICENSE_KEYSET_ROOT_DEV_KEY_FILE",
    missing=_MISSING_ROOT,
)


def root_keys() -> KeySet:
    """The root key, loaded on first use and kept; the first key of the file signs."""
    return KEYSET_ROOT_KEYRING.keys()


def root_jwks() -> dict[str, Any]:
    """The root public key as a JWK set: what applications pin."""
    return {"keys": [dict(root_keys().signer.key.jwk)]}


def signed_keyset(*, now: float | None = None) -> str:
    """The license JWKS as a compact JWS signed by the root key."""
    issued_at = int(time.time() if now is None else now)
    claims = {
        "iss": settings.LICENSE_TOKEN_ISSUER,
        "iat": issued_at,
        "exp": issued_at + int(settings.LICENSE_KEYSET_LIFETIME),
        "keys": jwks()["keys"],
    }
    return root_keys().sign(claims, typ=KEYSET_TYP)


def keyset_startup_check() -> None:
    """The web tier's check (coditect.wsgi): with the endpoint served and DEBUG
    off, refuse to start without a root key; a bad file, or a root key that
    is also a license signing key, stops the deploy."""
    if not settings.LICENSE_KEYSET_ENABLED:
        return
    if settings.LICENSE_KEYSET_LIFETIME <= 0:
        raise ImproperlyConfigured("LICENSE_KEYSET_LIFETIME is a number of seconds above 0.")
    KEYSET_ROOT_KEYRING.startup_check()
    if not settings.LICENSE_KEYSET_ROOT_KEY_FILE:
        return  # the development key is made on first use
    root_kid = root_keys().signer.key.kid
    # A KMS signer's public key would be fetched here: its key cannot be a local root key anyway.
    if not settings.LICENSE_SIGNING_KMS_KEY and root_kid in signing_keys().keys:
        raise ImproperlyConfigured(
            "LICENSE_KEYSET_ROOT_KEY_FILE holds a license signing key: the root key must be a key of "
            "its own, or a leaked signing key could vouch for any other."
        )
