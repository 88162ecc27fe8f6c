"""The tenant dashboard: server-rendered pages for tenant admins.

Every page but sign-in runs through `tenant_admin_view`, in the signed-in
admin's tenant scope (any member may sign in; their own page is
analytics/me_views.py); reads go through the same selectors as the API, and the
one write (releasing a lease) through the same service as the admin site.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta

from django.apps import apps
from django.conf import settings
from django.contrib import auth, messages
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.http import Http404, QueryDict
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.text import capfirst
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.models import User
from accounts.selectors import invite_get_by_code, user_operator_ids_across_tenants
from accounts.services import (
    DashboardSignInFailed,
    auth_login_dashboard,
    auth_login_dashboard_identity,
    invite_accept,
    invite_accept_signs_in,
    password_reset_confirm,
    password_reset_link_check,
    password_reset_request,
)
from analytics.charts import seat_gauge, usage_chart
from analytics.dashboard import dashboard_session_start, local_when, tenant_admin_view
from analytics.selectors import usage_series
from analytics.signin import identity_sign_in_enabled, identity_sign_in_page
from audit.events import DETAIL_FIELDS
from audit.models import AuditLog
from audit.readable import ACTION_WORDS, NONE, References, TargetLabels, action_text, details_text, who
from audit.readable import USER as USER_LABEL
from audit.selectors import audit_rows_filtered
from core.dates import day_parse
from core.errors import ApplicationError, ServiceUnavailable
from core.middleware import content_security_policy_header
from licenses.leases import lease_force_release
from licenses.ledger.gateway import seat_ledger
from licenses.selectors import LicenseNotFound, license_get, license_list, license_state

CHART_DAYS = 30
AUDIT_PAGE_SIZE = 50
# Far longer than a session id (22 characters) yet short enough to refuse early.
MAX_SESSION_ID_LENGTH = 200


def _usable(text: str) -> bool:
    """PostgreSQL stores no NUL character: such input is refused before it gets there."""
    return "\x00" not in text


def _next_url(request) -> str:
    next_url = request.POST.get("next") or request.GET.get("next") or ""
    if not url_has_allowed_host_and_scheme(next_url, {request.get_host()}, request.is_secure()):
        return ""
    return next_url


def _sign_in_page(request, *, next_url: str, email: str = "", failure: DashboardSignInFailed | None = None):
    """The sign-in page: the password form when passwords are on, the Google
    and GitHub buttons when Identity Platform is configured (analytics.signin)."""
    identity, policy = identity_sign_in_page()
    response = render(
        request,
        "dashboard/login.html",
        {
            "error": failure.message if failure else "",
            "email": email,
            "next": next_url,
            "password_enabled": settings.PASSWORD_LOGIN_ENABLED,
            "identity": identity,
        },
        status=failure.status if failure else 200,
    )
    if failure and failure.retry_after:
        response["Retry-After"] = str(failure.retry_after)
    elif failure and failure.status == 503:
        response["Retry-After"] = "5"
    if policy:
        response[content_security_policy_header()] = policy
    if identity:
        # Google's sign-in pop-up is on another origin and answers its opener:
        # the site's "same-origin" opener policy would cut it off.
        response["Cross-Origin-Opener-Policy"] = "same-origin-allow-popups"
    return response


def _landing(user) -> str:
    """Where a member lands after signing in: a tenant admin on the overview,
    anyone else on their own page."""
    return "dashboard:overview" if user.is_tenant_admin else "dashboard:me"


@require_http_methods(["GET", "POST"])
def sign_in(request):
    next_url = _next_url(request)
    if request.method == "GET":
        return _sign_in_page(request, next_url=next_url)
    email = request.POST.get("email", "")[:254]
    try:
        user = auth_login_dashboard(email=email, password=request.POST.get("password", ""))
    except DashboardSignInFailed as failure:
        return _sign_in_page(
            request, next_url=next_url, email=email if _usable(email) else "", failure=failure
        )
    dashboard_session_start(request, user)
    return redirect(next_url or _landing(user))


# An ID token is three base64url parts of a few hundred bytes each.
MAX_ID_TOKEN_LENGTH = 8192


@require_POST
def sign_in_identity(request):
    """Where the sign-in page posts the ID token Identity Platform gave it
    (Google or GitHub, through the Firebase Auth SDK's pop-up): verified with
    firebase-admin as the API's sign-in does, then a dashboard session."""
    next_url = _next_url(request)
    id_token = request.POST.get("id_token", "")
    if not identity_sign_in_enabled():
        raise Http404("Identity Platform sign-in is not configured.")
    if not id_token or len(id_token) > MAX_ID_TOKEN_LENGTH or not id_token.isascii():
        failure = DashboardSignInFailed("The sign-in did not complete; try again.", status=400)
        return _sign_in_page(request, next_url=next_url, failure=failure)
    try:
        user, second_factor = auth_login_dashboard_identity(id_token=id_token)
    except DashboardSignInFailed as failure:
        return _sign_in_page(request, next_url=next_url, failure=failure)
    dashboard_session_start(request, user, second_factor=second_factor)
    return redirect(next_url or _landing(user))


@require_POST
def sign_out(request):
    auth.logout(request)
    return redirect("dashboard:login")


# --- password reset: the pages of POST /api/v1/auth/password/reset and /confirm ----------------
# The same services as the API, so the same limits: the per-address limit counts
# these pages as it counts the API, and a bad token counts as a failed sign-in of
# the account (the sign-in throttle). The request page says the same for any
# address. The email's link carries uid and token in its query; its GET moves
# them into the session and redirects to the bare address, so the token is in
# no address the form page is shown at, and no Referer it sends.

RESET_SESSION_KEY = "dashboard.password_reset"
RESET_SENT = (
    "If that address has an account here, an email with a link to choose a new password is on its "
    "way. It works once, for a limited time. No email? Check the address and ask again."
)
RESET_LINK_REFUSED = (
    "This link has expired or has been used (or it was never sent); it cannot set a password. "
    "Ask for a new one."
)


@require_http_methods(["GET", "POST"])
def password_reset(request):
    email, error, status = "", "", 200
    if request.method == "POST":
        email = request.POST.get("email", "").strip()[:254]
        try:
            if not _usable(email):
                raise ValidationError("unusable")
            validate_email(email)
        except ValidationError:
            email = email if _usable(email) else ""
            error, status = "Give your email address (like name@example.com).", 400
        else:
            password_reset_request(email=email)
            messages.info(request, RESET_SENT)
            return redirect("dashboard:password-reset")
    return render(request, "dashboard/password_reset.html", {"email": email, "error": error}, status=status)


@require_http_methods(["GET", "POST"])
def password_reset_set(request):
    if request.method == "GET" and ("uid" in request.GET or "token" in request.GET):
        request.session[RESET_SESSION_KEY] = {
            "uid": request.GET.get("uid", "")[:64],
            "token": request.GET.get("token", "")[:128],
        }
        return redirect("dashboard:password-reset-confirm")
    link = request.session.get(RESET_SESSION_KEY)
    if not link:
        return _reset_page(request, refused=RESET_LINK_REFUSED, status=400)
    if request.method == "GET":
        # The link is checked before the form is shown (as the submit checks it:
        # a bad token counts as a failed sign-in), so a used or expired one
        # shows no form to fill in for nothing.
        if not (_usable(link["uid"]) and _usable(link["token"])):
            request.session.pop(RESET_SESSION_KEY, None)
            return _reset_page(request, refused=RESET_LINK_REFUSED, status=400)
        try:
            password_reset_link_check(uid=link["uid"], token=link["token"])
        except ApplicationError as refusal:
            return _reset_refused(request, refusal, link_status=400)
        return _reset_page(request)
    new, again = request.POST.get("new_password", ""), request.POST.get("new_password_again", "")
    if new != again:
        return _reset_page(request, error="The two passwords differ; type the same one twice.", status=400)
    if not (_usable(new) and _usable(link["uid"]) and _usable(link["token"])):
        return _reset_page(request, error="That password cannot be used; choose another.", status=400)
    try:
        password_reset_confirm(uid=link["uid"], token=link["token"], new_password=new)
    except ApplicationError as refusal:
        if refusal.code == "invalid_request":
            return _reset_page(request, error=refusal.message, status=400)
        return _reset_refused(request, refusal)
    request.session.pop(RESET_SESSION_KEY, None)
    messages.success(
        request,
        "Your new password is set, and every earlier sign-in of the account has ended. Sign in with it.",
    )
    return redirect("dashboard:login")


def _reset_page(request, *, error: str = "", refused: str = "", status: int = 200):
    return render(
        request, "dashboard/password_reset_set.html", {"error": error, "refused": refused}, status=status
    )


def _reset_refused(request, refusal: ApplicationError, *, link_status: int = 401):
    """The link's refusal, with no form: a bad, used or expired link (the
    session forgets it; `link_status`: the page's 400, the submit's 401 as the
    API's), a locked account (429, Retry-After), password sign-in off (403)."""
    bad_link = refusal.code == "not_authenticated"
    if bad_link:
        request.session.pop(RESET_SESSION_KEY, None)
    response = _reset_page(
        request,
        refused=RESET_LINK_REFUSED if bad_link else refusal.message,
        status=link_status if bad_link else refusal.status,
    )
    for header, value in refusal.headers.items():
        response[header] = value
    return response


# --- the invite page: an emailed invite accepted in the browser ---------------------------------
# Registration is the API's (accounts.services.user_register, through
# invite_accept): the tenant and the role come from the invite, never from the
# form. As the reset link's, the emailed link's code moves into the session and
# the browser is sent to the bare address, so the code is in no address the
# form page is shown at. The per-address limit counts these pages as every
# dashboard page; a code that is no invite's tells nothing, not even the tenant
# its first part names.

INVITE_SESSION_KEY = "dashboard.invite_code"
INVITE_DONE_SESSION_KEY = "dashboard.invite_registered"
INVITE_UNKNOWN = (
    "This invite link is not valid. Check that the whole link from the email was opened, "
    "or ask whoever invited you for a new invite."
)
INVITE_GONE = {
    "used": (
        "This invite has been used already; it works once. If you registered with it, sign in "
        "from the CODITECT application, or on this dashboard to see your own seats."
    ),
    "revoked": "This invite was withdrawn. Ask whoever invited you for a new one.",
    "expired": "This invite has expired. Ask whoever invited you for a new one.",
    "inactive": "This invite can no longer be used. Ask whoever invited you.",
}
INVITE_NO_PASSWORD = (
    "Sign-in on this server is with Google or GitHub, not with a password, so this page cannot "
    "register you. Register from the CODITECT application with your Google or GitHub account and "
    "the invite code from the email."
)


def _invite_refused(request, *, message: str, status: int):
    return render(request, "dashboard/invite.html", {"refused": message}, status=status)


def _invite_form(request, invite, *, values: dict | None = None, errors: dict | None = None, status=200):
    return render(
        request,
        "dashboard/invite.html",
        {"invite": invite, "values": values or {"email": invite.email}, "errors": errors or {}},
        status=status,
    )


def _invite_input(request, invite) -> tuple[dict, dict]:
    """The form's values (the passwords left out) and what is wrong with them."""
    values = {
        "email": request.POST.get("email", "").strip()[:254],
        "full_name": " ".join(request.POST.get("full_name", "").split())[:200],
    }
    password = request.POST.get("password", "")
    errors: dict[str, list[str]] = {}
    if not _usable(values["email"]):
        values["email"] = ""
    if not _usable(values["full_name"]):
        values["full_name"] = ""
        errors["full_name"] = ["That name cannot be used."]
    try:
        validate_email(values["email"])
    except ValidationError:
        errors["email"] = ["Give your email address (like name@example.com)."]
    if invite.email and values["email"].lower() != invite.email:
        errors["email"] = [f"This invite is for {invite.email} only."]
    if not password:
        errors["password"] = ["Choose a password."]
    elif len(password) > 256 or not _usable(password):
        errors["password"] = ["That password cannot be used; choose another (at most 256 characters)."]
    elif password != request.POST.get("password_again", ""):
        errors["password_again"] = ["The two passwords differ; type the same one twice."]
    return values, errors


@require_http_methods(["GET", "POST"])
def invite_accept_page(request):
    if request.method == "GET" and "code" in request.GET:
        request.session[INVITE_SESSION_KEY] = request.GET.get("code", "")[:200]
        return redirect("dashboard:invite")
    code = request.session.get(INVITE_SESSION_KEY, "")
    invite = invite_get_by_code(code=code) if code else None
    if invite is None:
        return _invite_refused(request, message=INVITE_UNKNOWN, status=404)
    if invite.status != "pending":
        return _invite_refused(request, message=INVITE_GONE[invite.status], status=410)
    if not settings.PASSWORD_LOGIN_ENABLED:
        return render(
            request,
            "dashboard/invite.html",
            {"invite": invite, "no_password": INVITE_NO_PASSWORD},
            status=200 if request.method == "GET" else 403,
        )
    if request.method == "GET":
        return _invite_form(request, invite)

    values, errors = _invite_input(request, invite)
    if errors:
        return _invite_form(request, invite, values=values, errors=errors, status=400)
    try:
        user = invite_accept(
            invite_code=code,
            email=values["email"],
            password=request.POST["password"],
            full_name=values["full_name"],
        )
    except ApplicationError as refusal:
        fields = refusal.details.get("fields", {}) if isinstance(refusal.details, dict) else {}
        if "invite_code" in fields:  # used or withdrawn since the page was shown
            now = invite_get_by_code(code=code)
            if now is None or now.status != "pending":
                return _invite_refused(
                    request, message=INVITE_GONE[now.status] if now else INVITE_UNKNOWN, status=410
                )
        errors = {
            field: list(fields[field]) for field in ("email", "full_name", "password") if field in fields
        }
        if not errors:
            errors = {"form": [refusal.message]}
        response = _invite_form(request, invite, values=values, errors=errors, status=refusal.status)
        for header, value in refusal.headers.items():
            response[header] = value
        return response
    request.session.pop(INVITE_SESSION_KEY, None)
    if not invite_accept_signs_in(user):
        # Registering proves no second factor: the admin signs in through the door that does.
        messages.success(
            request,
            f"Welcome to {invite.tenant_name}: you are registered. Tenant admins sign in here with "
            "Google or GitHub and a second factor (an authenticator app enrolled for that sign-in).",
        )
        return redirect("dashboard:login")
    dashboard_session_start(request, user)
    if user.is_tenant_admin:
        messages.success(request, f"Welcome to {invite.tenant_name}: you are registered and signed in.")
        return redirect("dashboard:overview")
    request.session[INVITE_DONE_SESSION_KEY] = {"email": user.email, "tenant": invite.tenant_name}
    return redirect("dashboard:invite-done")


@require_GET
def invite_registered(request):
    """Where a member who is not a tenant admin lands: the CODITECT
    application is where they work; here they have their own seats page."""
    registered = request.session.get(INVITE_DONE_SESSION_KEY)
    if not registered:
        return redirect("dashboard:login")
    return render(request, "dashboard/invite_done.html", {"registered": registered})


def _chart_window() -> tuple:
    today = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=CHART_DAYS - 1), timezone.now()


