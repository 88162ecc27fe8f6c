"""The license page of the tenant dashboard (issue 16, "Licenses"): a
license's policy, state, entitlements, seats and history; rotating its key;
its bound machines (unbind, under the monthly cap); its blocks.

Every write is a POST through the same services as the operator console
(licenses.services), in the signed-in tenant admin's scope: another tenant's
license is not found (404), and a user to block must be of this tenant.
Destructive actions (rotate, unbind, block) ask first: their first step is a
confirmation page, and only the POST it sends acts. A refusal (bad input, the
cap, the ledger away) shows the license page again with the reason and the
refusal's status (400, 409, 503); nothing changed.

A rotated key is shown once, as the console shows it (post/redirect/get): the
POST seals it into the session (licenses.admin.key_to_show_once) and
redirects to the key's page, which shows it and forgets it; a reload says it
was shown and rotates nothing. The confirming form carries a one-time token
(licenses.once), so a double click rotates once.
"""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.models import User
from analytics.dashboard import tenant_admin_view
from analytics.selectors import usage_series
from analytics.views import _card, _chart_window, _is_uuid, _license_or_404, _live_leases, _usable
from core.errors import ApplicationError
from licenses.admin import key_shown_once, key_to_show_once
from licenses.models import FINGERPRINT, SeatMode
from licenses.once import NONCE_FIELD, nonce_claim, nonce_issue
from licenses.seat_rules import MAX_MEMBERS, MAX_PRIORITY
from licenses.selectors import license_unbinds_this_month, unbind_month
from licenses.services import (
    BlockKind,
    block_value,
    license_block,
    license_block_named,
    license_regenerate_key,
    license_seat_rules_set,
    license_unbind_machine,
    license_unblock,
    seat_assign,
    seat_unassign,
    seats_cooling,
    unbind_limit_error,
)

ROTATE_ACTION = "dashboard-rotate-key"
# Longer than any fingerprint (128), user id or email (254) a block names.
MAX_VALUE_LENGTH = 300
REASON_MAX = 200


def _posted(request, name: str, limit: int = MAX_VALUE_LENGTH) -> str | None:
    """A posted field, stripped; None when no service could take it."""
    value = request.POST.get(name, "")
    if not _usable(value) or len(value) > limit:
        return None
    return value.strip()


def _entitlements(license) -> list[dict]:
    """The effective entitlements by name (the policy's catalog names its codes)."""
    catalog = license.policy.entitlements or {}
    return [
        {"code": code, "name": catalog.get(code, "")}
        for code in sorted(
            license.terms.entitlements, key=lambda code: (catalog.get(code, code).lower(), code)
        )
    ]


def _blocks(license) -> list[dict]:
    """The license's blocks, a user's named by their email where they are still here."""
    blocks = list(license.blocks or ())
    ids = [
        block["value"] for block in blocks if block.get("kind") == BlockKind.USER and _is_uuid(block["value"])
    ]
    emails = {str(pk): email for pk, email in User.objects.filter(pk__in=ids).values_list("pk", "email")}
    return [
        {**block, "email": emails.get(block.get("value"), ""), "at": parse_datetime(block.get("at") or "")}
        for block in blocks
    ]


def _unbinds(license) -> dict:
    """This month's self-service unbinds against the cap (None: no cap)."""
    cap = license.terms.max_unbinds_per_month
    used = license_unbinds_this_month(license=license) if cap else 0
    return {
        "cap": cap,
        "used": used,
        "left": None if cap is None else max(0, cap - used),
        "resets_at": unbind_month()[1],
    }


def _named_seats(license) -> dict:
    """Named seats: who has one, how many cool down, and who may be given one."""
    cooling = seats_cooling(license, timezone.now())
    holders = {entry["user_id"] for entry in license.assignments}
    members = [
        user
        for user in User.objects.filter(is_active=True).order_by("email")
        if str(user.pk) not in holders and user.is_active_member
    ]
    return {
        "assignments": license.assignments,
        "cooling": len(cooling),
        "free": max(0, license.max_seats - len(license.assignments) - len(cooling)),
        "members": members,
        "cooldown_hours": license.terms.reassign_cooldown_hours,
    }


def _groups(license, leases: list | None) -> list[dict]:
    """The license's group rules, members named by email where they are still
    here, with the seats each holds now (None: the ledger did not answer)."""
    rules = list(license.seat_rules or ())
    ids = [user for rule in rules for user in rule.get("users", ())]
    emails = {str(pk): email for pk, email in User.objects.filter(pk__in=ids).values_list("pk", "email")}
    return [
        {
            **rule,
            "emails": [
                emails.get(user, f"(a user no longer here: {user[:8]}…)") for user in rule.get("users", ())
            ],
            "held": None if leases is None else sum(1 for lease in leases if lease.group == rule["name"]),
        }
        for rule in rules
    ]


