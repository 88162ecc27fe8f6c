from django.urls import path

from analytics import license_views, me_views, people_views, report_views, usage_views, views

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
    path("licenses/<uuid:license_id>/release/", views.lease_release, name="lease-release"),
    path("audit/", views.audit_log, name="audit"),
    # People (issue 16): analytics/people_views.py
    path("people/", people_views.people, name="people"),
    path("people/invite/", people_views.people_invite, name="people-invite"),
    path(
        "people/invites/<uuid:invite_id>/resend/",
        people_views.people_invite_resend,
        name="people-invite-resend",
    ),
    path(
        "people/invites/<uuid:invite_id>/revoke/",
        people_views.people_invite_revoke,
        name="people-invite-revoke",
    ),
    path("people/<uuid:user_id>/role/", people_views.people_role, name="people-role"),
    path("people/<uuid:user_id>/deactivate/", people_views.people_deactivate, name="people-deactivate"),
    path("people/<uuid:user_id>/reactivate/", people_views.people_reactivate, name="people-reactivate"),
    # Monthly usage reports: analytics/report_views.py
    path("reports/", report_views.report_list, name="reports"),
    path("reports/<int:report_id>.csv", report_views.report_csv, name="report-csv"),
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
    # --- auditme: a member's own page (analytics/me_views.py) ---
    path("me/", me_views.me, name="me"),
    path("me/licenses/<uuid:license_id>/release/", me_views.me_seat_release, name="me-seat-release"),
    path("me/password/", me_views.me_password_change, name="me-password"),
    path("me/sign-out-everywhere/", me_views.me_sign_out_everywhere, name="me-sign-out-everywhere"),
    # --- the license page (issue 16, "Licenses": analytics/license_views.py) ---
    path("licenses/<uuid:license_id>/", license_views.license_detail, name="license"),
    path("licenses/<uuid:license_id>/key/rotate/", license_views.key_rotate, name="license-key-rotate"),
    path("licenses/<uuid:license_id>/key/<str:token>/", license_views.key_shown, name="license-key"),
    path("licenses/<uuid:license_id>/machines/unbind/", license_views.machine_unbind, name="license-unbind"),
    path("licenses/<uuid:license_id>/seats/give/", license_views.seat_give, name="license-seat-give"),
    path(
        "licenses/<uuid:license_id>/seats/take-back/",
        license_views.seat_take_back,
        name="license-seat-take-back",
    ),
    path("licenses/<uuid:license_id>/groups/", license_views.group_save, name="license-group-save"),
    path(
        "licenses/<uuid:license_id>/groups/remove/", license_views.group_remove, name="license-group-remove"
    ),
    path("licenses/<uuid:license_id>/blocks/", license_views.block_add, name="license-block"),
    path("licenses/<uuid:license_id>/blocks/remove/", license_views.block_remove, name="license-unblock"),
    path(
        "licenses/<uuid:license_id>/release/confirm/",
        license_views.lease_release_confirm,
        name="lease-release-confirm",
    ),
]
