"""The tenant dashboard's sign-in and the scope every dashboard page runs in.

The users table is under row-level security, so a session cannot load its
user before a tenant is in scope. Sign-in therefore keeps the tenant's id in
the session beside Django's own keys, and every dashboard view opens that
tenant's scope first and only then loads the user, through the scoped
manager: a session whose user is not of that tenant finds no user at all.
"""

from __future__ import annotations

import functools

from django.conf import settings
from django.contrib import auth
from django.contrib.auth.hashers import make_password
from django.contrib.auth.views import redirect_to_login
from django.urls import reverse

from accounts.models import User
from accounts.selectors import user_sign_in_candidate_by_email_across_tenants
from audit.events import Event
from audit.services import audit_record
from core.context import context_set_actor
from tenants.scope import tenant_scope

SESSION_TENANT_KEY = "dashboard_tenant_id"
MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"


class SignInFailed(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


WRONG_CREDENTIALS = "Wrong email or password."


def dashboard_sign_in(*, email: str, password: str) -> User:
    """The tenant admin with this email and password, or SignInFailed. Every
    attempt leaves an audit row (in the tenant's log when the tenant is known)."""
    if not settings.PASSWORD_LOGIN_ENABLED:
        # Identity Platform sign-in needs Google's script in the page; the
        # dashboard serves no third-party script, so it has no door then.
        raise SignInFailed("Password sign-in is turned off on this server.")
    email = email.strip().lower()
    if "\x00" in email:
        # No address has one, and PostgreSQL would refuse the lookup outright.
        audit_record(
            action=Event.AUTH_LOGIN_FAILED,
            actor=email.replace("\x00", "")[:254],
            details={"reason": "malformed_email", "method": "dashboard"},
        )
        raise SignInFailed(WRONG_CREDENTIALS)
    candidate = user_sign_in_candidate_by_email_across_tenants(email=email)
    if candidate is None or candidate.tenant_id is None:
        make_password(password)  # as slow as a real check, so timing tells nothing
        reason = "unknown_email" if candidate is None else "operator_account"
        audit_record(
            action=Event.AUTH_LOGIN_FAILED,
            actor=email[:254],
            details={"reason": reason, "method": "dashboard"},
        )
        raise SignInFailed(WRONG_CREDENTIALS)

    with tenant_scope(candidate.tenant_id):
        user = User.objects.select_related("tenant").filter(pk=candidate.id).first()
        if user is None or not user.is_active or not user.check_password(password):
            reason, message = "bad_password", WRONG_CREDENTIALS
        elif not user.tenant.is_active:
            reason, message = "tenant_inactive", "This tenant is deactivated."
        elif not user.is_tenant_admin:
            reason, message = "not_tenant_admin", "The dashboard is for tenant admins."
        else:
            audit_record(
                action=Event.AUTH_LOGIN,
                tenant_id=user.tenant_id,
                user=user,
                target=user,
                details={"method": "dashboard"},
            )
            return user
        audit_record(
            action=Event.AUTH_LOGIN_FAILED,
            tenant_id=candidate.tenant_id,
            user=user,
            actor=email[:254],
            details={"reason": reason, "method": "dashboard"},
        )
    raise SignInFailed(message)


def dashboard_session_start(request, user: User) -> None:
    """Log the user in (a new session key) and remember their tenant."""
    with tenant_scope(user.tenant_id):
        auth.login(request, user, backend=MODEL_BACKEND)
    request.session[SESSION_TENANT_KEY] = str(user.tenant_id)
    request.session.set_expiry(settings.DASHBOARD_SESSION_AGE)


def tenant_admin_view(view):
    """Run a dashboard view in the signed-in tenant admin's scope, or send the
    browser to the sign-in page. The view's response must be rendered inside
    (use `render`, not a lazy TemplateResponse)."""

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        tenant_id = request.session.get(SESSION_TENANT_KEY)
        if tenant_id:
            with tenant_scope(tenant_id):
                user = auth.get_user(request)
                if (
                    user.is_authenticated
                    and user.is_tenant_admin
                    and str(user.tenant_id) == tenant_id
                    and user.tenant.is_active
                ):
                    request.user = user
                    request.tenant = user.tenant
                    context_set_actor(user)
                    return view(request, *args, **kwargs)
        return redirect_to_login(request.get_full_path(), reverse("dashboard:login"))

    return wrapper
