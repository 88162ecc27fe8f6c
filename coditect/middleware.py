"""Middleware of the whole site that draws on several apps."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpResponseRedirect

from licenses.keys import looks_like_a_key

ADMIN_PREFIX = "/admin/"


class KeyOutOfAdminAddressMiddleware:
    """A whole license key never stays in a console address: a GET under
    /admin/ whose query carries one (pasted in any search box or filter, the
    license list's, the audit log's, the tenants') is sent back to the same
    page without it, with a pointer to "Find by license key" (a POST). The key
    is not searched, echoed or logged (the access log redacts it). The API's
    `status?license_key=` is the contract's and is not touched."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.method == "GET" and request.path_info.startswith(ADMIN_PREFIX) and request.GET:
            query = request.GET.copy()
            carrying = [
                name for name, values in query.lists() if any(looks_like_a_key(v.strip()) for v in values)
            ]
            if carrying:
                for name in carrying:
                    del query[name]
                messages.warning(
                    request,
                    "A whole license key does not go in the search box (it would stay in the address, "
                    "the browser's history and logs): paste it in “Find by license key”.",
                )
                return HttpResponseRedirect(f"{request.path}?{query.urlencode()}" if query else request.path)
        return self.get_response(request)
