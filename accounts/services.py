"""Writes for accounts: registration, sign-in (the API's and the dashboard's, one
password check behind both), sessions, invites.

Every change writes its audit row inside its own transaction. Failures that
must leave a trace (a failed login, a reused refresh token) commit their audit
row and the revocation first, and only then raise the error the client sees.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.contrib.auth.password_validation import validate_password
from django.contrib.auth.tokens import default_token_generator
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.identity import Identity, IdentityTokenInvalid, IdentityUnavailable, identity_token_verify
from accounts.models import Invite, RefreshToken, Role, User
from accounts.selectors import (
    SignInCandidate,
    callers_forget,
    user_sign_in_candidate_by_email_across_tenants,
    user_sign_in_candidate_by_id_across_tenants,
    user_sign_in_candidate_by_identity_across_tenants,
)
from accounts.tasks import invite_email_enqueue, password_reset_request  # noqa: F401 (the API's door)
from accounts.throttle import (
    LoginAttempt,
    LoginBusy,
    LoginThrottled,
    login_attempt_begin,
    login_attempt_succeeded,
    login_check_slot,
    login_throttle_clear,
)
from accounts.tokens import access_token_issue, tenant_secret_digest, tenant_secret_new, tenant_secret_parse
from audit.events import Event
from audit.services import audit_record
from core.errors import ApplicationError, ServiceUnavailable
from core.tasks import task_broker_check
from tenants.models import Tenant, tenant_name_normalized
from tenants.scope import current_tenant_id, in_operator_scope, operator_scope, tenant_scope
from tenants.services import tenant_create

logger = logging.getLogger(__name__)

# One message for every way a password login can fail, so the answer never
# tells whether an email has an account.
LOGIN_FAILED = "The email or password is not correct."
REFRESH_FAILED = "The refresh token is not valid. Sign in again."
ID_TOKEN_FAILED = "The ID token is not valid."
INVITE_INVALID = "This invite code is not valid or no longer valid."


class NotAuthenticated(ApplicationError):
    code = "not_authenticated"


def _field_error(field: str, *messages: str) -> ApplicationError:
    """A 400 shaped like DRF's validation errors, so clients parse one format."""
    return ApplicationError("The request is not valid.", details={"fields": {field: list(messages)}})


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = "Bearer"


# --- identity ---------------------------------------------------------------------------


def identity_verify(*, id_token: str) -> Identity:
    """An Identity Platform ID token as our errors: 401 when invalid, 503 when
    Identity Platform cannot be reached."""
    try:
        return identity_token_verify(id_token)
    except IdentityTokenInvalid as exc:
        logger.info("ID token refused", extra={"reason": str(exc)[:200]})
        raise NotAuthenticated(ID_TOKEN_FAILED) from exc
    except IdentityUnavailable as exc:
        raise ServiceUnavailable("Identity Platform is not reachable; try again shortly.") from exc


def user_resolve_identity(*, identity: Identity) -> SignInCandidate | None:
    """The tenant member an identity signs in as: the user linked to it, or else
    the user whose email the identity provider has verified (linked now, once).
    None when there is none; accounts are never made here (see user_register)."""
    candidate = user_sign_in_candidate_by_identity_across_tenants(
        provider=identity.provider, subject=identity.subject
    )
    if candidate is None and identity.email and identity.email_verified:
        by_email = user_sign_in_candidate_by_email_across_tenants(email=identity.email)
        if by_email is None or by_email.tenant_id is None:
            return None
        if by_email.oauth_subject and by_email.oauth_subject != identity.subject:
            # The email's account is linked to another identity: taking it over
            # on the strength of an email claim would be an account takeover.
            logger.warning("identity conflicts with the account's linked identity")
            return None
        if not by_email.oauth_subject:
            with tenant_scope(by_email.tenant_id):
                linked = User.objects.filter(pk=by_email.id, oauth_subject="").update(
                    oauth_provider=identity.provider, oauth_subject=identity.subject
                )
                if linked:
                    audit_record(
                        action=Event.USER_IDENTITY_LINKED,
                        tenant_id=by_email.tenant_id,
                        actor=identity.email,
                        target_type="accounts.user",
                        target_id=str(by_email.id),
                        details={"provider": identity.provider},
                    )
        candidate = by_email
    if candidate is None or candidate.tenant_id is None:
        return None
    return candidate


# --- registration -------------------------------------------------------------------------


def _password_check(*, password: str, email: str) -> None:
    try:
        validate_password(password, user=User(email=email))
    except ValidationError as exc:
        raise _field_error("password", *exc.messages) from exc


def _user_new(
    *,
    email: str,
    role: str,
    full_name: str,
    password: str | None,
    identity: Identity | None,
) -> User:
    user = User(email=email, role=role, full_name=full_name)
    if password:
        user.set_password(password)
    else:
        user.set_unusable_password()
    if identity is not None:
        user.oauth_provider, user.oauth_subject = identity.provider, identity.subject
    return user


def _user_insert(user: User) -> User:
    try:
        with transaction.atomic():
            user.save(force_insert=True)
    except IntegrityError as exc:
        if "email" in str(exc):
            # Said plainly: the person needs to know to sign in instead. Registration
            # is rate limited per address, which bounds what this tells a prober.
            raise _field_error("email", "An account with this email already exists.") from exc
        raise _field_error("id_token", "This sign-in already belongs to an account.") from exc
    return user


