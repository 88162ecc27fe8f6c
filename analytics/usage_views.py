"""The dashboard's usage pages (issue 16): who was refused a seat and when,
who held seats longest, each license's hourly and daily peaks against its
limit, CSV exports of usage and of the audit log, and each license's notices.

Every page runs in the signed-in tenant admin's scope (`tenant_admin_view`).
Reads go through selectors (the usage API's own for the figures, the audit
rows for denials), the one write through licenses.services. A filter that
cannot be read answers 400 with what is wrong, and shows nothing else.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta

from django.conf import settings
from django.contrib import messages
from django.http import Http404, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods

from accounts.models import User
from analytics import exports
from analytics.apis import UsageQuerySerializer
from analytics.charts import usage_chart
from analytics.dashboard import tenant_admin_view
from analytics.exports import (
    AUDIT_COLUMNS,
    USAGE_COLUMNS,
    audit_export_rows,
    audit_export_too_large,
    audit_rows,
    csv_lines,
    usage_rows,
)
from analytics.selectors import (
    DENIAL_CODES,
    DENIAL_PAGE_SIZE,
    denial_page,
    top_users_by_session_time,
    usage_series,
)
from analytics.services import HOUR, floor_hour
from analytics.views import _as_of_label
from audit.events import DETAIL_FIELDS, Event
from audit.readable import action_text
from core.dates import day_parse
from core.errors import ApplicationError
from licenses.delivery import license_expiry_notice_days, license_notice_channels
from licenses.models import License
from licenses.selectors import LicenseNotFound, license_get, license_list
from licenses.services import license_notifications_set
from webhooks.models import Endpoint

DAILY_DAYS = 30
HOURLY_HOURS = 48
# The longest date range a page or an export may name (the usage API's cap for days).
MAX_RANGE_DAYS = 366
TOP_USERS = 10
DENIALS_PER_PAGE = DENIAL_PAGE_SIZE


class BadFilter(Exception):
    """A filter that cannot be read: the page says which, with a 400."""


def _day(value: str, name: str) -> date | None:
    value = (value or "").strip()
    if not value:
        return None
    day = day_parse(value)
    if day is None:
        raise BadFilter(f"“{name}” must be a day, like 2026-12-01.")
    return day


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def _day_range(params, *, default_days: int = DAILY_DAYS) -> tuple[datetime, datetime, dict]:
    """[start, end) from the `from` and `to` days (UTC; `to` included), by
    default the last `default_days` days up to today; and the days as shown."""
    today = timezone.now().astimezone(UTC).date()
    last = _day(params.get("to", ""), "To") or today
    first = _day(params.get("from", ""), "From") or last - timedelta(days=default_days - 1)
    if first > last:
        raise BadFilter("“From” must not be after “To”.")
    if (last - first).days + 1 > MAX_RANGE_DAYS:
        raise BadFilter(f"At most {MAX_RANGE_DAYS} days at a time.")
    return _midnight(first), _midnight(last + timedelta(days=1)), {"from": first, "to": last}


def _license_filter(params) -> License | None:
    """The license a filter names, or None for all; another tenant's is 404."""
    value = (params.get("license") or "").strip()
    if not value:
        return None
    try:
        return license_get(license_id=uuid.UUID(value))
    except ValueError:
        raise BadFilter("That license is not one of this tenant's.") from None
    except LicenseNotFound:
        raise Http404("No such license.") from None


def _user_filter(params) -> tuple[str, User | None]:
    """The email a filter names, and its user in this tenant (None: no such user)."""
    email = " ".join((params.get("user") or "").split())[:254]
    if "\x00" in email:
        raise BadFilter("That email cannot be read.")
    if not email:
        return "", None
    return email, User.objects.filter(email__iexact=email).first()


def _hms(seconds: float) -> str:
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    return f"{hours} h {rest // 60:02d} min" if hours else f"{rest // 60} min {rest % 60:02d} s"


@require_GET
@tenant_admin_view
def usage_overview(request):
    """Denials (filterable, paged, read as they happen), the top users over
    the range, and the export forms."""
    params = request.GET
    context: dict = {
        "licenses": license_list(),
        "codes": DENIAL_CODES,
        "filters": {
            "license": params.get("license", ""),
            "user": params.get("user", "")[:254],
            "code": params.get("code", ""),
            "from": params.get("from", ""),
            "to": params.get("to", ""),
        },
        "actions": _audit_actions(),
    }
    try:
        start, end, days = _day_range(params)
        license = _license_filter(params)
        email, user = _user_filter(params)
        code = (params.get("code") or "").strip()
        if code and code not in DENIAL_CODES:
            raise BadFilter("Choose a code from the list.")
        before = _cursor(params.get("before"))
    except BadFilter as error:
        context["error"] = str(error)
        return render(request, "dashboard/usage.html", context, status=400)

    context["days"] = days
    context["filters"].update({"from": days["from"].isoformat(), "to": days["to"].isoformat()})
    context["filtered_license"] = license
    if email and user is None:
        context["unknown_user"] = email
        page = None
    else:
        page = denial_page(
            license_id=license.id if license else None,
            user_id=user.pk if user else None,
            code=code,
            start=start,
            end=end,
            before=before,
            limit=DENIALS_PER_PAGE,
        )
    context["denials"] = page.denials if page else []
    context["older"] = page.older if page else None
    context["paged"] = before is not None
    query = params.copy()
    query.pop("before", None)
    context["query"] = query.urlencode()
    top = top_users_by_session_time(
        start=start, end=end, licenses=[license] if license else None, limit=TOP_USERS
    )
    context["top_users"] = [{"row": row, "time": _hms(row.seconds)} for row in top]
    context["now"] = timezone.now()
    return render(request, "dashboard/usage.html", context)


