"""The provisioning API: the vendor's own backend makes and changes tenants and
licenses, authenticated by an API key (accounts/apikeys.py).

Who sees what:

- a tenant-scoped key: its request runs in its tenant's scope, exactly as an
  access token's does (the scoped manager and RLS), so another tenant's ids
  are not found (404, as unknown ones), and it cannot make tenants;
- an operator-wide key: no tenant is in scope; its reads of tenants and
  licenses run on the operator path (`operator_scope`, the BYPASSRLS role, as
  the admin site reads), and every write goes through the same services the
  console uses, which open the license's or tenant's own scope on the app
  role, nested in the request's transaction, so a request's writes commit or
  roll back together;
- a tenant admin's access token: reads (GET) of the tenant's own licenses, in
  its scope; nothing else.

The rules live in the services (licenses.services, accounts.services); these
views only read the request, pick the scope and shape the answer.
"""

from __future__ import annotations

from contextlib import nullcontext

from django.db import transaction
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.response import Response

from accounts.authentication import ApiKeyAuthentication, BearerAuthentication
from accounts.models import Role
from accounts.selectors import user_sign_in_candidate_by_email_across_tenants
from accounts.services import invite_create, tenant_set_active, tenant_update
from core.errors import ApplicationError
from core.openapi import error_responses
from core.pagination import PageQuerySerializer, queryset_page
from core.serializers import EmailField, JsonBodySerializer
from licenses import idempotency, services
from licenses.ledger.gateway import seat_ledger
from licenses.models import MAX_SEATS, License, Policy
from licenses.selectors import license_state
from licenses.terms import ENTITLEMENT_CODE, entitlements_from_codes
from tenants.models import Tenant
from tenants.scope import current_tenant_id, operator_scope, tenant_scope
from tenants.services import tenant_create
from tenants.views import ScopedTransactionAPIView

# --- Callers and scope ----------------------------------------------------------------


def _is_api_key(user) -> bool:
    return getattr(user, "is_api_key", False)


def _operator_wide(request) -> bool:
    return _is_api_key(request.user) and request.user.is_operator_wide


class ProvisioningCaller(BasePermission):
    """An API key; or, where the view allows it (`tenant_admins_read`), a
    tenant admin's access token for a read."""

    message = "This endpoint takes an API key (tenant admins may read their licenses)."

    def has_permission(self, request, view) -> bool:
        user = request.user
        if _is_api_key(user):
            return True
        return (
            request.method in SAFE_METHODS
            and getattr(view, "tenant_admins_read", False)
            and getattr(user, "is_active_member", False)
            and getattr(user, "role", None) == Role.TENANT_ADMIN
            and current_tenant_id() is not None
            and user.tenant_id == current_tenant_id()
        )


class ProvisioningAPIView(ScopedTransactionAPIView):
    """The request's transaction and scope boundary, as the tenant-safe base
    view opens them, but without its refusal of a request with no tenant: an
    operator-wide key has none (and takes the operator path for reads)."""

    authentication_classes = [ApiKeyAuthentication, BearerAuthentication]
    permission_classes = [ProvisioningCaller]
    tenant_admins_read = False

    def reads(self):
        """The scope reads run in: the operator path for an operator-wide key,
        else the request's own tenant scope."""
        return operator_scope() if _operator_wide(self.request) else nullcontext()

    def require_operator(self) -> None:
        if not _operator_wide(self.request):
            raise ApplicationError("Only an operator-wide API key may do this.", code="permission_denied")


def _tenant_of(view: ProvisioningAPIView, tenant_id) -> Tenant:
    with view.reads():
        tenant = Tenant.objects.filter(pk=tenant_id, deleted_at__isnull=True).first()
    if tenant is None:
        raise ApplicationError("No such tenant.", code="tenant_not_found")
    return tenant


# Machines one license may bind (the column is a PostgreSQL integer).
MAX_MACHINES = 1_000_000


def UNBINDS_FIELD(**options):
    """A license's override of its policy's monthly cap on a tenant admin's unbinds (issue 16)."""
    return serializers.IntegerField(
        min_value=0,
        max_value=MAX_MACHINES,
        required=False,
        allow_null=True,
        help_text="Overrides the policy's cap on the machines a tenant admin may unbind per calendar "
        "month (UTC) on the dashboard; 0: none; null: the policy's.",
        **options,
    )


