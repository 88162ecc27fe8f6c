"""The API's authentication: `Authorization: Bearer <token>`.

The token is the server's own access token (EdDSA, see accounts.tokens) or an
Identity Platform ID token (RS256, verified by firebase-admin). Either way the
caller's tenant is activated first, inside the transaction and scope boundary
the tenant-safe base view has opened, and only then is the user loaded,
through the scoped manager, as the app role: a token naming a user of another
tenant finds nobody. Every failure is the same 401 `not_authenticated`.

An access token names its sign-in (`sid`, the refresh-token family). Ending a
sign-in (logout, a refresh token presented twice, a password set anew, the
user or the tenant deactivated) revokes that family's rows, and a token of a
revoked family is refused on its next request, not when it expires: one
indexed lookup beside the user's row, in the same scope, on every backend.
The views an application calls beside its heartbeats (acquire, status) say
`caller_cache`: there the caller and its sign-in are read at most every
CALLER_CACHE_SECONDS per process (accounts.selectors.caller_get_cached), and
a change made in the process is seen at once.
License tokens (heartbeat, release, borrow) are not access tokens and do not
come here.
"""

from __future__ import annotations

import logging

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed

from accounts.identity import looks_like_identity_token
from accounts.models import User
from accounts.selectors import caller_get_cached, token_family_is_revoked
from accounts.services import NotAuthenticated, identity_verify, user_resolve_identity
from accounts.tokens import InvalidToken, access_token_verify
from core.context import context_set_actor
from tenants.scope import ScopeError, activate_tenant

logger = logging.getLogger(__name__)

INVALID_TOKEN = "The access token is not valid or has expired."


class BearerAuthentication(BaseAuthentication):
    keyword = b"bearer"

    def authenticate(self, request):
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != self.keyword:
            return None
        if len(parts) != 2:
            raise AuthenticationFailed("The Authorization header must be `Bearer <token>`.")
        try:
            token = parts[1].decode("ascii")
        except UnicodeDecodeError as exc:
            raise AuthenticationFailed(INVALID_TOKEN) from exc

        if looks_like_identity_token(token):
            return self._from_identity_token(token)
        return self._from_access_token(request, token)

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'

    def _from_access_token(self, request, token: str):
        try:
            claims = access_token_verify(token)
        except InvalidToken as exc:
            logger.info("access token refused", extra={"reason": str(exc)[:200]})
            raise AuthenticationFailed(INVALID_TOKEN) from exc
        self._activate(claims.tenant_id)

        def caller() -> User:
            user = self._member(claims.user_id)
            if token_family_is_revoked(family_id=claims.family_id):
                logger.info("access token refused", extra={"reason": "sign-in ended"})
                raise AuthenticationFailed(INVALID_TOKEN)
            return user

        view = (getattr(request, "parser_context", None) or {}).get("view")
        if not getattr(view, "caller_cache", False):
            return (caller(), claims)
        user = caller_get_cached(
            tenant_id=claims.tenant_id, user_id=claims.user_id, family_id=claims.family_id, load=caller
        )
        context_set_actor(user)
        return (user, claims)

    def _from_identity_token(self, token: str):
        try:
            identity = identity_verify(id_token=token)  # or 503 when Identity Platform is down
        except NotAuthenticated as exc:
            raise AuthenticationFailed(exc.message) from exc
        candidate = user_resolve_identity(identity=identity)
        if candidate is None:
            raise AuthenticationFailed("No account is linked to this sign-in.")
        self._activate(candidate.tenant_id)
        return (self._member(candidate.id), identity)

    @staticmethod
    def _activate(tenant_id) -> None:
        try:
            activate_tenant(tenant_id)
        except ScopeError as exc:
            # A view outside the tenant-safe base (no request transaction) has no
            # tenant scope to give the caller: it does not take these credentials.
            raise AuthenticationFailed("This endpoint does not take tenant credentials.") from exc

    @staticmethod
    def _member(user_id) -> User:
        # The role comes from the database, not the token: a demotion takes
        # effect at once, not when the token expires.
        user = User.objects.fetch(pk=user_id, related="tenant")
        if user is None or not user.is_active_member:
            raise AuthenticationFailed(INVALID_TOKEN)
        context_set_actor(user)
        return user


class BearerAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = BearerAuthentication
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "The access token from /api/v1/auth/login, or an Identity Platform ID token.",
        }


# --- API keys (the provisioning API) -------------------------------------------------


class ApiKeyAuthentication(BaseAuthentication):
    """`Authorization: Bearer cdt_pk_...`: an API key (accounts/apikeys.py).

    Beside `BearerAuthentication` on the views that take both (it passes on
    any bearer token that is not shaped like a key). A tenant-scoped key
    activates its tenant, inside the transaction and scope boundary the view
    opened, exactly as an access token does; an operator-wide key activates
    none (the provisioning views take the operator path for its reads). An
    unknown or revoked key is 401 `not_authenticated`, the same answer for both.
    """

    keyword = b"bearer"

    def authenticate(self, request):
        from accounts.apikeys import ApiKeyCaller, api_key_find, looks_like_api_key

        parts = get_authorization_header(request).split()
        if len(parts) != 2 or parts[0].lower() != self.keyword:
            return None
        try:
            token = parts[1].decode("ascii")
        except UnicodeDecodeError:
            return None
        if not looks_like_api_key(token):
            return None
        api_key = api_key_find(key=token)
        if api_key is None:
            logger.info("API key refused")
            raise AuthenticationFailed("The API key is not valid or has been revoked.")
        if api_key.tenant_id is not None:
            BearerAuthentication._activate(api_key.tenant_id)
        caller = ApiKeyCaller(api_key=api_key)
        context_set_actor(caller)
        return (caller, api_key)

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = ApiKeyAuthentication
    name = "apiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": (
                "An API key (`cdt_pk_...`) an operator made in the admin: operator-wide, or scoped "
                "to one tenant."
            ),
        }