def _license_page(request, license, *, error: str = "", status: int = 200, form: dict | None = None):
    start, end = _chart_window()
    (item,) = usage_series(granularity="day", start=start, end=end, license_id=license.id, from_replica=True)
    leases = _live_leases(license)
    holders = {}
    if leases:
        user_ids = [lease.user_id for lease in leases if _is_uuid(lease.user_id)]
        holders = {
            str(pk): email for pk, email in User.objects.filter(pk__in=user_ids).values_list("pk", "email")
        }
    rows = [{"lease": lease, "holder": holders.get(str(lease.user_id), "")} for lease in leases or []]
    terms = license.terms
    return render(
        request,
        "dashboard/license.html",
        {
            "card": _card(license, item["periods"], leases, item["as_of"]),
            "leases": rows,
            "ledger_down": leases is None,
            "days": list(reversed(item["periods"])),
            "policy": license.policy,
            "terms": terms,
            "entitlements": _entitlements(license),
            "machines": list(license.hardware_fingerprints or ()),
            "unbinds": _unbinds(license),
            "blocks": _blocks(license),
            "named": _named_seats(license) if terms.seat_mode == SeatMode.NAMED else None,
            "groups": _groups(license, leases),
            "queued": _queued(license) if terms.queue_max_tickets else None,
            "max_priority": MAX_PRIORITY,
            "error": error,
            "form": form or {},
        },
        status=status,
    )


def _refused(request, license, refusal: ApplicationError, form: dict | None = None):
    response = _license_page(request, license, error=refusal.message, status=refusal.status, form=form)
    for header, value in refusal.headers.items():
        response[header] = value
    return response


def _confirm(
    request,
    license,
    *,
    title: str,
    question: str,
    consequences: list[str],
    action: str,
    fields: dict,
    button: str,
    status: int = 200,
):
    return render(
        request,
        "dashboard/license_confirm.html",
        {
            "license": license,
            "title": title,
            "question": question,
            "consequences": consequences,
            "action": action,
            "fields": fields,
            "button": button,
        },
        status=status,
    )


@require_GET
@tenant_admin_view
def license_detail(request, license_id):
    return _license_page(request, _license_or_404(license_id))


# --- live leases: releasing one asks first (the release itself is views.lease_release) -----


@require_POST
@tenant_admin_view
def lease_release_confirm(request, license_id):
    """ "Are you sure?" for a lease's Release button; its "Yes" posts to
    views.lease_release, which releases."""
    license = _license_or_404(license_id)
    session_id = _posted(request, "session_id", limit=200)
    if not session_id:
        refusal = ApplicationError("No such session.", code="session_not_found")
        return _refused(request, license, refusal)
    lease = next((each for each in _live_leases(license) or () if each.session_id == session_id), None)
    holder = ""
    if lease is not None and _is_uuid(lease.user_id):
        holder = User.objects.filter(pk=lease.user_id).values_list("email", flat=True).first() or ""
    machine = f" on machine {lease.fingerprint}" if lease is not None else ""
    return _confirm(
        request,
        license,
        title="Release a seat",
        question=f"Release the seat{f' of {holder}' if holder else ''}{machine}?",
        consequences=[
            "The seat is free at once.",
            "The application finds out at its next heartbeat and checks out again if it still runs "
            "(and a seat is free).",
        ],
        action=reverse("dashboard:lease-release", args=[license.id]),
        fields={"session_id": session_id},
        button="Yes, release the seat",
    )


# --- the key ------------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@tenant_admin_view
def key_rotate(request, license_id):
    """GET: "Are you sure?" with a one-time token; POST (with it): a new key,
    shown once on the page the browser is sent to."""
    license = _license_or_404(license_id)

    def ask(status: int = 200):
        return _confirm(
            request,
            license,
            title="Rotate the license key",
            question=f"Rotate the key of {license.name or 'this license'} (now {license.key_prefix}…)?",
            consequences=[
                "The current key stops working at once: applications that check out seats with it are "
                "refused until they are given the new key.",
                "Seats in use now stay in use.",
                "The new key is shown once, on the next page: copy it there.",
            ],
            action=reverse("dashboard:license-key-rotate", args=[license.id]),
            fields={NONCE_FIELD: nonce_issue(request, ROTATE_ACTION, license)},
            button="Yes, rotate the key",
            status=status,
        )

    if request.method == "GET":
        return ask()
    with nonce_claim(request, request.POST.get(NONCE_FIELD, ""), ROTATE_ACTION, license) as claim:
        if claim.used:
            # A second click on the same form: the first rotated; its page says the key was shown.
            return redirect(claim.result or reverse("dashboard:license", args=[license.id]))
        if not claim.fresh:
            messages.warning(
                request, "That confirmation is too old or not yours; nothing changed. Confirm again."
            )
            return ask(status=400)
        license, key = license_regenerate_key(license=license, actor=request.user)
        token = key_to_show_once(request, license, key, created=False)
        target = reverse("dashboard:license-key", args=[license.id, token])
        claim.done(target)
    return redirect(target)