def _live_leases(license) -> list | None:
    """The license's live leases, or None when the ledger does not answer."""
    try:
        return seat_ledger().live_leases(license_id=license.id, tenant_id=license.tenant_id)
    except ServiceUnavailable:
        return None


def _as_of_label(as_of) -> str:
    """ "as of HH:MM UTC" (with the day when it is not today's), or "" when never rolled up."""
    if as_of is None:
        return ""
    as_of = as_of.astimezone(UTC)
    if as_of.date() == timezone.now().astimezone(UTC).date():
        return f"{as_of:%H:%M} UTC"
    return f"{as_of:%Y-%m-%d %H:%M} UTC"


def seats_held(license, leases: list) -> int:
    """Seats the live leases hold: one each, or one per user where the
    license's seats are per user (licenses.terms.seats_per_user)."""
    if license.terms.seats_per_user:
        return len({lease.user_id for lease in leases})
    return len(leases)


def _card(license, periods: list[dict], leases: list | None, as_of=None) -> dict:
    return {
        "license": license,
        "as_of": as_of,
        "as_of_label": _as_of_label(as_of),
        "state": license_state(license),
        # The effective terms (the policy's under the license's overrides):
        # the grace period after expiry, when the license is in it.
        "grace_until": license.terms.grace_until,
        "gauge": seat_gauge(used=seats_held(license, leases), max_seats=license.max_seats)
        if leases is not None
        else None,
        "chart": usage_chart(periods, max_seats=license.max_seats),
        "peak_30d": max((p["peak_seats"] for p in periods), default=0),
        "denials_30d": sum(p["denials"] for p in periods),
    }


