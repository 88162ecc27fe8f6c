from django.urls import path

from analytics import views

app_name = "dashboard"

urlpatterns = [
    path("", views.overview, name="overview"),
    path("login/", views.sign_in, name="login"),
    path("login/identity/", views.sign_in_identity, name="login-identity"),
    path("logout/", views.sign_out, name="logout"),
    path("password/reset/", views.password_reset, name="password-reset"),
    path("password/reset/confirm/", views.password_reset_set, name="password-reset-confirm"),
    path("invite/", views.invite_accept_page, name="invite"),
    path("invite/registered/", views.invite_registered, name="invite-done"),
    path("licenses/<uuid:license_id>/", views.license_detail, name="license"),
    path("licenses/<uuid:license_id>/release/", views.lease_release, name="lease-release"),
    path("audit/", views.audit_log, name="audit"),
]
