"""The accounts API: one class per operation, thin, each with its own small
serializers. Rules live in accounts.services; roles in accounts.permissions."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import RegexValidator
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from accounts import selectors, services
from accounts.models import Role
from accounts.permissions import TENANT_ADMIN_ONLY, TENANT_MEMBERS
from core.openapi import error_responses
from core.pagination import PageQuerySerializer
from core.serializers import EmailField, JsonBodySerializer
from tenants.views import PublicAPIView, TenantAPIView


class UserOutput(serializers.Serializer):
    id = serializers.UUIDField()
    email = serializers.EmailField()
    role = serializers.CharField()


class TenantOutput(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    slug = serializers.CharField()


class MembershipOutput(serializers.Serializer):
    user = UserOutput()
    tenant = TenantOutput()


class TokenPairOutput(serializers.Serializer):
    access_token = serializers.CharField()
    refresh_token = serializers.CharField()
    expires_in = serializers.IntegerField()
    token_type = serializers.CharField()


class RegisterApi(PublicAPIView):
    class RegisterInputSerializer(JsonBodySerializer):
        # A new tenant or an invite's, never both; a password (with the email)
        # or an Identity Platform ID token.
        schema_rules = {
            "oneOf": [
                {"required": ["tenant_name"], "not": {"required": ["invite_code"]}},
                {"required": ["invite_code"], "not": {"required": ["tenant_name"]}},
            ],
            "anyOf": [{"required": ["email", "password"]}, {"required": ["id_token"]}],
        }
        email = EmailField(required=False, max_length=254)
        # At least the length AUTH_PASSWORD_VALIDATORS asks of a new password.
        password = serializers.CharField(
            required=False,
            trim_whitespace=False,
            min_length=10,
            max_length=256,
            # At least one letter, so never only digits (NumericPasswordValidator), and no
            # NUL character; AUTH_PASSWORD_VALIDATORS also refuse a common one or one like the email.
            validators=[
                RegexValidator(r"^[^\x00]*[A-Za-z][^\x00]*$", "Include at least one letter (A to Z).")
            ],
        )
        id_token = serializers.CharField(required=False, max_length=8192)
        tenant_name = serializers.CharField(required=False, max_length=200)
        invite_code = serializers.CharField(required=False, max_length=200)
        full_name = serializers.CharField(required=False, allow_blank=True, max_length=200)

    @extend_schema(
        summary="Register a user (and a new tenant, or join one by invite)",
        description=(
            "With `tenant_name`, a new tenant whose admin the user is (only while the server's "
            "`REGISTRATION_OPEN` is on; closed, 403 `permission_denied` and nothing is made). With "
            "`invite_code`, a member of the inviting tenant, in the invite's role. Credentials are "
            "`email` + `password`, or an Identity Platform `id_token`."
        ),
        request=RegisterInputSerializer,
        responses={
            201: MembershipOutput,
            **error_responses(
                "invalid_request",
                "not_authenticated",
                "permission_denied",
                "rate_limited",
                "service_unavailable",
            ),
        },
    )
    def post(self, request):
        data = self.RegisterInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user, tenant = services.user_register(**data.validated_data)
        return Response(MembershipOutput({"user": user, "tenant": tenant}).data, status=201)


class LoginApi(PublicAPIView):
    class LoginInputSerializer(JsonBodySerializer):
        schema_rules = {"anyOf": [{"required": ["email", "password"]}, {"required": ["id_token"]}]}
        email = EmailField(required=False, max_length=254)
        password = serializers.CharField(required=False, trim_whitespace=False, max_length=256)
        id_token = serializers.CharField(required=False, max_length=8192)

        def validate(self, attrs):
            if attrs.get("id_token"):
                return attrs
            if not (attrs.get("email") and attrs.get("password")):
                raise serializers.ValidationError("Give email and password, or id_token.")
            return attrs

    @extend_schema(
        summary="Sign in: an access and a refresh token",
        description=(
            "`email` + `password`, or an Identity Platform `id_token`. The access token lasts an "
            "hour, the refresh token seven days. Repeated failed password sign-ins lock the account "
            "for a while (429 `login_throttled`, with `Retry-After`): wait, do not retry at once."
        ),
        request=LoginInputSerializer,
        responses={
            200: TokenPairOutput,
            **error_responses(
                "invalid_request",
                "not_authenticated",
                "permission_denied",
                "rate_limited",
                "login_throttled",
                "service_unavailable",
            ),
        },
    )
    def post(self, request):
        data = self.LoginInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        if values.get("id_token"):
            pair = services.auth_login_id_token(id_token=values["id_token"])
        else:
            pair = services.auth_login_password(email=values["email"], password=values["password"])
        return Response(TokenPairOutput(pair).data)


class RefreshInput(JsonBodySerializer):
    refresh_token = serializers.CharField(max_length=200)


class RefreshApi(PublicAPIView):
    @extend_schema(
        summary="Exchange a refresh token for a new pair",
        description=(
            "Refresh tokens rotate: keep the new one. Reusing an old refresh token revokes its whole "
            "family and ends its access tokens at once (401 `not_authenticated`): sign in again."
        ),
        request=RefreshInput,
        responses={
            200: TokenPairOutput,
            **error_responses("invalid_request", "not_authenticated", "rate_limited", "service_unavailable"),
        },
    )
    def post(self, request):
        data = RefreshInput(data=request.data)
        data.is_valid(raise_exception=True)
        pair = services.auth_refresh(refresh_token=data.validated_data["refresh_token"])
        return Response(TokenPairOutput(pair).data)


class LogoutApi(PublicAPIView):
    @extend_schema(
        summary="Sign out",
        description=("Revokes the refresh token's family and ends its access tokens at once. Answers 204."),
        request=RefreshInput,
        responses={
            204: None,
            **error_responses("invalid_request", "not_authenticated", "rate_limited", "service_unavailable"),
        },
    )
    def post(self, request):
        data = RefreshInput(data=request.data)
        data.is_valid(raise_exception=True)
        services.auth_logout(refresh_token=data.validated_data["refresh_token"])
        return Response(status=204)


class PasswordChangeApi(TenantAPIView):
    """Set a new password. Every sign-in of the user ends, this one too (their
    access and refresh tokens stop working at once); the answer is a new pair."""

    permission_classes = TENANT_MEMBERS

    class PasswordChangeInputSerializer(serializers.Serializer):
        current_password = serializers.CharField(trim_whitespace=False, max_length=256)
        new_password = serializers.CharField(trim_whitespace=False, max_length=256)

    @extend_schema(
        operation_id="auth_password_change",
        summary="Change the caller's password",
        description=(
            "Set a new password. Every sign-in of the user ends, this one too (their access and "
            "refresh tokens stop working at once); the answer is a new pair, like login's. A wrong "
            "`current_password` or a refused new password is 400 `invalid_request` naming the field."
        ),
        request=PasswordChangeInputSerializer,
        responses={
            200: TokenPairOutput,
            **error_responses("invalid_request", "not_authenticated", "permission_denied", "rate_limited"),
        },
    )
    def post(self, request):
        data = self.PasswordChangeInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        pair = services.auth_password_change(user=request.user, **data.validated_data)
        return Response(TokenPairOutput(pair).data)


class MeApi(TenantAPIView):
    permission_classes = TENANT_MEMBERS

    @extend_schema(
        summary="The caller and their tenant",
        description=("The signed-in user (`id`, `email`, `role`) and their tenant (`id`, `name`, `slug`)."),
        responses={
            200: MembershipOutput,
            **error_responses("not_authenticated", "permission_denied", "rate_limited"),
        },
    )
    def get(self, request):
        return Response(MembershipOutput({"user": request.user, "tenant": request.user.tenant}).data)


class InviteOutput(serializers.Serializer):
    id = serializers.UUIDField()
    role = serializers.CharField()
    email = serializers.EmailField(allow_blank=True, help_text="Empty when any email may redeem it.")
    status = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()
    used_at = serializers.DateTimeField(allow_null=True)
    revoked_at = serializers.DateTimeField(allow_null=True)

    def get_status(self, invite) -> str:
        return invite.status()


class InvitesApi(TenantAPIView):
    """GET lists the tenant's invites; POST makes one (its code is shown once)."""

    permission_classes = TENANT_ADMIN_ONLY

    class InviteInputSerializer(JsonBodySerializer):
        role = serializers.ChoiceField(choices=Role.choices, default=Role.USER)
        email = EmailField(required=False, allow_blank=True)
        expires_in_hours = serializers.IntegerField(required=False, min_value=1, max_value=30 * 24)

    class InviteCreatedOutput(InviteOutput):
        code = serializers.CharField()

    @extend_schema(
        operation_id="invites_list",
        summary="List the tenant's invites",
        description=(
            "A page of the tenant's invites, newest first, with their status; codes are never shown "
            "again. Tenant admins only."
        ),
        parameters=[PageQuerySerializer],
        responses={
            200: inline_serializer(
                "InviteList",
                {
                    "results": InviteOutput(many=True),
                    "next_cursor": serializers.CharField(allow_null=True),
                },
            ),
            **error_responses("invalid_request", "not_authenticated", "permission_denied", "rate_limited"),
        },
    )
    def get(self, request):
        query = PageQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        page = selectors.invite_page(
            cursor=query.validated_data.get("cursor"), limit=query.validated_data["limit"]
        )
        return Response(
            {"results": InviteOutput(page.items, many=True).data, "next_cursor": page.next_cursor}
        )

    @extend_schema(
        operation_id="invites_create",
        summary="Make an invite code",
        description=(
            "A code that `register` redeems to join this tenant in `role`, optionally only for one "
            "`email`. With an `email`, the code is also emailed to that address (once the invite "
            "is saved; a failed send retries in the background and never fails this request). "
            "The code is never shown again. Tenant admins only."
        ),
        request=InviteInputSerializer,
        responses={
            201: InviteCreatedOutput,
            **error_responses("invalid_request", "not_authenticated", "permission_denied", "rate_limited"),
        },
    )
    def post(self, request):
        data = self.InviteInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        invite, code = services.invite_create(
            created_by=request.user,
            role=values["role"],
            email=values.get("email", ""),
            lifetime_hours=values.get("expires_in_hours") or settings.INVITE_LIFETIME_HOURS,
        )
        invite.code = code
        return Response(self.InviteCreatedOutput(invite).data, status=201)


