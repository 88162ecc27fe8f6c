"""The local signer, license_token_verify and key rotation."""

from __future__ import annotations

import os
import threading
from datetime import timedelta

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from django.core.exceptions import ImproperlyConfigured

from core.errors import ApplicationError
from core.keyring import LocalSigner, jwk_thumbprint, jws_sign
from licenses.signing import (
    CLOCK_SKEW_LEEWAY_SECONDS,
    LICENSE_KEYRING,
    REQUIRED_CLAIMS,
    InvalidLicenseToken,
    jwks,
    license_token_issue,
    license_token_verify,
    signing_keys,
    signing_keys_reset,
    signing_startup_check,
)
from licenses.tests.signing_helpers import (
    b64url,
    ed25519_key,
    hs256_token,
    lease_of,
    public_pem,
    rsa_key,
    segment,
    tampered,
    unsaved_license,
    utcnow,
    write_pem,
)


@pytest.fixture
def ed25519_file(tmp_path, settings):
    settings.LICENSE_SIGNING_KEY_FILE = [write_pem(tmp_path / "signing.pem", ed25519_key())]
    settings.LICENSE_SIGNING_KMS_KEY = ""
    settings.LICENSE_VERIFY_KEYS_FILE = []
    return settings.LICENSE_SIGNING_KEY_FILE[0]


def issue(license=None, lease=None, *, expires_in=timedelta(hours=1), now=None):
    license = license or unsaved_license()
    lease = lease or lease_of(license)
    now = now or utcnow()
    return license_token_issue(license=license, lease=lease, expires_at=now + expires_in, now=now)


def claims_for(**overrides):
    now = int(utcnow().timestamp())
    claims = {
        "iss": "coditect-license-server",
        "sub": "license-1",
        "tid": "tenant-1",
        "sid": "session-1",
        "fp": "fp-1",
        "ent": {},
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
    }
    claims.update(overrides)
    return {name: value for name, value in claims.items() if value is not None}


def current_signer() -> LocalSigner:
    return signing_keys().signer


def test_a_token_carries_the_lease_and_verifies(ed25519_file):
    license = unsaved_license(entitlements={"export": True, "max_projects": 3})
    lease = lease_of(license, session_id="sess-42", fingerprint="fp-abcdef123456")
    now = utcnow()
    token = license_token_issue(license=license, lease=lease, expires_at=now + timedelta(hours=24), now=now)

    header = jwt.get_unverified_header(token)
    assert header == {"alg": "EdDSA", "kid": jwk_thumbprint(ed25519_key().public_key()), "typ": "JWT"}
    claims = license_token_verify(token)
    assert claims == {
        "iss": "coditect-license-server",
        "sub": str(license.id),
        "tid": str(license.tenant_id),
        "sid": "sess-42",
        "fp": "fp-abcdef123456",
        "ent": {"export": True, "max_projects": 3},
        "iat": int(now.timestamp()),
        "nbf": int(now.timestamp()),
        "exp": int((now + timedelta(hours=24)).timestamp()),
    }


def test_an_rsa_key_file_signs_rs256(tmp_path, settings):
    settings.LICENSE_SIGNING_KEY_FILE = [write_pem(tmp_path / "rsa.pem", rsa_key())]
    token = issue()
    assert jwt.get_unverified_header(token)["alg"] == "RS256"
    assert license_token_verify(token)["iss"] == "coditect-license-server"
    assert jwks()["keys"][0]["kty"] == "RSA"


def test_the_issuer_comes_from_settings(ed25519_file, settings):
    settings.LICENSE_TOKEN_ISSUER = "https://licenses.example.com"
    assert license_token_verify(issue())["iss"] == "https://licenses.example.com"


