"""Trust anchors (issue 13, item 1): a user who controls the machine cannot
make an unmodified application accept a token or a cache signed by a key
the application did not ship, and a rotation of the server's license
signing key is followed through the signed key set without an update.

Against the scripted server of sdk_testkit (real Ed25519 signatures); the
end-to-end tests do the same against the real server."""

from __future__ import annotations

import base64
import json
import logging
import socket
import time

import jwt
import pytest
from sdk_testkit import ISSUER, SigningKey, claims_for, signed_keyset

from coditect_license import (
    BearerToken,
    ClockSetBack,
    KeyNotTrusted,
    KeySetInvalid,
    LicenseClient,
    RetryPolicy,
    TokenInvalid,
    TrustNotConfigured,
    load_keys_file,
    verify_signed_keyset,
)
from coditect_license.cache import CacheEntry, OfflineCache
from coditect_license.tokens import KeySet
from coditect_license.trust import jwk_thumbprint

KEY = "CDT-AAAAA-BBBBB-CCCCC-DDDDD-EEEEE-FFFFF"
FP = "c0ffee" * 10 + "abcd"
FAST = RetryPolicy(attempts=2, base_delay=0.01, max_delay=0.05, deadline=2)
TEN_YEARS = 10 * 365 * 86400


def dead_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture
def make_client(fake_server, tmp_path):
    """A client as an application built for the fake server makes it: it
    ships the server's root key and nothing else (the default options)."""
    clients = []

    def make(url=None, *, trust=None, **kwargs):
        kwargs.setdefault("fingerprint", FP)
        kwargs.setdefault("retry", FAST)
        kwargs.setdefault("cache_dir", tmp_path / "cache")
        kwargs.setdefault("release_at_exit", False)
        kwargs.update(fake_server.trust if trust is None else trust)
        client = LicenseClient(url or fake_server.stub.url, KEY, BearerToken("t"), **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close(release=False)


def forge_cache(tmp_path, *, token: str, jwks=None, keyset=None, license_id=None) -> None:
    """What the attacker of issue 13 did: the SDK's own public cache class,
    fed their key set and a token they signed."""
    OfflineCache(tmp_path / "cache", license_key=KEY, fingerprint=FP).store(
        CacheEntry(
            token=token,
            jwks=jwks,
            license_id=license_id,
            last_seen=time.time(),
            lease={"session_id": "forged", "heartbeat_interval": 60},
            keyset=keyset,
        )
    )


def forged_token(attacker: SigningKey, *, license_id: str | None = None, kid: str | None = None) -> str:
    claims = claims_for(fingerprint=FP, license_id=license_id, lifetime=TEN_YEARS, entitlements={"all": True})
    return attacker.token(kid=kid, **claims)


# --- no trust anchors, no client -------------------------------------------------------


def test_a_client_without_trust_anchors_cannot_be_made(fake_server, tmp_path):
    with pytest.raises(TrustNotConfigured, match="trusted_root_keys"):
        LicenseClient(fake_server.stub.url, KEY, BearerToken("t"), fingerprint=FP, cache_dir=tmp_path)


@pytest.mark.parametrize(
    "trust",
    [
        {"trusted_jwks": {"keys": []}},
        {"trusted_root_keys": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}},
        {"trusted_jwks": {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "AAAA", "alg": "HS256"}]}},
    ],
    ids=["empty jwks", "symmetric root key", "key with a foreign algorithm"],
)
def test_anchors_with_no_usable_key_are_no_anchors(fake_server, trust):
    with pytest.raises(TrustNotConfigured):
        LicenseClient(fake_server.stub.url, KEY, BearerToken("t"), fingerprint=FP, **trust)


def test_the_insecure_mode_cannot_be_mixed_with_anchors(fake_server):
    with pytest.raises(ValueError, match="insecure"):
        LicenseClient(
            fake_server.stub.url,
            KEY,
            BearerToken("t"),
            fingerprint=FP,
            insecure_trust_on_first_use=True,
            **fake_server.trust,
        )


def test_the_insecure_mode_says_so_at_every_start_and_believes_the_first_key_set(
    make_client, fake_server, tmp_path, caplog
):
    caplog.set_level(logging.WARNING, logger="coditect_license")
    insecure = {"insecure_trust_on_first_use": True}
    assert make_client(trust=insecure).acquire()
    make_client(dead_url(), trust=insecure)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "INSECURE" in r.getMessage()]
    assert len(warnings) == 2
    # Which is exactly why it is insecure: a forged cache passes.
    attacker = SigningKey()
    forge_cache(tmp_path, token=forged_token(attacker), jwks=attacker.jwks)
    assert make_client(dead_url(), trust=insecure).is_licensed()


