from django.urls import path

from licenses import apis, fast

urlpatterns = [
    path("acquire", apis.LicenseAcquireApi.as_view(), name="licenses-acquire"),
    path("heartbeat", fast.heartbeat_view, name="licenses-heartbeat"),
    path("release", fast.release_view, name="licenses-release"),
    path("borrow", apis.LicenseBorrowApi.as_view(), name="licenses-borrow"),
    path("status", apis.LicenseStatusApi.as_view(), name="licenses-status"),
]