@require_GET
@tenant_admin_view
def overview(request):
    start, end = _chart_window()
    series = {
        item["license"].id: item
        for item in usage_series(granularity="day", start=start, end=end, from_replica=True)
    }
    cards = []
    ledger_answers = True
    for license in license_list():
        item = series.get(license.id, {})
        # A ledger that did not answer for one license is not asked for the
        # next: a hung Redis costs the page one timeout, not one per license.
        leases = _live_leases(license) if ledger_answers else None
        ledger_answers = leases is not None
        cards.append(_card(license, item.get("periods", []), leases, item.get("as_of")))
    return render(
        request,
        "dashboard/overview.html",
        {"cards": cards, "ledger_down": any(card["gauge"] is None for card in cards)},
    )


def _is_uuid(value) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


def _license_or_404(license_id):
    try:
        return license_get(license_id=license_id)
    except LicenseNotFound:
        raise Http404("No such license.") from None


@require_POST
@tenant_admin_view
def lease_release(request, license_id):
    license = _license_or_404(license_id)
    session_id = request.POST.get("session_id", "")
    try:
        if not _usable(session_id) or len(session_id) > MAX_SESSION_ID_LENGTH:
            raise ApplicationError("No such session.", code="session_not_found")
        lease_force_release(license=license, session_id=session_id, actor=request.user)
    except ApplicationError as error:
        messages.warning(request, error.message)
    else:
        messages.success(request, "The lease was released; its seat is free.")
    return redirect("dashboard:license", license_id=license.id)


