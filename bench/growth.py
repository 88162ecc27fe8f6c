"""Growth stays flat: acquire, heartbeat and status as a license fills, side by
side in one run (issue 18).

    .venv/bin/python bench/growth.py [--duration 5] [--clients 8] [--rounds 3]
        [--workers 2] [--threads 1] [--worker-class sync]

Four shapes of the same tenant, each measured with the same three calls:

- one license with 0, 20,000 or 100,000 live leases;
- 1,000 licenses with 100 live leases each (the calls spread over all of them).

It builds the bench database and server as `bench/run.py` does (gunicorn,
PostgreSQL as the app role, the Redis seat ledger) and seeds the live leases
straight into Redis (licenses/tests/seeding.py: the ledger's own prelude
writes the records and paging indexes, as acquire would). Then, closed-loop
with --clients clients, for --rounds rounds; in each round every call runs on
the four shapes back to back, starting at the next shape each round (the
median round of each is reported, and each shape's p50 against the empty
license's in the same round, the median of those ratios):

- acquire+release: acquire with a fresh fingerprint, then release it, so
  that the license keeps its size;
- heartbeat: over 200 sessions acquired on the license (or on 200 of the
  1,000) before the run;
- status: GET /api/v1/licenses/status by license key, 50 leases a page.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from itertools import count
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import loadgen
import run

SIZES = (0, 20_000, 100_000)
SPREAD_LICENSES, SPREAD_LEASES = 1_000, 100
SESSIONS = 200

SEED = (
    run.SEED_LEASES_PRELUDE
    + """
shapes = {}
with tenant_scope(tenant.id):
    admin = User.objects.get(email="bench@bench.test")
    ledger = get_seat_ledger("redis")
    def made(name, leases):
        license, key = license_create(tenant=tenant, max_seats=200_000, name=name)
        if leases:
            seed_live_leases(ledger, license_id=license.id, tenant_id=tenant.id, count=leases,
                             user_ids=[str(admin.pk)], ttl=4 * 3600)
        return key
    for size in %r:
        shapes[f"one license, {size:,} leases"] = [made(f"{size:06d} leases", size)]
    shapes["%d licenses x %d leases"] = [made(f"spread {n:04d}", %d) for n in range(%d)]
print(json.dumps(shapes))
"""
)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    run.server_arguments(parser)
    args = parser.parse_args()

    seed = SEED % (SIZES, SPREAD_LICENSES, SPREAD_LEASES, SPREAD_LEASES, SPREAD_LICENSES)
    with run.bench_server("growth", args, seed) as (port, shapes):
        results = measure(port, shapes, args)
    report(results, args)


def measure(port: int, shapes: dict[str, list[str]], args) -> list[dict]:
    base = f"http://127.0.0.1:{port}"
    login = {"email": "bench@bench.test", "password": run.PASSWORD}
    access = run.post_json(base, "/api/v1/auth/login", login)["access_token"]
    user = {"Authorization": f"Bearer {access}"}
    fresh = count()

    def operations(keys: list[str]) -> dict:
        tokens = [
            run.post_json(
                base,
                "/api/v1/licenses/acquire",
                {
                    "license_key": keys[n % len(keys)],
                    "hardware_fingerprint": f"growth-beat-{next(fresh):09d}",
                },
                access,
            )["token"]
            for n in range(SESSIONS)
        ]
        beats = [{"Authorization": f"Bearer {token}"} for token in tokens]
        statuses = [{**user, "X-License-Key": key} for key in keys]

        async def acquire_release(conn, i):
            body = {"license_key": keys[i % len(keys)], "hardware_fingerprint": f"growth-{next(fresh):09d}"}
            got = await conn.request(
                "POST", "/api/v1/licenses/acquire", body=json.dumps(body).encode(), headers=user
            )
            if got.status != 201:
                return False
            token = got.json()["token"]
            released = await conn.request(
                "DELETE", "/api/v1/licenses/release", headers={"Authorization": f"Bearer {token}"}
            )
            return released.status == 200

        async def heartbeat(conn, i):
            got = await conn.request("POST", "/api/v1/licenses/heartbeat", headers=beats[i % len(beats)])
            return got.status == 200

        async def status(conn, i):
            got = await conn.request(
                "GET", "/api/v1/licenses/status?limit=50", headers=statuses[i % len(statuses)]
            )
            return got.status == 200

        return {"acquire+release": acquire_release, "heartbeat": heartbeat, "status": status}

    plan = {shape: operations(keys) for shape, keys in shapes.items()}
    order = list(plan)
    calls = list(next(iter(plan.values())))
    rounds: dict[tuple[str, str], list[dict]] = {}
    for round_ in range(args.rounds):
        # One call's shapes back to back, so that they meet the same moment of
        # a drifting machine; each round starts at the next shape, so that
        # none is always measured first.
        turn = round_ % len(order)
        for call in calls:
            for shape in order[turn:] + order[:turn]:
                operation = plan[shape][call]
                result = loadgen.run(
                    f"{call}, {shape}",
                    "127.0.0.1",
                    port,
                    operation,
                    clients=args.clients,
                    duration=args.duration,
                )
                summary = result.summary()
                print(json.dumps({"round": round_, **summary}), flush=True)
                rounds.setdefault((call, shape), []).append(summary)
    results = []
    empty = f"one license, {SIZES[0]:,} leases"
    for (call, shape), runs in rounds.items():
        median = sorted(runs, key=lambda r: r["throughput"])[len(runs) // 2]
        # Latency against the empty license's in the same round (the same
        # drift of a shared machine), the median of the rounds' ratios.
        ratios = [
            run["p50_ms"] / zero["p50_ms"]
            for run, zero in zip(runs, rounds[(call, empty)], strict=True)
            if zero["p50_ms"]
        ]
        results.append(
            {
                **median,
                "call": call,
                "shape": shape,
                "each_round": [r["throughput"] for r in runs],
                "p50_of_empty": round(statistics.median(ratios), 2) if ratios else None,
                "p50_ms_median": round(statistics.median(r["p50_ms"] for r in runs), 2),
            }
        )
    return results


def report(results: list[dict], args) -> None:
    print()
    print(
        f"{args.clients} clients closed-loop, {args.duration:g}s x {args.rounds} rounds, "
        f"gunicorn --worker-class {args.worker_class} --workers {args.workers} --threads {args.threads}"
    )
    print()
    print(
        "| call | shape | ops/s | p50 ms | p95 ms | p99 ms | errors | ops/s of each round "
        "| p50 of the rounds (median) | p50 against 0 leases, same round (median) |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---|---:|---:|")
    for r in sorted(results, key=lambda r: r["call"]):
        each = ", ".join(f"{t:g}" for t in r["each_round"])
        print(
            f"| {r['call']} | {r['shape']} | {r['throughput']} | {r['p50_ms']} | {r['p95_ms']} | "
            f"{r['p99_ms']} | {r['errors']} | {each} | {r['p50_ms_median']} | {r['p50_of_empty']}x |"
        )
    print()
    for call in sorted({r["call"] for r in results}):
        figures = [r["throughput"] for r in results if r["call"] == call]
        low, high = min(figures), max(figures)
        spread = statistics.pstdev(figures) / statistics.fmean(figures) if figures else 0
        print(f"{call}: lowest {low} ops/s, highest {high} ops/s, spread {spread:.1%} of the mean")


if __name__ == "__main__":
    main()
