"""Benchmark the license server as production runs it, side by side with a
bare Django JSON view, in one run.

    .venv/bin/python bench/run.py [--duration 10] [--clients 16] [--rate 400]
        [--workers 2] [--threads 1] [--worker-class sync] [--rounds 3]

It builds its own PostgreSQL database and roles (as `make test` does), seeds a
tenant, a user and licenses, starts gunicorn (DEBUG off, PostgreSQL as the app
role, the Redis seat ledger, generated signing keys), and measures:

- baseline: a bare Django JSON view with no middleware, no apps and no
  database (bench/bare.py), on a gunicorn of its own with the same settings:
  the floor, every share is of it;
- /health: our own JSON probe through the server's whole middleware, a
  second reference;
- heartbeat: POST /api/v1/licenses/heartbeat over 1,000 live sessions;
- acquire: POST acquire with a fresh fingerprint on a license of 100,000
  seats (the leases stay live);
- release: DELETE release of the leases that acquire just took;
- acquire+release: POST acquire with a new fingerprint, then DELETE release;
- status: GET /api/v1/licenses/status for one license, and for one with
  20,000 live leases (seeded straight into Redis by the ledger's prelude);
- heartbeat and acquire+release again on licenses with every floating-seat
  rule on (issue 17: overdraft seats, a 1 s linger, an idle timeout the
  heartbeats report against, borrow limits, seats per user, the queue asked
  for on every acquire, two group rules with reservations and a limit),
  side by side with the rules off, for what the rules cost.

Each scenario runs closed-loop (16 clients sending as fast as answers come:
the saturation throughput), then open-loop at --rate operations/s or at
--load of what that closed run reached (latency from each request's due
time). The scenarios take turns for --rounds rounds, so that all meet the same
drift of a shared machine; the median round of each is reported. A checker polls the ledger throughout the
acquire+release runs and counts oversells (live leases above max_seats),
reading Redis directly so that watching costs the server nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import loadgen  # noqa: E402

ADMIN_URL = os.environ.get("BENCH_DATABASE_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
DB_NAME = "coditect_bench"
PASSWORD = "bench-password-not-secret"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_keys(directory: Path) -> dict[str, str]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    paths = {}
    for name in ("license", "auth", "keyset-root"):
        key = ed25519.Ed25519PrivateKey.generate()
        path = directory / f"{name}.pem"
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        paths[name] = str(path)
    return paths


def server_env(keys: dict[str, str], prefix: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE", "REDIS", "SEAT_"))}
    env.update(
        DEBUG="0",
        SECRET_KEY="bench-" + os.urandom(16).hex(),
        ALLOWED_HOSTS="127.0.0.1,localhost",
        SECURE_SSL_REDIRECT="0",
        DATABASE_URL=f"postgresql://coditect_bench_app@127.0.0.1:5432/{DB_NAME}",
        DATABASE_OPERATOR_URL=f"postgresql://coditect_bench_operator@127.0.0.1:5432/{DB_NAME}",
        REDIS_URL=REDIS_URL,
        REDIS_KEY_PREFIX=prefix,
        SEAT_LEDGER="redis",
        LICENSE_SIGNING_KEY_FILE=keys["license"],
        AUTH_SIGNING_KEY_FILE=keys["auth"],
        LICENSE_KEYSET_ROOT_KEY_FILE=keys["keyset-root"],
        # One load generator is one client IP: the per-IP limit would be the
        # thing measured. Limits are measured separately, not here.
        RATE_LIMIT_PER_IP="0",
        RATE_LIMIT_PER_USER="0",
        LOG_LEVEL="WARNING",
    )
    return env


def prepare_database(env: dict[str, str]) -> None:
    from tenants.dbroles import RoleNames, drop_database, ensure_database, ensure_roles

    roles = RoleNames("coditect_bench_owner", "coditect_bench_app", "coditect_bench_operator")
    ensure_roles(ADMIN_URL, roles)
    drop_database(ADMIN_URL, DB_NAME)
    ensure_database(ADMIN_URL, DB_NAME, roles)
    owner_env = dict(env, DATABASE_URL=f"postgresql://coditect_bench_owner@127.0.0.1:5432/{DB_NAME}")
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=owner_env, check=True)


SEED = """
import json
from accounts.models import Role, User
from licenses.services import license_create, license_seat_rules_set
from tenants.scope import tenant_scope
from tenants.services import tenant_create
tenant = tenant_create(name="Bench Co")
with tenant_scope(tenant.id):
    user = User.objects.create_user("bench@bench.test", "%s", tenant=tenant, role=Role.TENANT_ADMIN)
