from __future__ import annotations

from tenants.scope import operator_scope


class OperatorSiteMiddleware:
    """The admin site is operator work: it runs on the operator database path.

    The path is chosen by the URL configuration, never by anything the client
    sends, and every admin view still requires a staff login.
    """

    def __init__(self, get_response):
        from django.conf import settings

        self.get_response = get_response
        self.prefix = "/" + settings.ADMIN_URL.strip("/") + "/"

    def __call__(self, request):
        if request.path_info.startswith(self.prefix):
            with operator_scope():
                return self.get_response(request)
        return self.get_response(request)
