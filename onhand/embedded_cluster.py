"""A local Valkey Cluster from the embedded binary: primaries and replicas on
loopback TCP ports, formed with CLUSTER ADDSLOTSRANGE / MEET / REPLICATE.

For the tests and benchmarks that need a real cluster (3 primaries and 3
replicas start in about 2 s here); each node is an embedded Valkey with AOF
(``appendfsync always`` by default) and the parent-death signal, like the
standalone one.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

from redis import Redis

from onhand.embedded import EmbeddedServer, EmbeddedServerError, start_valkey

SLOTS = 16384
#: How long the cluster may take to agree that it is whole, seconds.
FORM_TIMEOUT_S = 30.0
#: A primary unreachable this long is failed over to its replica, milliseconds.
NODE_TIMEOUT_MS = 2000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class ClusterNodeProcess:
    server: EmbeddedServer
    port: int
    bus_port: int
    #: How it was started (start_valkey's arguments), to start it again.
    start: dict = field(default_factory=dict)
    node_id: str = ""
    #: The primary's node id for a replica, "" for a primary.
    replica_of: str = ""

    def client(self) -> Redis:
        return Redis(host="127.0.0.1", port=self.port, socket_timeout=5)


@dataclass
class LocalCluster:
    nodes: list[ClusterNodeProcess] = field(default_factory=list)

    @property
    def url(self) -> str:
        """An ONHAND_REDIS_URL naming the cluster (every primary as a seed)."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.primaries())

    def primaries(self) -> list[ClusterNodeProcess]:
        return [n for n in self.nodes if not n.replica_of]

    def replicas(self) -> list[ClusterNodeProcess]:
        return [n for n in self.nodes if n.replica_of]

    def stop(self) -> None:
        for node in self.nodes:
            node.server.stop()

    def restart(self, node: ClusterNodeProcess) -> None:
        """Starts a stopped (or killed) node again on its files: it rejoins
        the cluster (a primary that was failed over comes back as a replica)."""
        node.server.kill()
        node.server = start_valkey(**node.start)


def start_cluster(root: Path, *, primaries: int = 3, replicas_per_primary: int = 1,
                  appendfsync: str = "always", maxmemory_bytes: int = 512 * 1024**2) -> LocalCluster:
    """Starts and forms a cluster under ``root``; its slots spread evenly over
    the primaries, each with ``replicas_per_primary`` replicas."""
    cluster = LocalCluster()
    try:
        for i in range(primaries * (1 + replicas_per_primary)):
            port, bus_port = _free_port(), _free_port()
            start = dict(data_dir=Path(root) / f"node-{i}", appendfsync=appendfsync,
                         maxmemory_bytes=maxmemory_bytes,
                         extra_args=["--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                                     # its own bus port (the default, port + 10000, may not exist)
                                     "--cluster-port", str(bus_port),
                                     "--cluster-config-file", "nodes.conf",
                                     "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
                                     # a replica may take over after any time apart (tests kill primaries)
                                     "--cluster-replica-validity-factor", "0"])
            cluster.nodes.append(ClusterNodeProcess(start_valkey(**start), port, bus_port, start))
        for node in cluster.nodes:
            with node.client() as c:
                node.node_id = c.execute_command("CLUSTER", "MYID").decode()
        heads = cluster.nodes[:primaries]
        per = SLOTS // primaries
        for i, node in enumerate(heads):
            first, last = i * per, (SLOTS - 1 if i == primaries - 1 else (i + 1) * per - 1)
            with node.client() as c:
                c.execute_command("CLUSTER", "ADDSLOTSRANGE", first, last)
        with cluster.nodes[0].client() as c:
            for node in cluster.nodes[1:]:
                c.execute_command("CLUSTER", "MEET", "127.0.0.1", node.port, node.bus_port)
        _wait(lambda: all(_known(n) == len(cluster.nodes) for n in cluster.nodes), "the nodes to meet")
        for i, node in enumerate(cluster.nodes[primaries:]):
            primary = heads[i % primaries]
            node.replica_of = primary.node_id
            # the replica may know of its primary only from a handshake so far
            # ("Unknown node" until gossip has its id): retried until it does
            _wait(lambda node=node, primary=primary: _replicate(node, primary.node_id),
                  f"port {node.port} to replicate {primary.port}")
        _wait(lambda: all(_state_ok(n) for n in cluster.nodes), "the cluster to be whole")
        _wait(lambda: all(_synced(n) for n in cluster.replicas()), "the replicas to sync")
        return cluster
    except Exception:
        cluster.stop()
        raise


def _replicate(node: ClusterNodeProcess, primary_id: str) -> bool:
    with node.client() as c:
        c.execute_command("CLUSTER", "REPLICATE", primary_id)
    return True


def _known(node: ClusterNodeProcess) -> int:
    with node.client() as c:
        return len([ln for ln in c.execute_command("CLUSTER", "NODES").decode().splitlines() if ln.strip()])


def _state_ok(node: ClusterNodeProcess) -> bool:
    with node.client() as c:
        return b"cluster_state:ok" in c.execute_command("CLUSTER", "INFO")


def _synced(node: ClusterNodeProcess) -> bool:
    with node.client() as c:
        info = c.info("replication")
    return info.get("role") == "slave" and info.get("master_link_status") == "up"


def _wait(check, what: str) -> None:
    deadline = time.monotonic() + FORM_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:  # noqa: BLE001 - a node still starting
            pass
        time.sleep(0.05)
    raise EmbeddedServerError(f"the cluster did not form: timed out waiting for {what}")
