"""The Cloud KMS signer: RS256 with an RSA key version (RSA_SIGN_PKCS1_4096_SHA256).

Imported only when a key ring names a KMS key version: google-cloud-kms (and
gRPC) cost a process nothing otherwise.

The private key never leaves KMS: we send the SHA-256 digest of the JWS
signing input and get the PKCS#1 v1.5 signature back, which is exactly RS256.
Every exchange is checked end to end as Google documents ("Verifying
end-to-end data integrity"): the request carries the digest's CRC32C and the
response must say KMS verified it, must name our key version, and its
signature must match its CRC32C. A failed check or an unreachable KMS is a
503, never a token that might not verify.

The public key is fetched once per process (its PEM checked against its
CRC32C) and kept, so verification never calls KMS. Its protection level must
be HSM: a SOFTWARE key's private half is held in software by Google, which
is not what the deployment promises, and is refused unless the key ring's
allow-software setting says it is meant (a development project).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
from collections.abc import Callable
from typing import Any, NoReturn

import google_crc32c
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from django.core.exceptions import ImproperlyConfigured
from google.api_core import exceptions as google_exceptions
from google.api_core.retry import Retry, if_exception_type
from google.auth import exceptions as google_auth_exceptions
from google.cloud import kms

from core.errors import ServiceUnavailable
from core.keyring.keys import VerificationKey

logger = logging.getLogger(__name__)

KEY_VERSION_NAME = re.compile(
    r"^projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+/cryptoKeyVersions/[^/]+$"
)
_Algorithm = kms.CryptoKeyVersion.CryptoKeyVersionAlgorithm
# All of these sign PKCS#1 v1.5 over SHA-256, which is what RS256 means; 4096 is ours.
RS256_ALGORITHMS = frozenset(
    {
        _Algorithm.RSA_SIGN_PKCS1_4096_SHA256,
        _Algorithm.RSA_SIGN_PKCS1_3072_SHA256,
        _Algorithm.RSA_SIGN_PKCS1_2048_SHA256,
    }
)
# Protection levels whose private key lives in a hardware security module.
HSM_LEVELS = frozenset(
    level
    for level in (kms.ProtectionLevel.HSM, getattr(kms.ProtectionLevel, "HSM_SINGLE_TENANT", None))
    if level is not None
)
_UNREACHABLE = (google_exceptions.GoogleAPIError, google_auth_exceptions.GoogleAuthError)


def kms_key_name_check(name: str, *, setting: str) -> None:
    """`setting` is the setting that named the key version, for the error."""
    if not KEY_VERSION_NAME.match(name):
        raise ImproperlyConfigured(
            f"{setting} must name a key version: "
            "projects/P/locations/L/keyRings/R/cryptoKeys/K/cryptoKeyVersions/N."
        )


def kms_client() -> kms.KeyManagementServiceClient:
    """The KMS client, with application default credentials (Workload Identity on GKE)."""
    return kms.KeyManagementServiceClient()


def kms_signer(
    *,
    key_name: str,
    setting: str,
    timeout: float,
    tokens: str,
    allow_software: bool = False,
    allow_software_setting: str = "",
) -> KmsSigner:
    kms_key_name_check(key_name, setting=setting)
    return KmsSigner(
        key_name=key_name,
        client_factory=kms_client,
        timeout=timeout,
        setting=setting,
        tokens=tokens,
        allow_software=allow_software,
        allow_software_setting=allow_software_setting,
    )


def _crc32c(data: bytes) -> int:
    return google_crc32c.value(data)


class KmsSigner:
    def __init__(
        self,
        *,
        key_name: str,
        client_factory: Callable[[], kms.KeyManagementServiceClient],
        timeout: float,
        setting: str,
        tokens: str,
        allow_software: bool = False,
        allow_software_setting: str = "",
    ) -> None:
        self.key_name = key_name
        self._allow_software = allow_software
        self._allow_software_setting = allow_software_setting
        self._setting = setting  # names the key version in errors
        self._tokens = tokens
        self._client_factory = client_factory
        self._timeout = timeout
        # A brief blip is retried, but within the same deadline: an acquire
        # waits at most `timeout` for KMS, then answers 503.
        self._retry = Retry(
            initial=0.05,
            maximum=0.5,
            multiplier=2.0,
            predicate=if_exception_type(google_exceptions.ServiceUnavailable),
            timeout=timeout,
        )
        self._client: kms.KeyManagementServiceClient | None = None
        self._client_pid: int | None = None
        self._client_lock = threading.Lock()
        self.key = self._fetch_public_key()

    def _kms(self) -> kms.KeyManagementServiceClient:
        # A gRPC channel does not survive fork (gunicorn --preload): each
        # process makes its own.
        pid = os.getpid()
        if self._client is None or self._client_pid != pid:
            with self._client_lock:
                if self._client is None or self._client_pid != pid:
                    self._client = self._client_factory()
                    self._client_pid = pid
        return self._client

    def _call(self, method: str, request: dict[str, Any]) -> Any:
        try:
            rpc = getattr(self._kms(), method)
            return rpc(request=request, retry=self._retry, timeout=self._timeout)
        except _UNREACHABLE as exc:
            # A cause, at WARNING: the 503 it becomes is logged with its request.
            logger.warning(
                "Cloud KMS call failed",
                extra={"kms_method": method, "kms_key": self.key_name, "error": type(exc).__name__},
            )
            raise ServiceUnavailable("The signing service does not answer; try again shortly.") from exc

    def _corrupted(self, method: str, check: str) -> NoReturn:
        logger.warning(
            "Cloud KMS response failed its integrity check",
            extra={"kms_method": method, "kms_key": self.key_name, "check": check},
        )
        raise ServiceUnavailable("The signing service's answer was damaged in transit; try again.")

    def _fetch_public_key(self) -> VerificationKey:
        response = self._call("get_public_key", {"name": self.key_name})
        if response.name != self.key_name:
            self._corrupted("get_public_key", "name")
        pem = response.pem.encode("utf-8")
        if response.pem_crc32c != _crc32c(pem):
            self._corrupted("get_public_key", "pem_crc32c")
        if response.algorithm not in RS256_ALGORITHMS:
            raise ImproperlyConfigured(
                f"{self._setting} is a {response.algorithm.name} key; {self._tokens} need "
                "RSA_SIGN_PKCS1_4096_SHA256."
            )
        self._protection_level_check(response.protection_level)
        return VerificationKey.from_public_key(
            serialization.load_pem_public_key(pem),
            source=self.key_name,
            algorithms=("RS256",),
            tokens=self._tokens,
        )

    def _protection_level_check(self, level: kms.ProtectionLevel) -> None:
        if level in HSM_LEVELS:
            return
        if level == kms.ProtectionLevel.SOFTWARE and self._allow_software:
            logger.warning(
                "Cloud KMS key is protected in software, not by an HSM (allowed by setting)",
                extra={"kms_key": self.key_name, "setting": self._allow_software_setting},
            )
            return
        name = getattr(level, "name", str(level))
        allowed = (
            f", or set {self._allow_software_setting}=true to accept a SOFTWARE key"
            if self._allow_software_setting and level == kms.ProtectionLevel.SOFTWARE
            else ""
        )
        raise ImproperlyConfigured(
            f"{self._setting} is protected at level {name}; {self._tokens} need a key whose "
            f"protection level is HSM{allowed}."
        )

    def sign(self, signing_input: bytes) -> bytes:
        digest = hashlib.sha256(signing_input).digest()
        response = self._call(
            "asymmetric_sign",
            {"name": self.key_name, "digest": {"sha256": digest}, "digest_crc32c": _crc32c(digest)},
        )
        if not response.verified_digest_crc32c:
            self._corrupted("asymmetric_sign", "verified_digest_crc32c")
        if response.name != self.key_name:
            self._corrupted("asymmetric_sign", "name")
        if response.signature_crc32c != _crc32c(response.signature):
            self._corrupted("asymmetric_sign", "signature_crc32c")
        # Costs a fraction of a millisecond and means no token leaves here that
        # the published key would refuse.
        try:
            self.key.public_key.verify(response.signature, signing_input, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            self._corrupted("asymmetric_sign", "signature")
        return response.signature