def _cursor(value: str | None) -> int | None:
    if not value:
        return None
    if value.isascii() and value.isdecimal() and len(value) <= 18:
        return int(value)
    raise BadFilter("That page link is not valid; start from the first page.")


def _audit_actions() -> list[tuple[str, str]]:
    return sorted(((str(event), action_text(event)) for event in DETAIL_FIELDS), key=lambda pair: pair[1])


@require_GET
@tenant_admin_view
def license_usage(request, license_id):
    """One license: peak seats per hour (the last 48 hours, or a day chosen)
    and per day (30 days), each against the seat limit, with their "as of"."""
    license = _license_or_404(license_id)
    now = timezone.now()
    try:
        day = _day(request.GET.get("day", ""), "Day")
    except BadFilter as error:
        return render(
            request, "dashboard/usage_license.html", {"license": license, "error": str(error)}, status=400
        )
    if day is not None:
        hour_start, hour_end = _midnight(day), _midnight(day + timedelta(days=1))
    else:
        hour_start = floor_hour(now) - HOUR * (HOURLY_HOURS - 1)
        hour_end = now
    (hourly,) = usage_series(
        granularity="hour", start=hour_start, end=hour_end, license_id=license.id, from_replica=True
    )
    today = _midnight(now.astimezone(UTC).date())
    (daily,) = usage_series(
        granularity="day",
        start=today - timedelta(days=DAILY_DAYS - 1),
        end=now,
        license_id=license.id,
        from_replica=True,
    )
    recent = denial_page(license_id=license.id, limit=5)
    return render(
        request,
        "dashboard/usage_license.html",
        {
            "license": license,
            "day": day,
            "as_of": daily["as_of"],
            "as_of_label": _as_of_label(daily["as_of"]),
            "hourly": usage_chart(
                hourly["periods"], max_seats=license.max_seats, label_every=6, granularity="hour"
            ),
            "hourly_peak": max((p["peak_seats"] for p in hourly["periods"]), default=0),
            "daily": usage_chart(daily["periods"], max_seats=license.max_seats),
            "daily_peak": max((p["peak_seats"] for p in daily["periods"]), default=0),
            "hours": hourly["periods"],
            "recent_denials": recent.denials,
            "notifications": _notification_summary(license),
        },
    )


def _license_or_404(license_id) -> License:
    try:
        return license_get(license_id=license_id)
    except LicenseNotFound:
        raise Http404("No such license.") from None


# --- CSV exports ------------------------------------------------------------------------------


