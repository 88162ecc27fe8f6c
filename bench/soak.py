"""A soak at the seed's production scale: 10,000 concurrent sessions held by
simulated SDK clients, with churn, one Redis restart and one gunicorn worker
killed in the middle (issue 18).

    .venv/bin/python bench/soak.py [--sessions 10000] [--duration 180] [--load 0.7]
        [--churn 0.02] [--connections 64] [--workers 2]

It builds the bench database and server as `bench/run.py` does (gunicorn,
PostgreSQL as the app role, the Redis seat ledger), but on a redis-server of
its own (a free port, nothing kept on disk), since it restarts it. Then:

1. every session acquires its seat (a fresh fingerprint each, on a license
   of --sessions + 10% seats);
2. a short closed-loop burst of heartbeats measures what the server can take,
   and the heartbeat interval is shortened so that the sessions' heartbeats
   arrive at --load of it (the SDK's interval is two minutes; 10,000 sessions
   at two minutes would be 83 requests/s, too few to load anything here);
3. for --duration seconds each session heartbeats on that interval, open-loop
   (each latency runs from the moment the beat was due). At each beat a
   session releases and acquires again with probability --churn. As the SDK
   does, a session told `session_not_found` acquires again, and one answered
   503 or not at all beats again at its next turn;
4. at a third of the run Redis is restarted empty (the ledger loses every
   lease: the next beats answer `session_not_found` and the sessions acquire
   again); at two thirds one gunicorn worker is killed with SIGKILL (its
   master starts another).

Throughout, a checker reads the license's live-lease count in Redis every
50 ms and counts samples above max_seats (oversells). The report: requests,
answers by status and error code per operation, p50/p95/p99 per operation,
the checker's samples and oversells, and what each fault cost.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import loadgen
import run

sys.path.insert(0, str(run.ROOT))

SEED = """
import json
from licenses.services import license_create
from tenants.models import Tenant
from tenants.scope import operator_scope
with operator_scope():
    tenant = Tenant.objects.get(name="Bench Co")
