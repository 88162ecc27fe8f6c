"""/api/v1/provisioning/: the provisioning API (licenses/provisioning.py)."""

from django.urls import path

from licenses import provisioning as views

urlpatterns = [
    path("tenants", views.TenantListApi.as_view(), name="provisioning-tenants"),
    path("tenants/<uuid:tenant_id>", views.TenantDetailApi.as_view(), name="provisioning-tenant"),
    path(
        "tenants/<uuid:tenant_id>/suspend",
        views.TenantSuspendApi.as_view(),
        name="provisioning-tenant-suspend",
    ),
    path(
        "tenants/<uuid:tenant_id>/resume", views.TenantResumeApi.as_view(), name="provisioning-tenant-resume"
    ),
    path(
        "tenants/<uuid:tenant_id>/invites",
        views.TenantInviteApi.as_view(),
        name="provisioning-tenant-invites",
    ),
    path("licenses", views.LicenseListApi.as_view(), name="provisioning-licenses"),
    path("licenses/<uuid:license_id>", views.LicenseDetailApi.as_view(), name="provisioning-license"),
    path(
        "licenses/<uuid:license_id>/suspend",
        views.LicenseSuspendApi.as_view(),
        name="provisioning-license-suspend",
    ),
    path(
        "licenses/<uuid:license_id>/resume",
        views.LicenseResumeApi.as_view(),
        name="provisioning-license-resume",
    ),
    path(
        "licenses/<uuid:license_id>/renew", views.LicenseRenewApi.as_view(), name="provisioning-license-renew"
    ),
    path(
        "licenses/<uuid:license_id>/regenerate-key",
        views.LicenseRegenerateKeyApi.as_view(),
        name="provisioning-license-regenerate-key",
    ),
]
