"""Check 5: the image's entry command, run outside Docker: the Dockerfile's CMD
with production settings, against the test PostgreSQL and Redis, on a free
loopback port. The readiness probe answers, and the production security
behaviour (host check, HTTPS redirect, HSTS, CSP, private /metrics) holds."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connections
from prometheus_client.parser import text_string_to_metric_families

from deploy.tests.production import METRICS_TOKEN, PUBLIC_HOST, production_env
from deploy.tests.tools import DEPLOY, REPO, run


def _image_command() -> list[str]:
    """The Dockerfile's CMD (exec form), with its program taken from this virtualenv."""
    lines = [line for line in (DEPLOY / "Dockerfile").read_text().splitlines() if line.startswith("CMD ")]
    argv = json.loads(lines[-1].removeprefix("CMD "))
    return [str(Path(sys.executable).with_name(argv[0])), *argv[1:]]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


_opener = urllib.request.build_opener(_NoRedirect)


def _get(port: int, path: str, headers: dict | None = None):
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers or {})
    try:
        with _opener.open(request, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


@pytest.fixture
def production_server(django_db_setup, tmp_path):
    if connections["default"].vendor != "postgresql" or not settings.REDIS_URL:
        pytest.skip("needs PostgreSQL and Redis")
    params = connections["default"].settings_dict
    operator = connections["operator"].settings_dict
    host, db_port, name = params.get("HOST") or "127.0.0.1", params.get("PORT") or 5432, params["NAME"]
    port = _free_port()
    env = production_env(
        tmp_path,
        DATABASE_URL=f"postgresql://{params['USER']}@{host}:{db_port}/{name}",
        DATABASE_OPERATOR_URL=f"postgresql://{operator['USER']}@{host}:{db_port}/{name}",
        REDIS_URL=settings.REDIS_URL,
        REDIS_KEY_PREFIX=f"{settings.REDIS_KEY_PREFIX}-entrypoint",
        # What the Downward API gives a pod: the kubelet's probes come to its IP.
        POD_IP="127.0.0.1",
        # The image binds 0.0.0.0:$PORT; a test stays on loopback.
        GUNICORN_BIND=f"127.0.0.1:{port}",
        GUNICORN_WORKERS="2",
        TMPDIR=str(tmp_path),
    )
    # The image's build step, so that the admin's static files are there as in the image.
    run(
        sys.executable, "manage.py", "collectstatic", "--noinput", "-v0",
        cwd=REPO, env={**env, "DEBUG": "1", "SECRET_KEY": "collectstatic-only"}, timeout=120,
    )  # fmt: skip
    log = open(tmp_path / "server.log", "wb")  # the child keeps its own descriptor
    process = subprocess.Popen(_image_command(), cwd=REPO, env=env, stdout=log, stderr=log)
    log.close()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert process.poll() is None, (tmp_path / "server.log").read_text()
            try:
                status, _, _ = _get(port, "/ready")
                if status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        yield port, process, tmp_path
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_the_entry_command_serves_with_production_settings_and_the_readiness_probe_answers(production_server):
    port, process, workdir = production_server

    # The kubelet's probes, addressed to the pod's IP.
    status, _, body = _get(port, "/ready")
    assert status == 200, (workdir / "server.log").read_text()
    assert set(json.loads(body)["checks"]) == {"database", "operator_database", "redis", "migrations"}
    assert _get(port, "/health")[0] == 200

    # A host that is neither the public name nor the pod's IP is refused.
    assert _get(port, "/health", {"Host": "evil.example"})[0] == 400
    # Plain HTTP to the public name is sent to HTTPS (the ingress sets X-Forwarded-Proto).
    status, headers, _ = _get(port, "/api/schema/", {"Host": PUBLIC_HOST})
    assert status == 301
    assert headers["Location"] == f"https://{PUBLIC_HOST}/api/schema/"
    # Over HTTPS the admin login page carries HSTS and the content security policy.
    status, headers, _ = _get(port, "/admin/login/", {"Host": PUBLIC_HOST, "X-Forwarded-Proto": "https"})
    assert status == 200
    assert headers["Strict-Transport-Security"].startswith("max-age=31536000")
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    css = _get(port, "/static/admin/css/base.css", {"Host": PUBLIC_HOST, "X-Forwarded-Proto": "https"})
    assert css[0] == 200

    # Prometheus scrapes the pod directly; the workers' counters add up there.
    for _ in range(6):
        _get(port, "/health")
    status, _, page = _get(port, "/metrics", {"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert status == 200
    samples = [s for family in text_string_to_metric_families(page.decode()) for s in family.samples]
    up = {s.labels["dependency"]: s.value for s in samples if s.name == "coditect_dependency_up"}
    assert up == {"database": 1.0, "redis": 1.0}
    health = [
        s.value
        for s in samples
        if s.name == "django_http_requests_total_by_view_transport_method_total"
        and s.labels["view"] == "health"
    ]
    assert sum(health) >= 7
    # ... and without the token it is served to nobody, through the ingress or not.
    for headers in ({}, {"X-Forwarded-For": "203.0.113.9"}, {"Forwarded": "for=203.0.113.9"}):
        status, _, body = _get(port, "/metrics", headers)
        assert status == 401
        assert json.loads(body)["error"]["code"] == "not_authenticated"

    # SIGTERM (a rolling update) stops it cleanly, and its metrics files go with it.
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=15) == 0
    assert not list(workdir.glob("coditect-prometheus-*"))
    # Nothing went wrong but the refused host: the app logs JSON, gunicorn plain lines.
    for line in (workdir / "server.log").read_text().splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            assert record["level"] not in {"ERROR", "CRITICAL"} or record["logger"] in {
                "django.security.DisallowedHost",
                "django.request",  # the 404 above, logged as a warning or an error by Django
            }, line
        else:
            assert not re.search(r"Traceback|\[ERROR\]|\[CRITICAL\]", line), line
