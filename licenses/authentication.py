"""Heartbeat, release and borrow authenticate with the license token itself.

The token is verified locally (no KMS call, no database read). Its signed
`tid` claim names the tenant whose scope the services open for any database
work, and its `sid` names the session.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rest_framework.authentication import BaseAuthentication, get_authorization_header

from core.errors import ApplicationError
from licenses.signing import license_token_verify


@dataclass(frozen=True)
class LicenseSession:
    """The caller of a license-token endpoint: one session of one license."""

    claims: dict[str, Any]
    is_authenticated: bool = True

    @property
    def session_id(self) -> str:
        return self.claims["sid"]


class LicenseTokenAuthentication(BaseAuthentication):
    keyword = b"bearer"

    def authenticate(self, request):
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != self.keyword:
            return None
        if len(parts) != 2:
            raise ApplicationError(
                "Send the license token as 'Authorization: Bearer <token>'.", code="not_authenticated"
            )
        claims = license_token_verify(parts[1].decode("latin-1"))
        return LicenseSession(claims=claims), claims

    def authenticate_header(self, request):
        return 'Bearer realm="license"'
