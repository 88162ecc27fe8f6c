"""The usage API: GET /api/v1/analytics/usage, for tenant admins."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from accounts.permissions import TENANT_ADMIN_ONLY
from analytics.selectors import series_as_of, usage_period_count, usage_series
from core.openapi import error_responses
from core.pagination import PageQuerySerializer
from licenses.selectors import license_get, license_page
from tenants.views import TenantAPIView

# The longest range one request may ask for, per granularity (in periods).
MAX_PERIODS = {"hour": 31 * 24, "day": 366}
DEFAULT_RANGE = {"hour": timedelta(hours=24), "day": timedelta(days=30)}
# Moments a request may name: far from datetime's own ends, so that the
# default range, flooring and period steps never overflow.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


class UsageQuerySerializer(PageQuerySerializer):
    """`limit` and `cursor` page the licenses; each carries every period of the range."""

    license_id = serializers.UUIDField(
        required=False, help_text="One license; all of the tenant's if omitted."
    )
    # `from` is a Python keyword, hence the class-body locals().
    locals()["from"] = serializers.DateTimeField(
        required=False, help_text="Start (ISO 8601, UTC); default: 24 hours or 30 days before `to`."
    )
    to = serializers.DateTimeField(required=False, help_text="End, exclusive (ISO 8601, UTC); default: now.")
    granularity = serializers.ChoiceField(choices=["hour", "day"], default="day")

    def validate(self, attrs):
        for name in ("from", "to"):
            moment = attrs.get(name)
            if moment is not None and not EARLIEST <= moment < LATEST:
                raise serializers.ValidationError({name: "Must be in the years 1970 to 8999."})
        granularity = attrs["granularity"]
        try:
            end = attrs.get("to") or timezone.now()
            start = attrs.get("from") or end - DEFAULT_RANGE[granularity]
            if start >= end:
                raise serializers.ValidationError({"from": "Must be before `to`."})
            # Counted, not listed: a range far over the cap costs nothing to refuse.
            too_many = usage_period_count(granularity, start, end) > MAX_PERIODS[granularity]
        except (OverflowError, ValueError):
            raise serializers.ValidationError({"from": "Not a usable range of dates."}) from None
        if too_many:
            raise serializers.ValidationError(
                {"from": f"At most {MAX_PERIODS[granularity]} periods of one {granularity} per request."}
            )
        return {**attrs, "from": start, "to": end}


class UsagePeriodSerializer(serializers.Serializer):
    period_start = serializers.DateTimeField()
    peak_seats = serializers.IntegerField(help_text="Most seats held at one instant.")
    acquisitions = serializers.IntegerField(help_text="New leases (renewals are not counted).")
    denials = serializers.IntegerField()
    denials_by_code = serializers.DictField(child=serializers.IntegerField())
    distinct_users = serializers.IntegerField()
    distinct_machines = serializers.IntegerField()
    sessions_ended = serializers.IntegerField(help_text="Leases that ended in the period.")
    session_seconds = serializers.FloatField(help_text="Total length of the leases that ended.")
    avg_session_seconds = serializers.FloatField(allow_null=True)
    overdraft_peak = serializers.IntegerField(
        help_text="Most seats held past the license's seats (its overdraft) at one instant."
    )
    overdraft_seconds = serializers.FloatField(
        help_text="Seat-seconds held past the license's seats within the period (the true-up's measure)."
    )
    queued_acquisitions = serializers.IntegerField(
        help_text="New leases granted after a wait in the license's queue."
    )
    queue_wait_seconds = serializers.FloatField(help_text="Those leases' waits in the queue, in total.")
    queue_wait_max = serializers.FloatField(help_text="The longest of those waits.")


class LicenseUsageSerializer(serializers.Serializer):
    license_id = serializers.UUIDField(source="license.id")
    name = serializers.CharField(source="license.name")
    key_prefix = serializers.CharField(source="license.key_prefix")
    max_seats = serializers.IntegerField(source="license.max_seats")
    as_of = serializers.DateTimeField(
        allow_null=True,
        help_text="When this license's figures were last rolled up: activity after it is not counted yet. "
        "Null when they never were.",
    )
    periods = UsagePeriodSerializer(many=True)


class UsageSerializer(serializers.Serializer):
    granularity = serializers.CharField()
    locals()["from"] = serializers.DateTimeField()
    to = serializers.DateTimeField()
    as_of = serializers.DateTimeField(
        allow_null=True,
        help_text="The oldest `as_of` of the licenses in this answer: every figure counts activity up to "
        "at least this moment. Null when a license was never rolled up (or the answer has none).",
    )
    licenses = LicenseUsageSerializer(many=True)
    next_cursor = serializers.CharField(
        allow_null=True, help_text="The next page of licenses; null on the last."
    )


class AnalyticsUsageApi(TenantAPIView):
    permission_classes = TENANT_ADMIN_ONLY

    @extend_schema(
        operation_id="analytics_usage",
        summary="Usage per license per hour or day",
        description=(
            "Peak concurrent seats, acquisitions, denials by code, distinct users and machines, "
            "and session time, per license of the caller's tenant. Periods are UTC hours or days; "
            "a period with no activity is all zeros. Figures are recomputed in the background "
            "every few minutes, so the current period may trail the live seat count: `as_of` "
            "(the answer's, and each license's) says up to when they count activity. For the "
            "seats in use now, read `GET /licenses/status`."
        ),
        parameters=[UsageQuerySerializer],
        responses={
            200: UsageSerializer,
            **error_responses(
                "invalid_request",
                "not_authenticated",
                "permission_denied",
                "license_not_found",
                "rate_limited",
                "service_unavailable",
            ),
        },
    )
    def get(self, request):
        query = UsageQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        if params.get("license_id"):
            licenses, next_cursor = [license_get(license_id=params["license_id"])], None
        else:
            page = license_page(cursor=params.get("cursor"), limit=params["limit"])
            licenses, next_cursor = page.items, page.next_cursor
        series = usage_series(
            granularity=params["granularity"],
            start=params["from"],
            end=params["to"],
            licenses=licenses,
            from_replica=True,
        )
        body = {
            "granularity": params["granularity"],
            "from": params["from"],
            "to": params["to"],
            "as_of": series_as_of(series),
            "licenses": series,
            "next_cursor": next_cursor,
        }
        return Response(UsageSerializer(body).data)