def user_register(
    *,
    email: str = "",
    password: str = "",
    id_token: str = "",
    tenant_name: str = "",
    invite_code: str = "",
    full_name: str = "",
) -> tuple[User, Tenant]:
    """Create a user: with `tenant_name`, a new tenant with this user as its
    admin; with `invite_code`, a member of the inviting tenant in the invite's
    role. Credentials are a password, or an Identity Platform ID token whose
    email the provider has verified. Anything else in the request (a tenant, a
    role) is not an input: the tenant and role come from here."""
    if bool(tenant_name) == bool(invite_code):
        raise _field_error("non_field_errors", "Give either tenant_name or invite_code.")
    if tenant_name and not settings.REGISTRATION_OPEN:
        # Checked before any credential: a closed server makes no tenant and
        # says nothing about the email or the ID token.
        raise ApplicationError(
            "This server does not register new tenants; ask a tenant admin for an invite code.",
            code="permission_denied",
        )
    identity = None
    if id_token:
        identity = identity_verify(id_token=id_token)
        if not (identity.email and identity.email_verified):
            raise _field_error("id_token", "The sign-in must come with an email the provider has verified.")
        email = identity.email
        if user_sign_in_candidate_by_identity_across_tenants(
            provider=identity.provider, subject=identity.subject
        ):
            raise _field_error("id_token", "This sign-in already belongs to an account.")
    elif not password:
        raise _field_error("password", "Give a password or an id_token.")
    else:
        _password_login_check()  # an account nobody could sign in to is no use
    email = email.strip().lower()
    if not email:
        raise _field_error("email", "This field is required.")
    if password:
        _password_check(password=password, email=email)

    details = {"method": "identity_platform" if identity else "password"}
    if tenant_name:
        # Made before its tenant, so the tenant's creation row names its first admin.
        user = _user_new(
            email=email, role=Role.TENANT_ADMIN, full_name=full_name, password=password, identity=identity
        )
        with transaction.atomic():
            tenant = tenant_create(name=tenant_name, actor=user)
            with tenant_scope(tenant.id):
                user.tenant_id = tenant.id
                _user_insert(user)
                audit_record(
                    action=Event.USER_REGISTERED,
                    tenant_id=tenant.id,
                    user=user,
                    target=user,
                    details={**details, "role": user.role},
                )
        return user, tenant

    parsed = tenant_secret_parse(invite_code)
    if parsed is None:
        raise _field_error("invite_code", INVITE_INVALID)
    tenant_id, digest = parsed
    with tenant_scope(tenant_id):
        invite = Invite.objects.select_for_update().filter(code_digest=digest).first()
        tenant = Tenant.objects.filter(pk=tenant_id, is_active=True).first()
        if (
            invite is None
            or tenant is None
            or invite.status() != "pending"
            or (invite.email and invite.email != email)
        ):
            raise _field_error("invite_code", INVITE_INVALID)
        user = _user_new(
            email=email, role=invite.role, full_name=full_name, password=password, identity=identity
        )
        user.tenant_id = tenant_id
        _user_insert(user)
        invite.used_at, invite.used_by = timezone.now(), user
        invite.save(update_fields=["used_at", "used_by"])
        audit_record(action=Event.INVITE_REDEEMED, tenant_id=tenant_id, user=user, target=invite)
        audit_record(
            action=Event.USER_REGISTERED,
            tenant_id=tenant_id,
            user=user,
            target=user,
            details={**details, "role": user.role, "invite_id": str(invite.id)},
        )
    return user, tenant


def invite_accept(*, invite_code: str, email: str, password: str, full_name: str = "") -> User:
    """The dashboard's invite page (analytics.views.invite_accept_page):
    registration as the API's (user_register, with the invite code), and the
    browser session the page then starts, audited as the dashboard's
    sign-ins are (`auth.login`, method "invite"). A tenant admin who must show
    a second factor (DASHBOARD_ADMIN_MFA_REQUIRED) is registered and not
    signed in: `invite_accept_signs_in` tells the page which."""
    user, _tenant = user_register(
        invite_code=invite_code, email=email, password=password, full_name=full_name
    )
    if not invite_accept_signs_in(user):
        return user
    with tenant_scope(user.tenant_id):
        return _dashboard_signed_in(user, method="invite")


def invite_accept_signs_in(user: User) -> bool:
    """Whether accepting an invite signs the new member in to the dashboard:
    not a tenant admin who must show a second factor, which registering does not."""
    return dashboard_refusal(user, second_factor=False) is None


# --- sessions --------------------------------------------------------------------------------


def _refresh_token_create(*, user: User, family_id: uuid.UUID) -> str:
    token = tenant_secret_new(user.tenant_id)
    RefreshToken.objects.create(
        tenant_id=user.tenant_id,
        user=user,
        family_id=family_id,
        token_digest=tenant_secret_digest(token),
        expires_at=timezone.now() + timedelta(seconds=settings.REFRESH_TOKEN_LIFETIME),
    )
    return token


def _token_pair(*, user: User, refresh_token: str, family_id: uuid.UUID) -> TokenPair:
    return TokenPair(
        access_token=access_token_issue(
            user_id=user.id, tenant_id=user.tenant_id, role=user.role, family_id=family_id
        ),
        refresh_token=refresh_token,
        expires_in=settings.ACCESS_TOKEN_LIFETIME,
    )


def _session_start(*, user: User, method: str) -> TokenPair:
    """A new token family for a user who just proved who they are. Runs in the
    user's tenant scope."""
    now = timezone.now()
    family_id = uuid.uuid4()
    refresh_token = _refresh_token_create(user=user, family_id=family_id)
    # Tokens long past expiry are no use even for reuse detection.
    RefreshToken.objects.filter(user=user, expires_at__lt=now - timedelta(days=1)).delete()
    User.objects.filter(pk=user.pk).update(last_login=now)
    audit_record(
        action=Event.AUTH_LOGIN,
        tenant_id=user.tenant_id,
        user=user,
        target=user,
        details={"method": method, "family_id": str(family_id)},
    )
    return _token_pair(user=user, refresh_token=refresh_token, family_id=family_id)


def _login_failed(
    *, reason: str, method: str, email: str, tenant_id=None, user=None, attempt: LoginAttempt | None = None
) -> None:
    audit_record(
        action=Event.AUTH_LOGIN_FAILED,
        tenant_id=tenant_id,
        user=user,
        actor=email[:254],
        details={"reason": reason, "method": method},
    )
    _login_throttled_record(attempt=attempt, method=method, email=email, tenant_id=tenant_id, user=user)