# --- must show 1: forged caches and forged fresh tokens are refused ---------------------------


def test_a_forged_cache_with_the_attackers_key_set_is_refused_by_default(make_client, fake_server, tmp_path):
    make_client().acquire()  # an honest cache first, with the server's signed key set in it
    honest = OfflineCache(tmp_path / "cache", license_key=KEY, fingerprint=FP).load()
    assert honest.keyset and honest.jwks is None  # the plain key set is not even written

    attacker = SigningKey()
    forge_cache(tmp_path, token=forged_token(attacker), jwks=attacker.jwks, keyset=honest.keyset)
    offline = make_client(dead_url())
    with pytest.raises(KeyNotTrusted):
        offline.verify()
    assert not offline.is_licensed() and offline.entitlements() == {}


def test_a_forged_cache_reusing_the_servers_kid_is_refused(make_client, fake_server, tmp_path):
    make_client().acquire()
    attacker = SigningKey(kid=fake_server.key.kid)
    forge_cache(tmp_path, token=forged_token(attacker), jwks=attacker.jwks)
    with pytest.raises(TokenInvalid):
        make_client(dead_url()).verify()


def test_a_forged_cache_with_a_key_set_signed_by_the_attackers_root_is_refused(
    make_client, fake_server, tmp_path, caplog
):
    attacker, attacker_root = SigningKey(), SigningKey()
    keyset = signed_keyset(attacker_root, [attacker.jwk])
    forge_cache(tmp_path, token=forged_token(attacker), keyset=keyset)
    with pytest.raises(KeyNotTrusted):
        make_client(dead_url()).verify()
    assert any("cached signed key set is refused" in r.getMessage() for r in caplog.records)


def test_a_forged_cache_with_a_tampered_server_key_set_is_refused(make_client, fake_server, tmp_path):
    make_client().acquire()
    honest = OfflineCache(tmp_path / "cache", license_key=KEY, fingerprint=FP).load()
    attacker = SigningKey()
    forge_cache(tmp_path, token=forged_token(attacker), keyset=add_key(honest.keyset, attacker.jwk))
    with pytest.raises(KeyNotTrusted):
        make_client(dead_url()).verify()


def test_a_forged_fresh_token_is_refused_and_no_lease_is_kept(make_client, fake_server, tmp_path):
    honest_keyset = fake_server.keyset(None)
    attacker = SigningKey()
    # A stand-in server (or a proxy) that signs with its own key and publishes it,
    # but can only replay the real server's signed key set: it lacks the root key.
    fake_server.keys = [attacker]
    fake_server.stub.route("GET", "/.well-known/jwks.json", (200, {}, attacker.jwks))
    fake_server.stub.route("GET", "/.well-known/coditect-keyset.jws", honest_keyset)
    client = make_client()
    with pytest.raises(KeyNotTrusted):
        client.acquire(allow_offline=False)
    assert client.lease is None and not client.is_licensed()
    assert not fake_server.stub.calls("GET", "/.well-known/jwks.json")  # the plain JWKS is never asked
    # The seat the server took for that answer is given back, not held to its expiry.
    assert len(fake_server.stub.calls("DELETE", "/api/v1/licenses/release")) == 1


def test_a_fresh_token_whose_key_only_an_attackers_key_set_vouches_for_is_refused(make_client, fake_server):
    attacker, attacker_root = SigningKey(), SigningKey()
    fake_server.keys = [attacker]
    keyset = signed_keyset(attacker_root, [attacker.jwk]).encode()
    fake_server.stub.route("GET", "/.well-known/coditect-keyset.jws", (200, {}, keyset))
    with pytest.raises(KeySetInvalid, match="not signed by a root key"):
        make_client().acquire(allow_offline=False)


def test_a_server_without_a_signed_key_set_cannot_vouch_for_a_new_key(make_client, fake_server):
    fake_server.stub.routes.pop(("GET", "/.well-known/coditect-keyset.jws"))
    with pytest.raises(KeyNotTrusted):
        make_client().acquire(allow_offline=False)
    assert len(fake_server.stub.calls("GET", "/api/v1/.well-known/coditect-keyset.jws")) == 1


def test_with_only_pinned_license_keys_an_unknown_key_is_refused_without_asking_anyone(
    make_client, fake_server
):
    pinned = {"trusted_jwks": fake_server.jwks}
    assert make_client(trust=pinned).acquire()
    fake_server.rotate()
    with pytest.raises(KeyNotTrusted):
        make_client(trust=pinned).acquire(allow_offline=False)
    assert not fake_server.stub.calls("GET", "/.well-known/coditect-keyset.jws")
    assert not fake_server.stub.calls("GET", "/.well-known/jwks.json")


