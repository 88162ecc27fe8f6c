"""The dashboard's People page (issue 16): the tenant's users and pending
invites, and what a tenant admin does to them.

Every page runs through `tenant_admin_view`, in the signed-in admin's tenant
scope: a user or an invite of another tenant is not found (404), by the
scoped managers and row-level security. Writes go through accounts.services
(invite_send, invite_resend, invite_revoke, user_role_change,
user_set_active); every one is a POST that redirects (post/redirect/get), and
a refused one shows the page again with the reason and its status (400 for
bad input, 429 for a resend too soon), having changed nothing. Deactivating,
reactivating and withdrawing an invite ask first (a confirmation page: its
GET asks, its POST does it).

"Last seen" is the newest of the user's last sign-in (the API's or the
dashboard's) and their last token refresh (the application refreshes its
access token hourly while it runs); a user who holds a live seat now is
shown as using one. Seats held come from the seat ledger's live leases
across the tenant's licenses; when the ledger does not answer the page says
so and shows no count.
"""

from __future__ import annotations

from collections import Counter

from django.contrib import auth, messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from accounts.models import Invite, Role, User
from accounts.selectors import invite_pending_page, people_page, user_last_seen
from accounts.services import invite_resend, invite_revoke, invite_send, user_role_change, user_set_active
from analytics.dashboard import tenant_admin_view
from core.errors import ApplicationError, ServiceUnavailable
from core.pagination import InvalidCursor
from licenses.ledger.gateway import seat_ledger
from licenses.selectors import license_list

PEOPLE_PAGE_SIZE = 50
INVITES_PAGE_SIZE = 20
MAX_CURSOR_LENGTH = 1024
SIGN_IN_METHODS = {"google.com": "Google", "github.com": "GitHub", "password": "Password"}


def _cursor(value: str | None) -> str | None:
    """A paging cursor from the query, or None (the first page) for none."""
    if not value or len(value) > MAX_CURSOR_LENGTH or "\x00" in value:
        return None
    return value


def _seats_by_user() -> Counter | None:
    """Live seats per user id (as a string) across the tenant's licenses, or
    None when the seat ledger does not answer."""
    held: Counter = Counter()
    ledger = seat_ledger()
    try:
        for license in license_list():
            for lease in ledger.live_leases(license_id=license.id, tenant_id=license.tenant_id):
                if lease.user_id:
                    held[str(lease.user_id)] += 1
    except ServiceUnavailable:
        return None
    return held


def sign_in_method(user: User) -> str:
    """How the user signs in: their identity provider, and/or a password."""
    methods = []
    if user.oauth_provider:
        methods.append(SIGN_IN_METHODS.get(user.oauth_provider, user.oauth_provider))
    if user.has_usable_password():
        methods.append("Password")
    return " and ".join(methods) or "—"


def _page(request, *, error: str = "", status: int = 200, values: dict | None = None, headers=None):
    try:
        people = people_page(cursor=_cursor(request.GET.get("cursor")), limit=PEOPLE_PAGE_SIZE)
    except InvalidCursor:
        people = people_page(cursor=None, limit=PEOPLE_PAGE_SIZE)
    try:
        invites = invite_pending_page(cursor=_cursor(request.GET.get("invites")), limit=INVITES_PAGE_SIZE)
    except InvalidCursor:
        invites = invite_pending_page(cursor=None, limit=INVITES_PAGE_SIZE)
    seats = _seats_by_user()
    seen = user_last_seen(user_ids=[user.pk for user in people.items])
    rows = [
        {
            "user": user,
            "method": sign_in_method(user),
            "last_seen": seen.get(user.pk),
            "seats": seats.get(str(user.pk), 0) if seats is not None else None,
            "is_me": user.pk == request.user.pk,
        }
        for user in people.items
    ]
    response = render(
        request,
        "dashboard/people.html",
        {
            "rows": rows,
            "next_cursor": people.next_cursor,
            "first_page": not request.GET.get("cursor"),
            "invites": invites.items,
            "invites_next": invites.next_cursor,
            "ledger_down": seats is None,
            "roles": Role.choices,
            "error": error,
            "values": values or {"email": "", "role": Role.USER},
        },
        status=status,
    )
    for header, value in (headers or {}).items():
        response[header] = value
    return response


def _refused(request, refusal: ApplicationError, *, values: dict | None = None):
    return _page(
        request, error=refusal.message, status=refusal.status, values=values, headers=refusal.headers
    )


