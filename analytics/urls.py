from django.urls import path

from analytics import license_views, views

app_name = "dashboard"

urlpatterns = [
    path("", views.overview, name="overview"),
    path("login/", views.sign_in, name="login"),
    path("logout/", views.sign_out, name="logout"),
    path("password/reset/", views.password_reset, name="password-reset"),
    path("password/reset/confirm/", views.password_reset_set, name="password-reset-confirm"),
    path("invite/", views.invite_accept_page, name="invite"),
    path("invite/registered/", views.invite_registered, name="invite-done"),
    path("licenses/<uuid:license_id>/release/", views.lease_release, name="lease-release"),
    path("audit/", views.audit_log, name="audit"),
    # --- the license page (issue 16, "Licenses": analytics/license_views.py) ---
    path("licenses/<uuid:license_id>/", license_views.license_detail, name="license"),
    path("licenses/<uuid:license_id>/key/rotate/", license_views.key_rotate, name="license-key-rotate"),
    path("licenses/<uuid:license_id>/key/<str:token>/", license_views.key_shown, name="license-key"),
    path("licenses/<uuid:license_id>/machines/unbind/", license_views.machine_unbind, name="license-unbind"),
    path("licenses/<uuid:license_id>/blocks/", license_views.block_add, name="license-block"),
    path("licenses/<uuid:license_id>/blocks/remove/", license_views.block_remove, name="license-unblock"),
    path(
        "licenses/<uuid:license_id>/release/confirm/",
        license_views.lease_release_confirm,
        name="lease-release-confirm",
    ),
]