def _login_throttled_record(
    *, attempt: LoginAttempt | None, method: str, email: str, tenant_id, user
) -> None:
    """`user.login_throttled`, once per lock: when a failed attempt locked the account."""
    if attempt is None or not attempt.locked_for:
        return
    audit_record(
        action=Event.USER_LOGIN_THROTTLED,
        tenant_id=tenant_id,
        user=user,
        actor=email[:254],
        target_type="accounts.user" if user is not None else "",
        target_id=str(user.pk) if user is not None else "",
        details={"failures": attempt.failures, "retry_after": attempt.locked_for, "method": method},
    )


def login_throttled_error(retry_after: int) -> ApplicationError:
    """The API's refusal of a locked account: 429 `login_throttled`, with Retry-After."""
    return ApplicationError(
        f"Too many failed sign-ins for this account; try again in {retry_after} seconds.",
        code="login_throttled",
        details={"retry_after": retry_after},
        headers={"Retry-After": str(retry_after)},
    )


def login_attempt_failed_elsewhere(*, email: str, attempt: LoginAttempt | None, method: str) -> None:
    """A door with its own password check (the admin site's ModelBackend)
    failed an attempt: audit the lock it set, in the account's tenant chain."""
    if attempt is None or not attempt.locked_for:
        return
    candidate = user_sign_in_candidate_by_email_across_tenants(email=email)
    tenant_id = candidate.tenant_id if candidate is not None else None
    if tenant_id is None:  # an operator, or nobody: the operator chain
        with operator_scope():
            user = User.objects.filter(pk=candidate.id).first() if candidate is not None else None
            _login_throttled_record(attempt=attempt, method=method, email=email, tenant_id=None, user=user)
        return
    with tenant_scope(tenant_id):
        user = User.objects.filter(pk=candidate.id).first()
        _login_throttled_record(attempt=attempt, method=method, email=email, tenant_id=tenant_id, user=user)


def login_unlock(*, email: str, via: str, operator: User | None = None) -> int:
    """An operator lifts an account's sign-in throttle (the admin's user action,
    `manage.py unlock_login`): its failures and lock are gone from every store,
    and `user.unlocked` says who did it. Works for an email with no account too
    (the throttle knows emails, not users). Returns the failures cleared."""
    email = email.strip().lower()
    failures = login_throttle_clear(email=email)
    candidate = user_sign_in_candidate_by_email_across_tenants(email=email)
    event = {
        "action": Event.USER_UNLOCKED,
        "user": operator,
        "actor": operator.email if operator is not None else via,
        "target_type": "accounts.user" if candidate is not None else "",
        "target_id": str(candidate.id) if candidate is not None else "",
        "details": {"failures": failures, "via": via},
    }
    if candidate is None or candidate.tenant_id is None:
        audit_record(tenant_id=None, **event)
    else:
        with tenant_scope(candidate.tenant_id):
            audit_record(tenant_id=candidate.tenant_id, **event)
    return failures


def _password_login_turned_off() -> ApplicationError:
    return ApplicationError(
        "Password sign-in is turned off on this server; sign in with your identity provider "
        "and send its ID token as id_token.",
        code="permission_denied",
        details={"password_login_enabled": False},
    )


def _password_login_check() -> None:
    if not settings.PASSWORD_LOGIN_ENABLED:
        raise _password_login_turned_off()


SignedIn = TypeVar("SignedIn")


class PasswordRefused(Exception):
    """A password sign-in refused; its audit row (if any) is committed."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PasswordBusy(PasswordRefused):
    """Refused unheard: this host is running as many password checks as it may."""

    def __init__(self) -> None:
        super().__init__("busy")


LOGIN_BUSY = "Too many sign-ins at once on this server; try again in a second."


def login_busy_error() -> ApplicationError:
    return ApplicationError(
        LOGIN_BUSY, code="rate_limited", details={"retry_after": 1}, headers={"Retry-After": "1"}
    )


class PasswordThrottled(PasswordRefused):
    """Refused unheard: the account is locked for `retry_after` more seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("throttled")
        self.retry_after = retry_after


# The dashboard has always logged a deactivated (or vanished) account's attempt
# as a wrong password, where the API tells the two apart; kept, so existing log
# queries keep their meaning.
_INACTIVE_USER_REASON = {
    "password": "inactive_user",
    "dashboard": "bad_password",
    "password_change": "inactive_user",
}


def _password_sign_in(
    *,
    email: str,
    password: str,
    method: str,
    signed_in: Callable[[User], SignedIn],
    refuse: Callable[[User], str | None] | None = None,
) -> SignedIn:
    """The one password check every door uses (the API's login, the dashboard's).

    An active member (User.is_active_member) with this email and password is
    passed to `signed_in`, inside the member's tenant scope and transaction,
    and its answer returned. `refuse` is a door's own further rule: a reason to
    turn the member away, or None. Every refusal writes `auth.login_failed`
    (in the tenant's chain when the tenant is known) and raises PasswordRefused
    once that row is committed. `method` names the door in the audit rows.

    Before anything is looked up or hashed the account's sign-in throttle
    (accounts.throttle) is asked: a locked account, known or not, is refused
    with PasswordThrottled and no audit row (its lock wrote
    `user.login_throttled` once). A right password ends the run of failures.
    All of it runs in one of the host's password-check slots
    (LOGIN_CONCURRENT_CHECKS); with none free: PasswordBusy, nothing counted.
    """
    if not settings.PASSWORD_LOGIN_ENABLED:
        raise PasswordRefused("password_login_disabled")
    email = email.strip().lower()
    if "\x00" in email:
        # No address has one, and PostgreSQL would refuse the lookup outright.
        _login_failed(reason="malformed_email", method=method, email=email.replace("\x00", ""))
        raise PasswordRefused("malformed_email")
    try:
        with login_check_slot():
            return _password_sign_in_checked(
                email=email, password=password, method=method, signed_in=signed_in, refuse=refuse
            )
    except LoginBusy:
        raise PasswordBusy() from None


