"""The license API: one class per operation, thin; the rules live in services."""

from __future__ import annotations

import re

from django.core.validators import MaxLengthValidator
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import IsTenantMember, ReadOnlyOrWriter
from core.openapi import error_responses
from core.pagination import DEFAULT_LIMIT, MAX_LIMIT, PageQuerySerializer
from core.serializers import JsonBodySerializer
from licenses import leases, selectors
from licenses.authentication import LicenseTokenAuthentication
from licenses.models import FINGERPRINT
from tenants.scope import scope_boundary
from tenants.views import TenantAPIView

CLIENT_INFO_KEY = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
IDLE_SECONDS_MAX = 10**9


class SeatsSerializer(serializers.Serializer):
    used = serializers.IntegerField()
    max = serializers.IntegerField()


class LicenseSummarySerializer(serializers.Serializer):
    id = serializers.UUIDField()
    expires_at = serializers.DateTimeField(allow_null=True)
    grace_until = serializers.DateTimeField(
        allow_null=True,
        help_text=(
            "The end of the grace period after `expires_at` (the policy's); while it is ahead and "
            "`expires_at` behind, the license is in its grace period and still grants seats."
        ),
    )
    in_grace = serializers.BooleanField(help_text="The license has expired and is in its grace period.")
    entitlements = serializers.DictField(help_text="Codes of the policy's catalog, each `true`.")


class CheckoutSerializer(serializers.Serializer):
    """The answer of acquire and borrow, as documented; `checkout_answer` writes it."""

    session_id = serializers.CharField()
    overdraft = serializers.BooleanField(
        help_text=(
            "The seat is one of the license's overdraft seats, granted past its `seats.max` "
            "(the token says so too: `ovr`); counted for the true-up."
        )
    )
    token = serializers.CharField(
        help_text="The signed license token (compact JWS); its exp is the offline grace."
    )
    token_expires_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField(help_text="When the lease ends without a heartbeat.")
    borrowed_until = serializers.DateTimeField(allow_null=True)
    heartbeat_interval = serializers.IntegerField(help_text="Seconds between heartbeats.")
    seats = SeatsSerializer()
    license = LicenseSummarySerializer()


class QueuedSerializer(serializers.Serializer):
    """The answer of an acquire that waits in the license's queue (202)."""

    ticket_id = serializers.CharField()
    ticket = serializers.CharField(
        help_text="The ticket token: poll with it (acquire again with `ticket`) every `poll_after` seconds."
    )
    position = serializers.IntegerField(help_text="The ticket's place in the queue, 1 at its head.")
    waiting = serializers.IntegerField(help_text="Tickets in the queue, this one included.")
    poll_after = serializers.IntegerField(help_text="Seconds to wait before polling.")
    expires_at = serializers.DateTimeField(help_text="The ticket leaves the queue then unless polled before.")
    queued_at = serializers.DateTimeField()


def queued_answer(queued: leases.Queued) -> dict:
    ticket = queued.ticket
    return {
        "ticket_id": ticket.ticket_id,
        "ticket": queued.token,
        "position": ticket.position,
        "waiting": ticket.waiting,
        "poll_after": queued.poll_after,
        "expires_at": ticket.expires_at,
        "queued_at": ticket.created_at,
    }


def checkout_answer(checkout: leases.Checkout) -> dict:
    """The one builder of the acquire and borrow answer, in the shape
    CheckoutSerializer documents. A plain dict (DRF's JSON encoder writes the
    datetimes and UUIDs exactly as the serializer fields would): building a
    serializer costs more than the rest of the answer. A test checks this
    builder's output against the serializer."""
    lease, license = checkout.lease, checkout.license
    terms = license.terms
    return {
        "session_id": lease.session_id,
        "overdraft": lease.overdraft,
        "token": checkout.token,
        "token_expires_at": checkout.token_expires_at,
        "expires_at": lease.expires_at,
        "borrowed_until": lease.borrowed_until,
        "heartbeat_interval": terms.heartbeat_interval,
        "seats": {"used": checkout.used, "max": terms.max_seats},
        "license": {
            "id": license.id,
            "expires_at": terms.expires_at,
            "grace_until": terms.grace_until,
            "in_grace": terms.in_grace(),
            "entitlements": terms.entitlements,
        },
    }