def test_the_command_line_refuses_a_forged_cache_and_needs_trust_options(fake_server, tmp_path, capsys):
    from coditect_license.cli import main

    root_file = tmp_path / "root.jwks"
    root_file.write_text(json.dumps(fake_server.root.jwks))
    environ = {
        "CODITECT_LICENSE_SERVER": dead_url(),
        "CODITECT_LICENSE_KEY": KEY,
        "CODITECT_LICENSE_CACHE_DIR": str(tmp_path / "cache"),
    }
    attacker = SigningKey()
    forge_cache(tmp_path, token=forged_token(attacker), jwks=attacker.jwks)

    with pytest.raises(SystemExit) as usage:
        main(["--fingerprint", FP, "status"], environ)
    assert usage.value.code == 2
    assert "--trusted-root-key" in capsys.readouterr().err

    for argv, env in (
        (["--trusted-root-key", str(root_file)], environ),
        ([], {**environ, "CODITECT_LICENSE_TRUSTED_ROOT_KEY": str(root_file)}),
        (["--trusted-jwks", str(write(tmp_path / "jwks.json", fake_server.jwks))], environ),
    ):
        assert main([*argv, "--fingerprint", FP, "status"], env) == 0
        offline = json.loads(capsys.readouterr().out)["offline"]
        assert offline == {"licensed": False, "reason": "key_not_trusted"}

    assert main(["--insecure-trust-on-first-use", "--fingerprint", FP, "status"], environ) == 0
    captured = capsys.readouterr()
    assert "insecure" in captured.err.lower()
    assert json.loads(captured.out)["offline"]["licensed"] is True  # what the flag's name warns of

    with pytest.raises(SystemExit):
        main(["--insecure-trust-on-first-use", "--trusted-root-key", str(root_file), "status"], environ)


# --- must show 2: rotation through the signed key set -----------------------------------------


def test_a_token_signed_after_a_rotation_is_accepted_without_an_application_update(
    make_client, fake_server, tmp_path
):
    app = make_client()
    first = app.acquire()
    old_kid = jwt.get_unverified_header(first.token)["kid"]

    new_key = fake_server.rotate()  # a license signing key the application never saw
    fake_server.forget_sessions()
    again = app.acquire()
    assert jwt.get_unverified_header(again.token)["kid"] == new_key.kid != old_kid
    assert app.is_licensed()
    assert len(fake_server.stub.calls("GET", "/.well-known/coditect-keyset.jws")) == 2

    # A restarted application, offline, checks the cached token under the cached
    # signed key set, re-verified under the root key it ships.
    restarted = make_client(dead_url())
    assert restarted.verify().session_id == again.session_id


def test_a_tampered_key_set_from_the_server_is_refused(make_client, fake_server):
    honest = fake_server.keyset(None)[2].decode()
    attacker = SigningKey()
    fake_server.keys = [attacker]
    tampered = add_key(honest, attacker.jwk).encode()
    fake_server.stub.route("GET", "/.well-known/coditect-keyset.jws", (200, {}, tampered))
    with pytest.raises(KeySetInvalid, match="does not verify"):
        make_client().acquire(allow_offline=False)


def test_an_old_key_set_replayed_after_a_newer_one_is_refused(make_client, fake_server, tmp_path):
    # A key listed a week ago and retired since (say, leaked), and the set that listed it,
    # still within its exp: replayed, it must not bring the key back.
    retired = SigningKey()
    old = signed_keyset(fake_server.root, [retired.jwk], now=time.time() - 7 * 86400).encode()
    make_client().acquire()  # trusts, and caches, today's set
    fake_server.keys = [retired]
    fake_server.stub.route("GET", "/.well-known/coditect-keyset.jws", (200, {}, old))
    restarted = make_client()  # a new process: today's set comes back from the cache as the floor
    with pytest.raises(KeySetInvalid, match="older"):
        restarted.acquire(allow_offline=False)
    # The floor lives in the cache, which the user controls: with it wiped, only
    # the old set's exp bounds the replay (sdk/README.md, threat model).
    assert make_client(cache_dir=tmp_path / "wiped").acquire(allow_offline=False)


