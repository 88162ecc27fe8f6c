"""The Cloud KMS signer, with google-cloud-kms's real client talking gRPC to a
KMS stand-in on a loopback port that signs with a locally made RSA-4096 key.

Only Google's side of the network is replaced: the client, its request
building, retries and timeouts, the wire format, the CRC32C checks and the
JWS assembly all run for real.
"""

from __future__ import annotations

import hashlib
import socket
import threading
import time
from collections import Counter
from concurrent import futures
from datetime import timedelta

import google_crc32c
import grpc
import jwt
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, utils
from django.core.exceptions import ImproperlyConfigured
from google.cloud import kms
from google.cloud.kms_v1.services.key_management_service.transports.grpc import (
    KeyManagementServiceGrpcTransport,
)
from google.cloud.kms_v1.types import resources, service

from core.errors import ServiceUnavailable
from core.keyring import jwk_thumbprint
from core.keyring import kms as keyring_kms
from licenses.signing import (
    InvalidLicenseToken,
    jwks,
    license_token_issue,
    license_token_verify,
    signing_keys,
    signing_startup_check,
)
from licenses.tests.signing_helpers import ed25519_key, lease_of, rsa_key, unsaved_license, utcnow, write_pem

KEY_NAME = "projects/coditect/locations/global/keyRings/licenses/cryptoKeys/tokens/cryptoKeyVersions/3"
Algorithm = kms.CryptoKeyVersion.CryptoKeyVersionAlgorithm


def crc32c(data: bytes) -> int:
    return google_crc32c.value(data)


class FakeKms:
    """KMS's two calls we use, answered as Google documents them, with faults
    a test can switch on."""

    def __init__(self, private_key) -> None:
        self.private_key = private_key
        self.algorithm = Algorithm.RSA_SIGN_PKCS1_4096_SHA256
        self.protection_level = resources.ProtectionLevel.HSM
        self.faults: set[str] = set()
        self.calls: Counter[str] = Counter()
        self.sign_requests: list[service.AsymmetricSignRequest] = []

    def reset(self) -> None:
        self.algorithm = Algorithm.RSA_SIGN_PKCS1_4096_SHA256
        self.protection_level = resources.ProtectionLevel.HSM
        self.faults.clear()
        self.calls.clear()
        self.sign_requests.clear()

    def get_public_key(self, request, context):
        self.calls["GetPublicKey"] += 1
        if request.name != KEY_NAME:
            context.abort(grpc.StatusCode.NOT_FOUND, "no such key version")
        pem = (
            self.private_key.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )
        return resources.PublicKey(
            pem=pem,
            pem_crc32c=crc32c(pem.encode()) + (1 if "pem_crc32c" in self.faults else 0),
            algorithm=self.algorithm,
            name="projects/other/key" if "public_key_name" in self.faults else request.name,
            protection_level=self.protection_level,
        )

    def asymmetric_sign(self, request, context):
        self.calls["AsymmetricSign"] += 1
        self.sign_requests.append(request)
        if "permission_denied" in self.faults:
            context.abort(grpc.StatusCode.PERMISSION_DENIED, "the service account may not sign")
        if "slow" in self.faults:
            time.sleep(2)
        digest = request.digest.sha256
        if "digest_crc32c" in request and request.digest_crc32c != crc32c(digest):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "digest_crc32c does not match digest")
        signature = self.private_key.sign(digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))
        signature_crc32c = crc32c(signature)
        if "signature_flipped_in_transit" in self.faults:
            signature = bytes([signature[0] ^ 1]) + signature[1:]
        if "signature_crc32c" in self.faults:
            signature_crc32c += 1
        if "wrong_key_signed" in self.faults:
            signature = rsa_key(4096, 1).sign(digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))
            signature_crc32c = crc32c(signature)
        return service.AsymmetricSignResponse(
            signature=signature,
            signature_crc32c=signature_crc32c,
            verified_digest_crc32c="digest_not_verified" not in self.faults and "digest_crc32c" in request,
            name="projects/other/key" if "sign_name" in self.faults else request.name,
            protection_level=resources.ProtectionLevel.HSM,
        )


