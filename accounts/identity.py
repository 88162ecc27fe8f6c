"""Identity Platform (Firebase Auth) ID tokens, verified with firebase-admin.

`verify_id_token` checks the RS256 signature against Google's published
certificates, the audience (our project id), the issuer
(`https://securetoken.google.com/<project>`), expiry and, with
`check_revoked=True`, asks Identity Platform whether the user's sessions were
revoked or the account disabled. The project comes from settings; credentials
(used only for that revocation lookup) from a service-account file or, on GKE,
Workload Identity's application default credentials.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import firebase_admin
import google.auth.exceptions
from django.conf import settings
from firebase_admin import auth, credentials
from firebase_admin import exceptions as firebase_exceptions

from core.keyring import jws_header

logger = logging.getLogger(__name__)

# Providers that prove nothing about a person.
_REFUSED_PROVIDERS = frozenset({"anonymous", "custom"})


class IdentityTokenInvalid(Exception):
    """Not a valid, current ID token of our project (the reason is for logs)."""


class IdentityUnavailable(Exception):
    """Identity Platform could not be asked (certificates or user lookup)."""


@dataclass(frozen=True)
class Identity:
    provider: str  # the sign-in provider, e.g. "google.com", "github.com", "password"
    subject: str  # the Identity Platform user id (uid)
    email: str
    email_verified: bool
    name: str
    # The second factor of this sign-in ("totp", "phone"), "" when none: the
    # token's firebase.sign_in_second_factor claim, set by Identity Platform's MFA.
    second_factor: str = ""


def identity_platform_enabled() -> bool:
    return bool(settings.IDENTITY_PLATFORM_PROJECT_ID)


def looks_like_identity_token(token: str) -> bool:
    """Routing only, never trust: Identity Platform signs RS256, our access
    tokens EdDSA. Whichever path is chosen verifies the token in full."""
    try:
        return jws_header(token).get("alg") == "RS256"
    except ValueError:
        return False


_apps: dict[tuple, firebase_admin.App] = {}
_apps_lock = threading.Lock()


def _firebase_app() -> firebase_admin.App:
    config = (
        settings.IDENTITY_PLATFORM_PROJECT_ID,
        settings.IDENTITY_PLATFORM_CREDENTIALS_FILE,
        settings.IDENTITY_PLATFORM_HTTP_TIMEOUT,
    )
    with _apps_lock:
        app = _apps.get(config)
        if app is None:
            project_id, credentials_file, timeout = config
            credential = (
                credentials.Certificate(credentials_file)
                if credentials_file
                else credentials.ApplicationDefault()
            )
            app = firebase_admin.initialize_app(
                credential,
                options={"projectId": project_id, "httpTimeout": timeout},
                name=f"coditect-identity-{len(_apps)}",
            )
            _apps[config] = app
        return app


def identity_token_verify(token: str) -> Identity:
    if not identity_platform_enabled():
        raise IdentityTokenInvalid("Identity Platform sign-in is not configured")
    try:
        claims = auth.verify_id_token(token, app=_firebase_app(), check_revoked=True)
    except (
        auth.InvalidIdTokenError,  # also expired and revoked tokens
        auth.UserDisabledError,
        auth.UserNotFoundError,
        ValueError,
    ) as exc:
        raise IdentityTokenInvalid(f"{type(exc).__name__}: {exc}") from exc
    except (firebase_exceptions.FirebaseError, google.auth.exceptions.GoogleAuthError) as exc:
        logger.error("Identity Platform did not answer", extra={"error": type(exc).__name__})
        raise IdentityUnavailable(type(exc).__name__) from exc

    firebase = claims.get("firebase")
    if not isinstance(firebase, dict):
        raise IdentityTokenInvalid("the token has no firebase claims")
    provider = _claim_text(firebase, "sign_in_provider")
    if not provider or provider in _REFUSED_PROVIDERS:
        raise IdentityTokenInvalid(f"sign-in provider {provider!r} is not accepted")
    subject = _claim_text(claims, "uid")
    if not subject:
        raise IdentityTokenInvalid("the token names no user")
    return Identity(
        provider=provider,
        subject=subject,
        email=_claim_text(claims, "email").strip().lower(),
        email_verified=claims.get("email_verified") is True,
        name=_claim_text(claims, "name"),
        second_factor=_claim_text(firebase, "sign_in_second_factor"),
    )


def _claim_text(claims: dict, name: str) -> str:
    """A claim that is text, as text ("" when absent). Google signs what it
    signs, but a claim of another type, or one holding a NUL (which no
    database column takes), is no identity to look up: the token is refused."""
    value = claims.get(name)
    if value is None:
        return ""
    if not isinstance(value, str) or "\x00" in value or len(value) > 1024:
        raise IdentityTokenInvalid(f"the token's {name!r} claim is not text")
    return value
