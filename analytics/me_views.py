"""The plain member's own page, /dashboard/me/: their live seats and machines,
releasing one of their own seats, and their sign-in settings.

Any active member of the tenant comes in (`member_view`): admins, users,
read-only members. Nothing on these pages is the tenant's: seats are read from
the ledger by the member's own user id, machines from their own audit rows, and
a seat is released only if it is one of theirs (another's session id is a 404,
exactly as one that does not exist). Writes go through the same services as
the API and the admin site: licenses.leases.lease_force_release,
accounts.services.auth_password_change and user_sign_out_everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.contrib import auth, messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.models import User
from accounts.services import auth_password_change, user_sign_out_everywhere
from analytics.dashboard import dashboard_session_renewed, member_view
from audit.events import Event
from audit.models import AuditLog
from core.errors import ApplicationError, ServiceUnavailable
from licenses.leases import lease_force_release
from licenses.ledger.base import Lease
from licenses.ledger.gateway import seat_ledger
from licenses.selectors import LicenseNotFound, license_get, license_list

# One member holds a seat per machine; more than this on one license is a page's worth.
MY_SEATS_PER_LICENSE = 100
# How many of the member's newest checkouts the machines table is drawn from, and how many machines it lists.
MY_MACHINES_FROM_CHECKOUTS = 500
MY_MACHINES_SHOWN = 20
MAX_SESSION_ID_LENGTH = 200
SIGN_IN_METHODS = {"google.com": "Google", "github.com": "GitHub", "password": "Email and password"}


@dataclass(frozen=True)
class MySeat:
    license: object
    lease: Lease


def _my_leases(license, user: User) -> list[Lease]:
    """The member's live leases on one license (raises ServiceUnavailable)."""
    leases, cursor = [], None
    while True:
        page, cursor = seat_ledger().live_leases_page(
            license_id=license.id,
            tenant_id=license.tenant_id,
            cursor=cursor,
            limit=MY_SEATS_PER_LICENSE,
            user_id=str(user.pk),
        )
        leases.extend(lease for lease in page if lease.user_id == str(user.pk))
        if cursor is None or len(leases) >= MY_SEATS_PER_LICENSE:
            return leases


def _my_seats(user: User) -> list[MySeat] | None:
    """The member's live seats on every license of the tenant, or None when the ledger does not answer."""
    seats = []
    try:
        for license in license_list():
            seats.extend(MySeat(license, lease) for lease in _my_leases(license, user))
    except ServiceUnavailable:
        return None
    return seats


def _my_machines(user: User, seats: list[MySeat] | None) -> list[dict]:
    """The machines the member took seats on, newest first: from their own
    checkouts in the audit log (and the seats live now)."""
    machines: dict[str, dict] = {}
    for seat in seats or []:
        machines[seat.lease.fingerprint] = {
            "fingerprint": seat.lease.fingerprint,
            "last_checkout": seat.lease.created_at,
            "live": True,
        }
    rows = (
        AuditLog.objects.filter(user_id=user.pk, action=Event.LEASE_ACQUIRED)
        .order_by("-id")
        .values_list("details", "created_at")[:MY_MACHINES_FROM_CHECKOUTS]
    )
    for details, created_at in rows:
        fingerprint = details.get("fingerprint") if isinstance(details, dict) else None
        if not isinstance(fingerprint, str) or not fingerprint:
            continue
        known = machines.get(fingerprint)
        if known is None:
            machines[fingerprint] = {"fingerprint": fingerprint, "last_checkout": created_at, "live": False}
        elif created_at > known["last_checkout"]:
            known["last_checkout"] = created_at
    ordered = sorted(machines.values(), key=lambda machine: machine["last_checkout"], reverse=True)
    return ordered[:MY_MACHINES_SHOWN]


def _sign_in_method(user: User) -> str:
    if user.oauth_provider:
        return SIGN_IN_METHODS.get(user.oauth_provider, user.oauth_provider)
    return SIGN_IN_METHODS["password"] if user.has_usable_password() else "No sign-in method yet"


def _can_change_password(user: User) -> bool:
    return settings.PASSWORD_LOGIN_ENABLED and user.has_usable_password()