def _csv_response(lines, filename: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["X-Content-Type-Options"] = "nosniff"
    return response


def _export_refused(request, message: str):
    context = {"licenses": license_list(), "codes": DENIAL_CODES, "actions": _audit_actions()}
    context.update({"error": message, "filters": {}, "export_error": True})
    return render(request, "dashboard/usage.html", context, status=400)


@require_GET
@tenant_admin_view
def usage_csv(request):
    """Usage per license per hour or day over the days asked for: the usage
    API's figures, checked by the API's own query serializer."""
    params = request.GET
    try:
        start, end, days = _day_range(params)
        license = _license_filter(params)
    except BadFilter as error:
        return _export_refused(request, str(error))
    granularity = params.get("granularity", "day")
    query = UsageQuerySerializer(
        data={
            "from": start.isoformat(),
            "to": end.isoformat(),
            "granularity": granularity,
            **({"license_id": str(license.id)} if license else {}),
        }
    )
    if not query.is_valid():
        problems = [str(message) for messages_ in query.errors.values() for message in messages_]
        return _export_refused(request, " ".join(problems) or "That range cannot be exported.")
    checked = query.validated_data
    name = (
        f"usage-{request.tenant.slug}-{checked['granularity']}-{days['from']:%Y%m%d}-{days['to']:%Y%m%d}.csv"
    )
    rows = usage_rows(
        tenant_id=request.tenant.id,
        granularity=checked["granularity"],
        start=checked["from"],
        end=checked["to"],
        license_id=license.id if license else None,
    )
    return _csv_response(csv_lines(USAGE_COLUMNS, rows), name)


@require_GET
@tenant_admin_view
def audit_csv(request):
    """The audit log over the days asked for, filtered by action and user, as people read it."""
    params = request.GET
    try:
        start, end, days = _day_range(params)
        email, user = _user_filter(params)
        action = (params.get("action") or "").strip()
        if action and action not in DETAIL_FIELDS:
            raise BadFilter("Choose an action from the list.")
    except BadFilter as error:
        return _export_refused(request, str(error))
    # As the audit page: an email of nobody here still finds the rows that
    # name it (failed sign-ins, an account since deleted).
    user_id = user.pk if user else None
    email = email.lower()
    chosen = {"action": action, "user_id": user_id, "email": email, "start": start, "end": end}
    if audit_export_too_large(audit_export_rows(**chosen)):
        return _export_refused(
            request,
            f"More than {exports.AUDIT_EXPORT_MAX_ROWS:,} events: choose fewer days, an action or a user.",
        )
    name = f"audit-{request.tenant.slug}-{days['from']:%Y%m%d}-{days['to']:%Y%m%d}.csv"
    rows = audit_rows(tenant_id=request.tenant.id, **chosen)
    return _csv_response(csv_lines(AUDIT_COLUMNS, rows), name)


# --- notices ----------------------------------------------------------------------------------

NOTICE_EVENTS = (Event.LICENSE_SEATS_NEAR_LIMIT, Event.LICENSE_EXPIRING_SOON)


def _notification_summary(license: License) -> dict:
    channels = license_notice_channels(license)
    percent = license.notify_seats_percent or round(settings.EMAIL_SEATS_NEAR_LIMIT_SHARE * 100)
    return {
        "seats": license.notify_seats and bool(channels),
        "percent": percent,
        "percent_default": license.notify_seats_percent is None,
        "expiry_days": license_expiry_notice_days(license),
        "channels": channels,
    }


def _webhook_subscribers() -> dict[str, int]:
    """How many of the tenant's enabled endpoints subscribe to each notice's event."""
    counts = dict.fromkeys((str(event) for event in NOTICE_EVENTS), 0)
    for types in Endpoint.objects.filter(enabled=True).values_list("event_types", flat=True):
        for name in counts:
            if name in (types or []):
                counts[name] += 1
    return counts


def _whole(value: str, name: str, low: int, high: int) -> int | None:
    value = (value or "").strip()
    if not value:
        return None
    if not (value.isascii() and value.isdecimal() and len(value) <= 4) or not low <= int(value) <= high:
        raise BadFilter(f"{name} must be a whole number from {low} to {high}, or empty for the default.")
    return int(value)


@require_http_methods(["GET", "POST"])
@tenant_admin_view
def license_notifications(request, license_id):
    """The license's notices: near the limit and before expiry, each on or
    off with its threshold, and their channels. POST saves, then redirects."""
    license = _license_or_404(license_id)
    status, error = 200, ""
    values = {
        "notify_seats": license.notify_seats,
        "notify_seats_percent": license.notify_seats_percent,
        "notify_expiry": license.notify_expiry,
        "notify_expiry_days": license.notify_expiry_days,
        "notify_email": license.notify_email,
        "notify_webhook": license.notify_webhook,
    }
    if request.method == "POST":
        form = request.POST
        values = {
            "notify_seats": form.get("notify_seats") == "on",
            "notify_seats_percent": (form.get("notify_seats_percent") or "").strip()[:8],
            "notify_expiry": form.get("notify_expiry") == "on",
            "notify_expiry_days": (form.get("notify_expiry_days") or "").strip()[:8],
            "notify_email": form.get("notify_email") == "on",
            "notify_webhook": form.get("notify_webhook") == "on",
        }
        try:
            percent = _whole(values["notify_seats_percent"], "The percent of seats", 1, 100)
            days = _whole(values["notify_expiry_days"], "The days before expiry", 1, 365)
            license_notifications_set(
                license=license,
                notify_seats=values["notify_seats"],
                notify_seats_percent=percent,
                notify_expiry=values["notify_expiry"],
                notify_expiry_days=days,
                notify_email=values["notify_email"],
                notify_webhook=values["notify_webhook"],
                actor=request.user,
            )
        except BadFilter as refusal:
            status, error = 400, str(refusal)
        except ApplicationError as refusal:
            status, error = 400, refusal.message
        else:
            messages.success(request, "The notices of this license are saved.")
            return redirect("dashboard:license-notifications", license_id=license.id)
    return render(
        request,
        "dashboard/usage_notifications.html",
        {
            "license": license,
            "values": values,
            "error": error,
            "default_percent": round(settings.EMAIL_SEATS_NEAR_LIMIT_SHARE * 100),
            "default_days": settings.EMAIL_EXPIRY_NOTICE_DAYS,
            "subscribers": _webhook_subscribers(),
            "summary": _notification_summary(license),
        },
        status=status,
    )