def _invalid(field: str, message: str) -> ApplicationError:
    return ApplicationError("The request is not valid.", details={"fields": {field: [message]}})


class PolicyField(serializers.SlugRelatedField):
    """A policy named by its slug (policies are the operator's, global)."""

    def __init__(self, **kwargs):
        super().__init__(slug_field="slug", queryset=Policy.objects.all(), **kwargs)


def CODES_FIELD(**kwargs):
    return serializers.ListField(
        child=serializers.RegexField(ENTITLEMENT_CODE.pattern, max_length=64),
        max_length=200,
        help_text="Codes of the policy's entitlement catalog.",
        **kwargs,
    )


def _license_of(view: ProvisioningAPIView, license_id) -> License:
    with view.reads():
        license = (
            License.objects.filter(pk=license_id, deleted_at__isnull=True).select_related("policy").first()
        )
    if license is None:
        raise ApplicationError("No such license.", code="license_not_found")
    return license


def _idempotent_create(view: ProvisioningAPIView, create) -> Response:
    """Run `create()` (which returns (status, answer)) at most once per
    `Idempotency-Key` of this API key (licenses/idempotency.py)."""
    request = view.request
    key = idempotency.idempotency_key_from(request.headers)
    if key is None or not _is_api_key(request.user):
        code, answer = create()
        return Response(answer, status=code)
    secret = request.headers.get("Authorization", "").split(None, 1)[-1]
    claim = idempotency.idempotency_claim(
        caller_id=request.user.api_key.pk,
        secret=secret,
        key=key,
        digest=idempotency.request_digest(method=request.method, path=request.path, body=request.data),
    )
    if claim.replay is not None:
        code, answer = claim.replay
        return Response(answer, status=code, headers={idempotency.REPLAYED_HEADER: "true"})
    try:
        with transaction.atomic():
            code, answer = create()
    except ApplicationError:
        idempotency.idempotency_finish(claim, status=400, answer={})
        raise
    idempotency.idempotency_finish(claim, status=code, answer=answer)
    return Response(answer, status=code)


IDEMPOTENCY_PARAMETER = OpenApiParameter(
    idempotency.HEADER,
    {"type": "string", "minLength": 1, "maxLength": 255, "pattern": r"^[\x21-\x7e]+$"},
    location=OpenApiParameter.HEADER,
    required=False,
    description=(
        "Makes the create safe to retry: the same key with the same body answers what the first "
        "request answered (`Idempotent-Replayed: true`), creating nothing more; the same key with "
        "another body is 422 `idempotency_key_reused`. Kept per API key for a day."
    ),
)


# --- Answers --------------------------------------------------------------------------


class TenantSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    slug = serializers.CharField()
    state = serializers.ChoiceField(choices=["active", "suspended"])
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


def tenant_answer(tenant: Tenant) -> dict:
    return {
        "id": tenant.id,
        "name": tenant.name,
        "slug": tenant.slug,
        "state": "active" if tenant.is_active else "suspended",
        "created_at": tenant.created_at,
        "updated_at": tenant.updated_at,
    }


class ProvisionedSeatsSerializer(serializers.Serializer):
    used = serializers.IntegerField()
    max = serializers.IntegerField()


class ProvisionedLicenseSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    tenant_id = serializers.UUIDField()
    name = serializers.CharField()
    key_prefix = serializers.CharField(help_text="The key's first characters; the key itself is shown once.")
    state = serializers.ChoiceField(choices=["active", "suspended", "expired"])
    max_seats = serializers.IntegerField()
    seats = ProvisionedSeatsSerializer(help_text="Seats in use now (every live lease).")
    expires_at = serializers.DateTimeField(allow_null=True, help_text="null: perpetual.")
    policy = serializers.CharField(help_text="The slug of the policy the license is made from.")
    entitlements = serializers.DictField(
        child=serializers.BooleanField(), help_text="Codes of the policy's catalog: {code: true}."
    )
    max_machines = serializers.IntegerField(allow_null=True)
    max_unbinds_per_month = serializers.IntegerField(
        allow_null=True,
        help_text="Machines a tenant admin may unbind on the dashboard per calendar month (UTC); "
        "0: none; null: no cap.",
    )
    lease_ttl = serializers.IntegerField()
    offline_grace = serializers.IntegerField()
    borrow_limit_hours = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class LicenseWithKeySerializer(ProvisionedLicenseSerializer):
    license_key = serializers.CharField(help_text="The license key: in this answer only, never again.")


