"""Group rules of a license's seats (issue 17): reservations and limits.

A rule names a group of holders (users of the tenant, by id, and machines,
by fingerprint), `reserve` seats that only its members may take, `max` seats
its members may hold at most (None: no limit), and the `priority` of their
queued tickets (0 to 9, higher first). A holder belongs to the first rule
that lists their user or their machine. The rules live on the license row
(`License.seat_rules`), so the per-process license cache carries them to
acquire; the ledger applies them in the step that grants
(licenses/ledger/base.py, `SeatLedger.acquire`).
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from licenses.ledger import SeatGroup
from licenses.models import FINGERPRINT

# What the ledger's Redis scripts can keep apart from their own fields
# (prelude.lua: no tab, no newline, no leading '!').
GROUP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$")
MAX_RULES = 20
MAX_MEMBERS = 1_000
MAX_PRIORITY = 9
RULE_FIELDS = ("name", "users", "machines", "reserve", "max", "priority")


class SeatRulesInvalid(ValueError):
    """Rules that cannot be kept; the message says why, for the form or the API."""


def _count(rule: dict, field: str, *, optional: bool = False, top: int | None = None) -> int | None:
    value = rule.get(field)
    if value is None or value == "":
        if optional:
            return None
        value = 0
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < 0
        or (top is not None and value > top)
    ):
        bound = f" to {top}" if top is not None else ""
        raise SeatRulesInvalid(f"{rule.get('name', 'A rule')}: {field} is a whole number, 0{bound}.")
    return value


def seat_rules_clean(rules: Any, *, max_seats: int, reserved_before: int = 0) -> list[dict]:
    """The rules as kept on the license, checked: unique names, members that
    are user ids and fingerprints, counts that fit the license (reservations
    at most max_seats, or no more than `reserved_before`, the reservations
    kept already: after max_seats was lowered under them, they may still be
    cut down or removed). Raises SeatRulesInvalid."""
    if not isinstance(rules, list) or len(rules) > MAX_RULES:
        raise SeatRulesInvalid(f"The rules are a list of at most {MAX_RULES} groups.")
    cleaned, names, reserved = [], set(), 0
    for rule in rules:
        if not isinstance(rule, dict) or set(rule) - set(RULE_FIELDS):
            raise SeatRulesInvalid(f"A rule has the fields {', '.join(RULE_FIELDS)}.")
        name = rule.get("name")
        if not isinstance(name, str) or not GROUP_NAME.match(name):
            raise SeatRulesInvalid(
                "A group's name is 1 to 64 letters, digits, spaces, '.', '_' or '-', starting with a letter "
                "or digit."
            )
        if name in names:
            raise SeatRulesInvalid(f"Two groups are named {name!r}.")
        names.add(name)
        users, machines = rule.get("users") or [], rule.get("machines") or []
        if not isinstance(users, list) or not isinstance(machines, list):
            raise SeatRulesInvalid(f"{name}: users and machines are lists.")
        if len(users) + len(machines) > 10 * MAX_MEMBERS:
            raise SeatRulesInvalid(f"{name}: at most {MAX_MEMBERS} users and machines.")
        try:
            users = sorted({str(uuid.UUID(str(user))) for user in users})
        except ValueError:
            raise SeatRulesInvalid(f"{name}: a user is named by their id.") from None
        if not all(isinstance(machine, str) and FINGERPRINT.match(machine) for machine in machines):
            raise SeatRulesInvalid(f"{name}: a machine is named by its fingerprint (8 to 128 characters).")
        machines = sorted(set(machines))
        if len(users) + len(machines) > MAX_MEMBERS:
            raise SeatRulesInvalid(f"{name}: at most {MAX_MEMBERS} users and machines.")
        if not users and not machines:
            raise SeatRulesInvalid(f"{name}: the group has no users and no machines.")
        reserve = _count(rule, "reserve")
        limit = _count(rule, "max", optional=True)
        priority = _count(rule, "priority", top=MAX_PRIORITY)
        if limit is not None and reserve > limit:
            raise SeatRulesInvalid(
                f"{name}: it cannot reserve more seats ({reserve}) than its max ({limit})."
            )
        reserved += reserve
        cleaned.append(
            {
                "name": name,
                "users": users,
                "machines": machines,
                "reserve": reserve,
                "max": limit,
                "priority": priority,
            }
        )
    if reserved > max(max_seats, reserved_before):
        raise SeatRulesInvalid(f"The groups reserve {reserved} seats; the license has {max_seats}.")
    return cleaned


def seat_rules_reserved(rules) -> int:
    return sum(rule.get("reserve") or 0 for rule in rules or ())


def seat_groups(license) -> tuple[SeatGroup, ...]:
    """The license's rules as the ledger takes them."""
    return tuple(
        SeatGroup(
            name=rule["name"],
            reserve=rule.get("reserve") or 0,
            max=rule.get("max"),
            priority=rule.get("priority") or 0,
        )
        for rule in license.seat_rules or ()
    )


def seat_group_of(license, *, user_id: Any, fingerprint: str) -> str | None:
    """The group a holder belongs to: the first rule listing their user or
    their machine (None: no rule's)."""
    user = str(user_id) if user_id is not None else None
    for rule in license.seat_rules or ():
        if (user is not None and user in rule.get("users", ())) or fingerprint in rule.get("machines", ()):
            return rule["name"]
    return None