_, beat_key = license_create(tenant=tenant, max_seats=2000, name="heartbeat pool")
_, pool_key = license_create(tenant=tenant, max_seats=100000, name="acquire and release pool")
churn, churn_key = license_create(tenant=tenant, max_seats=%d, name="acquire/release pool")
# Every floating-seat rule on (issue 17). Seats per user: the one bench user
# holds one seat however many machines churn through it, and the 1 s linger
# of each release does not fill the license.
# The queue is on (every acquire asks to queue) and two group rules apply:
# the bench user's group, with a reservation and a limit, and another group
# whose unused reservation the ledger subtracts on every grant.
rules = dict(overdraft_seats=2, linger_seconds=1, idle_timeout=3600, borrow_max_seats=10,
             borrow_max_per_user=5, seat_mode="per_user", queue_max_tickets=100, queue_ticket_ttl=60)
groups = [
    {"name": "bench", "users": [str(user.pk)], "machines": [], "reserve": 2, "max": 900, "priority": 1},
    {"name": "others", "users": [], "machines": ["bench-other-machine"], "reserve": 2, "max": None},
]
beat_rules, beat_rules_key = license_create(tenant=tenant, max_seats=2000, name="heartbeat pool, rules on", **rules)
churn_rules, churn_rules_key = license_create(tenant=tenant, max_seats=churn.max_seats, name="churn, rules on", **rules)
for licensed in (beat_rules, churn_rules):
    license_seat_rules_set(license=licensed, rules=groups)
# Status of a license with 20,000 live leases, seeded straight into Redis by
# the ledger's own prelude (licenses/tests/seeding.py), as acquire writes them.
from licenses.ledger import get_seat_ledger
from licenses.tests.seeding import seed_live_leases
crowd, crowd_key = license_create(tenant=tenant, max_seats=30000, name="20,000 live leases")
crowd_leases = %d
if crowd_leases:
    seed_live_leases(get_seat_ledger("redis"), license_id=crowd.id, tenant_id=tenant.id, count=crowd_leases,
                     user_ids=[str(user.pk)], ttl=4 * 3600)
print(json.dumps({"beat_key": beat_key, "pool_key": pool_key, "churn_key": churn_key, "churn_id": str(churn.id), "churn_max": churn.max_seats,
                  "beat_rules_key": beat_rules_key, "churn_rules_key": churn_rules_key, "crowd_key": crowd_key}))
"""

CROWD_LEASES = 20_000


# The start of a side bench's seed script (bench/growth.py, status_scale.py):
# what it needs to make licenses of the bench tenant and seed live leases
# straight into Redis (licenses/tests/seeding.py).
SEED_LEASES_PRELUDE = """
import json
from licenses.ledger import get_seat_ledger
from licenses.services import license_create
from licenses.tests.seeding import seed_live_leases
from tenants.models import Tenant
from accounts.models import User
from tenants.scope import operator_scope, tenant_scope
with operator_scope():
    tenant = Tenant.objects.get(name="Bench Co")