def _member_or_404(user_id) -> User:
    user = User.objects.select_related("tenant").filter(pk=user_id).first()
    if user is None:
        raise Http404("No such person.")
    return user


def _invite_or_404(invite_id) -> Invite:
    invite = Invite.objects.select_related("created_by").filter(pk=invite_id).first()
    if invite is None:
        raise Http404("No such invite.")
    return invite


@require_http_methods(["GET"])
@tenant_admin_view
def people(request):
    return _page(request)


@require_POST
@tenant_admin_view
def people_invite(request):
    values = {"email": request.POST.get("email", "").strip()[:254], "role": request.POST.get("role", "")}
    if "\x00" in values["email"]:
        values["email"] = ""
    try:
        invite = invite_send(actor=request.user, email=values["email"], role=values["role"])
    except ApplicationError as refusal:
        return _refused(request, refusal, values=values)
    messages.success(request, f"The invite is on its way to {invite.email}.")
    return redirect("dashboard:people")


@require_POST
@tenant_admin_view
def people_invite_resend(request, invite_id):
    invite = _invite_or_404(invite_id)
    try:
        invite = invite_resend(invite=invite, actor=request.user)
    except ApplicationError as refusal:
        return _refused(request, refusal)
    messages.success(
        request,
        f"The invite was sent again to {invite.email}, with a new link; the earlier one no longer works.",
    )
    return redirect("dashboard:people")


def _confirm(request, *, question: str, explain: str, button: str, danger: bool = True):
    return render(
        request,
        "dashboard/people_confirm.html",
        {"question": question, "explain": explain, "button": button, "danger": danger},
    )


@require_http_methods(["GET", "POST"])
@tenant_admin_view
def people_invite_revoke(request, invite_id):
    invite = _invite_or_404(invite_id)
    if invite.status() != "pending":
        return _refused(request, ApplicationError("This invite is no longer pending; nothing to withdraw."))
    if request.method == "GET":
        return _confirm(
            request,
            question=f"Withdraw the invite for {invite.email or 'anyone with the code'}?",
            explain="Its link stops working at once. You can invite the address again afterwards.",
            button="Withdraw the invite",
        )
    invite_revoke(invite=invite, actor=request.user)
    messages.success(request, f"The invite for {invite.email or 'its code'} was withdrawn.")
    return redirect("dashboard:people")


@require_POST
@tenant_admin_view
def people_role(request, user_id):
    user = _member_or_404(user_id)
    role = request.POST.get("role", "")
    try:
        changed = user_role_change(user=user, role=role, actor=request.user)
    except ApplicationError as refusal:
        return _refused(request, refusal)
    if changed.pk == request.user.pk and not changed.is_tenant_admin:
        auth.logout(request)  # the dashboard is for tenant admins
        return redirect("dashboard:login")
    messages.success(request, f"{changed.email} is now {changed.get_role_display()}.")
    return redirect("dashboard:people")


def _set_active(request, user_id, *, active: bool):
    user = _member_or_404(user_id)
    if request.method == "GET":
        if user.is_active == active:
            return redirect("dashboard:people")
        if active:
            return _confirm(
                request,
                question=f"Reactivate {user.email}?",
                explain="They can sign in again and take seats; their earlier sign-ins stay ended.",
                button="Reactivate",
                danger=False,
            )
        return _confirm(
            request,
            question=f"Deactivate {user.email}?",
            explain=(
                "Every sign-in of theirs ends now, and each seat they hold ends at its next heartbeat "
                "(within a few minutes). They cannot sign in or take a seat until reactivated."
            ),
            button="Deactivate",
        )
    try:
        changed = user_set_active(user=user, active=active, actor=request.user)
    except ApplicationError as refusal:
        return _refused(request, refusal)
    if changed.pk == request.user.pk and not active:
        auth.logout(request)
        return redirect("dashboard:login")
    done = "reactivated" if active else "deactivated; their seats end at their next heartbeat"
    messages.success(request, f"{changed.email} is {done}.")
    return redirect("dashboard:people")


@require_http_methods(["GET", "POST"])
@tenant_admin_view
def people_deactivate(request, user_id):
    return _set_active(request, user_id, active=False)


@require_http_methods(["GET", "POST"])
@tenant_admin_view
def people_reactivate(request, user_id):
    return _set_active(request, user_id, active=True)