def kms_server(fake: FakeKms):
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    handler = grpc.method_handlers_generic_handler(
        "google.cloud.kms.v1.KeyManagementService",
        {
            "GetPublicKey": grpc.unary_unary_rpc_method_handler(
                fake.get_public_key,
                request_deserializer=service.GetPublicKeyRequest.deserialize,
                response_serializer=resources.PublicKey.serialize,
            ),
            "AsymmetricSign": grpc.unary_unary_rpc_method_handler(
                fake.asymmetric_sign,
                request_deserializer=service.AsymmetricSignRequest.deserialize,
                response_serializer=service.AsymmetricSignResponse.serialize,
            ),
        },
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


def client_for(port: int) -> kms.KeyManagementServiceClient:
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    return kms.KeyManagementServiceClient(transport=KeyManagementServiceGrpcTransport(channel=channel))


@pytest.fixture(scope="module")
def kms_key():
    return rsa_key(4096)


@pytest.fixture(scope="module")
def running_kms(kms_key):
    # The "wrong key" fault signs with a second key: made here, not inside a
    # call, where generating RSA-4096 on a busy machine outlasts the deadline.
    rsa_key(4096, 1)
    fake = FakeKms(kms_key)
    server, port = kms_server(fake)
    yield fake, port
    server.stop(None)


@pytest.fixture
def fake_kms(running_kms, settings, monkeypatch):
    """LICENSE_SIGNING_KMS_KEY set, and the client the signer makes talks to the stand-in."""
    fake, port = running_kms
    fake.reset()
    monkeypatch.setattr(keyring_kms, "kms_client", lambda: client_for(port))
    settings.LICENSE_SIGNING_KEY_FILE = []
    settings.LICENSE_VERIFY_KEYS_FILE = []
    settings.LICENSE_SIGNING_KMS_TIMEOUT = 1.0
    settings.LICENSE_SIGNING_KMS_KEY = KEY_NAME
    return fake


def issue(*, hours: int = 1) -> str:
    now = utcnow()
    license = unsaved_license()
    return license_token_issue(
        license=license, lease=lease_of(license), expires_at=now + timedelta(hours=hours), now=now
    )


def test_kms_signs_rs256_tokens_that_verify_against_the_published_jwks(fake_kms, kms_key, client):
    token = issue()

    header = jwt.get_unverified_header(token)
    assert header == {"alg": "RS256", "kid": jwk_thumbprint(kms_key.public_key()), "typ": "JWT"}
    assert license_token_verify(token)["iss"] == "coditect-license-server"

    document = client.get("/.well-known/jwks.json").json()
    key = jwt.PyJWKSet.from_dict(document)[header["kid"]]
    assert key.algorithm_name == "RS256"
    claims = jwt.decode(token, key, algorithms=["RS256"], issuer="coditect-license-server")
    assert claims["ent"] == {"pro": True, "seats_per_user": 2}


def test_the_sign_request_carries_the_digest_of_the_signing_input_and_its_crc32c(fake_kms):
    token = issue()
    (request,) = fake_kms.sign_requests
    signing_input = token.rsplit(".", 1)[0].encode()
    assert request.name == KEY_NAME
    assert request.digest.sha256 == hashlib.sha256(signing_input).digest()
    assert request.digest_crc32c == crc32c(request.digest.sha256)
    assert not request.data  # the digest goes to KMS, never the claims


def test_the_public_key_is_fetched_once_per_process(fake_kms):
    for _ in range(3):
        issue()
    jwks()
    assert fake_kms.calls == Counter({"GetPublicKey": 1, "AsymmetricSign": 3})


def test_verification_never_calls_kms(fake_kms):
    token = issue()
    fake_kms.calls.clear()
    for _ in range(20):
        assert license_token_verify(token)
    with pytest.raises(InvalidLicenseToken):
        license_token_verify(token[:-8] + "AAAAAAAA")
    jwks()
    assert fake_kms.calls == Counter()


def test_retired_local_keys_still_verify_while_kms_signs(fake_kms, tmp_path, settings, kms_key):
    settings.LICENSE_SIGNING_KMS_KEY = ""
    settings.LICENSE_SIGNING_KEY_FILE = [write_pem(tmp_path / "old.pem", ed25519_key())]
    old_token = issue()

    settings.LICENSE_SIGNING_KEY_FILE = []
    settings.LICENSE_SIGNING_KMS_KEY = KEY_NAME
    settings.LICENSE_VERIFY_KEYS_FILE = [write_pem(tmp_path / "old.pub", ed25519_key(), public=True)]
    assert license_token_verify(old_token)
    assert jwt.get_unverified_header(issue())["alg"] == "RS256"
    assert [key["kid"] for key in jwks()["keys"]] == [
        jwk_thumbprint(kms_key.public_key()),
        jwk_thumbprint(ed25519_key().public_key()),
    ]


@pytest.mark.parametrize(
    "fault, caught_by",
    [
        ("signature_crc32c", "signature_crc32c"),
        ("signature_flipped_in_transit", "signature_crc32c"),
        ("digest_not_verified", "verified_digest_crc32c"),
        ("sign_name", "name"),
        ("wrong_key_signed", "signature"),
        ("permission_denied", None),
    ],
)
def test_a_signature_that_fails_an_integrity_check_is_a_503_not_a_token(fake_kms, fault, caught_by, caplog):
    signing_keys()
    fake_kms.faults.add(fault)
    with pytest.raises(ServiceUnavailable) as caught:
        issue()
    assert caught.value.status == 503
    assert caught.value.code == "service_unavailable"
    (record,) = [record for record in caplog.records if getattr(record, "kms_key", None) == KEY_NAME]
    if caught_by:
        assert record.check == caught_by
    else:
        assert record.error == "PermissionDenied"


@pytest.mark.parametrize("fault", ["pem_crc32c", "public_key_name"])
def test_a_public_key_that_fails_an_integrity_check_is_not_trusted(fake_kms, fault):
    fake_kms.faults.add(fault)
    with pytest.raises(ServiceUnavailable):
        jwks()
    fake_kms.faults.clear()
    assert jwks()["keys"][0]["alg"] == "RS256"  # the next request tries again


def test_a_kms_key_of_another_algorithm_is_refused(fake_kms):
    fake_kms.algorithm = Algorithm.EC_SIGN_P256_SHA256
    with pytest.raises(ImproperlyConfigured, match="RSA_SIGN_PKCS1_4096_SHA256"):
        signing_keys()


@pytest.mark.parametrize(
    "level",
    [
        resources.ProtectionLevel.SOFTWARE,
        resources.ProtectionLevel.EXTERNAL,
        resources.ProtectionLevel.PROTECTION_LEVEL_UNSPECIFIED,
    ],
)
def test_a_kms_key_not_protected_by_an_hsm_is_refused_by_default(fake_kms, level):
    fake_kms.protection_level = level
    with pytest.raises(ImproperlyConfigured, match="protection level is HSM"):
        signing_keys()
    with pytest.raises(ImproperlyConfigured):
        issue()  # no token is ever signed with it


def test_a_software_kms_key_is_accepted_only_with_the_setting(fake_kms, settings):
    fake_kms.protection_level = resources.ProtectionLevel.SOFTWARE
    with pytest.raises(ImproperlyConfigured, match="LICENSE_SIGNING_KMS_ALLOW_SOFTWARE=true"):
        signing_keys()

    settings.LICENSE_SIGNING_KMS_ALLOW_SOFTWARE = True
    assert license_token_verify(issue())["iss"] == "coditect-license-server"


def test_the_setting_does_not_let_an_external_key_pass(fake_kms, settings):
    settings.LICENSE_SIGNING_KMS_ALLOW_SOFTWARE = True
    fake_kms.protection_level = resources.ProtectionLevel.EXTERNAL
    with pytest.raises(ImproperlyConfigured, match="EXTERNAL"):
        signing_keys()


@pytest.mark.parametrize(
    "name", ["", "projects/p/keyRings/r", "projects/p/locations/l/keyRings/r/cryptoKeys/k"]
)
def test_the_startup_check_refuses_a_name_that_is_not_a_key_version(settings, name):
    settings.LICENSE_SIGNING_KEY_FILE = []
    settings.LICENSE_SIGNING_KMS_KEY = name or " "
    with pytest.raises(ImproperlyConfigured, match="cryptoKeyVersions"):
        signing_startup_check()


def test_the_startup_check_does_not_call_kms(fake_kms):
    signing_startup_check()
    assert fake_kms.calls == Counter()


# --- KMS out of reach -------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SilentListener:
    """Accepts TCP connections and never says a word (a hung network path)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(connection)

    def close(self) -> None:
        for connection in self.accepted:
            connection.close()
        self.sock.close()


@pytest.fixture
def unreachable_kms(settings, monkeypatch):
    settings.LICENSE_SIGNING_KEY_FILE = []
    settings.LICENSE_VERIFY_KEYS_FILE = []
    settings.LICENSE_SIGNING_KMS_TIMEOUT = 0.5
    settings.LICENSE_SIGNING_KMS_KEY = KEY_NAME

    def point_at(port: int) -> None:
        monkeypatch.setattr(keyring_kms, "kms_client", lambda: client_for(port))

    return point_at


def test_a_kms_that_refuses_connections_is_a_fast_503(unreachable_kms):
    unreachable_kms(closed_port())
    started = time.monotonic()
    with pytest.raises(ServiceUnavailable) as refused:
        issue()
    assert time.monotonic() - started < 2
    assert refused.value.headers["Retry-After"] == "5"  # like every 503


def test_a_kms_that_never_answers_is_a_503_within_the_timeout(unreachable_kms):
    listener = SilentListener()
    unreachable_kms(listener.port)
    started = time.monotonic()
    try:
        with pytest.raises(ServiceUnavailable):
            issue()
    finally:
        listener.close()
    assert time.monotonic() - started < 2


def test_a_kms_that_goes_away_after_startup_makes_signing_503_and_verification_carry_on(
    kms_key, unreachable_kms, monkeypatch
):
    fake = FakeKms(kms_key)
    server, port = kms_server(fake)
    unreachable_kms(port)
    token = issue()

    server.stop(None).wait()
    started = time.monotonic()
    with pytest.raises(ServiceUnavailable):
        issue()
    assert time.monotonic() - started < 2
    assert license_token_verify(token)  # heartbeats keep working


def test_a_slow_kms_is_cut_off_at_the_timeout(fake_kms, settings):
    settings.LICENSE_SIGNING_KMS_TIMEOUT = 0.3
    signing_keys()
    fake_kms.faults.add("slow")
    started = time.monotonic()
    with pytest.raises(ServiceUnavailable):
        issue()
    assert time.monotonic() - started < 1.5
