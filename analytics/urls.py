from django.urls import path

from analytics import usage_views, views

app_name = "dashboard"

urlpatterns = [
    path("", views.overview, name="overview"),
    path("login/", views.sign_in, name="login"),
    path("logout/", views.sign_out, name="logout"),
    path("password/reset/", views.password_reset, name="password-reset"),
    path("password/reset/confirm/", views.password_reset_set, name="password-reset-confirm"),
    path("invite/", views.invite_accept_page, name="invite"),
    path("invite/registered/", views.invite_registered, name="invite-done"),
    path("licenses/<uuid:license_id>/", views.license_detail, name="license"),
    path("licenses/<uuid:license_id>/release/", views.lease_release, name="lease-release"),
    path("audit/", views.audit_log, name="audit"),
    # Usage (issue 16): denials, top users, charts per license, CSV exports, notices.
    path("usage/", usage_views.usage_overview, name="usage"),
    path("usage/usage.csv", usage_views.usage_csv, name="usage-csv"),
    path("usage/audit.csv", usage_views.audit_csv, name="audit-csv"),
    path("licenses/<uuid:license_id>/usage/", usage_views.license_usage, name="license-usage"),
    path(
        "licenses/<uuid:license_id>/notifications/",
        usage_views.license_notifications,
        name="license-notifications",
    ),
]
