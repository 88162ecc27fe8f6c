"""`make run` tells the truth: bin/run-embedded's banner names the
configuration it serves with and comes once the server answers, and stopping
the script stops everything it started."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection

from coditect.management.commands.load_demo import describe_configuration
from coditect.testing import free_port

ROOT = Path(__file__).resolve().parents[2]


def session_processes(sid: int) -> list[tuple[int, str]]:
    """Every live process of session `sid` (the script started it: it runs in
    a session of its own), with its command line."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        # fields[0] is the state, [3] the session; a zombie has already exited.
        if int(fields[3]) == sid and fields[0] != "Z":
            found.append((int(entry.name), cmdline.strip()))
    return found


def start_run_embedded(tmp_path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(
            ("DATABASE", "REDIS", "SEAT_", "SECRET_KEY", "DEBUG", "TEST_DATABASE", "CELERY")
        )
    }
    env.update(
        PORT=str(port),
        CODITECT_VAR_DIR=str(tmp_path),
        PATH=f"{Path(sys.executable).parent}:{env['PATH']}",
        GUNICORN_WORKERS="2",
    )
    process = subprocess.Popen(
        [str(ROOT / "bin" / "run-embedded")],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return process, port


def read_lines(process: subprocess.Popen) -> list[str]:
    """The script's output (stdout and stderr), line by line as it comes."""
    lines: list[str] = []

    def read() -> None:
        for raw in process.stdout:
            lines.append(raw.decode(errors="replace").rstrip("\n"))

    threading.Thread(target=read, daemon=True).start()
    return lines


def wait_for_banner(process: subprocess.Popen, lines: list[str]) -> int:
    """The index of the banner's first line, once the whole banner is out."""
    deadline = time.monotonic() + 90
    while not any("hardware_fingerprint" in line for line in lines):
        assert process.poll() is None, "\n".join(lines[-40:])
        assert time.monotonic() < deadline, "no banner in 90 s:\n" + "\n".join(lines[-40:])
        time.sleep(0.2)
    return next(i for i, line in enumerate(lines) if line.startswith("CODITECT License Server on "))


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_stopping_run_embedded_stops_everything_it_started(tmp_path, signum):
    process, port = start_run_embedded(tmp_path)
    lines = read_lines(process)
    try:
        banner = wait_for_banner(process, lines)
        # The banner came once the server had answered /health (gunicorn's
        # access line for it is above the banner), and its URLs answer.
        assert any('"GET /health' in line and '" 200 ' in line for line in lines[:banner]), lines[:banner]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as response:
            assert response.status == 200
        runs_on = next(line for line in lines[banner:] if line.strip().startswith("Runs on:"))
        for part in ("SQLite", "database seat ledger", "no Redis", "no broker", "[the embedded default]"):
            assert part in runs_on

        started = session_processes(process.pid)
        # The script, run_periodic, gunicorn's master and its two workers.
        assert any("run_periodic" in command for _, command in started), started
        assert sum("gunicorn" in command for _, command in started) >= 3, started

        # The signal to the script alone, as Ctrl-C under `make run` (the
        # terminal's foreground group: make and the script) or a supervisor.
        os.kill(process.pid, signum)
        process.wait(timeout=60)
        assert process.returncode == 128 + signum
        assert session_processes(process.pid) == [], "\n".join(lines[-40:])
    finally:
        for pid, _ in session_processes(process.pid):
            os.kill(pid, signal.SIGKILL)
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.embedded
def test_the_banner_names_the_configuration_the_server_runs(settings, db):
    vendor = "SQLite" if connection.vendor == "sqlite" else "PostgreSQL"
    settings.SEAT_LEDGER = "redis"
    settings.REDIS_URL = "redis://:hunter2-not-shown@cache.example:6380/2"
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.CELERY_BROKER_URL = "redis://:hunter2-not-shown@broker.example:6379/0"
    described = describe_configuration()
    assert described.startswith(vendor)
    assert "Redis seat ledger" in described
    assert "Redis at redis://cache.example:6380/2" in described
    assert "broker at redis://broker.example:6379/0" in described and "worker" in described
    assert "hunter2" not in described and "embedded default" not in described

    # A Redis Cluster URL may name several nodes.
    settings.REDIS_URL = "redis+cluster://:hunter2-not-shown@node-a:7001,node-b:7002/0"
    described = describe_configuration()
    assert "redis+cluster://node-a:7001,node-b:7002/0" in described and "hunter2" not in described

    settings.SEAT_LEDGER = "database"
    settings.REDIS_URL = None
    settings.CELERY_TASK_ALWAYS_EAGER = True
    described = describe_configuration()
    assert "database seat ledger, no Redis, no broker" in described
    assert ("[the embedded default]" in described) == (vendor == "SQLite")


@pytest.mark.embedded
def test_load_demo_prints_the_configuration(committed_db, settings, tmp_path):
    settings.DEBUG = True
    settings.VAR_DIR = tmp_path
    out = StringIO()
    call_command("load_demo", stdout=out)
    assert f"Runs on:                  {describe_configuration()}" in out.getvalue()
