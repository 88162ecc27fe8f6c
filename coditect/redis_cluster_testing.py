"""A real Redis Cluster for the tests: three primaries and three replicas of
Debian's redis-server on free local ports, made once per test session
(`redis_cluster`) and taken down at its end. It never touches the shared Redis.

The nodes keep nothing on disk but their cluster config file (`--save ""
--appendonly no`), so a node killed and started again comes back empty and
rejoins as a replica of whichever node holds its slots now, as a Memorystore
node replaced after a failure does.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from coditect.testing import free_port

PRIMARIES = 3
REPLICAS_PER_PRIMARY = 1
# How long a node may be unreachable before the others mark it failed. Short,
# so a test that kills a node sees the cluster settle within seconds.
NODE_TIMEOUT_MS = 2000
_SETTLE_SECONDS = 60


@dataclass
class ClusterNode:
    port: int
    bus_port: int
    directory: Path
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def client(self):
        """A plain client to this one node (CLUSTER and INFO commands)."""
        import redis

        return redis.Redis(port=self.port, decode_responses=True, socket_timeout=5, socket_connect_timeout=5)

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        # The test's own server, by its name on PATH, keeping only its cluster config.
        self.process = subprocess.Popen(  # noqa: S603
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",  # noqa: S607
             "--cluster-enabled", "yes", "--cluster-port", str(self.bus_port),
             "--cluster-config-file", str(self.directory / "nodes.conf"),
             "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
             "--save", "", "--appendonly", "no", "--dir", str(self.directory),
             # A replica's first sync at once, not after the default 5 s wait for others.
             "--repl-diskless-sync-delay", "0",
             # Replicas' offsets advance (and CLUSTER SLOTS lists them) within a second.
             "--repl-ping-replica-period", "1",
             "--maxmemory-policy", "noeviction"],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        _until(self._answers, f"redis-server on {self.port} did not start")

    def _answers(self) -> bool:
        import redis

        try:
            with self.client() as client:
                return bool(client.ping())
        except redis.ConnectionError:
            return False

    def kill(self) -> None:
        """SIGKILL: the node vanishes mid-answer, as a crashed host does."""
        if self.running:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.running:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass(frozen=True)
class Shard:
    primary: ClusterNode
    replicas: tuple[ClusterNode, ...]
    slots: tuple[tuple[int, int], ...]

    def holds(self, slot: int) -> bool:
        return any(low <= slot <= high for low, high in self.slots)


class RedisClusterForTests:
    """The nodes, the `redis+cluster://` URL the app is given, and what a
    failover test does to them: find a slot's primary and replica, fail over,
    kill, and bring the cluster back to three healthy shards (`heal`)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        ports: set[int] = set()
        while len(ports) < 2 * PRIMARIES * (1 + REPLICAS_PER_PRIMARY):
            ports.add(free_port())
        ordered = sorted(ports)
        count = len(ordered) // 2
        self.nodes = [
            ClusterNode(port, bus, directory / str(port))
            for port, bus in zip(ordered[:count], ordered[count:], strict=True)
        ]

    @property
    def url(self) -> str:
        """Every node named, so a client made while one is down finds the others."""
        return f"redis+cluster://{','.join(node.address for node in self.nodes)}/0"

    def start(self) -> None:
        for node in self.nodes:
            node.start()
        created = subprocess.run(  # noqa: S603
            ["redis-cli", "--cluster", "create", *(node.address for node in self.nodes),  # noqa: S607
             "--cluster-replicas", str(REPLICAS_PER_PRIMARY), "--cluster-yes"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert created.returncode == 0, created.stdout + created.stderr
        self.wait_healthy()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def node(self, address: str) -> ClusterNode:
        port = int(address.rsplit(":", 1)[1])
        return next(node for node in self.nodes if node.port == port)

    def shards(self, *, asked: ClusterNode | None = None) -> list[Shard]:
        """The cluster's shards as one running node sees them (CLUSTER NODES;
        nodes it marks failed left out)."""
        asked = asked or next(node for node in self.nodes if node.running)
        with asked.client() as client:
            # redis-py parses the reply into {address: fields}.
            seen = client.execute_command("CLUSTER NODES")
        live = {
            fields["node_id"]: (address.split("@")[0], fields)
            for address, fields in seen.items()
            if "fail" not in fields["flags"].split(",")
        }
        shards = []
        for node_id, (address, fields) in live.items():
            if "master" in fields["flags"].split(",") and fields["slots"]:
                replicas = tuple(
                    self.node(other) for other, theirs in live.values() if theirs["master_id"] == node_id
                )
                slots = tuple((int(s[0]), int(s[-1])) for s in fields["slots"])
                shards.append(Shard(self.node(address), replicas, slots))
        return shards

    def shard_of(self, slot: int) -> Shard:
        return next(shard for shard in self.shards() if shard.holds(slot))

    @staticmethod
    def slot_of(key: str) -> int:
        from redis.crc import key_slot

        return key_slot(key.encode())

    def fail_over(self, replica: ClusterNode) -> None:
        """CLUSTER FAILOVER on `replica`: it and its primary swap roles once
        the replica has every write (a coordinated switch: nothing is lost)."""
        with replica.client() as client:
            client.execute_command("CLUSTER FAILOVER")
        self.wait_promoted(replica, timeout=30)

    def wait_promoted(self, replica: ClusterNode, *, timeout: float) -> None:
        """Until every running node sees `replica` as a primary (the cluster
        promoted it by itself after its primary failed)."""
        _until(
            lambda: all(
                any(shard.primary is replica for shard in self.shards(asked=node))
                for node in self.nodes
                if node.running
            ),
            f"{replica.address} was not promoted",
            timeout=timeout,
        )

    def heal(self) -> None:
        """Start any node that is down (it rejoins as a replica) and wait until
        every shard has its primary and a replica in sync."""
        for node in self.nodes:
            if not node.running:
                node.start()
        self.wait_healthy()

    def wait_healthy(self) -> None:
        _until(self._healthy, "the test cluster did not settle", timeout=_SETTLE_SECONDS)

    def _healthy(self) -> bool:
        import redis

        try:
            for node in self.nodes:
                with node.client() as client:
                    info = client.execute_command("CLUSTER INFO")
                    if isinstance(info, str):
                        info = dict(line.split(":", 1) for line in info.strip().splitlines() if ":" in line)
                    if info.get("cluster_state") != "ok" or int(info.get("cluster_known_nodes", 0)) != len(
                        self.nodes
                    ):
                        return False
                    replication = client.info("replication")
                    if replication["role"] == "slave" and replication.get("master_link_status") != "up":
                        return False
                    # The topology a client reads names every replica (a node
                    # leaves out a replica it has not yet seen replicate).
                    slots = client.execute_command("CLUSTER SLOTS")
                    if any(len(entry) < 3 + REPLICAS_PER_PRIMARY for entry in slots):
                        return False
            for node in self.nodes:
                shards = self.shards(asked=node)
                if len(shards) != PRIMARIES or any(
                    len(shard.replicas) != REPLICAS_PER_PRIMARY for shard in shards
                ):
                    return False
                if sum(high - low + 1 for shard in shards for low, high in shard.slots) != 16384:
                    return False
        except (redis.RedisError, StopIteration, ValueError):
            return False
        return True


def _until(condition, message: str, *, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, message
        time.sleep(0.05)


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisClusterForTests]:
    """A 3-primary, 3-replica Redis Cluster of the session's own, healthy at
    the start of each test that takes it (a failover test heals it)."""
    directory = Path(tempfile.mkdtemp(prefix="coditect-redis-cluster-"))
    cluster = RedisClusterForTests(directory)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(directory, ignore_errors=True)