class LicenseAcquireApi(TenantAPIView):
    permission_classes = [IsAuthenticated, IsTenantMember, ReadOnlyOrWriter]
    # The caller read at most every CALLER_CACHE_SECONDS (accounts.authentication).
    caller_cache = True

    class AcquireInputSerializer(JsonBodySerializer):
        license_key = serializers.CharField(max_length=64, trim_whitespace=True)
        hardware_fingerprint = serializers.RegexField(
            FINGERPRINT, error_messages={"invalid": "8 to 128 characters of a client-side hash."}
        )
        client_info = serializers.DictField(
            child=serializers.CharField(max_length=200, allow_blank=True),
            required=False,
            default=dict,
            validators=[MaxLengthValidator(20, "At most 20 entries.")],
            help_text="At most 20 entries; keys are 1 to 64 letters, digits, '.', '_' or '-'.",
        )

        queue = serializers.BooleanField(
            required=False,
            default=False,
            help_text="With no seat free, wait in the license's queue: 202 and a ticket instead of 409.",
        )
        ticket = serializers.CharField(
            required=False,
            max_length=1000,
            help_text="The ticket token of an earlier 202: poll the queue with it.",
        )

        def validate_client_info(self, value):
            if len(value) > 20:
                raise serializers.ValidationError("At most 20 entries.")
            if not all(CLIENT_INFO_KEY.match(key) for key in value):
                raise serializers.ValidationError("Keys are 1 to 64 letters, digits, '.', '_' or '-'.")
            return value

    @extend_schema(
        operation_id="licenses_acquire",
        summary="Take a seat of a license",
        description=(
            "Body `license_key`, `hardware_fingerprint` (a client-side hash, 8 to 128 characters) and "
            "optional `client_info`. 201 a new lease; 200 the live lease the caller already holds on "
            "this fingerprint (renewed, with a fresh token). The answer's `token` is the license "
            "token for heartbeat, release and borrow; heartbeat every `heartbeat_interval` seconds. "
            "Past the license's expiry and inside its policy's grace period, acquire still succeeds: "
            "`license.in_grace` is true, `license.grace_until` says until when, and the token "
            "carries `grace_until`."
            "\n\n"
            'With `"queue": true` and no seat free for the caller, 202 and a ticket: the caller '
            "waits in the license's queue (first come, first served, within its group's priority) and "
            "polls every `poll_after` seconds by acquiring again with `ticket` (and the same body). "
            "A poll answers 202 with the new `position`, or 201 with the lease once a seat is the "
            "ticket's. A ticket not polled before its `expires_at` leaves the queue."
            "\n\n"
            "Refusals are checked in this order, the first one answers; what a client should do:\n"
            "\n"
            "| status | code | what to do |\n"
            "| --- | --- | --- |\n"
            "| 400 | `invalid_request` | fix the request (`details.fields` names the fields); do not retry it as is |\n"
            "| 401 | `not_authenticated` | refresh the access token (`/auth/refresh`) or sign in again, then retry |\n"
            "| 403 | `permission_denied` | the caller's role may not acquire (a read-only member); ask a tenant admin |\n"
            "| 404 | `license_not_found` | the key is wrong or not of this tenant; ask for the right key, do not retry |\n"
            "| 403 | `license_suspended` | the license is suspended; tell the user, retry only after an operator resumes it |\n"
            "| 403 | `license_expired` | the license expired (`details.expired_at`, and `details.grace_until` when its grace period has ended too); tell the user, it needs renewing |\n"
            "| 403 | `machine_blocked` | an operator blocked this machine on this license; do not acquire again until unblocked |\n"
            "| 403 | `user_blocked` | an operator blocked this user on this license; do not acquire again until unblocked |\n"
            "| 403 | `fingerprint_not_allowed` | this machine is not one the license is bound to, or its machine limit is reached; ask an operator |\n"
            "| 403 | `not_assigned` | the license's seats are named and none is the caller's; ask a tenant admin for one |\n"
            "| 404 | `ticket_not_found` | the ticket no longer waits (not polled in time, or lost); queue again without it |\n"
            "| 409 | `no_seats_available` | every seat is in use (`details.used`, `details.max`); wait and retry later, queue (`queue`), or ask a colleague to release one |\n"
            "| 409 | `group_limit_reached` | the caller's group holds its most seats (`details.group`, `details.max`); wait for a colleague of the group to release one |\n"
            "| 409 | `queue_full` | no seat is free and the queue holds its most tickets (`details.waiting`, `details.max_tickets`; 0: the license does not queue); retry later |\n"
            "| 413 | `request_too_large` | the body is over the limit; send less |\n"
            "| 429 | `rate_limited` | too many requests; retry after `Retry-After` seconds |\n"
            "| 503 | `service_unavailable` | a dependency is down and nothing changed; retry after `Retry-After` |\n"
        ),
        request=AcquireInputSerializer,
        responses={
            201: CheckoutSerializer,
            200: OpenApiResponse(CheckoutSerializer, description="This machine's existing lease, renewed."),
            202: OpenApiResponse(QueuedSerializer, description="Queued: no seat is free for the caller yet."),
            **error_responses(
                "invalid_request",
                "not_authenticated",
                "permission_denied",
                "license_not_found",
                "license_expired",
                "license_suspended",
                "machine_blocked",
                "user_blocked",
                "fingerprint_not_allowed",
                "not_assigned",
                "ticket_not_found",
                "no_seats_available",
                "group_limit_reached",
                "queue_full",
                "rate_limited",
                "service_unavailable",
            ),
        },
    )
    def post(self, request):
        data = self.AcquireInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        checkout = leases.lease_acquire(
            user=request.user,
            license_key=data.validated_data["license_key"],
            fingerprint=data.validated_data["hardware_fingerprint"],
            client_info=data.validated_data["client_info"],
            queue=data.validated_data["queue"],
            ticket=data.validated_data.get("ticket"),
        )
        if isinstance(checkout, leases.Queued):
            return Response(queued_answer(checkout), status=status.HTTP_202_ACCEPTED)
        return Response(
            checkout_answer(checkout),
            status=status.HTTP_201_CREATED if checkout.created else status.HTTP_200_OK,
        )