"""


def shell_json(env: dict[str, str], script: str):
    """Run `script` by `manage.py shell` with the server's settings; the JSON
    its last line printed."""
    out = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", script],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def seed(env: dict[str, str], churn_seats: int, crowd_leases: int = 0) -> dict[str, str]:
    """The bench tenant, user and licenses; `crowd_leases` live leases on the
    license status is measured at scale with (this bench's own run only)."""
    return shell_json(env, SEED % (PASSWORD, churn_seats, crowd_leases))


@contextmanager
def bench_server(name: str, args, script: str) -> Iterator[tuple[int, object]]:
    """For a bench beside this one (bench/growth.py, status_scale.py): a
    database and Redis keys of `name`'s own, seeded as this bench seeds them
    and then by `script` (run by `manage.py shell`), and gunicorn serving
    them. Yields the port and what `script` printed; removes it all after."""
    global DB_NAME
    from tenants.dbroles import drop_database

    prefix = f"bench-{name}-{os.getpid()}"
    # A database of its own: bench/run.py may be running beside this one.
    DB_NAME = f"coditect_bench_{name}_{os.getpid()}"
    with tempfile.TemporaryDirectory() as tmp:
        env = server_env(make_keys(Path(tmp)), prefix)
        prepare_database(env)
        seed(env, churn_seats=16)
        seeded = shell_json(env, script)
        port = free_port()
        server = start_server(env, port, args)
        try:
            yield port, seeded
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
            cleanup_redis(prefix)
            drop_database(ADMIN_URL, DB_NAME)


def post_json(base: str, path: str, body: dict, token: str | None = None) -> dict:
    request = urllib.request.Request(base + path, data=json.dumps(body).encode(), method="POST")
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


ASGI_WORKER = "uvicorn.workers.UvicornWorker"


def _gunicorn(app: str, port: int, args, *, asgi: bool, env: dict[str, str], probe: str, chdir: Path = ROOT):
    """gunicorn serving `app` with the bench's worker settings (`asgi`:
    uvicorn's workers), once `probe` answers 200."""
    command = [
        sys.executable, "-m", "gunicorn", app,
        "--chdir", str(chdir),
        "--bind", f"127.0.0.1:{port}",
        "--workers", str(args.workers),
        "--worker-class", ASGI_WORKER if asgi else args.worker_class,
        "--threads", str(args.threads),
        "--log-level", "warning",
        "--backlog", "2048",
    ]  # fmt: skip
    return _started(subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True), port, probe)


def start_server(env: dict[str, str], port: int, args, asgi: bool = False) -> subprocess.Popen:
    """gunicorn as deploy/ runs it; `asgi`: the ASGI application on uvicorn's
    workers, the rest the same."""
    app = "coditect.asgi:application" if asgi else "coditect.wsgi:application"
    return _gunicorn(app, port, args, asgi=asgi, env=env, probe="/ready")


def start_bare_server(port: int, args, asgi: bool = False) -> subprocess.Popen:
    """The floor: bench/bare.py's view on the same gunicorn settings (`asgi`:
    its ASGI application on uvicorn's workers)."""
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    app = "bare:asgi_application" if asgi else "bare:application"
    return _gunicorn(app, port, args, asgi=asgi, env=env, probe="/", chdir=ROOT / "bench")


def server_arguments(parser: argparse.ArgumentParser) -> None:
    """The gunicorn settings every bench starts its servers with."""
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--worker-class", default="sync")


