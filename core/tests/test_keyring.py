"""What both token verifiers share: the unverified header that picks the key,
and the claims of tokens already verified in full."""

import base64
import json
import time

import pytest

from core.keyring import VerifiedTokens, jws_header

pytestmark = pytest.mark.embedded


def segment(value) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


def test_the_header_of_a_compact_jws_is_read():
    assert jws_header(f"{segment({'alg': 'EdDSA', 'kid': 'k1'})}.e30.c2ln") == {"alg": "EdDSA", "kid": "k1"}


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(None, id="not a string"),
        pytest.param("", id="empty"),
        pytest.param("abc", id="one segment"),
        pytest.param(f"{segment({'alg': 'EdDSA'})}.e30", id="two segments"),
        pytest.param(f"{segment({'alg': 'EdDSA'})}.e30.c2ln.c2ln", id="four segments"),
        pytest.param(".e30.c2ln", id="empty header"),
        pytest.param(f"{segment({'alg': 'EdDSA'})}=.e30.c2ln", id="padding"),
        pytest.param("eyJhbGciOiJFZERTQSJ9!.e30.c2ln", id="outside the alphabet"),
        pytest.param("e+JhbGciOiJFZERTQSJ9.e30.c2ln", id="standard base64, not url-safe"),
        pytest.param(f"{segment(['alg'])}.e30.c2ln", id="a JSON array"),
        pytest.param(f"{segment('alg')}.e30.c2ln", id="a JSON string"),
        pytest.param("bm90IGpzb24.e30.c2ln", id="not JSON"),
        pytest.param("_w.e30.c2ln", id="not UTF-8"),
        pytest.param("abcde.e30.c2ln", id="impossible length"),
        pytest.param(f"{segment({'alg': 'x' * 2000})}.e30.c2ln", id="too long"),
    ],
)
def test_anything_else_is_a_value_error(token):
    with pytest.raises(ValueError):
        jws_header(token)


def claims(**times) -> dict:
    now = int(time.time())
    return {"sub": "s", "iat": now, "nbf": now, "exp": now + 60, **times}


def test_a_verified_token_is_remembered_by_its_whole_string():
    verified = VerifiedTokens()
    verified.put("a.b.c", claims())
    assert verified.get("a.b.c", leeway=0)["sub"] == "s"
    assert verified.get("a.b.d", leeway=0) is None


def test_a_remembered_token_whose_times_no_longer_hold_is_forgotten():
    now = int(time.time())
    verified = VerifiedTokens()
    verified.put("expired", claims(exp=now - 20))
    verified.put("in-leeway", claims(exp=now - 5))
    verified.put("not-yet", claims(nbf=now + 60))
    verified.put("issued-ahead", claims(iat=now + 60))
    assert verified.get("expired", leeway=10) is None
    assert verified.get("expired", leeway=30) is None  # forgotten, not kept for a kinder caller
    assert verified.get("in-leeway", leeway=10) is not None
    assert verified.get("not-yet", leeway=10) is None
    assert verified.get("issued-ahead", leeway=10) is None


def test_callers_get_a_copy():
    verified = VerifiedTokens()
    verified.put("t", claims())
    verified.get("t", leeway=0)["sub"] = "mallory"
    assert verified.get("t", leeway=0)["sub"] == "s"


def test_it_is_bounded():
    verified = VerifiedTokens(max_entries=3)
    for n in range(10):
        verified.put(f"t{n}", claims())
    assert len(verified._entries) <= 3
    assert verified.get("t9", leeway=0) is not None