def _password_sign_in_checked(
    *,
    email: str,
    password: str,
    method: str,
    signed_in: Callable[[User], SignedIn],
    refuse: Callable[[User], str | None] | None,
) -> SignedIn:
    try:
        attempt = login_attempt_begin(email=email)
    except LoginThrottled as throttled:
        raise PasswordThrottled(throttled.retry_after) from None
    candidate = user_sign_in_candidate_by_email_across_tenants(email=email)
    if candidate is None or candidate.tenant_id is None:
        # As slow as a real check (the default hasher, as for a real user),
        # so timing does not tell either. Operators (no tenant) never sign in
        # here: the admin site is their door.
        make_password(password)
        reason = "unknown_email" if candidate is None else "operator_account"
        _login_failed(reason=reason, method=method, email=email, attempt=attempt)
        raise PasswordRefused(reason)

    with tenant_scope(candidate.tenant_id):
        user = User.objects.select_related("tenant").filter(pk=candidate.id).first()
        if user is None or not user.is_active:
            make_password(password)  # as slow as a real check: timing does not tell a deactivated account
            reason = _INACTIVE_USER_REASON[method]
        elif not user.check_password(password):  # an older hash is upgraded here
            reason = "bad_password"
        else:
            login_attempt_succeeded(attempt)
            if not user.is_active_member:
                reason = "tenant_inactive"
            else:
                reason = refuse(user) if refuse is not None else None
                if reason is None:
                    return signed_in(user)
            attempt = None  # the password was right: no run, no lock
        _login_failed(
            reason=reason,
            method=method,
            email=email,
            tenant_id=candidate.tenant_id,
            user=user,
            attempt=attempt,
        )
    # Outside the transaction: the audit row is committed.
    raise PasswordRefused(reason)


def auth_login_password(*, email: str, password: str) -> TokenPair:
    try:
        return _password_sign_in(
            email=email,
            password=password,
            method="password",
            signed_in=lambda user: _session_start(user=user, method="password"),
        )
    except PasswordThrottled as throttled:
        raise login_throttled_error(throttled.retry_after) from None
    except PasswordBusy:
        raise login_busy_error() from None
    except PasswordRefused as refused:
        if refused.reason == "password_login_disabled":
            raise _password_login_turned_off() from None
        if refused.reason == "tenant_inactive":
            raise ApplicationError("This tenant is deactivated.", code="permission_denied") from None
        raise NotAuthenticated(LOGIN_FAILED) from None


class DashboardSignInFailed(Exception):
    """The dashboard's refusal, with the sentence its sign-in page shows
    (and, for a locked account, the seconds until it may try again)."""

    def __init__(self, message: str, *, retry_after: int | None = None, status: int = 401) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after
        self.status = 429 if retry_after else status


WRONG_CREDENTIALS = "Wrong email or password."
_DASHBOARD_REFUSALS = {
    # With passwords off, the page offers Google and GitHub (Identity Platform) only.
    "password_login_disabled": "Password sign-in is turned off on this server.",
    "tenant_inactive": "This tenant is deactivated.",
    "second_factor_required": (
        "Tenant admins sign in here with Google or GitHub and a second factor; passwords are not enough."
    ),
}


def _dashboard_signed_in(user: User, *, method: str = "dashboard") -> User:
    audit_record(
        action=Event.AUTH_LOGIN,
        tenant_id=user.tenant_id,
        user=user,
        target=user,
        details={"method": method},
    )
    return user


def auth_login_dashboard(*, email: str, password: str) -> User:
    """The active member with this email and password (the dashboard's door:
    the password check of every sign-in; any role: a tenant admin's pages
    refuse the others, who have a page of their own), or DashboardSignInFailed.
    Every attempt leaves an audit row."""
    try:
        return _password_sign_in(
            email=email,
            password=password,
            method="dashboard",
            signed_in=_dashboard_signed_in,
            refuse=lambda user: dashboard_refusal(user, second_factor=False),
        )
    except PasswordThrottled as throttled:
        raise DashboardSignInFailed(
            f"Too many failed sign-ins for this account. Try again in {throttled.retry_after} seconds.",
            retry_after=throttled.retry_after,
        ) from None
    except PasswordBusy:
        raise DashboardSignInFailed(LOGIN_BUSY, retry_after=1) from None
    except PasswordRefused as refused:
        raise DashboardSignInFailed(_DASHBOARD_REFUSALS.get(refused.reason, WRONG_CREDENTIALS)) from None


_IDENTITY_REFUSALS = {
    "inactive_user": "This account is deactivated.",
    "second_factor_required": (
        "Tenant admins sign in here with a second factor. Enrol one (an authenticator app) for your "
        "Google or GitHub sign-in, then sign in again."
    ),
}
NO_LINKED_ACCOUNT = (
    "No account is linked to this sign-in. Register with an invite code or a tenant name first."
)


def _identity_sign_in(
    *,
    id_token: str,
    method: str,
    signed_in: Callable[[User], SignedIn],
    refuse: Callable[[User, Identity], str | None] | None = None,
) -> SignedIn:
    """The one Identity Platform check every door uses (the API's login, the
    dashboard's), as `_password_sign_in` is for passwords: the active member
    the ID token names is passed to `signed_in` inside its tenant's scope.
    Every refusal writes `auth.login_failed`; an invalid token or a sign-in
    no account is linked to raises NotAuthenticated, Identity Platform out of
    reach ServiceUnavailable, and a member turned away (deactivated, or by the
    door's `refuse`) NotAuthenticated with the reason's sentence."""
    try:
        identity = identity_verify(id_token=id_token)
    except NotAuthenticated:
        _login_failed(reason="invalid_id_token", method=method, email="")
        raise
    candidate = user_resolve_identity(identity=identity)
    if candidate is None:
        _login_failed(reason="no_account", method=method, email=identity.email)
        raise NotAuthenticated(NO_LINKED_ACCOUNT)
    with tenant_scope(candidate.tenant_id):
        user = User.objects.select_related("tenant").filter(pk=candidate.id).first()
        if user is not None and user.is_active_member:
            reason = refuse(user, identity) if refuse is not None else None
            if reason is None:
                return signed_in(user)
        else:
            reason = "inactive_user"
        _login_failed(
            reason=reason, method=method, email=identity.email, tenant_id=candidate.tenant_id, user=user
        )
    raise NotAuthenticated(_IDENTITY_REFUSALS[reason])


