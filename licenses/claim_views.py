"""The claim page of a license delivery email (licenses.delivery): GET shows
what the link is for and a button; the POST claims it and shows the new key,
once. The token travels in the query string (GET) and the form body (POST),
never in the path, so no log line carries it (logged paths drop the query)."""

from __future__ import annotations

from django.shortcuts import render
from django.utils.cache import add_never_cache_headers
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from licenses.delivery import license_claim_peek
from licenses.mailing import ClaimRefused, license_claim_redeem

REFUSED = "This link is not valid: it was used already, it expired, or it was never issued."


def _page(request, context: dict, status: int = 200):
    response = render(request, "licenses/claim.html", context, status=status)
    add_never_cache_headers(response)
    response["Referrer-Policy"] = "no-referrer"
    return response


# Exempt from CSRF: the page is sent with `Referrer-Policy: no-referrer` (the
# token is in its address), so a browser's POST from it carries `Origin: null`,
# which Django's origin check refuses. The form's token is itself the
# credential: a forged POST without it claims nothing, and one with it needs no
# victim's browser.
@csrf_exempt
@require_http_methods(["GET", "POST"])
def license_claim_view(request):
    if request.method == "GET":
        token = request.GET.get("t", "")
        claim = license_claim_peek(token=token)
        if claim is None:
            return _page(request, {"refused": REFUSED}, status=404)
        return _page(request, {"claim": claim, "token": token})
    token = request.POST.get("t", "")
    try:
        claim, key = license_claim_redeem(token=token)
    except ClaimRefused:
        return _page(request, {"refused": REFUSED}, status=404)
    return _page(request, {"claimed": claim, "key": key})
