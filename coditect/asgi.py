import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "coditect.settings")
application = get_asgi_application()

# The web tier serves the signed key set: without its root key (DEBUG off) it must not start.
from licenses.keyset import keyset_startup_check  # noqa: E402 - needs the app registry

keyset_startup_check()