def auth_login_id_token(*, id_token: str) -> TokenPair:
    return _identity_sign_in(
        id_token=id_token,
        method="identity_platform",
        signed_in=lambda user: _session_start(user=user, method="identity_platform"),
    )


def dashboard_refusal(user: User, *, second_factor: bool) -> str | None:
    """The dashboard's own rule, for either door and for the admin pages of a
    session already begun (analytics.dashboard): any active member may sign
    in (a tenant admin's pages refuse the others, who have a page of their
    own), but with DASHBOARD_ADMIN_MFA_REQUIRED a tenant admin needs a second
    factor, which only an Identity Platform sign-in can show."""
    if user.is_tenant_admin and settings.DASHBOARD_ADMIN_MFA_REQUIRED and not second_factor:
        return "second_factor_required"
    return None


def auth_login_dashboard_identity(*, id_token: str) -> tuple[User, bool]:
    """The member an Identity Platform ID token names, signed in to the
    dashboard (the token as the SDK's sign-in pop-up gave it to the page), and
    whether the sign-in showed a second factor; or DashboardSignInFailed: 401
    for a token or member refused, 503 when Identity Platform cannot be asked."""
    shown = False

    def refuse(user: User, identity: Identity) -> str | None:
        nonlocal shown
        shown = bool(identity.second_factor)
        return dashboard_refusal(user, second_factor=shown)

    try:
        user = _identity_sign_in(
            id_token=id_token,
            method="dashboard_identity",
            signed_in=lambda user: _dashboard_signed_in(user, method="identity_platform"),
            refuse=refuse,
        )
    except NotAuthenticated as refused:
        raise DashboardSignInFailed(refused.message) from None
    except ServiceUnavailable as down:
        raise DashboardSignInFailed(down.message, status=503) from None
    return user, shown


def auth_refresh(*, refresh_token: str) -> TokenPair:
    """Rotate: the presented token is used up and the next one of its family is
    issued. A used token presented again revokes the whole family, so a thief
    and the owner both lose it and the owner signs in again."""
    parsed = tenant_secret_parse(refresh_token)
    if parsed is None:
        raise NotAuthenticated(REFRESH_FAILED)
    tenant_id, digest = parsed
    now = timezone.now()
    with tenant_scope(tenant_id):
        token = RefreshToken.objects.select_for_update().filter(token_digest=digest).first()
        if token is None or token.revoked_at is not None or token.expires_at <= now:
            raise NotAuthenticated(REFRESH_FAILED)
        if token.used_at is not None:
            revoked = _refresh_tokens_revoke(family_id=token.family_id)
            audit_record(
                action=Event.AUTH_REFRESH_REUSED,
                tenant_id=tenant_id,
                user=token.user,
                target=token,
                details={"family_id": str(token.family_id), "revoked": revoked},
            )
        else:
            user = User.objects.select_related("tenant").filter(pk=token.user_id).first()
            token.used_at = now
            token.save(update_fields=["used_at"])
            if user is not None and user.is_active_member:
                next_token = _refresh_token_create(user=user, family_id=token.family_id)
                return _token_pair(user=user, refresh_token=next_token, family_id=token.family_id)
    # Outside the transaction: the revocation and its audit row are committed.
    raise NotAuthenticated(REFRESH_FAILED)


def _refresh_tokens_revoke(**lookups) -> int:
    """Revoke the refresh tokens `lookups` select that are not revoked yet,
    in the current scope: the one way a sign-in ends. The access tokens of
    their families are refused from the next request, and acquire's and
    status's cached callers are forgotten with them. The number revoked."""
    revoked = RefreshToken.objects.filter(revoked_at__isnull=True, **lookups).update(
        revoked_at=timezone.now()
    )
    callers_forget()
    return revoked


def auth_logout(*, refresh_token: str) -> None:
    """Revoke the presented token's family. Unknown tokens are ignored: logging
    out twice is not an error."""
    parsed = tenant_secret_parse(refresh_token)
    if parsed is None:
        return
    tenant_id, digest = parsed
    with tenant_scope(tenant_id):
        token = RefreshToken.objects.select_for_update().filter(token_digest=digest).first()
        if token is None:
            return
        revoked = _refresh_tokens_revoke(family_id=token.family_id)
        audit_record(
            action=Event.AUTH_LOGOUT,
            tenant_id=tenant_id,
            user=token.user,
            target=token,
            details={"family_id": str(token.family_id), "revoked": revoked},
        )


# --- ending every sign-in: a new password, deactivation ---------------------------------------
# A sign-in is a refresh-token family; revoking its rows ends its refresh tokens
# and, through the `sid` check of accounts.authentication, its access tokens.

PASSWORD_WRONG = "The current password is not correct."
PASSWORD_NONE = "This account signs in with its identity provider and has no password here."


def _sign_ins_end(*, tenant_id: uuid.UUID, reason: str, target, **lookups) -> int:
    def end() -> int:
        revoked = _refresh_tokens_revoke(tenant_id=tenant_id, **lookups)
        if revoked:
            audit_record(
                action=Event.AUTH_SIGN_INS_ENDED,
                tenant_id=tenant_id,
                target=target,
                details={"reason": reason, "revoked": revoked},
            )
        return revoked

    # Within the change that ends them (the admin's save on the operator path,
    # a request in the tenant's scope), so the two commit together.
    if in_operator_scope() or current_tenant_id() == tenant_id:
        return end()
    with tenant_scope(tenant_id):
        return end()


