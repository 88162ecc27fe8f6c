"""Schemathesis hooks for the conformance run (test_openapi_conformance.py),
loaded through SCHEMATHESIS_HOOKS in the schemathesis process.

Each filter drops generated *schema-valid* requests that break a rule no JSON
Schema can state, because it depends on data the generator cannot know or on
two fields at once. The rule is in the operation's description or the
contract, and the server answers 400 `invalid_request` for it. Nothing else is
dropped, and schema-violating requests are never filtered: the checks stay as
they are, the generator is kept to what the schema could have promised.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import time
from datetime import UTC, datetime, timedelta

import schemathesis

# Analytics usage: at most this many periods per request (analytics.apis.MAX_PERIODS).
MAX_PERIODS = {"hour": 31 * 24, "day": 366}
PERIOD = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
DEFAULT_RANGE = {"hour": timedelta(hours=24), "day": timedelta(days=30)}
# Acquire's client_info keys (licenses.apis.CLIENT_INFO_KEY): OpenAPI 3.0 has no propertyNames.
CLIENT_INFO_KEY = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
BORROW_LIMIT_HOURS = int(os.environ.get("CONFORMANCE_BORROW_LIMIT_HOURS", "24"))


def _positive(case) -> bool:
    meta = getattr(case, "meta", None)
    return meta is None or not meta.generation.mode.is_negative


def _moment(value):
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _usage_range_is_servable(query: dict) -> bool:
    """From before to, years 1970 to 8999, at most MAX_PERIODS periods."""
    granularity = query.get("granularity", "day")
    if granularity not in MAX_PERIODS:
        return True
    end = _moment(query["to"]) if "to" in query else datetime.now(UTC)
    if end is None:
        return True
    start = _moment(query["from"]) if "from" in query else end - DEFAULT_RANGE[granularity]
    if start is None:
        return True
    earliest, latest = datetime(1970, 1, 1, tzinfo=UTC), datetime(9000, 1, 1, tzinfo=UTC)
    if not (earliest <= start < latest and earliest <= end < latest):
        return False
    # One period of slack for the flooring of `from` to its period.
    return start < end and (end - start) <= PERIOD[granularity] * (MAX_PERIODS[granularity] - 1)


def _is_common_password(password: str) -> bool:
    from django.contrib.auth.password_validation import CommonPasswordValidator

    global _COMMON
    if _COMMON is None:
        _COMMON = CommonPasswordValidator().passwords
    return password.lower().strip() in _COMMON


_COMMON = None
_REGISTERED: set[str] = set()


@schemathesis.hook
def filter_case(context, case) -> bool:
    if not _positive(case):
        return True
    query = case.query or {}
    body = case.body if isinstance(case.body, dict) else {}
    operation = case.operation.definition.raw.get("operationId", "")
    # A cursor is opaque: only the `next_cursor` of a page this list answered is one.
    if "cursor" in query:
        return False
    if operation == "analytics_usage":
        return _usage_range_is_servable(query)
    # An invite code exists only once POST /invites made it and showed it.
    if operation == "api_v1_auth_register_create":
        if "invite_code" in body:
            return False
        # An email is one account's: registering it again is refused (contract: 400, email named).
        # Cases are drawn before they are sent, so the first case of each email is the one kept.
        email = body.get("email")
        if isinstance(email, str):
            if email.strip().lower() in _REGISTERED:
                return False
            _REGISTERED.add(email.strip().lower())
        # A new password must not be a common one (CommonPasswordValidator's list).
        return not (isinstance(body.get("password"), str) and _is_common_password(body["password"]))
    # The current password is the account's: a guess is refused (contract: 400,
    # current_password named), and the right one would end the run's own sign-in.
    if operation == "auth_password_change":
        return False
    if operation == "licenses_acquire" and isinstance(body.get("client_info"), dict):
        return all(CLIENT_INFO_KEY.match(key) for key in body["client_info"])
    # A target written as an address (in any spelling the C library reads, "http://0" is
    # 0.0.0.0) outside the public ranges is refused (contract: 400 webhook_target_forbidden).
    # And it must parse as a URL at all (the schema's pattern only approximates one).
    if operation in ("webhook_endpoints_create", "webhook_endpoints_update") and isinstance(
        body.get("url"), str
    ):
        return _parses(body["url"]) and not _is_an_address(body["url"])
    # The license's own borrow limit (contract: 400 with details.max_hours).
    if operation == "licenses_borrow" and isinstance(body.get("hours"), int):
        return body["hours"] <= BORROW_LIMIT_HOURS
    return True


def _parses(url: str) -> bool:
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError for a port that is none
    except ValueError:
        return False
    return bool(parts.hostname)


def _is_an_address(url: str) -> bool:
    import ipaddress
    import socket
    from urllib.parse import urlsplit

    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return False
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    try:
        socket.inet_aton(host)
    except OSError:
        return False
    return True


def _stripe_signed(case):
    """A schema-valid Stripe event is signed as Stripe signs it (the server's
    test secret), over the bytes requests sends for a JSON body, so that it
    passes verification and is acted on (200); any other is sent as generated."""
    secret = os.environ.get("CONFORMANCE_STRIPE_WEBHOOK_SECRET")
    if not secret or not isinstance(case.body, dict):
        return case
    try:
        payload = json.dumps(case.body, allow_nan=False).encode()
    except ValueError:
        return case
    at = int(time.time())
    digest = hmac.new(secret.encode(), f"{at}.".encode() + payload, hashlib.sha256).hexdigest()
    case.headers = {**(case.headers or {}), "Stripe-Signature": f"t={at},v1={digest}"}
    return case


@schemathesis.hook
def map_case(context, case):
    """Schema-valid acquires name the seeded license's key (a key cannot be
    guessed), so that they reach the ledger and answer 201 or 200; schema-valid
    Stripe events are signed (_stripe_signed)."""
    if _positive(case) and case.operation.definition.raw.get("operationId") == "integrations_stripe_webhook":
        return _stripe_signed(case)
    key = os.environ.get("CONFORMANCE_LICENSE_KEY")
    if (
        key
        and _positive(case)
        and case.operation.definition.raw.get("operationId") == "licenses_acquire"
        and isinstance(case.body, dict)
        and "license_key" in case.body
    ):
        case.body = {**case.body, "license_key": key}
    return case
