from django.urls import path

from licenses import apis

urlpatterns = [
    path("acquire", apis.LicenseAcquireApi.as_view(), name="licenses-acquire"),
    path("heartbeat", apis.LicenseHeartbeatApi.as_view(), name="licenses-heartbeat"),
    path("release", apis.LicenseReleaseApi.as_view(), name="licenses-release"),
    path("borrow", apis.LicenseBorrowApi.as_view(), name="licenses-borrow"),
    path("status", apis.LicenseStatusApi.as_view(), name="licenses-status"),
]
