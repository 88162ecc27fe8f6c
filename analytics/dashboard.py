"""The tenant dashboard's session and the scope every dashboard page runs in
(the credential check is accounts.services.auth_login_dashboard, beside the
API's sign-in).

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
from django.contrib.auth.views import redirect_to_login
from django.urls import reverse

from accounts.models import User
from core.context import context_set_actor
from tenants.scope import tenant_scope

SESSION_TENANT_KEY = "dashboard_tenant_id"
MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"


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
                    and user.is_active_member
                ):
                    request.user = user
                    request.tenant = user.tenant
                    context_set_actor(user)
                    return view(request, *args, **kwargs)
        return redirect_to_login(request.get_full_path(), reverse("dashboard:login"))

    return wrapper