def test_the_kid_is_the_rfc_7638_thumbprint():
    # The example key of RFC 7638, section 3.1, and its published thumbprint.
    n = (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV"
        "4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c"
        "7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF"
        "44-csFCur-kEgU8awapJzKnqDKgw"
    )
    public_key = rsa.RSAPublicNumbers(
        e=65537, n=int.from_bytes(jwt.utils.base64url_decode(n), "big")
    ).public_key()
    assert jwk_thumbprint(public_key) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_the_kid_stays_the_same_across_restarts(ed25519_file):
    kid = jwt.get_unverified_header(issue())["kid"]
    signing_keys_reset()
    assert jwt.get_unverified_header(issue())["kid"] == kid


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(tampered, id="a changed payload byte"),
        pytest.param(lambda t: t[:-4] + ("AAAA" if t[-4:] != "AAAA" else "BBBB"), id="a changed signature"),
        pytest.param(lambda t: t.rsplit(".", 1)[0] + ".", id="no signature"),
        pytest.param(lambda t: "not-a-token", id="garbage"),
        pytest.param(lambda t: "", id="an empty string"),
        pytest.param(lambda t: t + "." + t, id="too many segments"),
    ],
)
def test_a_forged_or_malformed_token_is_refused(ed25519_file, forge):
    with pytest.raises(InvalidLicenseToken):
        license_token_verify(forge(issue()))


def test_the_refusal_is_a_not_authenticated_error_that_never_repeats_the_token(ed25519_file):
    token = tampered(issue())
    with pytest.raises(InvalidLicenseToken) as caught:
        license_token_verify(token)
    assert isinstance(caught.value, ApplicationError)
    assert caught.value.code == "not_authenticated"
    assert caught.value.status == 401
    assert caught.value.message == "The license token is not valid."
    for part in token.split("."):
        assert part not in str(caught.value)
        assert part not in repr(caught.value.details)
    assert caught.value.__cause__ is None


def test_an_expired_token_is_refused_and_says_so(ed25519_file):
    token = issue(now=utcnow() - timedelta(hours=2), expires_in=timedelta(hours=1))
    with pytest.raises(InvalidLicenseToken, match="expired"):
        license_token_verify(token)


def test_a_token_expired_moments_ago_still_verifies_within_the_clock_skew_leeway(ed25519_file):
    token = issue(now=utcnow() - timedelta(hours=1), expires_in=timedelta(hours=1) - timedelta(seconds=5))
    assert license_token_verify(token)


def test_a_token_from_another_pod_a_little_ahead_verifies(ed25519_file):
    assert license_token_verify(issue(now=utcnow() + timedelta(seconds=5)))


def test_a_token_not_valid_yet_is_refused(ed25519_file):
    with pytest.raises(InvalidLicenseToken):
        license_token_verify(issue(now=utcnow() + timedelta(minutes=10)))


def test_a_token_of_another_issuer_is_refused(ed25519_file):
    token = jws_sign(claims_for(iss="someone-else"), current_signer())
    with pytest.raises(InvalidLicenseToken):
        license_token_verify(token)


@pytest.mark.parametrize("claim", REQUIRED_CLAIMS)
def test_a_token_without_a_required_claim_is_refused(ed25519_file, claim):
    token = jws_sign(claims_for(**{claim: None}), current_signer())
    with pytest.raises(InvalidLicenseToken):
        license_token_verify(token)


@pytest.mark.parametrize("claim", ["sub", "sid", "tid"])
@pytest.mark.parametrize("value", ["", 42, ["x"]])
def test_a_token_whose_identifiers_are_not_strings_is_refused(ed25519_file, claim, value):
    token = jws_sign(claims_for(**{claim: value}), current_signer())
    with pytest.raises(InvalidLicenseToken):
        license_token_verify(token)


def test_a_token_with_an_unknown_kid_is_refused(ed25519_file, tmp_path):
    stranger = LocalSigner.from_private_key(ed25519_key(9), source="test")
    with pytest.raises(InvalidLicenseToken):
        license_token_verify(jws_sign(claims_for(), stranger))


@pytest.mark.parametrize("kid", [None, 7, "", "../../etc/passwd", "https://evil.example/jwks.json"])
def test_a_kid_that_is_missing_or_names_no_configured_key_is_refused(ed25519_file, kid):
    header = {"alg": "EdDSA", "typ": "JWT"} | ({"kid": kid} if kid is not None else {})
    signing_input = f"{segment(header)}.{segment(claims_for())}"
    token = f"{signing_input}.{b64url(ed25519_key().sign(signing_input.encode()))}"
    with pytest.raises(InvalidLicenseToken):
        license_token_verify(token)