@require_GET
@tenant_admin_view
def key_shown(request, license_id, token):
    """The one page that shows the new key, once; a reload answers 410."""
    license = _license_or_404(license_id)
    state, key, _entry = key_shown_once(request, license, token[:100])
    # Kept by no cache (as every signed-in page: analytics.dashboard).
    return render(
        request,
        "dashboard/license_key.html",
        {"license": license, "state": state, "license_key": key},
        status=200 if state == "show" else 410,
    )


# --- bound machines -------------------------------------------------------------------------


@require_POST
@tenant_admin_view
def machine_unbind(request, license_id):
    """Unbind a machine: the first POST asks, the one with `confirm` acts."""
    license = _license_or_404(license_id)
    fingerprint = _posted(request, "fingerprint")
    # Any fingerprint the license holds (one bound before the fingerprint rules too).
    if not fingerprint or fingerprint not in license.hardware_fingerprints:
        return _refused(
            request,
            license,
            ApplicationError(
                "This machine is not bound to the license (if you just unbound it, that is done).",
                code="invalid_request",
            ),
        )
    if request.POST.get("confirm") != "yes":
        if (refusal := unbind_limit_error(license)) is not None:
            return _refused(request, license, refusal)  # said before asking, not after "Yes"
        unbinds = _unbinds(license)
        consequences = [
            "Its place is free for another machine.",
            "If it holds a seat now, the seat ends at once.",
        ]
        if unbinds["cap"] is not None:
            consequences.append(
                f"This uses one of this license's {unbinds['cap']} unbinds of the month "
                f"({unbinds['left']} left until {unbinds['resets_at']:%Y-%m-%d} 00:00 UTC)."
            )
        return _confirm(
            request,
            license,
            title="Unbind a machine",
            question=f"Unbind machine {fingerprint} from {license.name or 'this license'}?",
            consequences=consequences,
            action=reverse("dashboard:license-unbind", args=[license.id]),
            fields={"fingerprint": fingerprint, "confirm": "yes"},
            button="Yes, unbind it",
        )
    try:
        license_unbind_machine(license=license, fingerprint=fingerprint, actor=request.user, capped=True)
    except ApplicationError as refusal:
        return _refused(request, _license_or_404(license_id), refusal)
    messages.success(request, f"Machine {fingerprint} is unbound; its place is free for another machine.")
    return redirect("dashboard:license", license_id=license.id)


# --- blocks ---------------------------------------------------------------------------------


@require_POST
@tenant_admin_view
def block_add(request, license_id):
    """Block a machine (fingerprint) or a user of this tenant (email): the
    first POST asks, the one with `confirm` acts."""
    license = _license_or_404(license_id)
    kind, value = request.POST.get("kind", ""), _posted(request, "value")
    reason = _posted(request, "reason", limit=1000)
    form = {"kind": kind, "value": value or "", "reason": (reason or "")[:REASON_MAX]}
    if kind not in BlockKind.ALL or not value or reason is None:
        refusal = ApplicationError(
            "Choose a machine or a user, and name it: a machine by its fingerprint, a user by their email.",
            code="invalid_request",
        )
        return _refused(request, license, refusal, form=form)
    reason = reason[:REASON_MAX]
    try:
        # A user named by email is kept by id; one of another tenant is no user here.
        value = block_value(license, kind, value)
    except ApplicationError as refusal:
        return _refused(request, license, refusal, form=form)
    if license.block_of(kind, value) is not None:
        refusal = ApplicationError(f"This {kind} is already blocked on the license.", code="invalid_request")
        return _refused(request, license, refusal, form=form)
    named = value
    if kind == BlockKind.USER:
        named = User.objects.filter(pk=value).values_list("email", flat=True).first() or value
    if request.POST.get("confirm") != "yes":
        return _confirm(
            request,
            license,
            title=f"Block a {kind}",
            question=f"Block {kind} {named} on {license.name or 'this license'}?",
            consequences=[
                "Its seats in use end now.",
                (
                    "It cannot check out a seat of this license on any machine until unblocked."
                    if kind == BlockKind.USER
                    else "No one can check out a seat of this license on it until it is unblocked."
                ),
            ],
            action=reverse("dashboard:license-block", args=[license.id]),
            fields={"kind": kind, "value": value, "reason": reason, "confirm": "yes"},
            button=f"Yes, block the {kind}",
        )
    try:
        license_block(license=license, kind=kind, value=value, reason=reason, actor=request.user)
    except ApplicationError as refusal:
        return _refused(request, _license_or_404(license_id), refusal, form=form)
    messages.success(
        request, f"The {kind} {named} is blocked on this license; its seats in use were released."
    )
    return redirect("dashboard:license", license_id=license.id)