def user_sign_ins_end(*, user: User, reason: str) -> int:
    """End every sign-in of a user (all their refresh and access tokens);
    the number of refresh tokens revoked."""
    return _sign_ins_end(tenant_id=user.tenant_id, reason=reason, target=user, user_id=user.pk)


def user_sign_out_everywhere(*, user: User, actor: User) -> int:
    """End every sign-in of a user, wherever it is: the application's (their
    refresh-token families, and through them their access tokens) and the
    dashboard's (a session begun before this row is over: analytics.dashboard).
    Unlike the ends above it always leaves its `auth.sign_ins_ended` row, for
    it is the row that ends the dashboard's sessions. The number of refresh
    tokens revoked."""
    with transaction.atomic():
        revoked = _refresh_tokens_revoke(tenant_id=user.tenant_id, user_id=user.pk)
        audit_record(
            action=Event.AUTH_SIGN_INS_ENDED,
            tenant_id=user.tenant_id,
            user=actor,
            target=user,
            details={"reason": "signed_out_everywhere", "revoked": revoked},
        )
    return revoked


def tenant_sign_ins_end(*, tenant: Tenant, reason: str) -> int:
    """End every sign-in of every member of a tenant."""
    return _sign_ins_end(tenant_id=tenant.id, reason=reason, target=tenant)


def auth_password_change(*, user: User, current_password: str, new_password: str) -> TokenPair:
    """Set a new password for a signed-in member who knows the current one.
    Every sign-in of the user ends, the caller's too (saving the password does
    that, as any door that sets a password does: accounts.receivers), and a
    new one begins for the caller: the answer is its token pair.

    The current password is checked as a sign-in is (_password_sign_in): the
    account's throttle and the host's cap on checks at once apply, so a
    stolen access token is no way around them to guess it."""
    _password_login_check()
    if not user.has_usable_password():
        raise _field_error("current_password", PASSWORD_NONE)
    if new_password == current_password:
        raise _field_error("new_password", "Choose a password other than the current one.")
    try:
        validate_password(new_password, user=user)
    except ValidationError as exc:
        raise _field_error("new_password", *exc.messages) from exc

    def change(checked: User) -> TokenPair:
        checked.set_password(new_password)
        checked.save(update_fields=["password"])
        family_id = uuid.uuid4()
        refresh_token = _refresh_token_create(user=checked, family_id=family_id)
        audit_record(
            action=Event.AUTH_PASSWORD_CHANGED,
            tenant_id=checked.tenant_id,
            user=checked,
            target=checked,
            details={"family_id": str(family_id)},
        )
        return _token_pair(user=checked, refresh_token=refresh_token, family_id=family_id)

    try:
        return _password_sign_in(
            email=user.email,
            password=current_password,
            method="password_change",
            signed_in=change,
            refuse=lambda checked: None if checked.pk == user.pk else "another_account",
        )
    except PasswordThrottled as throttled:
        raise login_throttled_error(throttled.retry_after) from None
    except PasswordBusy:
        raise login_busy_error() from None
    except PasswordRefused:
        raise _field_error("current_password", PASSWORD_WRONG) from None


# --- invites ------------------------------------------------------------------------------------


def invite_create(
    *,
    created_by: User | None,
    role: str = Role.USER,
    email: str = "",
    lifetime_hours: int | None = None,
    tenant: Tenant | None = None,
) -> tuple[Invite, str]:
    """An invite to the creator's tenant; returns it and its code, which exists
    only in this return value (and, for an invite with an `email`, in the
    email sent to that address once this commits: accounts.emails).

    A system caller with no user (the Stripe integration inviting a new
    tenant's first admin) passes `created_by=None` and the `tenant`, and calls
    it inside that tenant's scope."""
    if role not in Role.values:
        raise _field_error("role", f"Choose one of {', '.join(Role.values)}.")
    if created_by is None and tenant is None:
        raise ValueError("an invite without a creator needs its tenant")
    tenant_id = created_by.tenant_id if created_by is not None else tenant.id
    hours = lifetime_hours or settings.INVITE_LIFETIME_HOURS
    if email.strip():
        # An invite said to be sent is sent: not made while its email cannot be queued (503).
        task_broker_check("the invite email")
    code = tenant_secret_new(tenant_id)
    with transaction.atomic():
        invite = Invite(
            tenant_id=tenant_id,
            code_digest=tenant_secret_digest(code),
            role=role,
            email=email.strip().lower(),
            created_by=created_by,
            expires_at=timezone.now() + timedelta(hours=hours),
        )
        invite.save(force_insert=True)
        audit_record(
            action=Event.INVITE_CREATED,
            tenant_id=tenant_id,
            user=created_by,
            target=invite,
            details={"role": role, "email": invite.email, "expires_at": invite.expires_at.isoformat()},
        )
        # Email (issue 15): an invite for an address is sent to it, on commit.
        invite_email_enqueue(invite=invite, code=code)
    return invite, code


def invite_revoke(*, invite: Invite, actor: User) -> Invite:
    """Withdraw a pending invite; used, expired or revoked ones stay as they are."""
    if invite.status() != "pending":
        return invite
    with transaction.atomic():
        invite.revoked_at = timezone.now()
        invite.save(update_fields=["revoked_at"])
        audit_record(action=Event.INVITE_REVOKED, tenant_id=invite.tenant_id, user=actor, target=invite)
    return invite


# --- Tenants changed by the provisioning API (issue 15) -------------------------------


TENANT_UPDATABLE_FIELDS = ("name",)


