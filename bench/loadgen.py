"""An open-loop HTTP load generator.

Requests are due at fixed intervals (the rate); each one's latency runs from
the moment it was *due*, not from when a connection got free to send it, so a
slow server cannot hide its queueing (no coordinated omission). A fixed pool of
keep-alive connections (the concurrent clients) takes due requests in order.

The HTTP/1.1 client is a few lines over asyncio streams: the generator shares
two cores with the server, so it must cost as little CPU as possible.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field


@dataclass
class Response:
    status: int
    body: bytes

    def json(self):
        return json.loads(self.body)


class Connection:
    """One keep-alive HTTP/1.1 connection."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> Response:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}", f"Content-Length: {len(body)}"]
        if body:
            lines.append("Content-Type: application/json")
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        try:
            # The whole header block in one read, then parsed in one pass.
            head = await self.reader.readuntil(b"\r\n\r\n")
            status_line, _, header_block = head.decode("latin-1").partition("\r\n")
            status = int(status_line.split()[1])
            length, close, chunked = 0, False, False
            for line in header_block.lower().split("\r\n"):
                name, _, value = line.partition(":")
                if name == "content-length":
                    length = int(value)
                elif name == "connection" and value.strip() == "close":
                    close = True
                elif name == "transfer-encoding" and "chunked" in value:
                    chunked = True
            if chunked:
                # An answer without a length (uvicorn sends one so): its chunks.
                payload = b""
                while size := int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16):
                    payload += (await self.reader.readexactly(size + 2))[:-2]
                await self.reader.readuntil(b"\r\n")
            else:
                payload = await self.reader.readexactly(length) if length else b""
        except (
            ConnectionError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            IndexError,
            ValueError,
        ):
            await self.close()
            raise
        if close:
            await self.close()
        return Response(status, payload)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


Operation = Callable[[Connection, int], Awaitable[bool]]
"""Runs one operation (maybe several requests) on a connection; returns success."""


class Exhausted(Exception):
    """Raised by an operation with nothing left to do (the pool it draws from is
    empty): the run ends there, and its throughput counts the time until then."""


@dataclass
class Result:
    name: str
    rate: float | None
    clients: int
    duration: float
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    late_start: int = 0

    @property
    def completed(self) -> int:
        return len(self.latencies_ms)

    @property
    def throughput(self) -> float:
        return self.completed / self.duration if self.duration else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]

    def summary(self) -> dict:
        return {
            "scenario": self.name,
            "mode": "open" if self.rate else "closed",
            "target_rate": self.rate,
            "clients": self.clients,
            "completed": self.completed,
            "errors": self.errors,
            "throughput": round(self.throughput, 1),
            "p50_ms": round(self.percentile(50), 2),
            "p95_ms": round(self.percentile(95), 2),
            "p99_ms": round(self.percentile(99), 2),
            "mean_ms": round(statistics.fmean(self.latencies_ms), 2) if self.latencies_ms else None,
        }


async def _run(
    name: str,
    host: str,
    port: int,
    operation: Operation,
    *,
    clients: int,
    duration: float,
    rate: float | None,
) -> Result:
    result = Result(name=name, rate=rate, clients=clients, duration=duration)
    queue: asyncio.Queue[tuple[int, float] | None] = asyncio.Queue()
    start = time.perf_counter() + 0.05
    end = start + duration
    exhausted: list[float] = []

    async def worker() -> None:
        connection = Connection(host, port)
        try:
            while True:
                if rate:
                    item = await queue.get()
                    if item is None or exhausted:
                        return
                    index, due = item
                    wait = due - time.perf_counter()
                    if wait > 0:
                        await asyncio.sleep(wait)
                else:
                    due = time.perf_counter()
                    if due >= end or exhausted:
                        return
                    index = result.completed + result.errors
                try:
                    ok = await operation(connection, index)
                except Exhausted:
                    exhausted.append(time.perf_counter())
                    return
                except (OSError, ConnectionError, asyncio.IncompleteReadError):
                    ok = False
                done = time.perf_counter()
                if ok:
                    result.latencies_ms.append((done - due) * 1000)
                else:
                    result.errors += 1
        finally:
            await connection.close()

    async def producer() -> None:
        interval = 1.0 / rate
        index = 0
        while True:
            due = start + index * interval
            if due >= end or exhausted:
                break
            now = time.perf_counter()
            if due > now:
                await asyncio.sleep(due - now)
            queue.put_nowait((index, due))
            index += 1
        for _ in range(clients):
            queue.put_nowait(None)

    tasks = [asyncio.create_task(worker()) for _ in range(clients)]
    if rate:
        await producer()
    await asyncio.gather(*tasks)
    if exhausted:
        result.duration = min(exhausted) - start
    else:
        result.duration = max(duration, time.perf_counter() - start) if rate else duration
    return result


def run(
    name: str,
    host: str,
    port: int,
    operation: Operation,
    *,
    clients: int = 16,
    duration: float = 10.0,
    rate: float | None = None,
) -> Result:
    """rate=None: closed loop (each client sends as fast as answers come: the
    saturation throughput). rate=N: open loop at N operations per second."""
    return asyncio.run(_run(name, host, port, operation, clients=clients, duration=duration, rate=rate))