def license_answer(license: License, *, key: str | None = None) -> dict:
    """The license as its effective terms say (an override, or its policy's)."""
    terms = license.terms
    answer = {
        "id": license.id,
        "tenant_id": license.tenant_id,
        "name": license.name,
        "key_prefix": license.key_prefix,
        "state": license_state(license),
        "max_seats": license.max_seats,
        "seats": {
            "used": seat_ledger().used(
                license_id=license.id, tenant_id=license.tenant_id, per_user=terms.seats_per_user
            ),
            "max": license.max_seats,
        },
        "expires_at": license.expires_at,
        "policy": license.policy.slug,
        "entitlements": terms.entitlements,
        "max_machines": terms.max_machines,
        "max_unbinds_per_month": terms.max_unbinds_per_month,
        "lease_ttl": terms.lease_ttl,
        "offline_grace": terms.offline_grace,
        "borrow_limit_hours": terms.borrow_limit_hours,
        "created_at": license.created_at,
        "updated_at": license.updated_at,
    }
    if key is not None:
        answer["license_key"] = key
    return answer


def _plain(answer: dict) -> dict:
    """The answer as JSON types (a replay is stored and read back as JSON)."""
    import json

    from django.core.serializers.json import DjangoJSONEncoder

    return json.loads(json.dumps(answer, cls=DjangoJSONEncoder))


# --- Tenants --------------------------------------------------------------------------

TENANT_ERRORS = ("tenant_not_found",)


class TenantListApi(ProvisioningAPIView):
    class TenantCreateSerializer(JsonBodySerializer):
        name = serializers.CharField(max_length=200)
        slug = serializers.SlugField(
            max_length=80, required=False, help_text="Absent: made from the name (a suffix if taken)."
        )

    class TenantPageSerializer(serializers.Serializer):
        tenants = TenantSerializer(many=True)
        next_cursor = serializers.CharField(allow_null=True)

    @extend_schema(
        operation_id="provisioning_tenants_list",
        summary="List tenants",
        description=(
            "An operator-wide key: every tenant, by creation, paged (`limit`, `cursor`). A "
            "tenant-scoped key: its own tenant only."
        ),
        parameters=[PageQuerySerializer],
        responses={200: TenantPageSerializer},
    )
    def get(self, request):
        query = PageQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        with self.reads():
            page = queryset_page(
                Tenant.objects.filter(deleted_at__isnull=True),
                kind="tenants",
                order=("created_at", "id"),
                cursor=query.validated_data.get("cursor"),
                limit=query.validated_data["limit"],
            )
        return Response({"tenants": [tenant_answer(t) for t in page.items], "next_cursor": page.next_cursor})

    @extend_schema(
        operation_id="provisioning_tenants_create",
        summary="Create a tenant",
        description=(
            "Operator-wide keys only (a tenant-scoped key: 403 `permission_denied`). Body `name` and "
            "optional `slug`; a slug already taken is 400 `invalid_request`. Send an `Idempotency-Key` "
            "to make a retry safe."
        ),
        parameters=[IDEMPOTENCY_PARAMETER],
        request=TenantCreateSerializer,
        responses={201: TenantSerializer, **error_responses("idempotency_key_reused")},
    )
    def post(self, request):
        self.require_operator()
        body = self.TenantCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)

        def create():
            from django.db import IntegrityError

            data = body.validated_data
            try:
                tenant = tenant_create(name=data["name"], slug=data.get("slug"), actor=request.user)
            except IntegrityError:
                raise ApplicationError(
                    "The request is not valid.", details={"fields": {"slug": ["This slug is taken."]}}
                ) from None
            except ValueError:
                raise ApplicationError(
                    "The request is not valid.", details={"fields": {"name": ["A tenant needs a name."]}}
                ) from None
            return status.HTTP_201_CREATED, _plain(tenant_answer(tenant))

        return _idempotent_create(self, create)


