"""A production-like environment for a subprocess: DEBUG off, real-looking
secrets, throwaway signing keys, the test PostgreSQL and Redis."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from deploy.tests.tools import REPO

PUBLIC_HOST = "licenses.coditect.example"
# What the web pods read from the coditect-metrics-token Secret (METRICS_TOKEN_FILE).
METRICS_TOKEN = secrets.token_urlsafe(32)


def signing_key(path: Path) -> Path:
    pem = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.write_bytes(pem)
    path.chmod(0o600)
    return path


def production_env(workdir: Path, **overrides: str) -> dict[str, str]:
    """The settings the overlays give the web tier, with local stand-ins for Google's services."""
    keep = {name: os.environ[name] for name in ("PATH", "HOME", "LANG", "TZ") if name in os.environ}
    secret_key = workdir / "secret-key"
    secret_key.write_text(secrets.token_urlsafe(50))
    metrics_token = workdir / "metrics-token"
    metrics_token.write_text(METRICS_TOKEN)
    env = {
        **keep,
        "DJANGO_SETTINGS_MODULE": "coditect.settings",
        "PYTHONPATH": str(REPO),
        "DEBUG": "0",
        "SECRET_KEY_FILE": str(secret_key),
        "ALLOWED_HOSTS": PUBLIC_HOST,
        "CSRF_TRUSTED_ORIGINS": f"https://{PUBLIC_HOST}",
        "CODITECT_VAR_DIR": str(workdir / "var"),
        "LICENSE_SIGNING_KEY_FILE": str(signing_key(workdir / "license-signing-key.pem")),
        "AUTH_SIGNING_KEY_FILE": str(signing_key(workdir / "auth-signing-key.pem")),
        "LICENSE_KEYSET_ROOT_KEY_FILE": str(signing_key(workdir / "license-keyset-root-key.pem")),
        "TRUSTED_PROXY_COUNT": "1",
        "METRICS_TOKEN_FILE": str(metrics_token),
    }
    env.update(overrides)
    return env
