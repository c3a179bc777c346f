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

__all__ = ["LocalCluster"]

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
        env = {**os.environ, **(self.env or {}), "RAY_USAGE_STATS_ENABLED": "0"}
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