def tenant_update(*, tenant: Tenant, name: str, actor=None) -> Tenant:
    """Rename a tenant (its slug stays: URLs and sign-ins name it). Audited
    with what changed; a rename to the same name changes nothing."""
    name = tenant_name_normalized(name)
    if not name or len(name) > 200:
        raise ApplicationError(
            "The request is not valid.", details={"fields": {"name": ["1 to 200 characters."]}}
        )
    with tenant_scope(tenant.id):
        current = Tenant.objects.select_for_update().get(pk=tenant.pk)
        if current.name != name:
            changes = {"name": {"from": current.name, "to": name}}
            current.name = name
            current.save(update_fields=["name", "updated_at"])
            audit_record(
                action=Event.TENANT_UPDATED,
                tenant_id=current.id,
                user=actor,
                target=current,
                details={"changes": changes},
            )
    return current


def tenant_set_active(*, tenant: Tenant, active: bool, actor=None) -> Tenant:
    """Suspend (`active=False`) or resume a tenant. A suspended tenant's members
    are refused (`User.is_active_member`) and their sign-ins end (the
    post_save receiver of accounts.receivers), its API keys answer
    `tenant_inactive`; its licenses are left as they are. A change that
    changes nothing is not audited."""
    with tenant_scope(tenant.id):
        current = Tenant.objects.select_for_update().get(pk=tenant.pk)
        if current.is_active != active:
            current.is_active = active
            current.save(update_fields=["is_active", "updated_at"])
            audit_record(
                action=Event.TENANT_RESUMED if active else Event.TENANT_SUSPENDED,
                tenant_id=current.id,
                user=actor,
                target=current,
            )
    return current


# --- password reset (issue 15: email) ----------------------------------------------------------
# The request (accounts.tasks.password_reset_request) answers the same for any
# address; the email is accounts.emails'. The confirm is here: the sign-in
# throttle's rules apply to its token check (see accounts.emails' docstring).

RESET_INVALID = "This password reset link is not valid or has expired; ask for a new one."


def _reset_invalid() -> ApplicationError:
    # The token is a credential: refused as a refresh token is (401).
    return NotAuthenticated(RESET_INVALID)


def _reset_token_checked(user: User, token: str) -> bool:
    """Whether `token` is a valid reset token of `user` (in the user's tenant
    scope), through the sign-in throttle: a locked account is refused before
    the token is looked at (login_throttled_error), a bad token counts as a
    failed sign-in and writes its row, a good one ends the run of failures."""
    try:
        attempt = login_attempt_begin(email=user.email)
    except LoginThrottled as throttled:
        raise login_throttled_error(throttled.retry_after) from None
    if not default_token_generator.check_token(user, token):
        # Counted as a failed sign-in (login_attempt_begin did), with its row.
        audit_record(
            action=Event.AUTH_LOGIN_FAILED,
            tenant_id=user.tenant_id,
            user=user,
            actor=user.email,
            details={"reason": "bad_reset_token", "method": "password_reset"},
        )
        return False
    login_attempt_succeeded(attempt)
    return True


def _reset_user(uid: str) -> SignInCandidate:
    _password_login_check()
    candidate = user_sign_in_candidate_by_id_across_tenants(user_id=uid)
    if candidate is None or candidate.tenant_id is None:
        raise _reset_invalid()
    return candidate


def password_reset_link_check(*, uid: str, token: str) -> None:
    """Refuse a reset link that cannot set a password (the dashboard's page
    asks before it shows its form) as password_reset_confirm would: 401
    not_authenticated for an unknown user, a bad, used or expired token; the
    same throttle and audit row for a bad token. Nothing is changed."""
    candidate = _reset_user(uid)
    with tenant_scope(candidate.tenant_id):
        user = User.objects.filter(pk=candidate.id).first()
        if user is None or not user.is_active_member:
            raise _reset_invalid()
        valid = _reset_token_checked(user, token)
    if not valid:  # outside the transaction: the failure's row is committed
        raise _reset_invalid()


def password_reset_confirm(*, uid: str, token: str, new_password: str) -> None:
    """Set the password of the user a valid reset token names. One answer
    (401 not_authenticated) for an unknown user, a bad, used or expired token."""
    candidate = _reset_user(uid)
    with tenant_scope(candidate.tenant_id):
        user = User.objects.select_related("tenant").filter(pk=candidate.id).first()
        if user is None or not user.is_active_member:
            raise _reset_invalid()
        valid = _reset_token_checked(user, token)
        if valid:
            # Only behind a valid token: the validators (similar to the email, a
            # common password) tell nothing to one who holds none.
            try:
                validate_password(new_password, user=user)
            except ValidationError as exc:
                raise ApplicationError(
                    "; ".join(exc.messages), code="invalid_request", details={"new_password": exc.messages}
                ) from exc
            with transaction.atomic():
                user.set_password(new_password)
                user.save(update_fields=["password"])  # ends every sign-in (accounts.receivers)
                audit_record(
                    action=Event.AUTH_PASSWORD_RESET, tenant_id=user.tenant_id, user=user, target=user
                )
    if not valid:
        raise _reset_invalid()


# --- People (issue 16): the dashboard's People page ------------------------------------------
# A tenant admin invites by email, sends an invite again, changes a member's
# role, deactivates and reactivates members. A tenant always keeps an active
# admin: the last one can be neither demoted nor deactivated. Deactivating ends
# every sign-in of the user (accounts.receivers, on the save) and their seats at
# their next heartbeat (accounts.selectors.seat_holder_standing answers
# `user_inactive` to the lease code: DESIGN.md invariant 11).

INVITE_NOT_PENDING = "This invite is no longer pending (used, withdrawn or expired); send a new one."


def _people_refusal(message: str, *, field: str = "form") -> ApplicationError:
    return ApplicationError(message, details={"fields": {field: [message]}})