def _cursor(value: str | None) -> int | None:
    """A paging cursor (an audit row id), or None for a missing or unusable
    one: the page starts from the newest then. isdigit() alone takes "²"."""
    if value and value.isascii() and value.isdecimal() and len(value) <= 18:
        return int(value)
    return None


# --- the audit log, readable by people -----------------------------------------------------------
# Rows are named as the console names them (audit.readable: actions in words,
# targets and people by name, details as text), with times in the viewer's
# zone. Filters are a GET query (reading changes nothing); the pager keeps
# them. A filter that cannot be read is a 400 that says which, and shows no rows.

AUDIT_FILTERS = ("action", "user", "from", "to")


@dataclass
class AuditFilters:
    action: str = ""
    email: str = ""
    user: User | None = None
    start: datetime | None = None
    end: datetime | None = None
    values: dict = field(default_factory=dict)
    errors: dict = field(default_factory=dict)


def _local_day(text: str, zone) -> datetime | None:
    """The start of a day given as YYYY-MM-DD, in the viewer's zone."""
    day = day_parse(text)
    return None if day is None else datetime.combine(day, time.min, tzinfo=zone)


def audit_filters_read(query, zone) -> AuditFilters:
    """The audit page's filters from a GET query: `action` (an event name),
    `user` (an email), `from` and `to` (days, both included, in `zone`)."""
    values = {name: query.get(name, "").strip()[:254] for name in AUDIT_FILTERS}
    filters = AuditFilters(values=values)
    if not all(_usable(value) for value in values.values()):
        filters.errors["form"] = "A filter holds a character that cannot be used."
        return filters
    if values["action"]:
        if values["action"] in ACTION_WORDS or values["action"] in DETAIL_FIELDS:
            filters.action = values["action"]
        else:
            filters.errors["action"] = "Choose an action from the list."
    if values["user"]:
        try:
            validate_email(values["user"])
        except ValidationError:
            filters.errors["user"] = "Give the user's email address (like name@example.com)."
        else:
            filters.email = values["user"].lower()
            filters.user = User.objects.filter(email=filters.email).first()
    for name in ("from", "to"):
        if values[name]:
            moment = _local_day(values[name], zone)
            if moment is None:
                filters.errors[name] = "Give a day as YYYY-MM-DD."
            elif name == "from":
                filters.start = moment
            else:
                filters.end = datetime.combine(moment.date() + timedelta(days=1), time.min, tzinfo=zone)
    if filters.start and filters.end and filters.start >= filters.end:
        filters.errors["to"] = "The last day is before the first."
    return filters