def _me_page(request, *, password_errors: dict | None = None, status: int = 200):
    user = request.user
    seats = _my_seats(user)
    return render(
        request,
        "dashboard/me.html",
        {
            "seats": seats or [],
            "ledger_down": seats is None,
            "machines": _my_machines(user, seats),
            "sign_in_method": _sign_in_method(user),
            "can_change_password": _can_change_password(user),
            "password_login_enabled": settings.PASSWORD_LOGIN_ENABLED,
            "password_errors": password_errors or {},
        },
        status=status,
    )


@require_GET
@member_view
def me(request):
    return _me_page(request)


def _my_seat_or_404(request, license_id, session_id: str) -> MySeat:
    """One of the member's own live seats; anything else (another's, an ended
    one, a made-up id, another tenant's license) is the same 404."""
    if not session_id or "\x00" in session_id or len(session_id) > MAX_SESSION_ID_LENGTH:
        raise Http404("No such seat of yours.")
    try:
        license = license_get(license_id=license_id)
    except LicenseNotFound:
        raise Http404("No such seat of yours.") from None
    for lease in _my_leases(license, request.user):
        if lease.session_id == session_id:
            return MySeat(license, lease)
    raise Http404("No such seat of yours.")


@require_http_methods(["GET", "POST"])
@member_view
def me_seat_release(request, license_id):
    """GET: "are you sure?" for one of the member's own seats; POST: release it."""
    session_id = (request.POST if request.method == "POST" else request.GET).get("session_id", "")
    try:
        seat = _my_seat_or_404(request, license_id, session_id)
    except ServiceUnavailable:
        messages.warning(request, "The seat ledger does not answer; nothing was released. Try again shortly.")
        return redirect("dashboard:me")
    if request.method == "GET":
        return render(request, "dashboard/me_release.html", {"seat": seat})
    try:
        lease_force_release(license=seat.license, session_id=seat.lease.session_id, actor=request.user)
    except ServiceUnavailable:
        messages.warning(request, "The seat ledger does not answer; nothing was released. Try again shortly.")
    except ApplicationError as error:
        messages.warning(request, error.message)
    else:
        messages.success(
            request,
            f"Your seat on {seat.license.name or 'the license'} is released. The application on that "
            "machine finds out at its next heartbeat.",
        )
    return redirect("dashboard:me")


@require_POST
@member_view
def me_password_change(request):
    user = request.user
    if not _can_change_password(user):
        messages.warning(request, "This account has no password to change here.")
        return _me_page(request, status=403)
    current = request.POST.get("current_password", "")
    new, again = request.POST.get("new_password", ""), request.POST.get("new_password_again", "")
    if not current:
        return _me_page(
            request, password_errors={"current_password": ["Give your current password."]}, status=400
        )
    if new != again:
        errors = {"new_password_again": ["The two new passwords differ; type the same one twice."]}
        return _me_page(request, password_errors=errors, status=400)
    if any("\x00" in text or len(text) > 256 for text in (current, new)):
        errors = {"new_password": ["That password cannot be used; choose another (at most 256 characters)."]}
        return _me_page(request, password_errors=errors, status=400)
    try:
        # Its token pair is the API's answer; a dashboard session needs none.
        auth_password_change(user=user, current_password=current, new_password=new)
    except ApplicationError as refusal:
        fields = refusal.details.get("fields", {}) if isinstance(refusal.details, dict) else {}
        errors = {name: list(texts) for name, texts in fields.items()} or {"form": [refusal.message]}
        response = _me_page(request, password_errors=errors, status=refusal.status)
        for header, value in refusal.headers.items():
            response[header] = value
        return response
    # A new password ends every sign-in (accounts.receivers), this session's
    # too; the member who set it stays signed in here.
    auth.update_session_auth_hash(request, User.objects.get(pk=user.pk))
    dashboard_session_renewed(request)
    messages.success(request, "Your password is changed. Every other sign-in of your account has ended.")
    return redirect("dashboard:me")


@require_POST
@member_view
def me_sign_out_everywhere(request):
    user_sign_out_everywhere(user=request.user, actor=request.user)
    auth.logout(request)
    messages.success(request, "You are signed out everywhere: on every device, in the application and here.")
    return redirect("dashboard:login")
