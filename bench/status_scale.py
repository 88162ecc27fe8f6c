"""Status latency at 1, 50, 20,000 and 100,000 live leases on one license, side
by side in one run (DESIGN.md invariant 12: an answer is bounded by its page,
so they should match within noise; 50 is one full page, the size of the
answer the two large licenses give, for a like-for-like row).

    .venv/bin/python bench/status_scale.py [--duration 5] [--clients 4] [--rounds 3]
        [--workers 2] [--threads 1] [--worker-class sync] [--limit 50]

It builds the bench database and server exactly as `bench/run.py` does
(gunicorn, PostgreSQL as the app role, the Redis seat ledger), makes four
licenses and seeds their live leases straight into Redis
(licenses/tests/seeding.py: the ledger's own prelude writes the records and
paging indexes, as acquire would), then measures GET /api/v1/licenses/status
for each license, by key, as its tenant admin, closed-loop with --clients
clients. They take turns for --rounds rounds; the median round of each
is reported, with the answer's size in bytes.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import loadgen
import run

SIZES = (1, 50, 20_000, 100_000)

SEED = (
    run.SEED_LEASES_PRELUDE
    + """
keys = {}
with tenant_scope(tenant.id):
    admin = User.objects.get(email="bench@bench.test")
    for size in %r:
        license, key = license_create(tenant=tenant, max_seats=200_000, name=f"{size:06d} leases")
        seed_live_leases(get_seat_ledger("redis"), license_id=license.id, tenant_id=tenant.id, count=size,
                         user_ids=[str(admin.pk)], ttl=4 * 3600)
        keys[size] = key
print(json.dumps(keys))
"""
)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    run.server_arguments(parser)
    parser.add_argument("--limit", type=int, default=50, help="status page size")
    args = parser.parse_args()

    with run.bench_server("status", args, SEED % (SIZES,)) as (port, seeded):
        results = measure(port, {int(size): key for size, key in seeded.items()}, args)
    report(results, args)


def measure(port: int, keys: dict[int, str], args) -> list[dict]:
    base = f"http://127.0.0.1:{port}"
    login = {"email": "bench@bench.test", "password": run.PASSWORD}
    access = run.post_json(base, "/api/v1/auth/login", login)["access_token"]
    path = f"/api/v1/licenses/status?limit={args.limit}"
    sizes = {}
    for size, key in keys.items():
        request = urllib.request.Request(
            base + path, headers={"Authorization": f"Bearer {access}", "X-License-Key": key}
        )
        with urllib.request.urlopen(request, timeout=30) as response:  # also warms each license
            body = response.read()
        [item] = json.loads(body)["licenses"]
        assert item["seats"]["used"] == size, (size, item["seats"])
        sizes[size] = len(body)

    def operation(key: str):
        headers = {"Authorization": f"Bearer {access}", "X-License-Key": key}

        async def status(conn, i):
            return (await conn.request("GET", path, headers=headers)).status == 200

        return status

    rounds: dict[int, list[dict]] = {size: [] for size in keys}
    for round_ in range(args.rounds):
        for size, key in keys.items():
            result = loadgen.run(
                f"status, {size} leases",
                "127.0.0.1",
                port,
                operation(key),
                clients=args.clients,
                duration=args.duration,
            )
            summary = result.summary()
            print(json.dumps({"round": round_, **summary}), flush=True)
            rounds[size].append(summary)
    results = []
    for size, runs in rounds.items():
        median = sorted(runs, key=lambda r: r["p50_ms"])[len(runs) // 2]
        results.append(
            {**median, "leases": size, "bytes": sizes[size], "p50_each_round": [r["p50_ms"] for r in runs]}
        )
    return results


def report(results: list[dict], args) -> None:
    print()
    print(
        f"status, limit={args.limit}, {args.clients} clients closed-loop, {args.duration:g}s x {args.rounds} rounds, "
        f"gunicorn --worker-class {args.worker_class} --workers {args.workers} --threads {args.threads}"
    )
    print()
    print("| live leases | answer bytes | ops/s | p50 ms | p95 ms | p99 ms | errors | p50 of each round |")
    print("|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in results:
        rounds = ", ".join(f"{p:g}" for p in r["p50_each_round"])
        print(
            f"| {r['leases']:,} | {r['bytes']:,} | {r['throughput']} | {r['p50_ms']} | {r['p95_ms']} | "
            f"{r['p99_ms']} | {r['errors']} | {rounds} |"
        )
    spread = statistics.pstdev([r["p50_ms"] for r in results])
    print(f"\nspread of the medians' p50: {spread:.2f} ms")


if __name__ == "__main__":
    main()
