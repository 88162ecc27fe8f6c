from django.contrib import admin, messages
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError

from accounts.models import ApiKey, User
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
admin.site.site_header = "CODITECT console"
admin.site.site_title = "CODITECT console"
admin.site.index_title = "CODITECT console"

# The console gives no rights by group: an operator is staff without a tenant
# (_operators_only), a read-only one has view permissions of its own.
admin.site.unregister(Group)


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
            {"fields": ("is_active", "is_staff", "is_superuser", "user_permissions")},
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


# --- API keys of the provisioning API (issue 15) ------------------------------------

API_KEY_SHOWN_ONCE_SESSION_KEY = "accounts.api_keys_shown_once"
API_KEY_SHOWN_ONCE_SECONDS = 600
_API_KEY_PURPOSE = "coditect.accounts.admin.api-key-shown-once"


def _api_key_sealer(session_key: str, token: str):
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from django.utils.crypto import salted_hmac

    return AESGCM(salted_hmac(_API_KEY_PURPOSE, f"{session_key}:{token}", algorithm="sha256").digest())


def api_key_to_show_once(request, api_key, key: str) -> str:
    """Seal a new key into the operator's session (post/redirect/get, as the
    license console does with license keys); the token of the one page that shows it."""
    import base64
    import os
    import secrets
    import time

    session = request.session
    if session.session_key is None:
        session.save()
    token = secrets.token_urlsafe(18)
    nonce = os.urandom(12)
    sealed = _api_key_sealer(session.session_key, token).encrypt(
        nonce, key.encode(), str(api_key.pk).encode()
    )
    entries = dict(session.get(API_KEY_SHOWN_ONCE_SESSION_KEY, {}))
    now = time.time()
    entries = {k: v for k, v in entries.items() if now - v.get("at", 0) < API_KEY_SHOWN_ONCE_SECONDS}
    entries[token] = {
        "api_key": str(api_key.pk),
        "at": now,
        "sealed": base64.b64encode(nonce + sealed).decode(),
    }
    session[API_KEY_SHOWN_ONCE_SESSION_KEY] = entries
    return token


def api_key_shown_once(request, api_key, token: str) -> tuple[str, str | None]:
    """("show", key) the first time; ("shown", None) after; ("gone", None) for
    an unknown, another key's or a stale token."""
    import base64
    import time

    from cryptography.exceptions import InvalidTag

    session = request.session
    entries = dict(session.get(API_KEY_SHOWN_ONCE_SESSION_KEY, {}))
    entry = entries.get(token)
    if not isinstance(entry, dict) or entry.get("api_key") != str(api_key.pk):
        return "gone", None
    if entry.get("sealed") is None:
        return "shown", None
    entries[token] = {**entry, "sealed": None}
    session[API_KEY_SHOWN_ONCE_SESSION_KEY] = entries
    if time.time() - entry["at"] > API_KEY_SHOWN_ONCE_SECONDS:
        return "gone", None
    raw = base64.b64decode(entry["sealed"])
    try:
        key = _api_key_sealer(session.session_key, token).decrypt(
            raw[:12], raw[12:], str(api_key.pk).encode()
        )
    except InvalidTag:
        return "gone", None
    return "show", key.decode()


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Listed, made (the key shown once) and revoked; never edited or deleted,
    so what a key did stays attributable. Making and revoking are audited by
    their services (`api_key.created`, `api_key.revoked`)."""

    list_display = ("name", "key_prefix", "scope", "created_by", "created_at", "last_used_at", "revoked_at")
    list_filter = (("revoked_at", admin.EmptyFieldListFilter), ("tenant", admin.EmptyFieldListFilter))
    search_fields = ("name", "key_prefix")
    readonly_fields = ("key_prefix", "created_by", "created_at", "last_used_at", "revoked_at", "revoked_by")
    actions = ["revoke_selected"]

    @admin.display(description="scope")
    def scope(self, obj) -> str:
        return f"tenant {obj.tenant}" if obj.tenant_id else "operator-wide"

    def get_fields(self, request, obj=None):
        return ("name", "tenant") if obj is None else ("name", "tenant", *self.readonly_fields)

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else ("name", "tenant", *self.readonly_fields)

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def save_model(self, request, obj, form, change):
        if change:
            return
        from accounts.apikeys import api_key_create

        api_key, key = api_key_create(name=obj.name, tenant=obj.tenant, actor=request.user)
        obj.pk, obj.key_prefix, obj.created_at = api_key.pk, api_key.key_prefix, api_key.created_at
        obj._state.adding = False
        request._api_key_token = api_key_to_show_once(request, api_key, key)

    def response_add(self, request, obj, post_url_continue=None):
        from django.http import HttpResponseRedirect
        from django.urls import reverse

        token = getattr(request, "_api_key_token", None)
        if token is None:
            return super().response_add(request, obj, post_url_continue)
        return HttpResponseRedirect(reverse("admin:accounts_apikey_key", args=[obj.pk, token]), status=303)

    @admin.action(description="Revoke the selected API keys")
    def revoke_selected(self, request, queryset):
        from accounts.apikeys import api_key_revoke

        count = 0
        for api_key in queryset:
            if api_key.revoked_at is None:
                api_key_revoke(api_key=api_key, actor=request.user)
                count += 1
        self.message_user(request, f"Revoked {count} API key(s).", messages.SUCCESS)

    def get_urls(self):
        from django.urls import path

        return [
            path(
                "<path:object_id>/key/<str:token>/",
                self.admin_site.admin_view(self.key_view),
                name="accounts_apikey_key",
            ),
            *super().get_urls(),
        ]

    def key_view(self, request, object_id, token):
        from django.http import Http404
        from django.template.response import TemplateResponse
        from django.urls import reverse

        api_key = self.get_object(request, object_id)
        if api_key is None:
            raise Http404("No such API key.")
        state, key = api_key_shown_once(request, api_key, token)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": api_key,
            "title": {"show": "API key created", "shown": "This key was already shown"}.get(
                state, "This key is no longer available"
            ),
            "state": state,
            "api_key": key,
            "list_url": reverse("admin:accounts_apikey_changelist"),
        }
        response = TemplateResponse(
            request, "admin/accounts/apikey/key_issued.html", context, status=200 if state == "show" else 410
        )
        response["Cache-Control"] = "no-store"
        return response