def test_alg_none_is_refused(ed25519_file):
    kid = current_signer().key.kid
    token = f"{segment({'alg': 'none', 'kid': kid, 'typ': 'JWT'})}.{segment(claims_for())}."
    with pytest.raises(InvalidLicenseToken):
        license_token_verify(token)


@pytest.mark.parametrize("kind", ["rsa", "ed25519"])
@pytest.mark.parametrize("secret_form", ["pem", "der", "raw jwk x"])
def test_hs256_signed_with_the_public_key_is_refused(tmp_path, settings, kind, secret_form):
    key = rsa_key() if kind == "rsa" else ed25519_key()
    settings.LICENSE_SIGNING_KEY_FILE = [write_pem(tmp_path / "k.pem", key)]
    kid = current_signer().key.kid
    secrets_by_form = {
        "pem": public_pem(key),
        "der": key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "raw jwk x": jwks()["keys"][0].get("x", jwks()["keys"][0].get("n")).encode(),
    }
    token = hs256_token(
        {"alg": "HS256", "kid": kid, "typ": "JWT"}, claims_for(), secrets_by_form[secret_form]
    )
    with pytest.raises(InvalidLicenseToken):
        license_token_verify(token)


def test_a_token_claiming_another_algorithm_than_its_keys_is_refused(tmp_path, settings):
    # Both keys are trusted, but the RSA key's kid only ever means RS256.
    settings.LICENSE_SIGNING_KEY_FILE = [write_pem(tmp_path / "keys.pem", ed25519_key(), rsa_key())]
    rsa_kid = jwk_thumbprint(rsa_key().public_key())
    signing_input = f"{segment({'alg': 'EdDSA', 'kid': rsa_kid, 'typ': 'JWT'})}.{segment(claims_for())}"
    token = f"{signing_input}.{b64url(ed25519_key().sign(signing_input.encode()))}"
    with pytest.raises(InvalidLicenseToken):
        license_token_verify(token)


# --- rotation ------------------------------------------------------------------


def test_rotation_signs_with_the_first_key_and_still_accepts_the_retired_one(tmp_path, settings):
    old, new = ed25519_key(1), ed25519_key(2)
    settings.LICENSE_SIGNING_KEY_FILE = [write_pem(tmp_path / "old.pem", old)]
    old_token = issue()

    settings.LICENSE_SIGNING_KEY_FILE = [write_pem(tmp_path / "new.pem", new), str(tmp_path / "old.pem")]
    new_token = issue()
    assert jwt.get_unverified_header(new_token)["kid"] == jwk_thumbprint(new.public_key())
    assert license_token_verify(old_token)["sid"]
    assert license_token_verify(new_token)["sid"]
    assert [key["kid"] for key in jwks()["keys"]] == [
        jwk_thumbprint(new.public_key()),
        jwk_thumbprint(old.public_key()),
    ]

    settings.LICENSE_SIGNING_KEY_FILE = [str(tmp_path / "new.pem")]
    with pytest.raises(InvalidLicenseToken):
        license_token_verify(old_token)
    assert license_token_verify(new_token)


def test_a_comma_separated_setting_lists_several_key_files(tmp_path, settings):
    first = write_pem(tmp_path / "a.pem", ed25519_key(1))
    second = write_pem(tmp_path / "b.pem", rsa_key())
    settings.LICENSE_SIGNING_KEY_FILE = f"{first}, {second}"
    assert [key["alg"] for key in jwks()["keys"]] == ["EdDSA", "RS256"]


def test_a_retired_public_key_verifies_and_is_published_but_never_signs(tmp_path, settings):
    retired = ed25519_key(3)
    settings.LICENSE_SIGNING_KEY_FILE = [write_pem(tmp_path / "retired.pem", retired)]
    old_token = issue()

    settings.LICENSE_SIGNING_KEY_FILE = [write_pem(tmp_path / "current.pem", ed25519_key(4))]
    settings.LICENSE_VERIFY_KEYS_FILE = [
        write_pem(tmp_path / "retired.pub.pem", retired, rsa_key(), public=True)
    ]
    assert license_token_verify(old_token)
    assert jwt.get_unverified_header(issue())["kid"] == jwk_thumbprint(ed25519_key(4).public_key())
    assert [key["kid"] for key in jwks()["keys"]] == [
        jwk_thumbprint(ed25519_key(4).public_key()),
        jwk_thumbprint(retired.public_key()),
        jwk_thumbprint(rsa_key().public_key()),
    ]