def _audit_who(row, references, operators: set[str]) -> str:
    if row.user_id and references.get(USER_LABEL, row.user_id) is None and str(row.user_id) in operators:
        return "operator"
    if not row.user_id and row.actor.startswith("api-key:"):
        return f"API key {row.actor.removeprefix('api-key:')}"
    return who(row, references)


def _audit_target(row, references, labels) -> str:
    """The target by name; never a bare id (one since removed says so)."""
    if not row.target_type:
        return NONE
    obj = references.get(row.target_type, row.target_id)
    if obj is None:
        try:
            kind = apps.get_model(row.target_type)._meta.verbose_name
        except (LookupError, ValueError):
            kind = row.target_type.rpartition(".")[2].replace("_", " ")
        return f"{capfirst(kind)} (since removed)"
    if row.target_type == "accounts.refreshtoken":
        email = references.user_email(getattr(obj, "user_id", None))
        return f"A sign-in of {email}" if email else "A sign-in"
    return labels(row)


def _audit_rows(page: list[AuditLog], tenant_id) -> list[dict]:
    references = References(page, people=True, details=True)
    # Only this tenant's own objects are named (on PostgreSQL row-level
    # security already keeps the others out of sight; the embedded database has none).
    for key, obj in list(references.objects.items()):
        owner = obj.pk if key[0] == "tenants.tenant" else getattr(obj, "tenant_id", None)
        if str(owner) != str(tenant_id):
            del references.objects[key]
    unknown = {
        str(row.user_id) for row in page if row.user_id and not references.get(USER_LABEL, row.user_id)
    }
    operators = user_operator_ids_across_tenants(ids=unknown) if unknown else set()
    labels = TargetLabels(page, references)
    return [
        {
            "row": row,
            "when": local_when(row.created_at),
            "action": action_text(row.action),
            "who": _audit_who(row, references, operators),
            "target": _audit_target(row, references, labels),
            "details": details_text(row.details, references, labels=True, moment_text=local_when),
        }
        for row in page
    ]