@require_POST
@tenant_admin_view
def block_remove(request, license_id):
    """Lift a block (nothing is lost by it: no confirmation)."""
    license = _license_or_404(license_id)
    kind, value = request.POST.get("kind", ""), _posted(request, "value")
    if kind not in BlockKind.ALL or not value or license_block_named(license, kind, value) is None:
        refusal = ApplicationError("There is no such block on the license.", code="invalid_request")
        return _refused(request, license, refusal)
    try:
        license_unblock(license=license, kind=kind, value=value, actor=request.user)
    except ApplicationError as refusal:
        return _refused(request, _license_or_404(license_id), refusal)
    messages.success(request, f"The {kind} is unblocked: it may check out seats of this license again.")
    return redirect("dashboard:license", license_id=license.id)


def _queued(license) -> int | None:
    """Tickets waiting in the license's queue (None: the ledger did not answer)."""
    from core.errors import ServiceUnavailable
    from licenses.ledger.gateway import seat_ledger

    try:
        return seat_ledger().queued(license_id=license.id, tenant_id=license.tenant_id)
    except ServiceUnavailable:
        return None


# --- group rules (reservations and limits) ---------------------------------------------------


def _whole(value: str | None, *, name: str, optional: bool = False, top: int | None = None) -> int | None:
    value = (value or "").strip()
    if not value:
        if optional:
            return None
        return 0
    # ASCII digits only: str.isdigit() takes "²" and "٣" too.
    if not (value.isascii() and value.isdigit()) or len(value) > 7 or (top is not None and int(value) > top):
        bound = f"0 to {top}" if top is not None else "0 or more"
        raise ApplicationError(f"{name} is a whole number, {bound}.", code="invalid_request")
    return int(value)


@require_POST
@tenant_admin_view
def group_save(request, license_id):
    """Add a group rule, or change the one of that name: its members (emails
    of this tenant's people and machine fingerprints, one per line), its
    reservation, its limit and its queue priority. Nothing live ends by it."""
    license = _license_or_404(license_id)
    form = {
        name: request.POST.get(name, "")[:MAX_VALUE_LENGTH] for name in ("name", "reserve", "max", "priority")
    }
    form["members"] = request.POST.get("members", "")[: 300 * MAX_MEMBERS]
    try:
        name = _posted(request, "name", limit=64) or ""
        lines = [line.strip() for line in form["members"].splitlines() if line.strip()]
        emails = [line for line in lines if "@" in line]
        machines = [line for line in lines if "@" not in line]
        bad = [line for line in machines if not FINGERPRINT.match(line)]
        if bad:
            raise ApplicationError(
                f"{bad[0][:80]!r} is neither an email nor a machine fingerprint (8 to 128 characters).",
                code="invalid_request",
            )
        found = {
            email.lower(): str(pk)
            for pk, email in User.objects.filter(email__in=emails).values_list("pk", "email")
        }
        # (Emails are matched as stored, then case-blind, one at a time.)
        users = []
        for email in emails:
            user_id = found.get(email.lower())
            if user_id is None:
                user = User.objects.filter(email__iexact=email).first()
                if user is None:
                    raise ApplicationError(
                        f"{email[:254]} is not one of this tenant's people.", code="invalid_request"
                    )
                user_id = str(user.pk)
            users.append(user_id)
        rule = {
            "name": name,
            "users": users,
            "machines": machines,
            "reserve": _whole(form["reserve"], name="Reserve"),
            "max": _whole(form["max"], name="Max", optional=True),
            "priority": _whole(form["priority"], name="Priority", top=MAX_PRIORITY),
        }
        rules = [each for each in license.seat_rules or () if each["name"] != name]
        position = next(
            (i for i, each in enumerate(license.seat_rules or ()) if each["name"] == name), len(rules)
        )
        rules.insert(position, rule)
        license = license_seat_rules_set(license=license, rules=rules, actor=request.user)
    except ApplicationError as refusal:
        return _refused(request, _license_or_404(license_id), refusal, form={"group": form})
    messages.success(request, f"The group {name} is saved; seats in use keep their group until they end.")
    if shadowed := _listed_earlier(license, name):
        messages.warning(
            request,
            f"Some members of {name} are listed in a group before it, and that group is theirs: "
            + "; ".join(shadowed)
            + ".",
        )
    return redirect("dashboard:license", license_id=license.id)