def test_a_key_listed_twice_is_published_once(tmp_path, settings):
    path = write_pem(tmp_path / "k.pem", ed25519_key())
    settings.LICENSE_SIGNING_KEY_FILE = [path, path]
    settings.LICENSE_VERIFY_KEYS_FILE = [write_pem(tmp_path / "k.pub", ed25519_key(), public=True)]
    assert len(jwks()["keys"]) == 1


def test_the_published_keys_hold_no_private_part(tmp_path, settings):
    settings.LICENSE_SIGNING_KEY_FILE = [write_pem(tmp_path / "k.pem", ed25519_key(), rsa_key())]
    for key in jwks()["keys"]:
        assert set(key) <= {"kty", "crv", "x", "n", "e", "kid", "alg", "use"}
        assert key["use"] == "sig"


# --- loading, caching, configuration ---------------------------------------------


def test_keys_are_read_once_per_process_not_per_call(tmp_path, settings):
    path = tmp_path / "k.pem"
    settings.LICENSE_SIGNING_KEY_FILE = [write_pem(path, ed25519_key())]
    token = issue()
    path.unlink()
    for _ in range(3):
        assert license_token_verify(token)
        assert issue()


def test_concurrent_first_use_loads_one_key_set(ed25519_file):
    signing_keys_reset()
    seen = []
    threads = [threading.Thread(target=lambda: seen.append(signing_keys())) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(keyset) for keyset in seen}) == 1


@pytest.mark.parametrize(
    "make_key, message",
    [
        (lambda: ec.generate_private_key(ec.SECP256R1()), "Ed25519 or RSA"),
        (lambda: rsa.generate_private_key(public_exponent=65537, key_size=1024), "too weak"),
    ],
)
def test_a_key_of_the_wrong_kind_is_refused_at_load(tmp_path, settings, make_key, message):
    settings.LICENSE_SIGNING_KEY_FILE = [write_pem(tmp_path / "k.pem", make_key())]
    with pytest.raises(ImproperlyConfigured, match=message):
        signing_keys()


def test_a_missing_or_unusable_key_file_is_refused_naming_the_file(tmp_path, settings):
    settings.LICENSE_SIGNING_KEY_FILE = [str(tmp_path / "absent.pem")]
    with pytest.raises(ImproperlyConfigured, match=r"absent\.pem"):
        signing_keys()

    (tmp_path / "empty.pem").write_text("nothing here")
    settings.LICENSE_SIGNING_KEY_FILE = [str(tmp_path / "empty.pem")]
    with pytest.raises(ImproperlyConfigured, match="no PEM key"):
        signing_keys()

    settings.LICENSE_SIGNING_KEY_FILE = [write_pem(tmp_path / "pub.pem", ed25519_key(), public=True)]
    with pytest.raises(ImproperlyConfigured, match="private key"):
        signing_keys()

    encrypted = ed25519_key().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase"),
    )
    (tmp_path / "enc.pem").write_bytes(encrypted)
    settings.LICENSE_SIGNING_KEY_FILE = [str(tmp_path / "enc.pem")]
    with pytest.raises(ImproperlyConfigured, match="unencrypted"):
        signing_keys()


def test_a_key_file_and_a_kms_key_together_are_refused(ed25519_file, settings):
    settings.LICENSE_SIGNING_KMS_KEY = "projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1"
    with pytest.raises(ImproperlyConfigured, match="not both"):
        signing_startup_check()


def test_a_naive_datetime_is_a_programming_error(ed25519_file):
    license = unsaved_license()
    with pytest.raises(ValueError, match="timezone-aware"):
        license_token_issue(
            license=license,
            lease=lease_of(license),
            expires_at=utcnow().replace(tzinfo=None),
            now=utcnow(),
        )


# --- without a configured key ------------------------------------------------------


