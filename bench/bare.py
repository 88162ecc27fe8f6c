"""The floor the bench measures against: a bare Django JSON view with no
middleware, no database and no apps, served by the same gunicorn setup as
the server (`gunicorn bare:application --chdir bench`).

It answers `GET /` with `{"status": "ok"}`, as /health does, through nothing
but Django's own WSGI handler and URL resolver: what any Django view costs
before a line of our code runs.

`asgi_application` is the same project for an ASGI server, with `GET /async`
answered by an async view: with `bench/run.py --asgi` it runs on gunicorn
with uvicorn's workers, the most any async view of ours could reach there.
"""

from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="bench-bare-view-not-secret",
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    ROOT_URLCONF=__name__,
    MIDDLEWARE=[],
    INSTALLED_APPS=[],
    DATABASES={},
    USE_TZ=True,
)

from django.core.asgi import get_asgi_application  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.http import JsonResponse  # noqa: E402
from django.urls import path  # noqa: E402


def ok(request):
    return JsonResponse({"status": "ok"})


async def ok_async(request):
    return JsonResponse({"status": "ok"})


urlpatterns = [path("", ok), path("async", ok_async)]
application = get_wsgi_application()
asgi_application = get_asgi_application()