def _listed_earlier(license, name: str) -> list[str]:
    """The members of group `name` that an earlier group lists (the first
    group that lists a holder is theirs), as "member (group)"."""
    rules = list(license.seat_rules or ())
    index = next((i for i, rule in enumerate(rules) if rule["name"] == name), None)
    if index is None:
        return []
    earlier: dict[str, str] = {}
    for rule in rules[:index]:
        for member in [*rule.get("users", ()), *rule.get("machines", ())]:
            earlier.setdefault(member, rule["name"])
    mine = rules[index]
    users = [user for user in mine.get("users", ()) if user in earlier]
    emails = {str(pk): email for pk, email in User.objects.filter(pk__in=users).values_list("pk", "email")}
    shadowed = [f"{emails.get(user, user)} ({earlier[user]})" for user in users]
    shadowed += [
        f"{machine} ({earlier[machine]})" for machine in mine.get("machines", ()) if machine in earlier
    ]
    return shadowed[:10]


@require_POST
@tenant_admin_view
def group_remove(request, license_id):
    """Remove a group rule: its reservation and limit stop at once; nothing live ends."""
    license = _license_or_404(license_id)
    name = _posted(request, "name", limit=64)
    rules = [each for each in license.seat_rules or () if each["name"] != name]
    if name is None or len(rules) == len(license.seat_rules or ()):
        refusal = ApplicationError(
            "This license has no such group (if you just removed it, that is done).", code="invalid_request"
        )
        return _refused(request, license, refusal)
    try:
        license_seat_rules_set(license=license, rules=rules, actor=request.user)
    except ApplicationError as refusal:
        return _refused(request, _license_or_404(license_id), refusal)
    messages.success(request, f"The group {name} is removed.")
    return redirect("dashboard:license", license_id=license.id)


# --- named seats ----------------------------------------------------------------------------


@require_POST
@tenant_admin_view
def seat_give(request, license_id):
    """Give a member a named seat (nothing is lost by it: no confirmation)."""
    license = _license_or_404(license_id)
    email = _posted(request, "email")
    user = User.objects.filter(email__iexact=email).first() if email else None
    if user is None:
        refusal = ApplicationError("Choose a member of this tenant.", code="invalid_request")
        return _refused(request, license, refusal)
    try:
        seat_assign(license=license, user=user, actor=request.user)
    except ApplicationError as refusal:
        return _refused(request, _license_or_404(license_id), refusal)
    messages.success(request, f"{user.email} has a seat of this license now.")
    return redirect("dashboard:license", license_id=license.id)


@require_POST
@tenant_admin_view
def seat_take_back(request, license_id):
    """Take a named seat back: the first POST asks, the one with `confirm` acts."""
    license = _license_or_404(license_id)
    user_id = _posted(request, "user_id")
    entry = license.assignment_of(user_id) if user_id else None
    if entry is None:
        refusal = ApplicationError(
            "This user has no seat of this license (if you just took it back, that is done).",
            code="invalid_request",
        )
        return _refused(request, license, refusal)
    if request.POST.get("confirm") != "yes":
        hours = license.terms.reassign_cooldown_hours
        consequences = ["Their seats in use of this license end now."]
        if hours:
            consequences.append(f"The seat cannot be given to anyone for {hours} hours.")
        return _confirm(
            request,
            license,
            title="Take a seat back",
            question=f"Take {entry.get('email') or 'this user'}'s seat of {license.name or 'this license'} back?",
            consequences=consequences,
            action=reverse("dashboard:license-seat-take-back", args=[license.id]),
            fields={"user_id": entry["user_id"], "confirm": "yes"},
            button="Yes, take it back",
        )
    try:
        seat_unassign(license=license, user_id=entry["user_id"], actor=request.user)
    except ApplicationError as refusal:
        return _refused(request, _license_or_404(license_id), refusal)
    messages.success(request, f"{entry.get('email') or 'The user'}'s seat is taken back.")
    return redirect("dashboard:license", license_id=license.id)
