from django.urls import path

from accounts import views

# Under /api/v1/auth/.
urlpatterns = [
    path("register", views.RegisterApi.as_view(), name="auth-register"),
    path("login", views.LoginApi.as_view(), name="auth-login"),
    path("refresh", views.RefreshApi.as_view(), name="auth-refresh"),
    path("logout", views.LogoutApi.as_view(), name="auth-logout"),
    path("password", views.PasswordChangeApi.as_view(), name="auth-password"),
    path("password/reset", views.PasswordResetApi.as_view(), name="auth-password-reset"),
    path(
        "password/reset/confirm", views.PasswordResetConfirmApi.as_view(), name="auth-password-reset-confirm"
    ),
    path("me", views.MeApi.as_view(), name="auth-me"),
]

# Under /api/v1/.
invite_urlpatterns = [
    path("invites", views.InvitesApi.as_view(), name="invites"),
    path("invites/<uuid:invite_id>", views.InviteDetailApi.as_view(), name="invite-detail"),
]