def heartbeat_answer(license, lease) -> dict:
    return {
        "session_id": lease.session_id,
        "expires_at": lease.expires_at,
        "heartbeat_interval": license.heartbeat_interval,
    }


def release_answer(lease) -> dict:
    return {"session_id": lease.session_id, "released": True, "linger_until": lease.lingering_until}


class LicenseTokenAPIView(APIView):
    """Heartbeat, release and borrow: the caller is a license token, not a user.

    No request-wide transaction: a heartbeat on the Redis ledger touches no
    database at all, and the services open the token's tenant scope for the
    work that does (audit rows, the database ledger).
    """

    authentication_classes = [LicenseTokenAuthentication]
    permission_classes = [IsAuthenticated]

    def dispatch(self, request, *args, **kwargs):
        with scope_boundary():
            return super().dispatch(request, *args, **kwargs)


class LicenseHeartbeatApi(LicenseTokenAPIView):
    class HeartbeatInputSerializer(JsonBodySerializer):
        idle_seconds = serializers.IntegerField(
            min_value=0,
            max_value=IDLE_SECONDS_MAX,
            required=False,
            help_text=(
                "Seconds since the application's user was last active (the SDK sends it when the "
                "application reports activity). Past the policy's idle timeout the seat ends."
            ),
        )

    class HeartbeatOutputSerializer(serializers.Serializer):
        session_id = serializers.CharField()
        expires_at = serializers.DateTimeField()
        heartbeat_interval = serializers.IntegerField()

    @extend_schema(
        operation_id="licenses_heartbeat",
        summary="Keep a seat: extend the lease",
        description=(
            "Send every `heartbeat_interval` seconds with the license token as `Authorization: "
            "Bearer`; answers the lease's new `expires_at`. 404 `session_not_found`: the lease ended "
            "(expired or released) — acquire again for a new session. 403 `license_suspended`, "
            "`license_expired`, `user_inactive`, `tenant_inactive`, `machine_blocked`, "
            "`user_blocked`: the seat has been released; stop, and do not acquire again until the "
            "cause is lifted. 403 `idle_timeout`: the body's `idle_seconds` passed the policy's idle "
            "timeout and the seat has been released; acquire again when the user is back. 429 and "
            "503: try again after `Retry-After`; the lease lasts its TTL, so a missed beat or two "
            "loses nothing. The body is optional."
        ),
        request=HeartbeatInputSerializer,
        responses={
            200: HeartbeatOutputSerializer,
            **error_responses(
                "not_authenticated",
                "session_not_found",
                "license_suspended",
                "license_expired",
                "machine_blocked",
                "user_blocked",
                "user_inactive",
                "tenant_inactive",
                "not_assigned",
                "idle_timeout",
                "rate_limited",
                "service_unavailable",
            ),
        },
    )
    def post(self, request):
        # The common cases (no body, the SDK's {"idle_seconds": n}) are
        # answered by licenses.fast before this view; any other body is
        # checked here.
        idle_seconds = None
        if request.body:
            data = self.HeartbeatInputSerializer(data=request.data)
            data.is_valid(raise_exception=True)
            idle_seconds = data.validated_data.get("idle_seconds")
        return Response(
            heartbeat_answer(*leases.lease_heartbeat(claims=request.auth, idle_seconds=idle_seconds))
        )


