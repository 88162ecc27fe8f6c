from django.urls import path

from analytics import report_views, views

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
]

# Monthly usage reports (h-reports)
urlpatterns += [
    path("reports/", report_views.report_list, name="reports"),
    path("reports/<int:report_id>.csv", report_views.report_csv, name="report-csv"),
]
