from django.urls import path

from analytics import me_views, views

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
    # --- auditme: a member's own page (analytics/me_views.py) ---
    path("me/", me_views.me, name="me"),
    path("me/licenses/<uuid:license_id>/release/", me_views.me_seat_release, name="me-seat-release"),
    path("me/password/", me_views.me_password_change, name="me-password"),
    path("me/sign-out-everywhere/", me_views.me_sign_out_everywhere, name="me-sign-out-everywhere"),
]