def _started(server: subprocess.Popen, port: int, probe: str) -> subprocess.Popen:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{probe}", timeout=2) as response:
                if response.status == 200:
                    return server
        except OSError:
            time.sleep(0.3)
    server.kill()
    raise SystemExit("server did not become ready")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument(
        "--rate",
        type=float,
        help="open-loop operations per second (default: --load of each scenario's saturation)",
    )
    parser.add_argument(
        "--load", type=float, default=0.7, help="open-loop rate as a fraction of the closed-loop throughput"
    )
    server_arguments(parser)
    parser.add_argument("--sessions", type=int, default=1000, help="live sessions the heartbeats cycle over")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--only", help="run only the scenarios whose name contains this")
    parser.add_argument(
        "--asgi",
        action="store_true",
        help="also serve the ASGI application on uvicorn workers (same count) and run its scenarios",
    )
    parser.add_argument("--closed-only", action="store_true", help="skip the open-loop runs")
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="closed-loop rounds, the scenarios taking turns (median reported)",
    )
    args = parser.parse_args()

    prefix = f"bench-{os.getpid()}"
    with tempfile.TemporaryDirectory() as tmp:
        keys = make_keys(Path(tmp))
        env = server_env(keys, prefix)
        prepare_database(env)
        seeded = seed(env, churn_seats=args.clients, crowd_leases=CROWD_LEASES)
        port, bare_port, asgi_port, bare_asgi_port = free_port(), free_port(), free_port(), free_port()
        servers = [start_server(env, port, args), start_bare_server(bare_port, args)]
        if args.asgi:
            servers.append(start_server(env, asgi_port, args, asgi=True))
            servers.append(start_bare_server(bare_asgi_port, args, asgi=True))
        try:
            results = measure(
                port, bare_port, (asgi_port, bare_asgi_port) if args.asgi else None, seeded, args, prefix
            )
        finally:
            for process in servers:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=30)
        cleanup_redis(prefix)

    report(results, args)


