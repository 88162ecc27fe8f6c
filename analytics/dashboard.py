"""The tenant dashboard's session and the scope every dashboard page runs in
(the credential check is accounts.services.auth_login_dashboard, beside the
API's sign-in).

The users table is under row-level security, so a session cannot load its
user before a tenant is in scope. Sign-in therefore keeps the tenant's id in
the session beside Django's own keys, and every dashboard view opens that
tenant's scope first and only then loads the user, through the scoped
manager: a session whose user is not of that tenant finds no user at all.

Two doors: `member_view` lets in any active member of the tenant (their own
page), `tenant_admin_view` only its admins (a member who is not one gets a
403 page, not the sign-in page they already passed). Both show times in the
viewer's zone (`viewer_zone`).
"""

from __future__ import annotations

import functools
import zoneinfo
from datetime import UTC, datetime, tzinfo
from urllib.parse import unquote

from django.conf import settings
from django.contrib import auth
from django.contrib.auth.views import redirect_to_login
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers

from accounts.models import User
from accounts.services import dashboard_refusal
from audit.events import Event
from audit.models import AuditLog
from core.context import context_set_actor
from core.dates import moment_in
from tenants.scope import tenant_scope

SESSION_TENANT_KEY = "dashboard_tenant_id"
# When the sign-in began: "sign out everywhere" (and anything else that ends
# every sign-in of the user) ends the sessions begun before it.
SESSION_STARTED_KEY = "dashboard_signed_in_at"
# Whether the sign-in showed a second factor (Identity Platform's MFA): with
# DASHBOARD_ADMIN_MFA_REQUIRED the admin pages ask it of the session, not only
# of the sign-in, so a member promoted to admin after a password sign-in does
# not reach them on that session.
SESSION_SECOND_FACTOR_KEY = "dashboard_second_factor"
MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"
# Set by analytics/static/analytics/timezone.js from the browser's own zone.
TZ_COOKIE = "tz"


def dashboard_session_start(request, user: User, *, second_factor: bool = False) -> None:
    """Log the user in (a new session key) and remember their tenant and
    whether the sign-in showed a second factor."""
    with tenant_scope(user.tenant_id):
        auth.login(request, user, backend=MODEL_BACKEND)
    request.session[SESSION_TENANT_KEY] = str(user.tenant_id)
    request.session[SESSION_SECOND_FACTOR_KEY] = second_factor
    dashboard_session_renewed(request)
    request.session.set_expiry(settings.DASHBOARD_SESSION_AGE)


def dashboard_session_renewed(request) -> None:
    """This session counts as begun now (after its own user ended every other
    sign-in, e.g. by a new password, it stays signed in)."""
    request.session[SESSION_STARTED_KEY] = timezone.now().isoformat()


def _sign_ins_ended_since_start(request, user: User) -> bool:
    """Whether every sign-in of the user was ended after this session began
    (the `auth.sign_ins_ended` row of "sign out everywhere", a new password).
    A session begun by another door than dashboard_session_start, which does
    not say when it began, is taken to have begun at the user's last sign-in
    (Django's `last_login`); with neither it counts as ended."""
    try:
        started = datetime.fromisoformat(request.session[SESSION_STARTED_KEY])
    except (KeyError, TypeError, ValueError):
        started = user.last_login
        if started is None:
            return True
    return AuditLog.objects.filter(
        target_id=str(user.pk),
        action=Event.AUTH_SIGN_INS_ENDED,
        target_type=User._meta.label_lower,
        created_at__gt=started,
    ).exists()


@functools.cache
def _zone_names() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def viewer_zone(request) -> tzinfo:
    """The viewer's time zone, as their browser named it in the `tz` cookie
    (an IANA name); UTC when there is none or it is no zone this server knows."""
    name = unquote(request.COOKIES.get(TZ_COOKIE, ""))[:64]
    if name in _zone_names() and name != "UTC":
        return zoneinfo.ZoneInfo(name)
    return UTC


def local_when(moment, *, seconds: bool = True, none: str = "—") -> str:
    """A moment in the dashboard's one format, in the zone of the page being
    rendered (the viewer's): "2026-12-02 15:05:07 CET"; `none` for None."""
    if moment is None or moment == "":
        return none
    if isinstance(moment, str):
        parsed = moment_in(moment)
        if parsed is None:
            return moment
        moment = parsed
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment, UTC)
    local = timezone.localtime(moment)
    return f"{local:%Y-%m-%d %H:%M{':%S' if seconds else ''}} {local:%Z}"


def zone_label(zone) -> str:
    """How the page names the zone its times are in: "Europe/Berlin (CET)", "UTC"."""
    name = getattr(zone, "key", "UTC")
    abbreviation = timezone.localtime(timezone.now(), zone).strftime("%Z")
    return name if name == abbreviation else f"{name} ({abbreviation})"


def _dashboard_view(view, *, admins_only: bool):
    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        tenant_id = request.session.get(SESSION_TENANT_KEY)
        if tenant_id:
            with tenant_scope(tenant_id):
                user = auth.get_user(request)
                if (
                    user.is_authenticated
                    and str(user.tenant_id) == tenant_id
                    and user.is_active_member
                    and not _sign_ins_ended_since_start(request, user)
                ):
                    request.user = user
                    request.tenant = user.tenant
                    context_set_actor(user)
                    zone = viewer_zone(request)
                    request.viewer_zone = zone
                    request.viewer_zone_name = getattr(zone, "key", "UTC")
                    request.viewer_zone_label = zone_label(zone)
                    timezone.activate(zone)
                    try:
                        response = _signed_in_response(view, request, user, admins_only, args, kwargs)
                    finally:
                        timezone.deactivate()
                    # A signed-in page is the viewer's and of the moment (a key
                    # shown once, a confirmation): no cache keeps it, nor Back.
                    add_never_cache_headers(response)
                    return response
        return redirect_to_login(request.get_full_path(), reverse("dashboard:login"))

    return wrapper


def _signed_in_response(view, request, user: User, admins_only: bool, args, kwargs):
    """The page for a signed-in member: an admin page refuses a member who is
    not a tenant admin, and one whose session showed no second factor where
    it is asked of admins (DASHBOARD_ADMIN_MFA_REQUIRED)."""
    if admins_only and not user.is_tenant_admin:
        return render(request, "dashboard/forbidden.html", status=403)
    if admins_only and dashboard_refusal(
        user, second_factor=request.session.get(SESSION_SECOND_FACTOR_KEY) is True
    ):
        return render(request, "dashboard/forbidden.html", {"second_factor_required": True}, status=403)
    return view(request, *args, **kwargs)


def tenant_admin_view(view):
    """Run a dashboard view in the signed-in tenant admin's scope; a member who
    is not a tenant admin gets a 403 page; anyone else is sent to sign in. The
    view's response must be rendered inside (use `render`, not a lazy
    TemplateResponse)."""
    return _dashboard_view(view, admins_only=True)


def member_view(view):
    """Run a dashboard view for any active member of the signed-in tenant
    (admin, user, read-only), in that tenant's scope; anyone else is sent to
    sign in. The view shows the member their own things only."""
    return _dashboard_view(view, admins_only=False)
