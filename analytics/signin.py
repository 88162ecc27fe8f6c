"""The dashboard's Identity Platform sign-in page: what the page needs to run
the Firebase Auth web SDK, and the content security policy that lets it.

The SDK is vendored (analytics/static/vendor/firebase/, bin/vendor-frontend)
as the npm package ships its browser modules; `firebase-auth.js` imports the
app module by its gstatic address, so the page's import map points both
addresses at our static files, and no script is fetched from a CDN. Google's
part of the flow is Google's own: the SDK loads Google's iframe library and
opens the sign-in pop-up on the project's auth domain, and it calls
identitytoolkit and securetoken from the page. The policy allows exactly
those on this page (and the import map by its hash); every other page keeps
the site's policy. The ID token the pop-up gives is posted to the server,
which verifies it with firebase-admin (accounts.identity) as the API does.
"""

from __future__ import annotations

import base64
import hashlib
import json

from django.conf import settings
from django.templatetags.static import static

from core.middleware import content_security_policy_widened

FIREBASE_VERSION = "13.2.0"
GSTATIC = f"https://www.gstatic.com/firebasejs/{FIREBASE_VERSION}"
PROVIDER_LABELS = {"google.com": "Google", "github.com": "GitHub"}


def identity_sign_in_enabled() -> bool:
    return bool(settings.IDENTITY_PLATFORM_PROJECT_ID and settings.IDENTITY_PLATFORM_API_KEY)


def identity_sign_in_page() -> tuple[dict | None, str]:
    """The page's Identity Platform context (None when it is not configured)
    and its content security policy ("" to keep the site's)."""
    if not identity_sign_in_enabled():
        return None, ""
    import_map = json.dumps(
        {
            "imports": {
                f"{GSTATIC}/{name}": static(f"vendor/firebase/{FIREBASE_VERSION}/{name}")
                for name in ("firebase-app.js", "firebase-auth.js")
            }
        },
        separators=(",", ":"),
    )
    digest = base64.b64encode(hashlib.sha256(import_map.encode()).digest()).decode()
    auth_domain = settings.IDENTITY_PLATFORM_AUTH_DOMAIN
    policy = content_security_policy_widened(
        {
            "script-src": [f"'sha256-{digest}'", "https://apis.google.com"],
            "connect-src": ["https://identitytoolkit.googleapis.com", "https://securetoken.googleapis.com"],
            "frame-src": [f"https://{auth_domain}"],
        }
    )
    context = {
        # Rendered as it is hashed: the template prints it unescaped (it is
        # JSON of our own static addresses, no user input).
        "import_map": import_map,
        "config": {
            "apiKey": settings.IDENTITY_PLATFORM_API_KEY,
            "authDomain": auth_domain,
            "projectId": settings.IDENTITY_PLATFORM_PROJECT_ID,
        },
        "providers": [
            {"id": provider, "label": PROVIDER_LABELS[provider]}
            for provider in settings.IDENTITY_PLATFORM_PROVIDERS
        ],
    }
    return context, policy