class LicenseReleaseApi(LicenseTokenAPIView):
    class ReleaseOutputSerializer(serializers.Serializer):
        session_id = serializers.CharField()
        released = serializers.BooleanField()
        linger_until = serializers.DateTimeField(
            allow_null=True,
            help_text=(
                "With the policy's linger: the seat stays held for this user on this machine until "
                "then (an acquire from it gets the seat back, others are refused it); null: freed."
            ),
        )

    @extend_schema(
        operation_id="licenses_release",
        summary="Give a seat back",
        description=(
            "Ends the license token's lease and frees its seat at once, or, where the policy sets a "
            "linger, keeps the seat for this user on this machine until `linger_until` (their next "
            "acquire gets it back). Idempotent: an unknown, expired or already released session "
            "frees nothing and answers 404 `session_not_found`, which a client may treat as done."
        ),
        request=None,
        responses={
            200: ReleaseOutputSerializer,
            **error_responses(
                "not_authenticated", "session_not_found", "rate_limited", "service_unavailable"
            ),
        },
    )
    def delete(self, request):
        return Response(release_answer(leases.lease_release(claims=request.auth)))


class LicenseBorrowApi(LicenseTokenAPIView):
    class BorrowInputSerializer(JsonBodySerializer):
        hours = serializers.IntegerField(min_value=1)

    @extend_schema(
        operation_id="licenses_borrow",
        summary="Borrow a seat for offline use",
        description=(
            "Keep the license token's seat for `hours` without heartbeats, up to the license's borrow "
            "limit (longer is 400 `invalid_request` with `details.max_hours`) and never past the "
            "license's expiry; 403 `permission_denied` where the license allows no borrowing; 409 "
            "`borrow_limit_reached` when the license's (or the user's) seats out on borrow at once "
            "are at its limit (`details.scope`, `limit`, `borrowed`): return one first. Answers "
            "like acquire, with a token whose `exp` is the borrow's end."
        ),
        request=BorrowInputSerializer,
        responses={
            200: CheckoutSerializer,
            **error_responses(
                "invalid_request",
                "not_authenticated",
                "permission_denied",
                "session_not_found",
                "license_suspended",
                "license_expired",
                "machine_blocked",
                "user_blocked",
                "user_inactive",
                "tenant_inactive",
                "not_assigned",
                "borrow_limit_reached",
                "rate_limited",
                "service_unavailable",
            ),
        },
    )
    def post(self, request):
        data = self.BorrowInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        checkout = leases.lease_borrow(claims=request.auth, hours=data.validated_data["hours"])
        return Response(checkout_answer(checkout))


class LeaseSerializer(serializers.Serializer):
    session_id = serializers.CharField()
    fingerprint = serializers.CharField()
    user_id = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()
    borrowed_until = serializers.DateTimeField(allow_null=True)


class LicenseStatusSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    key_prefix = serializers.CharField()
    state = serializers.ChoiceField(
        choices=["active", "grace", "suspended", "expired"],
        help_text="`grace`: past `expires_at`, inside the grace period to `grace_until`; seats still granted.",
    )
    expires_at = serializers.DateTimeField(allow_null=True)
    grace_until = serializers.DateTimeField(
        allow_null=True, help_text="The end of the grace period after `expires_at`; null without one."
    )
    policy = serializers.CharField(help_text="The slug of the license's policy.")
    entitlements = serializers.DictField(help_text="Codes of the policy's catalog, each `true`.")
    seats = SeatsSerializer(help_text="Every live lease counts, whoever holds it.")
    leases = LeaseSerializer(
        many=True, help_text="One page of the live leases the caller may see, oldest first."
    )
    leases_next_cursor = serializers.CharField(
        allow_null=True,
        help_text="The next page of this license's leases: pass it as `cursor` with the license named.",
    )


