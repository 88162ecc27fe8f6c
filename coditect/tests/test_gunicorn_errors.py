"""What gunicorn answers itself, before Django sees a request (a request line
or a header over its limits): the error shape, never its HTML page."""

from __future__ import annotations

import json
import socket

import pytest

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


def raw_request(server, request: bytes) -> tuple[str, dict[str, str], bytes]:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin1").split("\r\n")
    headers = {
        name.lower(): value.strip() for name, _, value in (line.partition(":") for line in header_lines)
    }
    return status_line, headers, body


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /api/v1/licenses/status?cursor=" + b"A" * 9000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + b"x" * 9000 + b"\r\n\r\n",
        b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        + b"".join(b"X-H%d: 1\r\n" % n for n in range(120))
        + b"\r\n",
        b"NOT-HTTP\r\n\r\n",
    ],
    ids=["long request line", "long header", "too many headers", "not http"],
)
def test_a_request_gunicorn_cannot_read_is_a_400_in_the_error_shape(live_server_process, request_bytes):
    status_line, headers, body = raw_request(live_server_process, request_bytes)
    assert status_line.startswith("HTTP/1.1 400")
    assert headers["content-type"] == "application/json"
    error = json.loads(body)["error"]
    assert error["code"] == "invalid_request" and set(error) == {"code", "message", "details"}
    assert b"AAAA" not in body and b"xxxx" not in body
