"""Gunicorn for the license server: `gunicorn -c deploy/gunicorn.conf.py coditect.wsgi:application`.

The image's entry command (deploy/Dockerfile) and the test that runs it
(deploy/tests/test_entrypoint.py) use this file. Every value can be overridden
from the environment (GUNICORN_*), so a benchmark or an overlay can change
the worker setup without a new image.

Worker setup: sync workers, 2 per CPU the container may use plus one. bench/
measured it against gthread on this code (bench/RESULTS.md): gthread serves
bare requests and heartbeats a little faster, but sync serves acquire and
status 30-100% faster with tighter tails, and the ingress's nginx buffers slow
clients, which is what sync workers need in front of them. The CPU count comes
from the cgroup's quota, not the node's cores: a pod limited to 0.5 CPU on a
16-core node must not start 33 workers in 512 MiB.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from pathlib import Path


def _container_cpus() -> int:
    """CPUs this container may use: the cgroup v2 (or v1) quota, else the machine's."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if quota != "max":
            return max(1, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        pass
    try:
        quota = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        if quota > 0:
            return max(1, math.ceil(quota / period))
    except (OSError, ValueError):
        pass
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


bind = os.environ.get("GUNICORN_BIND", f"0.0.0.0:{os.environ.get('PORT', '8000')}")
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "sync")
workers = int(os.environ.get("GUNICORN_WORKERS", 2 * _container_cpus() + 1))
threads = int(os.environ.get("GUNICORN_THREADS", 1))
# Used by threaded workers only (sync workers close after each response). Longer
# than the ingress controller's upstream keep-alive (60 s), so that nginx, not
# gunicorn, closes an idle connection: no request lost in the race.
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", 75))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", 30))
# Within the pod's terminationGracePeriodSeconds (30 s) after the preStop pause.
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", 20))
# Recycle workers now and then, so that a slow leak never reaches the memory limit.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", 5000))
max_requests_jitter = int(os.environ.get("GUNICORN_MAX_REQUESTS_JITTER", 500))
# The heartbeat file on a memory filesystem: the root filesystem is read-only.
_SHM = "/dev/shm"  # noqa: S108 - gunicorn makes its heartbeat file there with mkstemp
worker_tmp_dir = os.environ.get("GUNICORN_WORKER_TMP_DIR", _SHM if os.path.isdir(_SHM) else None)
# Kubernetes manages the process; no runtime control socket is needed (and no
# home directory is writable to hold one).
control_socket_disable = True
# The app logs JSON itself; gunicorn's access log would duplicate each request.
accesslog = os.environ.get("GUNICORN_ACCESSLOG") or None
# If it is turned on: the path without its query string (%(U)s, not %(r)s: a
# `?license_key=` must not reach a log), no referrer (it may carry one), and the
# request id the app answered with, so a line can be matched with the app's.
access_log_format = os.environ.get(
    "GUNICORN_ACCESS_LOG_FORMAT",
    '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms request_id=%({x-request-id}o)s',
)


def _redacting_logger_class():
    """gunicorn's logger, with anything shaped like a license key or a token
    redacted from access lines (a key pasted into a URL path reaches no log)."""
    import sys

    from gunicorn.glogging import Logger

    # The config is read before the app is imported: the project is not yet on the path.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from core.logging import redact

    class RedactingLogger(Logger):
        def atoms(self, resp, req, environ, request_time):
            atoms = super().atoms(resp, req, environ, request_time)
            for name in ("U", "r", "f", "q"):
                if isinstance(atoms.get(name), str):
                    atoms[name] = redact(atoms[name])
            return atoms

    return RedactingLogger


logger_class = _redacting_logger_class()


def _request_errors_in_the_error_shape() -> None:
    """A request gunicorn cannot read (a request line or header over its
    limits, a malformed line) is answered by gunicorn itself, before Django:
    in the API's error shape, not its HTML page. 400 `invalid_request` (the
    contract has one status per code), or 500 `internal_error`; nothing of
    the request is echoed."""
    import json

    from gunicorn import util

    def write_error(sock, status_int, reason, mesg):
        status, code = (500, "internal_error") if status_int >= 500 else (400, "invalid_request")
        message = f"The request could not be read: {reason.lower()}."
        body = json.dumps({"error": {"code": code, "message": message, "details": {"status": status_int}}})
        head = (
            f"HTTP/1.1 {status} {'Bad Request' if status == 400 else 'Internal Server Error'}\r\n"
            f"Connection: close\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        util.write_nonblock(sock, (head + body).encode("latin1"))

    util.write_error = write_error


_request_errors_in_the_error_shape()
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOGLEVEL", "warning")
proc_name = "coditect"

# Prometheus: each worker is a process, so counters and histograms are kept in
# files that /metrics adds up (prometheus_client's multiprocess mode). The
# directory is this master's own and starts empty.
_metrics_dir_owned = "PROMETHEUS_MULTIPROC_DIR" not in os.environ
if _metrics_dir_owned:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="coditect-prometheus-")


def on_starting(server) -> None:
    directory = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    directory.mkdir(parents=True, exist_ok=True)
    for leftover in directory.glob("*.db"):
        leftover.unlink()


def child_exit(server, worker) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server) -> None:
    if _metrics_dir_owned:
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)


def post_worker_init(worker) -> None:
    """Load the license signing keys once the worker has forked (a gRPC channel
    to KMS must not cross a fork), so that the first heartbeat verifies
    without fetching a public key. If KMS does not answer now, the first call
    that needs the keys tries again. Then log an ERROR if the Redis seat
    ledger's Redis may evict keys (coditect/health.py)."""
    try:
        from licenses.signing import signing_keys

        signing_keys()
    except Exception as exc:  # the worker still serves; /ready and the next call will tell
        worker.log.warning("license signing keys not loaded at start: %s", type(exc).__name__)

    # Once per worker, not in AppConfig.ready: manage.py commands (migrate) run
    # where Redis may be absent, and they hold no seats.
    from coditect.health import eviction_policy_log_at_start

    eviction_policy_log_at_start()
