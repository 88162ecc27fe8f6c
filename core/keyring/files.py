"""Keys from PEM files (a mounted secret, one or several keys a file) and the
development key made under DEBUG."""

from __future__ import annotations

import logging
import os
import re
import secrets
from collections.abc import Sequence
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from django.core.exceptions import ImproperlyConfigured

from core.keyring.keys import ALGORITHMS, LocalSigner, VerificationKey

logger = logging.getLogger(__name__)

_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n.+?-----END \1-----", re.DOTALL)


def pem_blocks(path: str, *, what: str) -> list[tuple[str, bytes]]:
    """The PEM blocks of a key file, as (label, block); `what` names the file in errors."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ImproperlyConfigured(f"The {what} file {path} cannot be read: {exc}") from exc
    blocks = [(match.group(1).decode(), match.group(0)) for match in _PEM_BLOCK.finditer(data)]
    if not blocks:
        raise ImproperlyConfigured(f"The {what} file {path} holds no PEM key.")
    return blocks


def pem_file_signers(
    path: str, *, what: str, algorithms: Sequence[str] = ALGORITHMS, tokens: str = "tokens"
) -> list[LocalSigner]:
    """Every private key of the file, in its order (the first signs)."""
    signers = []
    for label, block in pem_blocks(path, what=what):
        if "PRIVATE KEY" not in label:
            raise ImproperlyConfigured(f"{path}: expected a PEM private key, found {label}.")
        try:
            private_key = serialization.load_pem_private_key(block, password=None)
        except (TypeError, ValueError) as exc:
            # TypeError: the key is encrypted; a mounted secret is protected by its mount.
            raise ImproperlyConfigured(f"{path}: not an unencrypted PEM private key ({exc}).") from exc
        signers.append(
            LocalSigner.from_private_key(private_key, source=path, algorithms=algorithms, tokens=tokens)
        )
    return signers


def pem_file_verification_keys(
    path: str, *, what: str, algorithms: Sequence[str] = ALGORITHMS, tokens: str = "tokens"
) -> list[VerificationKey]:
    """The public half of every key of the file, public or private PEM (retired keys)."""
    keys = []
    for label, block in pem_blocks(path, what=what):
        try:
            if "PRIVATE KEY" in label:
                public_key = serialization.load_pem_private_key(block, password=None).public_key()
            elif "PUBLIC KEY" in label:
                public_key = serialization.load_pem_public_key(block)
            else:
                raise ImproperlyConfigured(f"{path}: expected a PEM public or private key, found {label}.")
        except (TypeError, ValueError) as exc:
            raise ImproperlyConfigured(f"{path}: the {label} cannot be loaded ({exc}).") from exc
        keys.append(
            VerificationKey.from_public_key(public_key, source=path, algorithms=algorithms, tokens=tokens)
        )
    return keys


def development_key_file(path: Path, *, what: str) -> Path:
    """Make the DEBUG Ed25519 key once, under VAR_DIR (never in the repository).

    Racing processes (gunicorn workers, parallel tests) must agree on one key:
    each writes its own draft and hard-links it into place, which fails rather
    than overwrites when another got there first.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        pem = ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(pem)
            os.link(draft, path)
            logger.warning(f"made a development {what}", extra={"path": str(path)})
        except FileExistsError:
            pass
        finally:
            draft.unlink(missing_ok=True)
    return path
