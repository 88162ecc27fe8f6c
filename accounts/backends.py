"""The admin site's password check, behind the sign-in throttle.

Django's admin signs in through `authenticate()`, not through the password
check of accounts.services that the API and the dashboard share; this backend
puts the same per-account throttle (accounts.throttle) in front of Django's
ModelBackend: a locked account is refused before its password is hashed, a
wrong password counts, a right one ends the run.

Every refusal raises PermissionDenied, which ends `authenticate()`: the
ModelBackend listed after this one (for sessions begun under it) never gets to
check the same password again, unthrottled.
"""

from __future__ import annotations

from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import PermissionDenied

from accounts.models import User
from accounts.services import login_attempt_failed_elsewhere
from accounts.throttle import (
    LoginBusy,
    LoginThrottled,
    login_attempt_begin,
    login_attempt_succeeded,
    login_check_slot,
)

ADMIN_METHOD = "admin"


class ThrottledModelBackend(ModelBackend):
    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is None:
            username = kwargs.get(User.USERNAME_FIELD)
        if username is None or password is None:
            return None
        email = username.strip().lower()
        try:
            with login_check_slot():
                return self._authenticate(request, email, password)
        except LoginBusy:
            if request is not None:
                request.login_busy = True
            raise PermissionDenied from None

    def _authenticate(self, request, email: str, password: str):
        try:
            attempt = login_attempt_begin(email=email)
        except LoginThrottled as throttled:
            if request is not None:
                # The admin's sign-in form says so (accounts.admin).
                request.login_throttled = throttled
            raise PermissionDenied from None
        user = super().authenticate(request, username=email, password=password)
        if user is None:
            login_attempt_failed_elsewhere(email=email, attempt=attempt, method=ADMIN_METHOD)
            raise PermissionDenied
        login_attempt_succeeded(attempt)
        return user
