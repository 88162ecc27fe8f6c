"""The keyring: the signing keys of every kind of token this server issues
(access tokens in `accounts`, license tokens in `licenses`), from one place.

A `Keyring` is told which settings hold its keys and builds, once per process,
a `KeySet`: one signer (the first key of the key files, a Cloud KMS key
version, or under DEBUG a development key made under VAR_DIR) and every key a
token may name, each by its RFC 7638 thumbprint as `kid`. Rotating is moving
keys, never bookkeeping: the new key goes first, the old one behind it (or
into the verify-only files), and tokens it signed verify until it is removed.
The key set signs, verifies (`kid` looked up in the set, one algorithm per
key, the claims of tokens verified before remembered) and is the JWKS
document. A token kind keeps its own claims, issuer, audience and errors.

Submodules: `jws` (the wire format), `keys` (keys, signers, key sets),
`files` (PEM files, the development key), `kms` (the Cloud KMS signer,
imported only when configured).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed

from core.keyring.files import (
    development_key_file,
    pem_blocks,
    pem_file_signers,
    pem_file_verification_keys,
)
from core.keyring.jws import VerifiedTokens, b64url, jws_header
from core.keyring.keys import (
    KeySet,
    LocalSigner,
    PublicKey,
    Signer,
    TokenRejected,
    VerificationKey,
    jwk_required_members,
    jwk_thumbprint,
    jws_sign,
)

__all__ = [
    "KeySet",
    "Keyring",
    "LoadedOnce",
    "LocalSigner",
    "PublicKey",
    "Signer",
    "TokenRejected",
    "VerificationKey",
    "VerifiedTokens",
    "b64url",
    "development_key_file",
    "jwk_required_members",
    "jwk_thumbprint",
    "jws_header",
    "jws_sign",
    "pem_blocks",
]

T = TypeVar("T")


class LoadedOnce(Generic[T]):
    """A value a process loads on first use and keeps (keys: every request
    verifies with them, so nothing is re-read per call), until `reset()`."""

    def __init__(self, load: Callable[[], T]) -> None:
        self._load = load
        self._value: T | None = None
        self._lock = threading.Lock()

    def get(self) -> T:
        value = self._value
        if value is None:
            with self._lock:
                if self._value is None:
                    self._value = self._load()
                value = self._value
        return value

    def reset(self) -> None:
        with self._lock:
            self._value = None


def _paths(value: str | Iterable[str] | None) -> list[str]:
    """A list setting, or one string of comma-separated paths; blanks dropped."""
    if not value:
        return []
    if isinstance(value, (str, Path)):
        value = str(value).split(",")
    return [str(item).strip() for item in value if str(item).strip()]


class Keyring:
    """The keys of one kind of token, named by the settings that hold them.

    `key_files_setting`: PEM private keys; the first signs, the others only
    verify. `verify_files_setting`: retired keys (public or private PEMs) that
    verify and are published but never sign. `kms_key_setting`: a Cloud KMS
    key version that signs instead of the key files (never both);
    `kms_allow_software_setting`: a boolean that lets that key be protected
    in software rather than by an HSM (refused otherwise).
    `dev_key_file_setting`: where the development key lives, set only when
    DEBUG was on at startup; unset and no key configured, the key ring refuses
    with `missing`. `decided_by`: other settings a verification depends on
    (issuer, audience): changing one forgets the tokens verified before.
    """

    def __init__(
        self,
        *,
        name: str,
        tokens: str,
        algorithms: Sequence[str],
        key_files_setting: str,
        dev_key_file_setting: str,
        missing: str,
        verify_files_setting: str | None = None,
        kms_key_setting: str | None = None,
        kms_timeout_setting: str | None = None,
        kms_allow_software_setting: str | None = None,
        decided_by: Iterable[str] = (),
    ) -> None:
        self.name = name  # "license signing key": names the keys in errors and logs
        self.tokens = tokens  # "license tokens"
        self.algorithms = tuple(algorithms)
        self.key_files_setting = key_files_setting
        self.verify_files_setting = verify_files_setting
        self.kms_key_setting = kms_key_setting
        self.kms_timeout_setting = kms_timeout_setting
        self.kms_allow_software_setting = kms_allow_software_setting
        self.dev_key_file_setting = dev_key_file_setting
        self.missing = missing
        named = (
            key_files_setting,
            verify_files_setting,
            kms_key_setting,
            kms_timeout_setting,
            kms_allow_software_setting,
        )
        self._settings = frozenset(
            {"DEBUG", "VAR_DIR", dev_key_file_setting, *decided_by, *(s for s in named if s)}
        )
        self._loaded: LoadedOnce[KeySet] = LoadedOnce(self._load)
        # Tests change settings at run time; a key set loaded under the old ones must go.
        setting_changed.connect(self._on_setting_changed)

    def keys(self) -> KeySet:
        """The process's key set, loaded on first use and kept (every request
        verifies with it, so nothing is re-read per call)."""
        return self._loaded.get()

    def reset(self) -> None:
        self._loaded.reset()

    def startup_check(self) -> None:
        """Refuse to start without a signer when DEBUG is off, and load local
        keys now, so that a bad file stops the deploy rather than the first
        token. KMS is not called here: management commands must not need it,
        and a gRPC channel must not be made before gunicorn forks. The one
        command that runs before any key exists (setup_database_roles) is left alone."""
        if getattr(settings, "DATABASE_ROLES_SETUP", False):
            return
        self._check_one_signer()
        if kms_key := self._kms_key():
            from core.keyring import kms

            kms.kms_key_name_check(kms_key, setting=str(self.kms_key_setting))
            self._retired_keys()
            return
        if not self._key_files():
            if not getattr(settings, self.dev_key_file_setting):
                raise ImproperlyConfigured(self.missing)
            return  # the development key is made on first use, not by every command
        self.keys()

    def development_signer(self, path: Path) -> LocalSigner:
        """The DEBUG key, made once and kept under VAR_DIR (never in the repository)."""
        made = development_key_file(path, what=self.name)
        return self._signers(str(made), what=self.name)[0]

    # --- loading -------------------------------------------------------------

    def _on_setting_changed(self, *, setting: str, **kwargs: Any) -> None:
        if setting in self._settings:
            self.reset()

    def _key_files(self) -> list[str]:
        return _paths(getattr(settings, self.key_files_setting))

    def _kms_key(self) -> str:
        return getattr(settings, self.kms_key_setting) if self.kms_key_setting else ""

    def _signers(self, path: str, *, what: str) -> list[LocalSigner]:
        return pem_file_signers(path, what=what, algorithms=self.algorithms, tokens=self.tokens)

    def _retired_keys(self) -> list[VerificationKey]:
        if not self.verify_files_setting:
            return []
        what = f"{self.name} ({self.verify_files_setting})"
        return [
            key
            for path in _paths(getattr(settings, self.verify_files_setting))
            for key in pem_file_verification_keys(
                path, what=what, algorithms=self.algorithms, tokens=self.tokens
            )
        ]

    def _check_one_signer(self) -> None:
        if self._kms_key() and self._key_files():
            verify_only = (
                f"; keys that should only verify go in {self.verify_files_setting}"
                if self.verify_files_setting
                else ""
            )
            raise ImproperlyConfigured(
                f"Set {self.key_files_setting} or {self.kms_key_setting}, not both{verify_only}."
            )

    def _load(self) -> KeySet:
        self._check_one_signer()
        retired = self._retired_keys()
        if kms_key := self._kms_key():
            from core.keyring import kms

            signer = kms.kms_signer(
                key_name=kms_key,
                setting=str(self.kms_key_setting),
                timeout=getattr(settings, str(self.kms_timeout_setting)),
                tokens=self.tokens,
                allow_software=bool(
                    self.kms_allow_software_setting
                    and getattr(settings, self.kms_allow_software_setting, False)
                ),
                allow_software_setting=self.kms_allow_software_setting or "",
            )
            return KeySet.build(signer, retired)
        if key_files := self._key_files():
            what = f"{self.name} ({self.key_files_setting})"
            signers = [signer for path in key_files for signer in self._signers(path, what=what)]
        elif dev_key_file := getattr(settings, self.dev_key_file_setting):
            signers = [self.development_signer(Path(dev_key_file))]
        else:
            raise ImproperlyConfigured(self.missing)
        return KeySet.build(signers[0], [signer.key for signer in signers[1:]] + retired)