class TenantDetailApi(ProvisioningAPIView):
    class TenantUpdateSerializer(JsonBodySerializer):
        name = serializers.CharField(max_length=200)

    @extend_schema(
        operation_id="provisioning_tenants_read",
        summary="Read a tenant",
        description="404 `tenant_not_found` for an unknown id, and for another tenant's with a tenant-scoped key.",
        responses={200: TenantSerializer, **error_responses(*TENANT_ERRORS)},
    )
    def get(self, request, tenant_id):
        return Response(tenant_answer(_tenant_of(self, tenant_id)))

    @extend_schema(
        operation_id="provisioning_tenants_update",
        summary="Rename a tenant",
        description="Body `name`. The slug does not change. Audited as `tenant.updated`.",
        request=TenantUpdateSerializer,
        responses={200: TenantSerializer, **error_responses(*TENANT_ERRORS)},
    )
    def patch(self, request, tenant_id):
        tenant = _tenant_of(self, tenant_id)
        body = self.TenantUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        tenant = tenant_update(tenant=tenant, name=body.validated_data["name"], actor=request.user)
        return Response(tenant_answer(tenant))

    @extend_schema(
        operation_id="provisioning_tenants_delete",
        summary="Delete a tenant (soft)",
        description=(
            "Operator-wide keys only. The tenant is suspended (its members are refused, their "
            "sign-ins end, its API keys answer 403 `tenant_inactive`), each of its licenses is "
            "deleted as `DELETE /provisioning/licenses/{id}` does, and it is gone: reading it is 404 "
            "`tenant_not_found` and lists leave it out. Its audit trail stays (`tenant.deleted`)."
        ),
        request=None,
        responses={204: None, **error_responses(*TENANT_ERRORS)},
    )
    def delete(self, request, tenant_id):
        self.require_operator()
        services.tenant_delete(tenant=_tenant_of(self, tenant_id), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class TenantSuspendApi(ProvisioningAPIView):
    active = False

    @extend_schema(
        operation_id="provisioning_tenants_suspend",
        summary="Suspend a tenant",
        description=(
            "Its members are refused and their sign-ins end; its tenant-scoped API keys answer 403 "
            "`tenant_inactive`. Licenses are left as they are. Operator-wide keys only."
        ),
        request=None,
        responses={200: TenantSerializer, **error_responses(*TENANT_ERRORS)},
    )
    def post(self, request, tenant_id):
        self.require_operator()
        tenant = tenant_set_active(tenant=_tenant_of(self, tenant_id), active=self.active, actor=request.user)
        return Response(tenant_answer(tenant))


class TenantInviteApi(ProvisioningAPIView):
    class TenantInviteInputSerializer(JsonBodySerializer):
        email = EmailField()
        role = serializers.ChoiceField(choices=Role.choices, default=Role.TENANT_ADMIN)

    class TenantInviteCreatedSerializer(serializers.Serializer):
        id = serializers.UUIDField()
        tenant_id = serializers.UUIDField()
        email = serializers.EmailField()
        role = serializers.CharField()
        expires_at = serializers.DateTimeField()
        code = serializers.CharField(help_text="Shown in this answer only; the invite email carries it too.")

    @extend_schema(
        operation_id="provisioning_tenants_invite",
        summary="Invite a tenant's member (its first admin)",
        description=(
            "An invite to this tenant for `email` in `role` (`admin` without one: the tenant's first "
            "admin), emailed to that address once it is saved, with a link to the page that accepts it "
            "(`/dashboard/invite/`). The `code` is in this answer only. An email that already has an "
            "account here is 400 (an email is one account). Operator-wide keys only (a tenant's admins "
            "invite through `POST /invites`). Audited as `invite.created`."
        ),
        request=TenantInviteInputSerializer,
        responses={
            201: TenantInviteCreatedSerializer,
            **error_responses("invalid_request", "permission_denied", *TENANT_ERRORS),
        },
    )
    def post(self, request, tenant_id):
        # Operator-wide keys only: the refusal of an email that has an account
        # is a read across tenants, which a tenant's key must not make.
        self.require_operator()
        tenant = _tenant_of(self, tenant_id)
        body = self.TenantInviteInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        email, role = body.validated_data["email"].strip().lower(), body.validated_data["role"]
        if user_sign_in_candidate_by_email_across_tenants(email=email) is not None:
            raise _invalid("email", "An account with this email already exists.")
        with tenant_scope(tenant.id):
            invite, code = invite_create(created_by=None, tenant=tenant, role=role, email=email)
        answer = {
            "id": invite.id,
            "tenant_id": tenant.id,
            "email": invite.email,
            "role": invite.role,
            "expires_at": invite.expires_at,
            "code": code,
        }
        return Response(self.TenantInviteCreatedSerializer(answer).data, status=status.HTTP_201_CREATED)


class TenantResumeApi(TenantSuspendApi):
    active = True

    @extend_schema(
        operation_id="provisioning_tenants_resume",
        summary="Resume a tenant",
        description="Undo a suspension. Operator-wide keys only.",
        request=None,
        responses={200: TenantSerializer, **error_responses(*TENANT_ERRORS)},
    )
    def post(self, request, tenant_id):
        return super().post(request, tenant_id)


# --- Licenses -------------------------------------------------------------------------

LICENSE_ERRORS = ("license_not_found",)


class FutureDateTimeField(serializers.DateTimeField):
    def to_internal_value(self, value):
        when = super().to_internal_value(value)
        if when <= timezone.now():
            raise serializers.ValidationError("Must be in the future.")
        return when


class LicenseListApi(ProvisioningAPIView):
    tenant_admins_read = True

    class LicenseQuerySerializer(PageQuerySerializer):
        tenant_id = serializers.UUIDField(required=False, help_text="Only this tenant's licenses.")

    class LicenseCreateSerializer(JsonBodySerializer):
        tenant_id = serializers.UUIDField(
            required=False, help_text="Required with an operator-wide key; a tenant-scoped key's own tenant."
        )
        name = serializers.CharField(max_length=200, required=False, default="", allow_blank=True)
        policy = PolicyField(required=False, help_text="A policy's slug; absent: the default policy.")
        max_seats = serializers.IntegerField(
            min_value=1, max_value=MAX_SEATS, required=False, help_text="Absent: the policy's seats."
        )
        expires_at = FutureDateTimeField(
            required=False,
            allow_null=True,
            help_text="null or absent: a trial policy's length from now, else perpetual.",
        )
        entitlements = CODES_FIELD(required=False)
        max_machines = serializers.IntegerField(
            min_value=1, max_value=MAX_MACHINES, required=False, allow_null=True, default=None
        )
        max_unbinds_per_month = UNBINDS_FIELD(default=None)
        lease_ttl = serializers.IntegerField(min_value=30, max_value=86400, required=False)
        offline_grace = serializers.IntegerField(min_value=60, max_value=90 * 86400, required=False)
        borrow_limit_hours = serializers.IntegerField(min_value=0, max_value=24 * 365, required=False)

    class LicensePageSerializer(serializers.Serializer):
        licenses = ProvisionedLicenseSerializer(many=True)
        next_cursor = serializers.CharField(allow_null=True)

    @extend_schema(
        operation_id="provisioning_licenses_list",
        summary="List licenses",
        description=(
            "Licenses by creation, paged (`limit`, `cursor`); deleted ones are left out. An "
            "operator-wide key sees every tenant's (`tenant_id` narrows it); a tenant-scoped key and a "
            "tenant admin's access token, their tenant's."
        ),
        parameters=[LicenseQuerySerializer],
        responses={200: LicensePageSerializer},
    )
    def get(self, request):
        query = self.LicenseQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        with self.reads():
            # Built in the scope it reads in: the scoped manager decides when it is called.
            queryset = License.objects.filter(deleted_at__isnull=True).select_related("policy")
            if "tenant_id" in params:
                queryset = queryset.filter(tenant_id=params["tenant_id"])
            page = queryset_page(
                queryset,
                kind="licenses",
                order=("created_at", "id"),
                cursor=params.get("cursor"),
                limit=params["limit"],
            )
        return Response(
            {"licenses": [license_answer(item) for item in page.items], "next_cursor": page.next_cursor}
        )

    @extend_schema(
        operation_id="provisioning_licenses_create",
        summary="Create a license",
        description=(
            "Optional `policy` (a slug; the default policy without one), `max_seats` (the policy's "
            "without it), `name`, `expires_at` (future; null or absent: a trial policy's "
            "length from now, else perpetual), `entitlements` (codes of the policy's catalog; absent: all of "
            "them), `max_machines`, `max_unbinds_per_month`, `lease_ttl`, `offline_grace`, "
            "`borrow_limit_hours` (overrides of "
            "the policy's; the answer gives the effective values); "
            "`tenant_id` with an operator-wide key (an unknown one, or another tenant's with a "
            "tenant-scoped key: 404 `tenant_not_found`; a suspended tenant may be given licenses, "
            "which serve once it is resumed). 201 with `license_key`: shown in this "
            "answer only. Send an `Idempotency-Key` to make a retry safe."
        ),
        parameters=[IDEMPOTENCY_PARAMETER],
        request=LicenseCreateSerializer,
        responses={
            201: LicenseWithKeySerializer,
            **error_responses("tenant_not_found", "idempotency_key_reused"),
        },
    )
    def post(self, request):
        if not _is_api_key(request.user):
            raise ApplicationError("Creating licenses takes an API key.", code="permission_denied")
        body = self.LicenseCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        tenant_id = data.pop("tenant_id", None) or request.user.tenant_id
        if tenant_id is None:
            raise ApplicationError(
                "The request is not valid.", details={"fields": {"tenant_id": ["This field is required."]}}
            )
        tenant = _tenant_of(self, tenant_id)

        def create():
            try:
                license, key = services.license_create(tenant=tenant, actor=request.user, **data)
            except ValueError as error:  # a code the policy's catalog lacks
                raise _invalid("entitlements", str(error)) from None
            return status.HTTP_201_CREATED, _plain(license_answer(license, key=key))

        return _idempotent_create(self, create)


class LicenseDetailApi(ProvisioningAPIView):
    tenant_admins_read = True

    class LicenseUpdateSerializer(JsonBodySerializer):
        name = serializers.CharField(max_length=200, required=False, allow_blank=True)
        max_seats = serializers.IntegerField(
            min_value=1,
            max_value=MAX_SEATS,
            required=False,
            help_text="Lowering it ends no live lease: new acquires wait until enough are released.",
        )
        expires_at = FutureDateTimeField(required=False, allow_null=True, help_text="null: perpetual.")
        policy = PolicyField(required=False, help_text="Move the license to another policy (its slug).")
        entitlements = CODES_FIELD(required=False)
        max_machines = serializers.IntegerField(
            min_value=1, max_value=MAX_MACHINES, required=False, allow_null=True
        )
        max_unbinds_per_month = UNBINDS_FIELD()

    @extend_schema(
        operation_id="provisioning_licenses_read",
        summary="Read a license",
        description=(
            "Its state, seats in use and fields (never its key). 404 `license_not_found` for an "
            "unknown or deleted id, and for another tenant's to a tenant-scoped caller."
        ),
        responses={200: ProvisionedLicenseSerializer, **error_responses(*LICENSE_ERRORS)},
    )
    def get(self, request, license_id):
        return Response(license_answer(_license_of(self, license_id)))

    @extend_schema(
        operation_id="provisioning_licenses_update",
        summary="Change a license",
        description=(
            "Any of `name`, `max_seats`, `expires_at` (future, or null: perpetual), `policy` (a slug), "
            "`entitlements` (codes of the policy's catalog), `max_machines`, `max_unbinds_per_month`. Audited as `license.updated` (and `license.extended` for the expiry). "
            "Lowering `max_seats` below the seats in use ends no lease (DESIGN.md invariant 6)."
        ),
        request=LicenseUpdateSerializer,
        responses={200: ProvisionedLicenseSerializer, **error_responses(*LICENSE_ERRORS)},
    )
    def patch(self, request, license_id):
        license = _license_of(self, license_id)
        body = self.LicenseUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        # Every check before any change: a refused request changes nothing.
        policy = data.get("policy", license.policy)
        if "entitlements" in data:
            try:
                data["entitlements"] = entitlements_from_codes(policy, data["entitlements"])
            except ValueError as error:
                raise _invalid("entitlements", str(error)) from None
        elif "policy" in data and license.entitlements is not None:
            # Moved to another policy, its codes must be in that catalog too.
            try:
                entitlements_from_codes(policy, list(license.entitlements))
            except ValueError as error:
                raise _invalid("entitlements", f"{error} Send `entitlements` with the move.") from None
        if "expires_at" in data:
            license = services.license_extend(
                license=license, expires_at=data.pop("expires_at"), actor=request.user
            )
        for name, value in data.items():
            setattr(license, name, value)
        license = services.license_update(license=license, fields=list(data), actor=request.user)
        return Response(license_answer(license))

    @extend_schema(
        operation_id="provisioning_licenses_delete",
        summary="Delete a license (soft)",
        description=(
            "It is suspended (live leases end at their next heartbeat) and gone: acquire answers "
            "`license_not_found`, lists leave it out, reading it is 404. Its audit trail stays."
        ),
        request=None,
        responses={204: None, **error_responses(*LICENSE_ERRORS)},
    )
    def delete(self, request, license_id):
        services.license_delete(license=_license_of(self, license_id), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class LicenseSuspendApi(ProvisioningAPIView):
    class SuspendSerializer(JsonBodySerializer):
        reason = serializers.CharField(max_length=200, required=False, default="", allow_blank=True)

    @extend_schema(
        operation_id="provisioning_licenses_suspend",
        summary="Suspend a license",
        description=(
            "New acquires are refused (`license_suspended`); live leases end at their next heartbeat. "
            "Optional body `reason` (audited)."
        ),
        request=SuspendSerializer,
        responses={200: ProvisionedLicenseSerializer, **error_responses(*LICENSE_ERRORS)},
    )
    def post(self, request, license_id):
        license = _license_of(self, license_id)
        body = self.SuspendSerializer(data=request.data or {})
        body.is_valid(raise_exception=True)
        license = services.license_suspend(
            license=license, actor=request.user, reason=body.validated_data["reason"]
        )
        return Response(license_answer(license))


class LicenseResumeApi(ProvisioningAPIView):
    @extend_schema(
        operation_id="provisioning_licenses_resume",
        summary="Resume a license",
        description="Undo a suspension.",
        request=None,
        responses={200: ProvisionedLicenseSerializer, **error_responses(*LICENSE_ERRORS)},
    )
    def post(self, request, license_id):
        license = services.license_resume(license=_license_of(self, license_id), actor=request.user)
        return Response(license_answer(license))


class LicenseRenewApi(ProvisioningAPIView):
    class RenewSerializer(JsonBodySerializer):
        schema_rules = {"oneOf": [{"required": ["days"]}, {"required": ["expires_at"]}]}

        days = serializers.IntegerField(min_value=1, max_value=100 * 366, required=False)
        expires_at = FutureDateTimeField(required=False)

        def validate(self, attrs):
            if ("days" in attrs) == ("expires_at" in attrs):
                raise serializers.ValidationError("Send `days` or `expires_at`, one of them.")
            return attrs

    class RenewAnswerSerializer(ProvisionedLicenseSerializer):
        changed = serializers.BooleanField(
            help_text="false: nothing changed (a perpetual license renewed by days stays perpetual)."
        )

    @extend_schema(
        operation_id="provisioning_licenses_renew",
        summary="Renew a license",
        description=(
            "`days`: added to its current end, or to now if it has ended, as the console's extend; a "
            "perpetual license stays perpetual (`changed: false`). `expires_at`: the new end, in the future."
        ),
        request=RenewSerializer,
        responses={200: RenewAnswerSerializer, **error_responses(*LICENSE_ERRORS)},
    )
    def post(self, request, license_id):
        license = _license_of(self, license_id)
        body = self.RenewSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        if "days" in data:
            license, changed = services.license_extend_by_days(
                license=license, days=data["days"], actor=request.user
            )
        else:
            before = license.expires_at
            license = services.license_extend(
                license=license, expires_at=data["expires_at"], actor=request.user
            )
            changed = license.expires_at != before
        return Response({**license_answer(license), "changed": changed})


class LicenseRegenerateKeyApi(ProvisioningAPIView):
    @extend_schema(
        operation_id="provisioning_licenses_regenerate_key",
        summary="Give a license a new key",
        description=(
            "The old key stops working at once; live leases keep their seats. The new `license_key` "
            "is in this answer only."
        ),
        request=None,
        responses={200: LicenseWithKeySerializer, **error_responses(*LICENSE_ERRORS)},
    )
    def post(self, request, license_id):
        license, key = services.license_regenerate_key(
            license=_license_of(self, license_id), actor=request.user
        )
        return Response(license_answer(license, key=key))
