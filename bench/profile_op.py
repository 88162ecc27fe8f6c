"""Profile one scenario in-process, on the same database and settings as
`bench/run.py`, to see where a request's time goes.

    .venv/bin/python bench/profile_op.py [acquire_release|heartbeat|..._rules|status|baseline]
        [--count 500] [--sort tottime] [--limit 40] [--queries]

It builds the bench database, seeds it as `run.py` does, then calls the WSGI
application itself with the environ gunicorn would hand it (no sockets, no
gunicorn, none of the test client's own work) under cProfile, with CPU time
as the clock. `--queries` prints the SQL statements of
one operation instead.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "scenario",
        nargs="?",
        default="acquire_release",
        choices=[
            "acquire_release",
            "acquire_release_rules",
            "heartbeat",
            "heartbeat_rules",
            "status",
            "baseline",
        ],
    )
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--sort", default="tottime")
    parser.add_argument("--limit", type=int, default=40)
    parser.add_argument("--queries", action="store_true", help="print one operation's SQL instead")
    parser.add_argument("--save", metavar="FILE", help="also write the profile to FILE (pstats)")
    args = parser.parse_args()

    prefix = f"bench-profile-{os.getpid()}"
    with tempfile.TemporaryDirectory() as tmp:
        env = run.server_env(run.make_keys(Path(tmp)), prefix)
        run.prepare_database(env)
        seeded = run.seed(env, churn_seats=16)
        os.environ.update(env)
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "coditect.settings")
        import django

        django.setup()
        try:
            profile(args, seeded)
        finally:
            run.cleanup_redis(prefix)


class WsgiClient:
    """Requests straight to the WSGI application, as gunicorn makes them: an
    environ, a body stream, and the answer's body read to the end."""

    def __init__(self) -> None:
        from django.core.wsgi import get_wsgi_application

        self.application = get_wsgi_application()

    def generic(self, method: str, path: str, data: str | bytes = b"", content_type: str = "", **extra):
        body = data.encode() if isinstance(data, str) else data
        path, _, query = path.partition("?")
        environ = {
            "REQUEST_METHOD": method,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "SCRIPT_NAME": "",
            "SERVER_NAME": "localhost",
            "SERVER_PORT": "80",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1",
            "HTTP_HOST": "localhost",
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": False,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
            "wsgi.version": (1, 0),
            "CONTENT_LENGTH": str(len(body)) if body else "",
            **({"CONTENT_TYPE": content_type} if content_type else {}),
            **extra,
        }
        answer: dict = {}

        def start_response(status, headers, exc_info=None):
            answer["status"] = int(status.split()[0])

        result = self.application(environ, start_response)
        try:
            content = b"".join(result)
        finally:
            result.close()
        return _Answer(answer["status"], content)

    def get(self, path: str, **extra):
        return self.generic("GET", path, **extra)

    def post(self, path: str, data: str | dict = "", content_type: str = "", **extra):
        if isinstance(data, dict):
            data = json.dumps(data)
        return self.generic("POST", path, data, content_type, **extra)

    def delete(self, path: str, **extra):
        return self.generic("DELETE", path, **extra)


class _Answer:
    def __init__(self, status_code: int, content: bytes) -> None:
        self.status_code = status_code
        self.content = content

    def json(self):
        return json.loads(self.content)


def profile(args, seeded: dict[str, str]) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = WsgiClient()
    login = client.post(
        "/api/v1/auth/login",
        {"email": "bench@bench.test", "password": run.PASSWORD},
        content_type="application/json",
    )
    user_auth = {"HTTP_AUTHORIZATION": f"Bearer {login.json()['access_token']}"}
    counter = iter(range(10**9))

    def acquire(key: str, **extra) -> str:
        got = client.post(
            "/api/v1/licenses/acquire",
            json.dumps({"license_key": key, "hardware_fingerprint": f"profile-{next(counter):09d}", **extra}),
            content_type="application/json",
            **user_auth,
        )
        assert got.status_code == 201, got.content
        return got.json()["token"]

    beat_token = acquire(seeded["beat_key"])
    beat_rules_token = acquire(seeded["beat_rules_key"])

    def acquire_release(key: str = seeded["churn_key"], **extra) -> None:
        token = acquire(key, **extra)
        got = client.delete("/api/v1/licenses/release", HTTP_AUTHORIZATION=f"Bearer {token}")
        assert got.status_code == 200, got.content

    def acquire_release_rules() -> None:
        # As run.py's "rules on": every floating rule, and the queue asked for.
        acquire_release(seeded["churn_rules_key"], queue=True)

    def heartbeat() -> None:
        got = client.generic("POST", "/api/v1/licenses/heartbeat", HTTP_AUTHORIZATION=f"Bearer {beat_token}")
        assert got.status_code == 200, got.content

    def heartbeat_rules() -> None:
        got = client.post(
            "/api/v1/licenses/heartbeat",
            json.dumps({"idle_seconds": 5}),
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {beat_rules_token}",
        )
        assert got.status_code == 200, got.content

    def status() -> None:
        got = client.get("/api/v1/licenses/status", HTTP_X_LICENSE_KEY=seeded["churn_key"], **user_auth)
        assert got.status_code == 200, got.content

    def baseline() -> None:
        assert client.get("/health").status_code == 200

    operation = {
        "acquire_release": acquire_release,
        "acquire_release_rules": acquire_release_rules,
        "heartbeat": heartbeat,
        "heartbeat_rules": heartbeat_rules,
        "status": status,
        "baseline": baseline,
    }[args.scenario]
    for _ in range(50):  # warm caches, connections, the key loaders
        operation()

    if args.queries:
        with CaptureQueriesContext(connection) as captured:
            operation()
        for query in captured.captured_queries:
            print(query["sql"][:300])
        print(f"{len(captured.captured_queries)} statements")
        return

    started = time.process_time()
    for _ in range(args.count):
        operation()
    plain = (time.process_time() - started) / args.count * 1000
    profiler = cProfile.Profile(time.process_time)
    profiler.enable()
    for _ in range(args.count):
        operation()
    profiler.disable()
    print(f"{args.scenario}: {plain:.3f} ms of CPU per operation without the profiler")
    pstats.Stats(profiler).sort_stats(args.sort).print_stats(args.limit)
    if args.save:
        profiler.dump_stats(args.save)


if __name__ == "__main__":
    main()
