"""Identity Platform's browser side, stood in for at the browser's network edge.

The dashboard's sign-in page runs the real Firebase Auth web SDK (our vendored
copy). Playwright answers, in place of Google:

- https://apis.google.com/js/api.js: stand_in/gapi.js (Google's iframe library);
- the auth domain's /__/auth/handler: stand_in/handler.html, the sign-in pop-up,
  a list of accounts instead of the provider's pages;
- identitytoolkit.googleapis.com: the project's authorized domains, the
  sign-in (`accounts:signInWithIdp`, with a second factor when the account has
  one: `mfaSignIn:finalize` checks its code), the user lookup;
- securetoken.googleapis.com: token refresh.

The ID tokens are minted by `GoogleEdge` with its key, and the server (another
process, accounts/tests/google_edge_site) verifies them with firebase-admin
against the same edge's certificates: the real verification code runs.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

STAND_IN = Path(__file__).with_name("stand_in")


class IdentityPlatformStandIn:
    def __init__(self, edge, *, auth_domain: str) -> None:
        self.edge = edge
        self.auth_domain = auth_domain
        self.accounts: dict[str, dict] = {}
        self.calls: list[str] = []

    def add_account(self, email: str, *, provider: str = "google.com", totp_code: str = "") -> str:
        uid = f"uid-{uuid.uuid4().hex[:12]}"
        self.accounts[uid] = {"uid": uid, "email": email, "provider": provider, "totp_code": totp_code}
        return uid

    def install(self, context) -> IdentityPlatformStandIn:
        context.route("https://apis.google.com/**", self._gapi)
        context.route(f"https://{self.auth_domain}/**", self._auth_domain)
        context.route("https://identitytoolkit.googleapis.com/**", self._toolkit)
        context.route("https://securetoken.googleapis.com/**", self._securetoken)
        return self

    # --- the routes -------------------------------------------------------------------

    def _gapi(self, route, request) -> None:
        self.calls.append(f"{request.method} {urlsplit(request.url).path}")
        route.fulfill(status=200, content_type="text/javascript", body=(STAND_IN / "gapi.js").read_text())

    def _auth_domain(self, route, request) -> None:
        path = urlsplit(request.url).path
        self.calls.append(f"{request.method} {self.auth_domain}{path}")
        if path == "/__/auth/handler":
            accounts = [{"uid": a["uid"], "email": a["email"]} for a in self.accounts.values()]
            page = (
                (STAND_IN / "handler.html").read_text().replace("__ACCOUNTS__", quote(json.dumps(accounts)))
            )
            route.fulfill(status=200, content_type="text/html", body=page)
        else:
            route.fulfill(status=404, body="")

    def _cors(self, request) -> dict:
        return {
            "Access-Control-Allow-Origin": request.headers.get("origin", "*"),
            "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
            "Access-Control-Allow-Headers": request.headers.get("access-control-request-headers", "*"),
        }

    def _answer(self, route, request, status: int, body: dict) -> None:
        route.fulfill(
            status=status,
            headers={**self._cors(request), "Content-Type": "application/json"},
            body=json.dumps(body),
        )

    def _error(self, route, request, message: str) -> None:
        self._answer(route, request, 400, {"error": {"code": 400, "message": message, "errors": []}})

    def _toolkit(self, route, request) -> None:
        path = urlsplit(request.url).path
        self.calls.append(f"{request.method} identitytoolkit{path}")
        if request.method == "OPTIONS":
            route.fulfill(status=204, headers=self._cors(request), body="")
            return
        body = json.loads(request.post_data or "{}") if request.method == "POST" else {}
        if path == "/v1/projects":
            domains = ["127.0.0.1", "localhost"]
            self._answer(
                route, request, 200, {"projectId": self.edge.project_id, "authorizedDomains": domains}
            )
        elif path == "/v1/accounts:signInWithIdp":
            code = parse_qs(urlsplit(body.get("requestUri", "")).query).get("code", [""])[0]
            account = self.accounts.get(code)
            if account is None:
                self._error(route, request, "INVALID_IDP_RESPONSE")
            elif account["totp_code"]:
                self._answer(
                    route,
                    request,
                    200,
                    {
                        **self._user_fields(account),
                        "mfaPendingCredential": f"pending-{account['uid']}",
                        "mfaInfo": [
                            {"mfaEnrollmentId": "f-1", "displayName": "Authenticator app", "totpInfo": {}}
                        ],
                    },
                )
            else:
                self._answer(route, request, 200, self._signed_in(account))
        elif path == "/v2/accounts/mfaSignIn:finalize":
            account = self.accounts.get(str(body.get("mfaPendingCredential", "")).removeprefix("pending-"))
            code = (body.get("totpVerificationInfo") or {}).get("verificationCode")
            if account is None or code != account["totp_code"]:
                self._error(route, request, "INVALID_CODE")
            else:
                signed_in = self._signed_in(account, second_factor="totp")
                self._answer(route, request, 200, {k: signed_in[k] for k in ("idToken", "refreshToken")})
        elif path == "/v1/accounts:lookup":
            account = self._account_of(body.get("idToken", ""))
            users = [self._user_info(account)] if account else []
            self._answer(
                route, request, 200, {"kind": "identitytoolkit#GetAccountInfoResponse", "users": users}
            )
        else:
            self._error(route, request, f"NOT_STOOD_IN {path}")

    def _securetoken(self, route, request) -> None:
        self.calls.append(f"{request.method} securetoken{urlsplit(request.url).path}")
        if request.method == "OPTIONS":
            route.fulfill(status=204, headers=self._cors(request), body="")
            return
        refresh = parse_qs(request.post_data or "").get("refresh_token", [""])[0]
        account = self.accounts.get(refresh.removeprefix("refresh-"))
        if account is None:
            self._error(route, request, "INVALID_REFRESH_TOKEN")
            return
        token = self._mint(account)
        self._answer(
            route,
            request,
            200,
            {
                "access_token": token,
                "id_token": token,
                "expires_in": "3600",
                "token_type": "Bearer",
                "refresh_token": refresh,
                "user_id": account["uid"],
                "project_id": self.edge.project_id,
            },
        )

    # --- what Identity Platform answers -----------------------------------------------

    def _mint(self, account: dict, *, second_factor: str = "") -> str:
        return self.edge.mint(
            account["uid"], email=account["email"], provider=account["provider"], second_factor=second_factor
        )

    def _user_fields(self, account: dict) -> dict:
        return {
            "kind": "identitytoolkit#VerifyAssertionResponse",
            "providerId": account["provider"],
            "federatedId": account["uid"],
            "localId": account["uid"],
            "email": account["email"],
            "emailVerified": True,
            "displayName": account["email"].split("@")[0],
            "rawUserInfo": "{}",
        }

    def _signed_in(self, account: dict, *, second_factor: str = "") -> dict:
        return {
            **self._user_fields(account),
            "idToken": self._mint(account, second_factor=second_factor),
            "refreshToken": f"refresh-{account['uid']}",
            "expiresIn": "3600",
        }

    def _account_of(self, id_token: str) -> dict | None:
        import jwt

        try:
            claims = jwt.decode(id_token, options={"verify_signature": False})
        except jwt.PyJWTError:
            return None
        return self.accounts.get(claims.get("user_id", ""))

    def _user_info(self, account: dict) -> dict:
        return {
            "localId": account["uid"],
            "email": account["email"],
            "emailVerified": True,
            "providerUserInfo": [
                {"providerId": account["provider"], "rawId": account["uid"], "email": account["email"]}
            ],
            "validSince": "0",
            "lastLoginAt": "0",
            "createdAt": "0",
        }
