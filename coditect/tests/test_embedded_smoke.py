"""The embedded default, started as `make run` starts it, with no settings."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_make_run_serves_health_on_the_embedded_default(tmp_path):
    port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DATABASE", "REDIS", "SEAT_", "SECRET_KEY", "DEBUG", "TEST_DATABASE"))
    }
    env.update(
        PORT=str(port), CODITECT_VAR_DIR=str(tmp_path), PATH=f"{Path(sys.executable).parent}:{env['PATH']}"
    )
    server = subprocess.Popen(
        [str(ROOT / "bin" / "run-embedded")],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    printed = b""
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                    assert response.status == 200
                    break
            except OSError:
                assert server.poll() is None, server.stdout.read().decode()
                assert time.monotonic() < deadline, "the server did not answer /health in 60 s"
                time.sleep(0.3)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=5) as response:
            assert response.status == 200
        assert (tmp_path / "coditect.sqlite3").exists()
        # The script prints the banner once its own probe of /health answers,
        # which may be a moment after ours.
        printed = _read_until(server.stdout, b"curl", seconds=30)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        output = (printed + server.communicate(timeout=20)[0]).decode()
    assert "demo.example" in output and "curl" in output


def _read_until(stream, marker: bytes, *, seconds: float) -> bytes:
    """What `stream` gives until `marker` appears, or `seconds` pass."""
    import selectors

    read = b""
    deadline = time.monotonic() + seconds
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        while marker not in read and time.monotonic() < deadline:
            if selector.select(timeout=max(0.0, deadline - time.monotonic())):
                chunk = os.read(stream.fileno(), 65536)
                if not chunk:
                    break
                read += chunk
    return read