@pytest.fixture
def no_signer(tmp_path, settings):
    settings.LICENSE_SIGNING_KEY_FILE = []
    settings.LICENSE_SIGNING_KMS_KEY = ""
    settings.LICENSE_VERIFY_KEYS_FILE = []
    settings.LICENSE_SIGNING_DEV_KEY_FILE = tmp_path / "var" / "dev-key.pem"
    return settings


@pytest.mark.embedded
def test_with_debug_on_a_development_key_is_made_outside_the_repository_and_kept(no_signer):
    no_signer.DEBUG = True
    token = issue()
    path = no_signer.LICENSE_SIGNING_DEV_KEY_FILE
    assert path.exists()
    assert oct(path.stat().st_mode & 0o777) == "0o600"

    signing_keys_reset()  # a restart
    assert license_token_verify(token)
    assert jwt.get_unverified_header(issue())["kid"] == jwt.get_unverified_header(token)["kid"]


def test_processes_racing_to_make_the_development_key_agree_on_one(no_signer):
    no_signer.DEBUG = True
    kids = []

    def first_use():
        kids.append(LICENSE_KEYRING.development_signer(no_signer.LICENSE_SIGNING_DEV_KEY_FILE).key.kid)

    threads = [threading.Thread(target=first_use) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(kids)) == 1
    assert os.listdir(no_signer.LICENSE_SIGNING_DEV_KEY_FILE.parent) == ["dev-key.pem"]


def test_the_startup_check_makes_no_development_key(no_signer):
    no_signer.DEBUG = True
    signing_startup_check()
    assert not no_signer.LICENSE_SIGNING_DEV_KEY_FILE.exists()


def test_with_debug_off_and_no_key_the_startup_check_refuses_naming_both_settings(no_signer):
    # DEBUG off at startup: settings give no development key path at all.
    dev_key = no_signer.LICENSE_SIGNING_DEV_KEY_FILE
    no_signer.DEBUG = False
    no_signer.LICENSE_SIGNING_DEV_KEY_FILE = None
    with pytest.raises(ImproperlyConfigured) as caught:
        signing_startup_check()
    assert "LICENSE_SIGNING_KEY_FILE" in str(caught.value)
    assert "LICENSE_SIGNING_KMS_KEY" in str(caught.value)
    with pytest.raises(ImproperlyConfigured):
        signing_keys()
    assert not dev_key.exists()


def test_with_debug_off_a_key_file_satisfies_the_startup_check(no_signer, tmp_path):
    no_signer.DEBUG = False
    no_signer.LICENSE_SIGNING_KEY_FILE = [write_pem(tmp_path / "k.pem", ed25519_key())]
    signing_startup_check()


def test_a_token_verified_before_is_still_refused_once_it_expires(ed25519_file, app_clock):
    token = issue(expires_in=timedelta(minutes=5))
    assert license_token_verify(token)
    assert license_token_verify(token)  # remembered
    app_clock(5 * 60 + CLOCK_SKEW_LEEWAY_SECONDS + 1)
    with pytest.raises(InvalidLicenseToken, match="expired"):
        license_token_verify(token)


def test_a_token_verified_before_is_refused_after_its_key_is_removed(tmp_path, settings):
    settings.LICENSE_SIGNING_KMS_KEY = ""
    settings.LICENSE_VERIFY_KEYS_FILE = []
    settings.LICENSE_SIGNING_KEY_FILE = [write_pem(tmp_path / "old.pem", ed25519_key())]
    token = issue()
    assert license_token_verify(token)
    settings.LICENSE_SIGNING_KEY_FILE = [write_pem(tmp_path / "new.pem", ed25519_key(1))]
    with pytest.raises(InvalidLicenseToken):
        license_token_verify(token)
    # An issuer change forgets remembered tokens too.
    token = issue()
    assert license_token_verify(token)
    settings.LICENSE_TOKEN_ISSUER = "someone-else"
    with pytest.raises(InvalidLicenseToken):
        license_token_verify(token)


def test_a_tampered_copy_of_a_verified_token_is_refused(ed25519_file):
    token = issue()
    assert license_token_verify(token)
    with pytest.raises(InvalidLicenseToken):
        license_token_verify(tampered(token))