def test_a_key_set_from_an_unpinned_root_is_refused(fake_server):
    other_root = SigningKey()
    with pytest.raises(KeySetInvalid, match="not signed by a root key"):
        verify_signed_keyset(
            KeySet(fake_server.root.jwks), signed_keyset(other_root, [fake_server.key.jwk]), now=time.time()
        )


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda root, keys: signed_keyset(root, keys, typ="JWT"), "type"),
        (lambda root, keys: signed_keyset(root, keys, now=time.time() - 31 * 86400), "expired"),
        (lambda root, keys: signed_keyset(root, keys, issuer="someone-else"), "issuer"),
        (lambda root, keys: root.token(kid=root.kid, iat=1, exp=2, keys=keys), "type"),
        (lambda root, keys: signed_keyset(root, keys).rsplit(".", 1)[0] + ".", "does not verify"),
        (lambda root, keys: "not-a-jws", "not signed by a root key"),
    ],
    ids=["another typ", "expired", "another issuer", "a license-token typ", "no signature", "garbage"],
)
def test_a_key_set_that_is_not_what_the_server_signs_is_refused(fake_server, make, match):
    with pytest.raises(KeySetInvalid, match=match):
        verify_signed_keyset(
            KeySet(fake_server.root.jwks),
            make(fake_server.root, [fake_server.key.jwk]),
            now=time.time(),
            issuer=ISSUER,
        )


def test_a_key_set_from_the_future_says_the_clock_is_behind(fake_server):
    with pytest.raises(ClockSetBack):
        verify_signed_keyset(
            KeySet(fake_server.root.jwks),
            signed_keyset(fake_server.root, [fake_server.key.jwk]),
            now=time.time() - 3600,
        )


def test_a_cached_token_whose_key_set_expired_no_longer_verifies(make_client, fake_server, tmp_path):
    fake_server.token_lifetime = 40 * 86400  # a long borrow outliving the 30-day key set
    make_client().acquire()
    assert make_client(dead_url(), clock=lambda: time.time() + 29 * 86400).is_licensed()
    with pytest.raises(KeyNotTrusted):
        make_client(dead_url(), clock=lambda: time.time() + 31 * 86400).verify()


def test_a_key_set_that_expires_before_the_token_is_renewed_at_checkout(make_client, fake_server):
    short = signed_keyset(fake_server.root, fake_server.jwks["keys"], lifetime=600).encode()
    fake_server.stub.route(
        "GET", "/.well-known/coditect-keyset.jws", [(200, {}, short), *[fake_server.keyset(None)] * 2]
    )
    client = make_client()
    client.acquire()
    assert len(fake_server.stub.calls("GET", "/.well-known/coditect-keyset.jws")) == 2
    assert client._trust.signed.expires_at > client.lease.token_expires_at.timestamp()


def test_pinned_license_keys_and_root_keys_work_together(make_client, fake_server):
    both = {"trusted_jwks": fake_server.jwks, **fake_server.trust}
    assert make_client(trust=both).acquire()
    assert not fake_server.stub.calls("GET", "/.well-known/coditect-keyset.jws")  # the shipped key sufficed
    fake_server.rotate()
    fake_server.forget_sessions()
    assert make_client(trust=both).acquire()


# --- trust files --------------------------------------------------------------------------


def test_key_files_may_be_a_jwks_one_jwk_or_pem_and_are_named_as_the_server_names_them(tmp_path):
    from cryptography.hazmat.primitives import serialization

    key = SigningKey()
    pem = key.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    thumbprint = jwk_thumbprint(key.jwk)
    bare = {name: key.jwk[name] for name in ("kty", "crv", "x")}
    for name, content in (
        ("set.json", json.dumps({"keys": [bare]}).encode()),
        ("one.json", json.dumps(bare).encode()),
        ("root.pem", pem),
    ):
        (tmp_path / name).write_bytes(content)
        [loaded] = load_keys_file(tmp_path / name)["keys"]
        assert loaded["kid"] == thumbprint
        assert loaded["x"] == key.jwk["x"]


@pytest.mark.parametrize(
    "content", [b"", b"not json", b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"]
)
def test_an_unreadable_key_file_is_a_clear_error(tmp_path, content):
    (tmp_path / "bad").write_bytes(content)
    with pytest.raises(TrustNotConfigured):
        load_keys_file(tmp_path / "bad")
    with pytest.raises(TrustNotConfigured):
        load_keys_file(tmp_path / "missing")


# --- helpers -------------------------------------------------------------------------------


def write(path, document):
    path.write_text(json.dumps(document))
    return path


def add_key(jws: str, jwk: dict) -> str:
    """The signed key set with one more key in its payload, signature kept."""
    header, payload, signature = jws.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["keys"].append(jwk)
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return ".".join([header, body, signature])
