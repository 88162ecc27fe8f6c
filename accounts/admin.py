from django.contrib import admin, messages
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.core.exceptions import ValidationError

from accounts.models import User
from accounts.services import login_unlock
from accounts.throttle import login_throttle_state
from core.errors import ServiceUnavailable


class ThrottledAdminAuthenticationForm(AdminAuthenticationForm):
    """The admin's sign-in form, saying so when the account is throttled
    (accounts.backends refuses it before any password is checked)."""

    def clean(self):
        try:
            return super().clean()
        except ValidationError:
            if getattr(self.request, "login_busy", False):
                raise ValidationError(
                    "Too many sign-ins at once on this server; try again in a second.", code="login_busy"
                ) from None
            throttled = getattr(self.request, "login_throttled", None)
            if throttled is None:
                raise
            raise ValidationError(
                "Too many failed sign-ins for this account. Try again in %(seconds)s seconds.",
                code="login_throttled",
                params={"seconds": throttled.retry_after},
            ) from None

    def confirm_login_allowed(self, user):
        super().confirm_login_allowed(user)
        if not user.is_operator:
            # Django asks only is_staff. A tenant's member is never an
            # operator, whatever its flags say: the app role can write those
            # (docs/operations.md, "What SQL run as the app role can do").
            raise ValidationError(
                self.error_messages["invalid_login"], code="invalid_login", params={"username": "email"}
            )


def _operators_only(request) -> bool:
    """The admin site is the operators' (staff without a tenant): it runs on
    the operator database path, which sees every tenant."""
    user = request.user
    return bool(user.is_active and getattr(user, "is_operator", False))


admin.site.login_form = ThrottledAdminAuthenticationForm
admin.site.has_permission = _operators_only


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    ordering = ("email",)
    list_display = ("email", "tenant", "role", "is_active", "is_staff", "oauth_provider")
    list_filter = ("role", "is_active", "is_staff", "oauth_provider")
    search_fields = ("email", "full_name", "id")
    readonly_fields = (
        "id",
        "date_joined",
        "last_login",
        "oauth_provider",
        "oauth_subject",
        "sign_in_throttle",
    )
    actions = ["unlock_sign_in"]
    fieldsets = (
        (None, {"fields": ("id", "email", "password", "full_name")}),
        ("Tenant", {"fields": ("tenant", "role")}),
        (
            "Sign-in",
            {"fields": ("oauth_provider", "oauth_subject", "last_login", "date_joined", "sign_in_throttle")},
        ),
        (
            "Operator permissions",
            {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")},
        ),
    )
    add_fieldsets = (
        (None, {"classes": ("wide",), "fields": ("email", "tenant", "role", "password1", "password2")}),
    )

    @admin.display(description="sign-in throttle")
    def sign_in_throttle(self, obj: User) -> str:
        if obj.pk is None:
            return "-"
        try:
            state = login_throttle_state(email=obj.email)
        except ServiceUnavailable:
            return "unknown: the throttle's store does not answer"
        if state.locked_for:
            return f"locked for {state.locked_for} more seconds after {state.failures} failed sign-ins"
        if state.failures:
            return f"{state.failures} failed sign-ins in a row, not locked"
        return "no failed sign-ins"

    @admin.action(description="Unlock sign-in (clear failed sign-ins and any lock)")
    def unlock_sign_in(self, request, queryset):
        try:
            for user in queryset:
                login_unlock(email=user.email, via="admin", operator=request.user)
        except ServiceUnavailable as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return
        self.message_user(request, f"Sign-in unlocked for {len(queryset)} account(s).", messages.SUCCESS)
