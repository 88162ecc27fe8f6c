"""Google's side of Identity Platform, at the HTTP edge only.

firebase-admin and google-auth run unchanged; the one thing replaced is the
transport's `send` for Google's hosts, which answers as Google would:

- the certificate endpoint serves a self-signed certificate of an RSA key made
  here, which signs the ID tokens the tests mint;
- `accounts:lookup` (the revocation check) answers from `users`;
- the OAuth token endpoint gives the service account an access token.

Every other host goes to the real network code.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import time
import uuid
from urllib.parse import urlsplit

import jwt
import requests
import urllib3
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

CERT_PATH = "/robot/v1/metadata/x509/securetoken@system.gserviceaccount.com"
GOOGLE_HOSTS = {"www.googleapis.com", "identitytoolkit.googleapis.com", "oauth2.googleapis.com"}

_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)  # made once: RSA is slow to make


def _certificate(key) -> str:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "securetoken.system.gserviceaccount.com")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


class GoogleEdge:
    def __init__(
        self, project_id: str, *, key=None, kid: str | None = None, lookup_any: bool = False
    ) -> None:
        self.project_id = project_id
        self.key = key or _KEY
        self.kid = kid or uuid.uuid4().hex[:16]
        self.certificates = {self.kid: _certificate(self.key)}
        self.users: dict[str, dict] = {}
        # Answer the revocation lookup for any uid as an enabled user (a
        # server in another process cannot be told of each user added here).
        self.lookup_any = lookup_any
        self.calls: list[tuple[str, str]] = []
        self.down = False

    # --- the same edge in a test server's process (google_edge_site/) --------------

    def save(self, path) -> str:
        """This edge's key and project in a file, for `from_file` in another process."""
        pem = self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        path.write_text(json.dumps({"project_id": self.project_id, "kid": self.kid, "key": pem}))
        return str(path)

    @classmethod
    def from_file(cls, path: str) -> GoogleEdge:
        saved = json.loads(open(path).read())
        key = serialization.load_pem_private_key(saved["key"].encode(), password=None)
        return cls(saved["project_id"], key=key, kid=saved["kid"], lookup_any=True)

    # --- what the tests do ---------------------------------------------------------

    def add_user(self, uid: str, *, disabled: bool = False) -> None:
        self.users[uid] = {"localId": uid, "disabled": disabled, "validSince": str(int(time.time()) - 3600)}

    def revoke_sessions(self, uid: str) -> None:
        """What `auth.revoke_refresh_tokens(uid)` does at Google: tokens issued before now are revoked."""
        self.users[uid]["validSince"] = str(int(time.time()))

    def mint(
        self,
        uid: str,
        *,
        email: str = "",
        email_verified: bool = True,
        provider: str = "google.com",
        audience: str | None = None,
        issuer: str | None = None,
        issued_at: int | None = None,
        expires_at: int | None = None,
        key=None,
        kid: str | None = None,
        second_factor: str = "",
        claims: dict | None = None,
    ) -> str:
        """An ID token as Identity Platform makes one (`claims` added or
        replaced on top, to make one it would not)."""
        if uid not in self.users:
            self.add_user(uid)
        now = int(time.time())
        iat = issued_at if issued_at is not None else now - 60
        payload = {
            "iss": issuer or f"https://securetoken.google.com/{self.project_id}",
            "aud": audience or self.project_id,
            "auth_time": iat,
            "user_id": uid,
            "sub": uid,
            "iat": iat,
            "exp": expires_at if expires_at is not None else iat + 3600,
            "firebase": {"identities": {provider: [uid]}, "sign_in_provider": provider},
        }
        if email:
            payload.update(email=email, email_verified=email_verified)
        if second_factor:  # as Identity Platform's MFA sets them
            payload["firebase"].update(sign_in_second_factor=second_factor, second_factor_identifier="f-1")
        payload.update(claims or {})
        return jwt.encode(payload, key or self.key, algorithm="RS256", headers={"kid": kid or self.kid})

    def service_account_file(self, directory) -> str:
        path = directory / "identity-platform-sa.json"
        pem = self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        path.write_text(
            json.dumps(
                {
                    "type": "service_account",
                    "project_id": self.project_id,
                    "private_key_id": self.kid,
                    "private_key": pem,
                    "client_email": f"identity@{self.project_id}.iam.gserviceaccount.com",
                    "client_id": "1",
                    "token_uri": "https://oauth2.googleapis.com/token",
                }
            )
        )
        return str(path)

    # --- the edge -------------------------------------------------------------------

    def answer(self, request: requests.PreparedRequest) -> tuple[int, dict, bytes]:
        url = urlsplit(request.url)
        self.calls.append((request.method, f"{url.hostname}{url.path}"))
        if self.down:
            return 503, {}, b'{"error": {"code": 503, "message": "unavailable"}}'
        if url.hostname == "www.googleapis.com" and url.path == CERT_PATH:
            return 200, {"Cache-Control": "no-store"}, json.dumps(self.certificates).encode()
        if url.hostname == "oauth2.googleapis.com" and url.path == "/token":
            return 200, {}, json.dumps({"access_token": "ya29.test", "expires_in": 3600}).encode()
        lookup = f"/v1/projects/{self.project_id}/accounts:lookup"
        if url.hostname == "identitytoolkit.googleapis.com" and url.path == lookup:
            uids = json.loads(request.body or b"{}").get("localId", [])
            if self.lookup_any:
                for uid in uids:
                    self.users.setdefault(
                        uid, {"localId": uid, "disabled": False, "validSince": str(int(time.time()) - 3600)}
                    )
            found = [self.users[uid] for uid in uids if uid in self.users]
            return 200, {}, json.dumps({"users": found} if found else {}).encode()
        return 404, {}, b'{"error": {"code": 404, "message": "not found"}}'

    def install(self, monkeypatch=None) -> GoogleEdge:
        """Answer for Google's hosts at requests' transport: through the test's
        monkeypatch, or (None: a test server's process) for the process's life."""
        real_send = requests.adapters.HTTPAdapter.send
        edge = self

        def send(adapter, request, *args, **kwargs):
            if urlsplit(request.url).hostname not in GOOGLE_HOSTS:
                return real_send(adapter, request, *args, **kwargs)
            status, headers, body = edge.answer(request)
            raw = urllib3.HTTPResponse(
                body=io.BytesIO(body),
                headers={"Content-Type": "application/json", **headers},
                status=status,
                preload_content=False,
                request_method=request.method,
                request_url=request.url,
            )
            return adapter.build_response(request, raw)

        if monkeypatch is None:
            requests.adapters.HTTPAdapter.send = send
        else:
            monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", send)
        return self