def measure(
    port: int, bare_port: int, asgi_ports: tuple[int, int] | None, seeded: dict[str, str], args, prefix: str
) -> list[dict]:
    asgi_port, bare_asgi_port = asgi_ports or (None, None)
    base = f"http://127.0.0.1:{port}"
    access = post_json(base, "/api/v1/auth/login", {"email": "bench@bench.test", "password": PASSWORD})[
        "access_token"
    ]
    user_auth = {"Authorization": f"Bearer {access}"}
    tokens = [
        post_json(
            base,
            "/api/v1/licenses/acquire",
            {"license_key": seeded["beat_key"], "hardware_fingerprint": f"bench-beat-{i:06d}"},
            access,
        )["token"]
        for i in range(args.sessions)
    ]
    beat_headers = [{"Authorization": f"Bearer {token}"} for token in tokens]
    rules_tokens = [
        post_json(
            base,
            "/api/v1/licenses/acquire",
            {"license_key": seeded["beat_rules_key"], "hardware_fingerprint": f"bench-rules-{i:06d}"},
            access,
        )["token"]
        for i in range(args.sessions)
    ]
    # The SDK's heartbeat with activity reported: a JSON body with idle_seconds
    # (loadgen names the body's Content-Type itself).
    rules_beat_headers = [{"Authorization": f"Bearer {token}"} for token in rules_tokens]
    idle_body = json.dumps({"idle_seconds": 5}).encode()
    # One heartbeat of each kind, checked before anything is measured: a
    # scenario whose every request fails would measure nothing but errors.
    for token, body in ((tokens[0], None), (rules_tokens[0], {"idle_seconds": 5})):
        request = urllib.request.Request(
            base + "/api/v1/licenses/heartbeat",
            data=json.dumps(body).encode() if body else b"",
            method="POST",
        )
        request.add_header("Authorization", f"Bearer {token}")
        if body:
            request.add_header("Content-Type", "application/json")
        try:
            urllib.request.urlopen(request, timeout=10).close()
        except urllib.error.HTTPError as refused:
            detail = refused.read()[:300]
            raise SystemExit(f"a heartbeat is refused before the run: {refused.code} {detail!r}") from None
    status_path = "/api/v1/licenses/status"
    status_headers = {**user_auth, "X-License-Key": seeded["churn_key"]}

    async def baseline(conn, i):
        return (await conn.request("GET", "/")).status == 200

    async def baseline_async(conn, i):
        return (await conn.request("GET", "/async")).status == 200

    async def health(conn, i):
        return (await conn.request("GET", "/health")).status == 200

    async def heartbeat(conn, i):
        return (
            await conn.request(
                "POST", "/api/v1/licenses/heartbeat", headers=beat_headers[i % len(beat_headers)]
            )
        ).status == 200

    async def heartbeat_rules(conn, i):
        return (
            await conn.request(
                "POST",
                "/api/v1/licenses/heartbeat",
                body=idle_body,
                headers=rules_beat_headers[i % len(rules_beat_headers)],
            )
        ).status == 200

    counter = iter(range(10**9))

    async def acquire_release(conn, i, key=seeded["churn_key"], queue=False):
        request = {"license_key": key, "hardware_fingerprint": f"bench-churn-{next(counter):09d}"}
        if queue:
            request["queue"] = True
        body = json.dumps(request).encode()
        got = await conn.request("POST", "/api/v1/licenses/acquire", body=body, headers=user_auth)
        if got.status != 201:
            return False
        token = got.json()["token"]
        return (
            await conn.request(
                "DELETE", "/api/v1/licenses/release", headers={"Authorization": f"Bearer {token}"}
            )
        ).status == 200

    # Acquire leaves its leases live; release gives back those it took (the
    # pool), so each round's release follows its acquire.
    # One pool per server: each server's release gives back its own acquires.
    pools: dict[int | None, list[str]] = {port: [], asgi_port: []}

    async def acquire(conn, i):
        request = {
            "license_key": seeded["pool_key"],
            "hardware_fingerprint": f"bench-pool-{next(counter):09d}",
        }
        got = await conn.request(
            "POST", "/api/v1/licenses/acquire", body=json.dumps(request).encode(), headers=user_auth
        )
        if got.status != 201:
            return False
        pools[conn.port].append(got.json()["token"])
        return True

    async def release(conn, i):
        pool = pools[conn.port]
        if not pool:
            raise loadgen.Exhausted  # the run ends here: its rate counts the time until now
        token = pool.pop()
        got = await conn.request(
            "DELETE", "/api/v1/licenses/release", headers={"Authorization": f"Bearer {token}"}
        )
        return got.status == 200

    async def status(conn, i):
        return (await conn.request("GET", status_path, headers=status_headers)).status == 200

    crowd_headers = {**user_auth, "X-License-Key": seeded["crowd_key"]}

    async def status_crowd(conn, i):
        return (await conn.request("GET", status_path, headers=crowd_headers)).status == 200

    async def acquire_release_rules(conn, i):
        return await acquire_release(conn, i, key=seeded["churn_rules_key"], queue=True)

    # (name, operation, HTTP requests per operation, port)
    scenarios = [
        ("baseline: bare Django view", baseline, 1, bare_port),
        ("/health, our middleware", health, 1, port),
        ("heartbeat", heartbeat, 1, port),
        ("acquire", acquire, 1, port),
        ("release", release, 1, port),
        ("heartbeat, rules on", heartbeat_rules, 1, port),
        ("acquire+release", acquire_release, 2, port),
        ("acquire+release, rules on", acquire_release_rules, 2, port),
        ("status", status, 1, port),
        (f"status, {CROWD_LEASES:,} live leases", status_crowd, 1, port),
    ]
    if asgi_port is not None:
        # The same calls on the ASGI server, each right after its WSGI twin.
        twins = {"/health, our middleware", "heartbeat", "acquire", "release", "status"}
        scenarios = [
            row
            for name, operation, requests_per_op, at in scenarios
            for row in [(name, operation, requests_per_op, at)]
            + ([(f"{name} [uvicorn]", operation, requests_per_op, asgi_port)] if name in twins else [])
        ]
        # The floor of any async view there: the bare project's async view.
        scenarios.insert(1, ("bare Django async view [uvicorn]", baseline_async, 1, bare_asgi_port))
    if args.only:
        scenarios = [scenario for scenario in scenarios if args.only in scenario[0]]

    release_pace = 2000.0

    def phase(name: str, operation, requests_per_op: int, rate: float | None, at: int) -> dict:
        nonlocal release_pace
        kind = name.removesuffix(" [uvicorn]")
        checker = (
            OversellChecker(prefix, seeded["churn_id"], seeded["churn_max"])
            if name == "acquire+release"
            else None
        )
        if checker:
            checker.start()
        cpu_before = cpu_seconds()
        duration = args.duration
        if kind == "release":
            # No more releases than the pool holds: the closed run keeps back
            # what the open run after it will need (--load of its pace for
            # --duration), and ends early if it would outlast the rest.
            if rate is None:
                keep = 0 if args.closed_only else args.load * release_pace * args.duration
                duration = min(args.duration, max(1.0, (len(pools[at]) - keep) / release_pace))
            else:
                duration = min(args.duration, max(1.0, len(pools[at]) / max(rate, 1.0)))
        result = loadgen.run(
            name,
            "127.0.0.1",
            at,
            operation,
            clients=args.clients,
            duration=duration,
            rate=rate,
        )
        summary = result.summary()
        summary["requests_per_s"] = round(result.throughput * requests_per_op, 1)
        spent = {k: v - cpu_before.get(k, 0.0) for k, v in cpu_seconds().items()}
        # CPU per operation, by process kind: where the two cores went.
        summary["cpu_ms_per_op"] = {
            k: round(v / max(result.completed, 1) * 1000, 3) for k, v in sorted(spent.items()) if v > 0.01
        }
        if checker:
            summary["oversells"], summary["ledger_samples"], summary["peak_live_leases"] = checker.stop()
        if kind == "heartbeat" and rate is None:
            # A release costs about what a heartbeat does: the pace its run is sized by.
            release_pace = result.throughput * 1.3
        print(json.dumps(summary), flush=True)
        return summary

    # Rounds in which the scenarios take turns, each scenario's closed-loop run
    # followed at once by its open-loop run at --load of what the closed run
    # just reached: a shared machine's speed drifts from minute to minute, and
    # this way every scenario meets the same drift, and every open-loop rate
    # is set by the machine's speed of that moment. Medians are reported.
    closed: dict[str, list[dict]] = {name: [] for name, *_ in scenarios}
    opened: dict[str, list[dict]] = {name: [] for name, *_ in scenarios}
    for _ in range(args.rounds):
        for name, operation, requests_per_op, at in scenarios:
            saturation = phase(name, operation, requests_per_op, None, at)
            closed[name].append(saturation)
            if not args.closed_only:
                rate = args.rate or max(1, round(saturation["throughput"] * args.load))
                opened[name].append(phase(name, operation, requests_per_op, rate, at))
    results = []
    for name, *_ in scenarios:
        for runs, key in ((closed[name], "throughput"), (opened[name], "p99_ms")):
            if not runs:
                continue
            ordered = sorted(runs, key=lambda r: r[key])
            median = dict(ordered[len(ordered) // 2], rounds=runs)
            if name == "acquire+release":
                median["oversells"] = sum(r["oversells"] for r in runs)
                median["ledger_samples"] = sum(r["ledger_samples"] for r in runs)
                median["peak_live_leases"] = max(r["peak_live_leases"] for r in runs)
            results.append(median)
    return results


def cpu_seconds() -> dict[str, float]:
    """CPU time used so far by each kind of process on this machine."""
    ticks = os.sysconf("SC_CLK_TCK")
    totals: dict[str, float] = {}
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        used = (int(fields[11]) + int(fields[12])) / ticks
        comm = stat.split("(", 1)[1].rsplit(")", 1)[0]
        if int(entry) == me:
            kind = "loadgen"
        elif "gunicorn" in cmdline:
            kind = "gunicorn"
        elif comm.startswith("postgres"):
            kind = "postgres"
        elif comm.startswith("redis"):
            kind = "redis"
        else:
            continue
        totals[kind] = totals.get(kind, 0.0) + used
    return totals


# Live leases of one license, read in Redis itself: entries of the `live` set
# whose expiry (ms, Redis TIME) is still ahead, as the ledger's scripts count
# them. Read-only: it prunes nothing.
LIVE_COUNT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf')
"""


class OversellChecker:
    """Samples the ledger every 50 ms while acquire+release runs and counts
    samples above max_seats. It reads Redis directly, not the status API, so
    that watching costs the server nothing (polling /status took about a
    tenth of a core from the scenario it watched)."""

    def __init__(self, prefix: str, license_id: str, max_seats: int) -> None:
        import redis

        self.client = redis.Redis.from_url(REDIS_URL)
        self.count = self.client.register_script(LIVE_COUNT)
        self.key, self.max_seats = f"{prefix}:seats:{{{license_id}}}:live", max_seats

    def start(self) -> None:
        self.running, self.samples, self.oversells, self.peak = True, 0, 0, 0
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while self.running:
            live = self.count(keys=[self.key])
            self.peak = max(self.peak, live)
            if live > self.max_seats:
                self.oversells += 1
            self.samples += 1
            time.sleep(0.05)

    def stop(self) -> tuple[int, int, int]:
        self.running = False
        self.thread.join()
        return self.oversells, self.samples, self.peak


def cleanup_redis(prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(f"*{prefix}*", count=1000):
        client.delete(key)


def report(results: list[dict], args) -> None:
    print()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(
        f"server: gunicorn --worker-class {args.worker_class} --workers {args.workers} --threads {args.threads}"
    )
    rate = f"{args.rate}/s" if args.rate else f"{args.load:.0%} of each scenario's closed-loop throughput"
    print(f"clients: {args.clients}, duration: {args.duration}s per run, open-loop rate: {rate}")
    print()
    baseline_run = next((r for r in results if r["mode"] == "closed" and "baseline" in r["scenario"]), None)
    baseline = baseline_run["throughput"] if baseline_run else None
    # Shares of the baseline's throughput, counted per operation and per HTTP
    # request (an acquire+release operation is two requests).
    print(
        "| scenario | mode | ops/s | of baseline | requests/s | of baseline | p50 ms | p95 ms | p99 ms "
        "| errors | oversells | CPU ms/op: gunicorn, postgres, redis, loadgen |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in results:
        mode = (
            f"closed, median of {len(r['rounds'])}"
            if r["mode"] == "closed"
            else f"open @ {r['target_rate']:.0f}/s"
        )
        closed = baseline and r["mode"] == "closed"
        share = f"{r['throughput'] / baseline:.0%}" if closed else ""
        request_share = f"{r['requests_per_s'] / baseline:.0%}" if closed else ""
        cpu = r.get("cpu_ms_per_op", {})
        cpu_text = ", ".join(str(cpu.get(k, 0)) for k in ("gunicorn", "postgres", "redis", "loadgen"))
        print(
            f"| {r['scenario']} | {mode} | {r['throughput']} | {share} | {r['requests_per_s']} | {request_share} "
            f"| {r['p50_ms']} | {r['p95_ms']} | {r['p99_ms']} | {r['errors']} | {r.get('oversells', '')} "
            f"| {cpu_text} |"
        )
    print()
    baselines = [r["throughput"] for r in baseline_run["rounds"]] if baseline_run else []
    for r in results:
        if r["mode"] == "closed" and baselines:
            shares = ", ".join(
                f"{run['throughput']} ({run['throughput'] / b:.0%})"
                for run, b in zip(r["rounds"], baselines, strict=True)
            )
            print(f"closed-loop rounds, {r['scenario']}: {shares} ops/s (share of that round's baseline)")
        elif r["mode"] == "open":
            tails = ", ".join(f"{run['p99_ms']} @ {run['target_rate']:.0f}/s" for run in r["rounds"])
            print(f"open-loop rounds, {r['scenario']}: p99 {tails} (ms)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