class InviteDetailApi(TenantAPIView):
    """GET shows one invite; DELETE withdraws it (a used invite stays as it was).
    A withdrawn invite is gone from here (404), as a DELETE promises; the list
    still shows it, as revoked."""

    permission_classes = TENANT_ADMIN_ONLY

    def _invite(self, invite_id):
        invite = selectors.invite_get(invite_id=invite_id)
        if invite is None or invite.revoked_at is not None:
            raise NotFound("No such invite.")
        return invite

    @extend_schema(
        operation_id="invites_retrieve",
        summary="One invite",
        description=(
            "One invite and its status (its code is never shown again); a withdrawn invite is 404. "
            "Tenant admins only."
        ),
        responses={
            200: InviteOutput,
            **error_responses("not_authenticated", "permission_denied", "not_found", "rate_limited"),
        },
    )
    def get(self, request, invite_id):
        return Response(InviteOutput(self._invite(invite_id)).data)

    @extend_schema(
        operation_id="invites_revoke",
        summary="Withdraw an invite",
        description=(
            "The invite can no longer be redeemed (a used invite stays as it was) and is 404 here "
            "afterwards; the list still shows it, as revoked. Tenant admins only."
        ),
        responses={
            204: None,
            **error_responses("not_authenticated", "permission_denied", "not_found", "rate_limited"),
        },
    )
    def delete(self, request, invite_id):
        services.invite_revoke(invite=self._invite(invite_id), actor=request.user)
        return Response(status=204)