def _active_admins_locked() -> list[uuid.UUID]:
    """The ids of the current tenant's active admins, their rows locked (in one
    order, so two admins changing each other at once wait rather than deadlock)."""
    return list(
        User.objects.select_for_update()
        .filter(role=Role.TENANT_ADMIN, is_active=True)
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def _last_admin_check(*, user: User, admins: list[uuid.UUID], doing: str) -> None:
    if user.role == Role.TENANT_ADMIN and user.is_active and not (set(admins) - {user.pk}):
        raise _people_refusal(
            f"{user.email} is the tenant's last active admin and cannot be {doing}: "
            "make another member an admin first."
        )


def invite_send(*, actor: User, email: str, role: str) -> Invite:
    """An invite to the actor's tenant for `email` in `role`, emailed to it on
    commit (invite_create). Refused (400, nothing made): an address that is not
    one, a role that is none, an address already a member of this tenant or
    with a pending invite here. Whether the address has an account in another
    tenant is not told (a tenant admin must not learn of other tenants); such
    an invite cannot be accepted, as the invite page then says."""
    email = email.strip().lower()
    try:
        if not email or "\x00" in email or len(email) > 254:
            raise ValidationError("unusable")
        validate_email(email)
    except ValidationError:
        raise _people_refusal(
            "Give the person's email address (like name@example.com).", field="email"
        ) from None
    if role not in Role.values:
        raise _people_refusal(f"Choose a role: one of {', '.join(Role.values)}.", field="role")
    if User.objects.filter(email=email).exists():
        raise _people_refusal(f"{email} is already a member of this tenant.", field="email")
    now = timezone.now()
    pending = Invite.objects.filter(
        email=email, used_at__isnull=True, revoked_at__isnull=True, expires_at__gt=now
    ).exists()
    if pending:
        raise _people_refusal(
            f"An invite for {email} is pending already; send it again from the list instead.", field="email"
        )
    invite, _code = invite_create(created_by=actor, role=role, email=email)
    return invite


def _invite_resend_slot_key(invite_id) -> str:
    return f"accounts:invite-resend:{invite_id}"


def _invite_resend_slot_take(invite_id) -> bool:
    """At most one resend per invite per INVITE_RESEND_INTERVAL seconds; a
    cache that is down holds nothing back (as the reset email's interval)."""
    interval = settings.INVITE_RESEND_INTERVAL
    if interval <= 0:
        return True
    try:
        return bool(cache.add(_invite_resend_slot_key(invite_id), 1, timeout=interval))
    except Exception:
        logger.warning("invite resend interval not checked: the cache is unavailable", exc_info=True)
        return True


def invite_resend(*, invite: Invite, actor: User) -> Invite:
    """Send a pending invite to its address again under a new code: the old
    code stops working (its digest is replaced) and the invite's lifetime
    starts again. 400 for an invite that is not pending or has no address,
    429 `rate_limited` (with Retry-After) within INVITE_RESEND_INTERVAL
    seconds of the last resend; 503 when the email cannot be queued."""
    with transaction.atomic():
        current = Invite.objects.select_for_update().filter(pk=invite.pk).first()
        if current is None or current.status() != "pending":
            raise _people_refusal(INVITE_NOT_PENDING)
        if not current.email:
            raise _people_refusal("This invite has no email address to send to.")
        # The old code stops working only when the new one can be sent (else 503, nothing changed).
        task_broker_check("the invite email")
        if not _invite_resend_slot_take(current.pk):
            wait = settings.INVITE_RESEND_INTERVAL
            raise ApplicationError(
                f"This invite was sent again moments ago; try again in up to {wait} seconds.",
                code="rate_limited",
                details={"retry_after": wait},
                headers={"Retry-After": str(wait)},
            )
        code = tenant_secret_new(current.tenant_id)
        current.code_digest = tenant_secret_digest(code)
        current.expires_at = timezone.now() + timedelta(hours=settings.INVITE_LIFETIME_HOURS)
        current.save(update_fields=["code_digest", "expires_at"])
        audit_record(
            action=Event.INVITE_RESENT,
            tenant_id=current.tenant_id,
            user=actor,
            target=current,
            details={"email": current.email, "expires_at": current.expires_at.isoformat()},
        )
        invite_email_enqueue(invite=current, code=code)
    return current


def user_role_change(*, user: User, role: str, actor: User) -> User:
    """Give a member of the current tenant another role; audited with the role
    it had and the one it has. The last active admin cannot be demoted (400).
    The API reads the role from the database on every request, so the change
    holds at the member's next request."""
    if role not in Role.values:
        raise _people_refusal(f"Choose a role: one of {', '.join(Role.values)}.", field="role")
    with transaction.atomic():
        admins = _active_admins_locked()
        current = User.objects.select_for_update().get(pk=user.pk)
        if current.role == role:
            return current
        _last_admin_check(user=current, admins=admins, doing="demoted")
        previous = current.role
        current.role = role
        current.save(update_fields=["role"])
        audit_record(
            action=Event.USER_ROLE_CHANGED,
            tenant_id=current.tenant_id,
            user=actor,
            target=current,
            details={"role": {"from": previous, "to": role}},
        )
    return current


def user_set_active(*, user: User, active: bool, actor: User) -> User:
    """Deactivate (`active=False`) or reactivate a member of the current
    tenant. Deactivation ends every sign-in of the user (the save does it:
    accounts.receivers) and their seats at their next heartbeat (the lease
    code asks seat_holder_standing); the last active admin cannot be
    deactivated (400). A change that changes nothing is not audited."""
    with transaction.atomic():
        admins = _active_admins_locked()
        current = User.objects.select_for_update().get(pk=user.pk)
        if current.is_active == active:
            return current
        if not active:
            _last_admin_check(user=current, admins=admins, doing="deactivated")
        current.is_active = active
        current.save(update_fields=["is_active"])
        audit_record(
            action=Event.USER_REACTIVATED if active else Event.USER_DEACTIVATED,
            tenant_id=current.tenant_id,
            user=actor,
            target=current,
        )
    return current
