"""What the logs say about a request: its path without the query string, its
request id on every line (Django's own 4xx and error lines included), and a
503 once, at WARNING. The whole run's log lines are searched for secrets
(coditect.testing.no_secret_in_any_log_line); the searcher is tried here too."""

import ast
import json
import logging
from io import StringIO

import pytest
from django.conf import settings
from django.db import OperationalError

from coditect.testing import LogLeakCatcher
from core.logging import JsonFormatter, RequestIdFilter
from licenses.keys import generate_license_key

pytestmark = pytest.mark.embedded


@pytest.fixture
def json_lines():
    """The lines the console handler would write, as dicts."""
    stream = StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        root.removeHandler(handler)


def test_djangos_line_for_a_4xx_has_the_path_without_its_query_and_the_request_id(client, db, json_lines):
    key = generate_license_key()
    response = client.get(
        f"/api/v1/no-such-endpoint?license_key={key}&token=abc", headers={"X-Request-ID": "rid-404"}
    )
    assert response.status_code == 404
    [line] = [line for line in json_lines() if line["logger"] == "django.request"]
    assert line["request_id"] == "rid-404"
    assert line["path"] == "/api/v1/no-such-endpoint"
    assert "?" not in json.dumps(line) and key not in json.dumps(line)


def test_a_503_is_logged_once_at_warning_with_its_request_id(admin, json_lines, monkeypatch):
    from licenses.apis import LicenseStatusApi

    def database_gone(self, request):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(LicenseStatusApi, "get", database_gone)
    response = admin.client.get("/api/v1/licenses/status?license_key=x", headers={"X-Request-ID": "rid-503"})
    assert response.status_code == 503
    lines = [line for line in json_lines() if line["request_id"] == "rid-503"]
    assert [line["level"] for line in lines] == ["WARNING"], lines
    assert lines[0]["path"] == "/api/v1/licenses/status"
    assert lines[0]["status_code"] == 503
    assert lines[0]["error"] == "OperationalError"


def test_an_error_line_carries_the_request_id_and_no_query(admin, json_lines, monkeypatch):
    from licenses.apis import LicenseStatusApi

    def bug(self, request):
        raise RuntimeError("a bug")

    monkeypatch.setattr(LicenseStatusApi, "get", bug)
    admin.client.raise_request_exception = False
    response = admin.client.get(
        "/api/v1/licenses/status?password=hunter22", headers={"X-Request-ID": "rid-500"}
    )
    assert response.status_code == 500
    [line] = [line for line in json_lines() if line["logger"] == "django.request"]
    assert line["level"] == "ERROR"
    assert line["request_id"] == "rid-500"
    assert line["path"] == "/api/v1/licenses/status"
    assert "hunter22" not in json.dumps(line)


def test_the_development_servers_request_line_loses_its_query():
    record = logging.makeLogRecord(
        {
            "name": "django.server",
            "msg": '"%s" %s %s',
            "args": ("GET /x?license_key=abc HTTP/1.1", "404", "0"),
        }
    )
    RequestIdFilter().filter(record)
    assert record.getMessage() == '"GET /x HTTP/1.1" 404 0'


def test_gunicorns_access_line_has_the_path_without_the_query_and_the_request_id():
    # Read, not run: importing the file would put this process in multiprocess mode.
    source = (settings.BASE_DIR / "deploy" / "gunicorn.conf.py").read_text()
    [assignment] = [
        node
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "access_log_format"
    ]
    default = assignment.value.args[1].value
    assert "%(U)s" in default and "%(r)s" not in default
    assert "%(f)s" not in default  # a referrer may carry a query
    assert "%({x-request-id}o)s" in default


@pytest.mark.parametrize(
    "message",
    [
        "acquire for CDT-7K2QF-M9XAD-P4R8T-WJ6NB-E3HVC",
        "token eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ1c2VyIn0.c2ln",
        "login with password=hunter22",
        "Not Found: /api/v1/licenses/status?license_key=abc",
    ],
)
def test_the_run_wide_log_search_catches_each_kind_of_secret(message):
    catcher = LogLeakCatcher()
    catcher.scan(message)  # a line as a server's log file holds it
    assert catcher.leaks


@pytest.mark.parametrize(
    "message",
    ["acquire for CDT-7K2QF-M9XAD-P4R8T-WJ6NB-E3HVC", "token eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ1c2VyIn0.c2ln"],
)
def test_a_line_is_written_with_key_and_token_shapes_redacted(message):
    catcher = LogLeakCatcher()
    catcher.handle(
        logging.makeLogRecord({"name": "t", "msg": message, "levelno": 30, "levelname": "WARNING"})
    )
    assert catcher.lines == 1 and catcher.leaks == []


def test_the_run_wide_log_search_lets_ordinary_lines_pass():
    catcher = LogLeakCatcher()
    for message in ("license CDT-7K2QF acquired", "password login is off", "GET /api/v1/licenses/status"):
        catcher.handle(
            logging.makeLogRecord({"name": "t", "msg": message, "levelno": 20, "levelname": "INFO"})
        )
    assert catcher.leaks == []


def test_a_key_pasted_into_a_path_and_a_key_shaped_request_id_reach_no_line(client, db, json_lines):
    key = generate_license_key()
    response = client.get(f"/api/v1/licenses/{key}/status", headers={"X-Request-ID": key})
    assert response.status_code == 404
    assert response["X-Request-ID"] != key, "a client's id shaped like a secret is not taken"
    lines = json_lines()
    assert lines and all(key not in json.dumps(line) for line in lines)
    assert any("[redacted]" in json.dumps(line) for line in lines)


def test_gunicorns_access_line_redacts_a_key_in_the_path():
    from datetime import timedelta
    from pathlib import Path
    from types import SimpleNamespace

    # The one function, not the file (importing it would put this process in multiprocess mode).
    source = (settings.BASE_DIR / "deploy" / "gunicorn.conf.py").read_text()
    [function] = [
        node
        for node in ast.parse(source).body
        if isinstance(node, ast.FunctionDef) and node.name == "_redacting_logger_class"
    ]
    namespace = {"Path": Path, "__file__": str(settings.BASE_DIR / "deploy" / "gunicorn.conf.py")}
    exec(compile(ast.Module(body=[function], type_ignores=[]), "gunicorn.conf.py", "exec"), namespace)
    logger_class = namespace["_redacting_logger_class"]()
    key = generate_license_key()
    from gunicorn.config import Config

    logger = logger_class(Config())
    request = SimpleNamespace(headers=[])
    response = SimpleNamespace(status="404 Not Found", headers=[], sent=0)
    environ = {
        "REMOTE_ADDR": "127.0.0.1",
        "REQUEST_METHOD": "GET",
        "PATH_INFO": f"/api/v1/{key}",
        "RAW_URI": f"/api/v1/{key}",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_REFERER": f"https://example.test/{key}",
    }
    atoms = logger.atoms(response, request, environ, timedelta(milliseconds=3))
    assert all(key not in atoms[name] and "[redacted]" in atoms[name] for name in ("U", "r", "f"))
