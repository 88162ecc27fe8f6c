from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin

from accounts.models import User


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    ordering = ("email",)
    list_display = ("email", "tenant", "role", "is_active", "is_staff", "oauth_provider")
    list_filter = ("role", "is_active", "is_staff", "oauth_provider")
    search_fields = ("email", "full_name", "id")
    readonly_fields = ("id", "date_joined", "last_login", "oauth_provider", "oauth_subject")
    fieldsets = (
        (None, {"fields": ("id", "email", "password", "full_name")}),
        ("Tenant", {"fields": ("tenant", "role")}),
        ("Sign-in", {"fields": ("oauth_provider", "oauth_subject", "last_login", "date_joined")}),
        (
            "Operator permissions",
            {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")},
        ),
    )
    add_fieldsets = (
        (None, {"classes": ("wide",), "fields": ("email", "tenant", "role", "password1", "password2")}),
    )