# --- password reset (issue 15: email) ----------------------------------------------------------


class PasswordResetApi(PublicAPIView):
    class PasswordResetInputSerializer(JsonBodySerializer):
        email = EmailField(max_length=254)

    @extend_schema(
        operation_id="auth_password_reset",
        summary="Email a password reset token",
        description=(
            "Always 202, whether or not the email has an account: an active member with a password "
            "is emailed a link to the dashboard's page that sets a new password; its query carries "
            "the `uid` and `token` that `password/reset/confirm` takes, good for "
            "`PASSWORD_RESET_TIMEOUT` seconds and once. Nobody else is emailed."
        ),
        request=PasswordResetInputSerializer,
        responses={
            202: None,
            **error_responses("invalid_request", "rate_limited"),
        },
    )
    def post(self, request):
        data = self.PasswordResetInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.password_reset_request(email=data.validated_data["email"])
        return Response(status=202)


class PasswordResetConfirmApi(PublicAPIView):
    class PasswordResetConfirmInputSerializer(JsonBodySerializer):
        uid = serializers.CharField(max_length=64)
        token = serializers.CharField(max_length=128)
        new_password = serializers.CharField(trim_whitespace=False, max_length=256)

    @extend_schema(
        operation_id="auth_password_reset_confirm",
        summary="Set a new password with a reset token",
        description=(
            "Sets the password of the user the emailed `uid` and `token` name, and ends every "
            "sign-in of that user (their access and refresh tokens stop working); sign in anew. "
            "An unknown `uid` or a bad, used or expired `token` is 401 `not_authenticated` (one "
            "answer for all), and counts as a failed sign-in of the account: the sign-in throttle "
            "applies (429 `login_throttled`). A refused new password is 400 naming `new_password`."
        ),
        request=PasswordResetConfirmInputSerializer,
        responses={
            204: None,
            **error_responses(
                "invalid_request", "not_authenticated", "permission_denied", "rate_limited", "login_throttled"
            ),
        },
    )
    def post(self, request):
        data = self.PasswordResetConfirmInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.password_reset_confirm(**data.validated_data)
        return Response(status=204)