def _audit_page(rows, before: int | None, after: int | None) -> tuple[list, int | None, int | None]:
    """A page of rows newest first, by id: (rows, older cursor, newer cursor)."""
    if after is not None:
        page = list(rows.filter(id__gt=after).order_by("id")[: AUDIT_PAGE_SIZE + 1])
        has_newer = len(page) > AUDIT_PAGE_SIZE
        page = list(reversed(page[:AUDIT_PAGE_SIZE]))
        has_older = bool(page) and rows.filter(id__lt=page[-1].id).exists()
    else:
        if before is not None:
            rows_before = rows.filter(id__lt=before)
        else:
            rows_before = rows
        page = list(rows_before.order_by("-id")[: AUDIT_PAGE_SIZE + 1])
        has_older = len(page) > AUDIT_PAGE_SIZE
        page = page[:AUDIT_PAGE_SIZE]
        has_newer = before is not None and bool(page) and rows.filter(id__gt=page[0].id).exists()
    return page, page[-1].id if has_older and page else None, page[0].id if has_newer and page else None


def _pager_query(filters: AuditFilters, **cursor) -> str:
    query = QueryDict(mutable=True)
    for name in AUDIT_FILTERS:
        if filters.values.get(name):
            query[name] = filters.values[name]
    query.update(cursor)
    return query.urlencode()


@require_GET
@tenant_admin_view
def audit_log(request):
    """The tenant's audit log, newest first, filtered, paged by id (no counting)."""
    filters = audit_filters_read(request.GET, request.viewer_zone)
    page, older, newer = [], None, None
    if not filters.errors:
        rows = audit_rows_filtered(
            action=filters.action,
            user_id=filters.user.pk if filters.user else None,
            email=filters.email,
            start=filters.start,
            end=filters.end,
        )
        page, older, newer = _audit_page(
            rows, _cursor(request.GET.get("before")), _cursor(request.GET.get("after"))
        )
    return render(
        request,
        "dashboard/audit.html",
        {
            "events": _audit_rows(page, request.tenant.id),
            "filters": filters,
            "actions": sorted(ACTION_WORDS.items(), key=lambda item: item[1].lower()),
            "filtered": any(filters.values.values()),
            "older": _pager_query(filters, before=older) if older else "",
            "newer": _pager_query(filters, after=newer) if newer else "",
        },
        status=400 if filters.errors else 200,
    )
