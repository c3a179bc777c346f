"""A single-node Ray cluster on this machine, for tests, benchmarks and trying things out.

    with LocalCluster(num_cpus=2) as cluster:
        job = submit_predict("modhub/minilm-l6/1", "texts.txt", "out.parquet", cluster=cluster.address)

It runs ``ray start --head --block`` in a session of its own, with every port it
opens chosen free on loopback and its own ``--temp-dir``, so it cannot collide
with another cluster on the machine. ``stop()`` ends exactly the processes of
that session (``ray stop`` would end every Ray cluster of the user).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

import httpx

from modhub.errors import ClusterError

__all__ = ["LOOPBACK_ENV", "LocalCluster", "cluster_sockets"]

# ``ray start`` flags that each open a port; all are given a free one.
_PORT_FLAGS = (
    "--port",
    "--dashboard-port",
    "--ray-client-server-port",
    "--node-manager-port",
    "--object-manager-port",
    "--dashboard-agent-listen-port",
    "--dashboard-agent-grpc-port",
    "--runtime-env-agent-port",
    "--metrics-export-port",
)
# The environment of every process of the cluster (they inherit it from ``ray start``).
# On Linux Ray turns a node address of 127.0.0.1 into the host's address (its
# ``resolve_ip_for_localhost``), so GCS, raylet, dashboard agent and workers would
# listen on all interfaces and talk over the host's address even with
# ``--node-ip-address 127.0.0.1``. With ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` Ray
# treats the node as single-machine, as it does on macOS and Windows: the node
# address is 127.0.0.1 and every process binds and connects to loopback only.
LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}
# Worker processes each listen on one port of this many (a range chosen free as a block).
_WORKER_PORTS = 64


def _free_ports(count: int) -> list[int]:
    # Hold every socket until all are chosen, so no port is handed out twice.
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket())
            sock.bind(("127.0.0.1", 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def _free_range(size: int) -> tuple[int, int]:
    """A block of ``size`` consecutive ports that are free now (tried from a random start)."""
    import random

    for _ in range(200):
        start = random.randrange(20000, 30000 - size)
        try:
            with contextlib.ExitStack() as stack:
                for port in range(start, start + size):
                    sock = stack.enter_context(socket.socket())
                    sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        return start, start + size - 1
    raise ClusterError(f"found no {size} consecutive free ports for Ray's workers")


class LocalCluster:
    """A Ray head node on this machine; ``address`` is its Jobs API URL (the dashboard)."""

    def __init__(
        self,
        *,
        num_cpus: int = 2,
        object_store_memory: int = 400_000_000,
        env: Mapping[str, str] | None = None,
        temp_root: str | os.PathLike[str] | None = None,
    ) -> None:
        self.num_cpus = num_cpus
        self.object_store_memory = object_store_memory
        self.env = dict(env) if env is not None else None
        # Ray puts unix sockets under its temp dir; their paths must stay short (< 108 bytes).
        self.temp_dir = Path(tempfile.mkdtemp(prefix="mhray-", dir=temp_root))
        self.ports = dict(zip(_PORT_FLAGS, _free_ports(len(_PORT_FLAGS)), strict=True))
        self.address = f"http://127.0.0.1:{self.ports['--dashboard-port']}"
        self.log = self.temp_dir / "ray-start.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 90.0) -> LocalCluster:
        low, high = _free_range(_WORKER_PORTS)
        ray = str(Path(sys.executable).with_name("ray"))
        cmd = [
            ray if Path(ray).exists() else shutil.which("ray") or "ray",
            "start",
            "--head",
            "--block",
            "--num-cpus",
            str(self.num_cpus),
            "--object-store-memory",
            str(self.object_store_memory),
            "--dashboard-host",
            "127.0.0.1",
            "--node-ip-address",
            "127.0.0.1",
            "--temp-dir",
            str(self.temp_dir),
            "--disable-usage-stats",
            "--min-worker-port",
            str(low),
            "--max-worker-port",
            str(high),
        ]
        for flag, port in self.ports.items():
            cmd += [flag, str(port)]
        env = {**os.environ, **(self.env or {}), **LOOPBACK_ENV}
        started = time.monotonic()
        with open(self.log, "wb") as log:
            # A session of its own: stop() signals exactly this cluster's processes.
            self._proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        while time.monotonic() - started < timeout:
            if self._proc.poll() is not None:
                text = self.log.read_text(errors="replace")
                self.stop()
                raise ClusterError(f"ray start exited with {self._proc.returncode}:\n{text[-3000:]}")
            try:
                response = httpx.get(f"{self.address}/api/version", timeout=2.0)
                if response.status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        self.stop()
        raise ClusterError(f"the local Ray cluster did not answer within {timeout:.0f} s (log: {self.log})")

    def stop(self, timeout: float = 5.0) -> None:
        """End every process of this cluster's session, then remove its temp dir."""
        proc, self._proc = self._proc, None
        if proc is not None:
            sid = proc.pid  # the session id is the leader's pid
            with contextlib.suppress(ProcessLookupError):
                os.killpg(sid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and _session_members(sid):
                if proc.poll() is None:
                    time.sleep(0.2)
                else:
                    break
            # Ray's workers put themselves in process groups of their own, but stay in the session.
            for pid in _session_members(sid):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        shutil.rmtree(self.temp_dir, ignore_errors=True)

    def sockets(self) -> list[tuple[str, str]]:
        """(local, remote) address of every TCP socket the cluster's processes hold now."""
        return cluster_sockets(self._proc.pid) if self._proc is not None else []

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _session_members(sid: int) -> list[int]:
    """Pids of live processes in session ``sid`` (read from /proc; Linux)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after the command name (which may hold spaces) in parentheses.
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 3 and fields[0] != "Z" and int(fields[3]) == sid:
            members.append(int(entry.name))
    return members


def cluster_sockets(sid: int) -> list[tuple[str, str]]:
    """(local, remote) ``host:port`` of every TCP socket held by session ``sid``'s processes
    (read from /proc; Linux). A listening socket's remote is ``0.0.0.0:0``."""
    inodes: set[str] = set()
    for pid in _session_members(sid):
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    if target.startswith("socket:["):
                        inodes.add(target[8:-1])
    found = []
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
                fields = line.split()
                if len(fields) > 9 and fields[9] in inodes:
                    found.append((_proc_address(fields[1]), _proc_address(fields[2])))
    return found


def _proc_address(text: str) -> str:
    import ipaddress

    raw, port = text.split(":")
    data = bytes.fromhex(raw)
    # /proc/net/tcp* stores the address as 32-bit words in host (little-endian) order.
    data = b"".join(data[i : i + 4][::-1] for i in range(0, len(data), 4))
    address = ipaddress.ip_address(data)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return f"{address}:{int(port, 16)}"