# One DateTimeField for every moment of the status answer: its representation
# (UTC, ISO 8601, `Z`) needs no serializer around it.
_MOMENT = serializers.DateTimeField()


def _moment(value):
    return None if value is None else _MOMENT.to_representation(value)


def status_answer(answer: dict) -> dict:
    """The one builder of the status answer (licenses.selectors.license_status_page's
    figures), exactly as StatusOutputSerializer writes it: the same values,
    built without a serializer per license and per lease (whose fields DRF
    deep-copies for each one, most of what status cost). A test holds it to
    the serializer's output."""
    return {
        "licenses": [
            {
                "id": str(status["id"]),
                "name": status["name"],
                "key_prefix": status["key_prefix"],
                "state": status["state"],
                "expires_at": _moment(status["expires_at"]),
                "grace_until": _moment(status["grace_until"]),
                "policy": status["policy"],
                # A dict of its own, not the cached license's.
                "entitlements": None if status["entitlements"] is None else dict(status["entitlements"]),
                "seats": {"used": status["seats"]["used"], "max": status["seats"]["max"]},
                "leases": [
                    {
                        "session_id": lease.session_id,
                        "fingerprint": lease.fingerprint,
                        "user_id": None if lease.user_id is None else str(lease.user_id),
                        "created_at": _moment(lease.created_at),
                        "expires_at": _moment(lease.expires_at),
                        "borrowed_until": _moment(lease.borrowed_until),
                    }
                    for lease in status["leases"]
                ],
                "leases_next_cursor": status["leases_next_cursor"],
            }
            for status in answer["licenses"]
        ],
        "next_cursor": answer["next_cursor"],
    }


class LicenseStatusApi(TenantAPIView):
    permission_classes = [IsAuthenticated, IsTenantMember]
    caller_cache = True

    class StatusOutputSerializer(serializers.Serializer):
        licenses = LicenseStatusSerializer(many=True)
        next_cursor = serializers.CharField(
            allow_null=True,
            help_text=(
                "The next page of this answer (of the license's leases when one license is named, "
                "else of the licenses); null on the last page."
            ),
        )

    class StatusQuerySerializer(PageQuerySerializer):
        license_id = serializers.UUIDField(required=False, help_text="One license, by id.")
        limit = serializers.IntegerField(
            min_value=1,
            max_value=MAX_LIMIT,
            default=DEFAULT_LIMIT,
            help_text=(
                f"Page size, 1 to {MAX_LIMIT} (default {DEFAULT_LIMIT}): leases when one license is "
                "named, else licenses."
            ),
        )

    @extend_schema(
        operation_id="licenses_status",
        summary="License state, seats in use and live leases",
        description=(
            "One license (`license_id`, or its key in the `X-License-Key` header: a key never goes in "
            "a URL), or a page of the tenant's licenses: `state`, `seats` (`used`, `max`) and a page "
            "of live leases (tenant admins see all, users their own)."
        ),
        parameters=[
            StatusQuerySerializer,
            OpenApiParameter(
                "X-License-Key",
                {"type": "string", "maxLength": 64},
                location=OpenApiParameter.HEADER,
                required=False,
                description="One license, by key: a header, so that keys stay out of URLs and access logs.",
            ),
        ],
        responses={
            200: StatusOutputSerializer,
            **error_responses(
                "invalid_request",
                "not_authenticated",
                "permission_denied",
                "license_not_found",
                "service_unavailable",
            ),
        },
    )
    def get(self, request):
        query = self.StatusQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        answer = selectors.license_status_page(
            user=request.user,
            limit=params["limit"],
            cursor=params.get("cursor"),
            license_id=params.get("license_id"),
            license_key=request.headers.get("X-License-Key"),
        )
        return Response(status_answer(answer))


class LicenseTokenScheme(OpenApiAuthenticationExtension):
    """The OpenAPI name of the license-token bearer scheme."""

    target_class = "licenses.authentication.LicenseTokenAuthentication"
    name = "licenseToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "The license token that acquire or borrow returned.",
        }
