"""A flood of wrong-password sign-ins from many addresses, and what it does
to /health and heartbeats (issue 13 item 4).

    .venv/bin/python bench/login_flood.py [--duration 10] [--flood-clients 6]
        [--probe-rate 20] [--workers 5] [--addresses 5000] [--throttle-off]

It builds the database and server as bench/run.py does (DEBUG off, PostgreSQL
as the app role, the Redis seat ledger and rate limiter), but with the
production limits on: RATE_LIMIT_PER_IP at its default (100/min), the sign-in
throttle at its defaults, and TRUSTED_PROXY_COUNT=1, so that each flooding
request's X-Forwarded-For (one of --addresses addresses) is its client address
and no address comes near its own limit.

For each flood it runs, a second process sends wrong-password logins
closed-loop from --flood-clients connections (the issue's test used six;
--flood-rate N: open-loop at N logins/s instead),
while this process measures /health, then heartbeats, open-loop at
--probe-rate requests/s each (latency from each request's due time):

- quiet: no flood;
- one account: every guess at the same account, from many addresses (the
  account locks after 5 failures; the rest are refused before any hash);
- spray: every guess at a new email (none exists; each costs one Argon2 hash,
  the throttle cannot help, only the cost of a hash does).

--throttle-off runs the same with LOGIN_FAILURES_BEFORE_THROTTLE=0, to see
what the throttle itself buys.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import random
import signal
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import loadgen  # noqa: E402
import run  # noqa: E402

FLOODS = ("quiet", "one account", "spray")


def flood(port: int, kind: str, clients: int, duration: float, addresses: int, rate, results) -> None:
    """The flooding process: wrong passwords, closed loop, each from a random address."""
    statuses: Counter[int] = Counter()
    pool = [f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256 + 1}" for i in range(addresses)]
    counter = iter(range(10**9))

    async def guess(conn, i):
        n = next(counter)
        email = "bench@bench.test" if kind == "one account" else f"guess-{n}@bench.test"
        body = json.dumps({"email": email, "password": f"wrong-{n}"}).encode()
        got = await conn.request(
            "POST",
            "/api/v1/auth/login",
            body=body,
            headers={"X-Forwarded-For": random.choice(pool)},
        )
        statuses[got.status] += 1
        return got.status in (401, 429)

    result = loadgen.run(
        f"flood {kind}", "127.0.0.1", port, guess, clients=clients, duration=duration, rate=rate
    )
    results.put({"throughput": round(result.throughput, 1), "statuses": dict(sorted(statuses.items()))})


def machine_address(i: int) -> str:
    """The address of the i-th licensed machine (each its own, as in the field)."""
    return f"172.16.{i // 256 % 256}.{i % 256 + 1}"


def post_json(base: str, path: str, body: dict, address: str, token: str | None = None) -> dict:
    request = urllib.request.Request(base + path, data=json.dumps(body).encode(), method="POST")
    request.add_header("Content-Type", "application/json")
    request.add_header("X-Forwarded-For", address)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def server_cpu_seconds(group: int) -> float:
    """CPU time used so far by the server's processes (its process group): the
    machine is shared, and other gunicorns on it are not ours."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group:
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def measure(port: int, seeded: dict, args) -> list[dict]:
    base = f"http://127.0.0.1:{port}"
    login = {"email": "bench@bench.test", "password": run.PASSWORD}
    tokens = []
    for i in range(100):
        # Each machine signs in and acquires from its own address.
        access = post_json(base, "/api/v1/auth/login", login, machine_address(i))["access_token"]
        body = {"license_key": seeded["beat_key"], "hardware_fingerprint": f"bench-beat-{i:06d}"}
        tokens.append(post_json(base, "/api/v1/licenses/acquire", body, machine_address(i), access)["token"])
    beat_headers = [
        {"Authorization": f"Bearer {token}", "X-Forwarded-For": machine_address(i)}
        for i, token in enumerate(tokens)
    ]

    async def health(conn, i):
        return (await conn.request("GET", "/health")).status == 200

    async def heartbeat(conn, i):
        got = await conn.request(
            "POST", "/api/v1/licenses/heartbeat", headers=beat_headers[i % len(beat_headers)]
        )
        return got.status == 200

    rows = []
    context = multiprocessing.get_context("spawn")
    for kind in FLOODS:
        flooding = None
        queue = context.Queue()
        if kind != "quiet":
            # Long enough to cover both probes, with a second of head start.
            flooding = context.Process(
                target=flood,
                args=(
                    port,
                    kind,
                    args.flood_clients,
                    2 * args.duration + 2,
                    args.addresses,
                    args.flood_rate,
                    queue,
                ),
            )
            flooding.start()
            time.sleep(1)
        cpu_before = server_cpu_seconds(args.server_group)
        probes = {}
        for name, operation in (("/health", health), ("heartbeat", heartbeat)):
            result = loadgen.run(
                name, "127.0.0.1", port, operation, clients=8, duration=args.duration, rate=args.probe_rate
            )
            probes[name] = result.summary()
        spent = round(server_cpu_seconds(args.server_group) - cpu_before, 2)
        flooded = None
        if flooding is not None:
            flooded = queue.get(timeout=120)
            flooding.join(timeout=30)
        row = {"flood": kind, "probes": probes, "flood_result": flooded, "server_cpu_seconds": spent}
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def report(rows: list[dict], args) -> None:
    print()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(
        f"server: gunicorn sync, {args.workers} workers; throttle {'off' if args.throttle_off else 'on'}; "
        f"flood: {args.flood_clients} clients "
        f"{f'open-loop at {args.flood_rate}/s' if args.flood_rate else 'closed-loop'} "
        f"from {args.addresses} addresses; "
        f"probes open-loop at {args.probe_rate}/s, {args.duration}s each"
    )
    print()
    print(
        "| flood | flood logins/s | flood answers | /health p50 / p95 / p99 ms | heartbeat p50 / p95 / p99 ms "
        "| probe errors | server CPU s |"
    )
    print("|---|---:|---|---|---|---:|---|")
    for row in rows:
        h, b = row["probes"]["/health"], row["probes"]["heartbeat"]
        f = row["flood_result"] or {}
        answers = ", ".join(f"{status}: {n}" for status, n in (f.get("statuses") or {}).items()) or "-"
        print(
            f"| {row['flood']} | {f.get('throughput', '-')} | {answers} "
            f"| {h['p50_ms']} / {h['p95_ms']} / {h['p99_ms']} | {b['p50_ms']} / {b['p95_ms']} / {b['p99_ms']} "
            f"| {h['errors'] + b['errors']} "
            f"| {row['server_cpu_seconds']} |"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per probe")
    parser.add_argument("--flood-clients", type=int, default=6)
    parser.add_argument(
        "--flood-rate", type=float, help="open-loop flood at this many logins/s (default: closed loop)"
    )
    parser.add_argument("--probe-rate", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=5, help="sync workers (production: 2 per CPU + 1)")
    parser.add_argument("--addresses", type=int, default=5000)
    parser.add_argument("--throttle-off", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    args.worker_class, args.threads = "sync", 1

    prefix = f"bench-login-{os.getpid()}"
    # A database of its own, so that a bench/run.py at the same time is left alone.
    run.DB_NAME = "coditect_bench_login"
    with tempfile.TemporaryDirectory() as tmp:
        keys = run.make_keys(Path(tmp))
        env = run.server_env(keys, prefix)
        env.update(
            RATE_LIMIT_PER_IP="100",
            RATE_LIMIT_PER_USER="600",
            TRUSTED_PROXY_COUNT="1",
            LOGIN_FAILURES_BEFORE_THROTTLE="0" if args.throttle_off else "5",
            # Each refused login is a WARNING line; thousands would be the thing measured.
            LOG_LEVEL="ERROR",
        )
        run.prepare_database(env)
        seeded = run.seed(env, churn_seats=1)
        port = run.free_port()
        server = run.start_server(env, port, args)
        args.server_group = server.pid  # start_new_session: the group is the server's
        try:
            rows = measure(port, seeded, args)
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
        run.cleanup_redis(prefix)
    report(rows, args)


if __name__ == "__main__":
    main()
