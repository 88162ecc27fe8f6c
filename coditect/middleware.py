"""Middleware of the whole site that draws on several apps."""

from __future__ import annotations

import re
from urllib.parse import unquote

from django.conf import settings
from django.contrib import messages
from django.http import HttpResponseRedirect

# More of a key than its display prefix (CDT-7K2QF), anywhere in a value.
_KEY_IN = re.compile(r"CDT-[0-9A-Z]{5}-[0-9A-Z]{3}", re.IGNORECASE)


def _carries_a_key(value: str) -> bool:
    # A value may hold an address that holds the key (?next=/admin/...%3Fq%3DCDT-...).
    return bool(_KEY_IN.search(value) or _KEY_IN.search(unquote(unquote(value))))


class KeyOutOfAdminAddressMiddleware:
    """A license key never stays in a console address: a GET (or HEAD) under
    ADMIN_URL whose query carries one anywhere in a value (pasted in any search
    box or filter, the license list's, the audit log's, the tenants', or
    inside a `next` address) is sent back to the same page without it, with a pointer to "Find by license key" (a POST). The key
    is not searched, echoed or logged (the access log redacts it). The API's
    `status?license_key=` is the contract's and is not touched."""

    def __init__(self, get_response):
        self.get_response = get_response
        self.console_prefix = "/" + settings.ADMIN_URL.strip("/") + "/"

    def __call__(self, request):
        if (
            request.method in ("GET", "HEAD")
            and request.path_info.startswith(self.console_prefix)
            and request.GET
        ):
            query = request.GET.copy()
            carrying = [name for name, values in query.lists() if any(_carries_a_key(v) for v in values)]
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