license, key = license_create(tenant=tenant, max_seats=%d, name="soak")
print(json.dumps({"key": key, "id": str(license.id), "max": license.max_seats}))
"""


class Tally:
    """Answers and latencies by operation."""

    def __init__(self) -> None:
        self.answers: dict[str, Counter] = {}
        self.latencies: dict[str, list[float]] = {}

    def add(self, operation: str, answer: str, latency_ms: float | None = None) -> None:
        self.answers.setdefault(operation, Counter())[answer] += 1
        if latency_ms is not None:
            self.latencies.setdefault(operation, []).append(latency_ms)

    def summary(self) -> dict:
        out = {}
        for operation, answers in sorted(self.answers.items()):
            ordered = sorted(self.latencies.get(operation, []))

            def pick(p: float, ordered=ordered) -> float | None:
                return (
                    round(ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))], 2)
                    if ordered
                    else None
                )

            out[operation] = {
                "requests": sum(answers.values()),
                "answers": dict(answers.most_common()),
                "p50_ms": pick(50),
                "p95_ms": pick(95),
                "p99_ms": pick(99),
            }
        return out


def answer_of(response: loadgen.Response | None) -> str:
    if response is None:
        return "no answer"
    if response.status < 400:
        return str(response.status)
    try:
        return f"{response.status} {response.json()['error']['code']}"
    except (ValueError, KeyError, TypeError):
        return str(response.status)


class Sessions:
    """The simulated SDK clients: one token per session, acquired again when
    the server says the session is gone."""

    def __init__(self, key: str, access: str, count: int) -> None:
        self.key, self.access = key, access
        self.tokens: list[str | None] = [None] * count
        self.fresh = iter(range(10**9))

    async def call(
        self, conn, tally: Tally, operation: str, method: str, path: str, **kwargs
    ) -> loadgen.Response | None:
        sent = time.perf_counter()
        try:
            response = await conn.request(method, path, **kwargs)
        except (OSError, ConnectionError, asyncio.IncompleteReadError, IndexError, ValueError):
            response = None
        tally.add(operation, answer_of(response), (time.perf_counter() - sent) * 1000)
        return response

    async def acquire(self, conn, tally: Tally, index: int) -> bool:
        body = {"license_key": self.key, "hardware_fingerprint": f"soak-{next(self.fresh):010d}"}
        response = await self.call(
            conn,
            tally,
            "acquire",
            "POST",
            "/api/v1/licenses/acquire",
            body=json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.access}"},
        )
        if response is not None and response.status == 201:
            self.tokens[index] = response.json()["token"]
            return True
        return False

    async def beat(self, conn, tally: Tally, index: int, churn: float) -> bool:
        token = self.tokens[index]
        if token is None:
            return await self.acquire(conn, tally, index)
        headers = {"Authorization": f"Bearer {token}"}
        if random.random() < churn:
            await self.call(conn, tally, "release", "DELETE", "/api/v1/licenses/release", headers=headers)
            self.tokens[index] = None
            return await self.acquire(conn, tally, index)
        response = await self.call(
            conn, tally, "heartbeat", "POST", "/api/v1/licenses/heartbeat", headers=headers
        )
        if response is not None and response.status == 404:
            self.tokens[index] = None  # the seat is gone: acquire again, as the SDK does
            return await self.acquire(conn, tally, index)
        return response is not None and response.status == 200


async def acquire_all(port: int, sessions: Sessions, connections: int) -> Tally:
    tally = Tally()
    pending = iter(range(len(sessions.tokens)))

    async def worker():
        conn = loadgen.Connection("127.0.0.1", port)
        for index in pending:
            while not await sessions.acquire(conn, tally, index):
                await asyncio.sleep(0.1)
        await conn.close()

    await asyncio.gather(*(worker() for _ in range(connections)))
    return tally


async def beat_for(
    port: int, sessions: Sessions, *, rate: float, duration: float, churn: float, connections: int, faults
) -> Tally:
    """Heartbeats due at `rate` per second, session after session, open-loop."""
    tally = Tally()
    queue: asyncio.Queue = asyncio.Queue()
    start = time.perf_counter() + 0.05
    count = len(sessions.tokens)

    async def worker():
        conn = loadgen.Connection("127.0.0.1", port)
        while (item := await queue.get()) is not None:
            index, due = item
            wait = due - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            done = await sessions.beat(conn, tally, index, churn)
            # Each beat's latency from its due time, whatever calls it took
            # (queueing behind a slow answer is counted, not hidden).
            # And per third of the run: before the Redis restart, after it, after the worker kill.
            late = (time.perf_counter() - due) * 1000
            third = min(2, int(3 * (due - start) / duration)) + 1
            for name in ("beat, from its due time", f"beat, from its due time, third {third}"):
                tally.add(name, "kept" if done else "not kept", late)
        await conn.close()

    tasks = [asyncio.create_task(worker()) for _ in range(connections)]
    pending_faults = sorted(faults)
    n = 0
    while True:
        due = start + n / rate
        if due >= start + duration:
            break
        now = time.perf_counter()
        while pending_faults and now - start >= pending_faults[0][0]:
            _, fault = pending_faults.pop(0)
            # Off the event loop: the generator keeps the beats coming meanwhile.
            asyncio.get_running_loop().run_in_executor(None, fault)
        if due > now:
            await asyncio.sleep(due - now)
        queue.put_nowait((n % count, due))
        n += 1
    for _ in tasks:
        queue.put_nowait(None)
    await asyncio.gather(*tasks)
    return tally


class LiveSampler:
    def __init__(self, redis_port: int, prefix: str, license_id: str, max_seats: int) -> None:
        import redis

        self.client = redis.Redis(port=redis_port, socket_timeout=1)
        self.count = self.client.register_script(run.LIVE_COUNT)
        self.key, self.max_seats = f"{prefix}:seats:{{{license_id}}}:live", max_seats
        self.samples = self.oversells = self.unreadable = self.peak = 0
        self.running = True
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        import redis

        while self.running:
            try:
                live = self.count(keys=[self.key])
            except redis.RedisError:
                self.unreadable += 1  # Redis restarting
            else:
                self.samples += 1
                self.peak = max(self.peak, live)
                self.oversells += live > self.max_seats
            time.sleep(0.05)

    def stop(self) -> dict:
        self.running = False
        self.thread.join()
        return {
            "samples": self.samples,
            "oversells": self.oversells,
            "unreadable": self.unreadable,
            "peak": self.peak,
        }


def worker_pids(master: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True).stdout
    return [int(pid) for pid in out.split()]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--duration", type=float, default=180.0)
    parser.add_argument(
        "--load", type=float, default=0.7, help="heartbeat rate as a share of the measured capacity"
    )
    parser.add_argument(
        "--churn", type=float, default=0.02, help="chance a beat is a release and a new acquire"
    )
    parser.add_argument("--connections", type=int, default=64)
    run.server_arguments(parser)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    from coditect.testing import RedisServer

    prefix = f"bench-soak-{os.getpid()}"
    run.DB_NAME = f"coditect_bench_soak_{os.getpid()}"
    with tempfile.TemporaryDirectory() as tmp:
        redis_server = RedisServer(Path(tmp))
        run.REDIS_URL = redis_server.url
        env = run.server_env(run.make_keys(Path(tmp)), prefix)
        run.prepare_database(env)
        run.seed(env, churn_seats=16)
        seeded = run.shell_json(env, SEED % int(args.sessions * 1.1))
        port = run.free_port()
        server = run.start_server(env, port, args)
        try:
            report = soak(port, server, redis_server, seeded, prefix, args)
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
            redis_server.stop()
        from tenants.dbroles import drop_database

        drop_database(run.ADMIN_URL, run.DB_NAME)
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


def soak(port: int, server, redis_server, seeded: dict, prefix: str, args) -> dict:
    base = f"http://127.0.0.1:{port}"
    access = run.post_json(
        base, "/api/v1/auth/login", {"email": "bench@bench.test", "password": run.PASSWORD}
    )["access_token"]
    sessions = Sessions(seeded["key"], access, args.sessions)
    started = time.perf_counter()
    ramp = asyncio.run(acquire_all(port, sessions, args.connections))
    ramp_seconds = time.perf_counter() - started
    print(f"{args.sessions} sessions acquired in {ramp_seconds:.1f}s", flush=True)

    # What the server can take: heartbeats closed-loop for a few seconds.
    async def heartbeat(conn, i):
        token = sessions.tokens[i % len(sessions.tokens)]
        got = await conn.request(
            "POST", "/api/v1/licenses/heartbeat", headers={"Authorization": f"Bearer {token}"}
        )
        return got.status == 200

    capacity = loadgen.run("capacity", "127.0.0.1", port, heartbeat, clients=16, duration=5).throughput
    rate = capacity * args.load
    interval = args.sessions / rate
    print(
        f"capacity {capacity:.0f} heartbeats/s; beating at {rate:.0f}/s: every {interval:.1f}s per session",
        flush=True,
    )

    events: list[dict] = []

    def restart_redis():
        moment = time.perf_counter()
        try:
            redis_server.restart_empty()
        except AssertionError:
            pass  # up again, and written to by the server before the test helper's emptiness check
        finally:
            events.append({"fault": "redis restarted empty", "at_s": round(moment - beat_start, 1),
                           "took_s": round(time.perf_counter() - moment, 2)})  # fmt: skip

    def kill_worker():
        pids = worker_pids(server.pid)
        if pids:
            os.kill(pids[0], signal.SIGKILL)
        events.append(
            {
                "fault": f"gunicorn worker {pids[:1]} killed",
                "at_s": round(time.perf_counter() - beat_start, 1),
            }
        )

    sampler = LiveSampler(redis_server.port, prefix, seeded["id"], seeded["max"])
    beat_start = time.perf_counter()
    faults = [(args.duration / 3, restart_redis), (2 * args.duration / 3, kill_worker)]
    tally = asyncio.run(
        beat_for(
            port, sessions, rate=rate, duration=args.duration, churn=args.churn, connections=args.connections,
            faults=faults,
        )
    )  # fmt: skip
    checker = sampler.stop()
    elapsed = time.perf_counter() - beat_start
    summary = tally.summary()
    return {
        "sessions": args.sessions,
        "ramp": {"seconds": round(ramp_seconds, 1), **ramp.summary()},
        "capacity_heartbeats_per_s": round(capacity, 1),
        "beat_rate_per_s": round(rate, 1),
        "beat_interval_s": round(interval, 1),
        "duration_s": round(elapsed, 1),
        # HTTP requests (the beats are tallied again, from their due times, by third).
        "requests": sum(op["requests"] for name, op in summary.items() if not name.startswith("beat")),
        "operations": summary,
        "faults": events,
        "oversell_checker": checker,
        "server": f"gunicorn --worker-class {args.worker_class} --workers {args.workers} --threads {args.threads}",
    }


if __name__ == "__main__":
    main()
