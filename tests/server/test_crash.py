"""Crash-safe publishing: SIGKILL the hub at random points of a ~200 MB publish, fifty times.

Each round starts a fresh hub process on the same data directory, publishes a module with a
200 MB file of random bytes, and SIGKILLs the hub at a random instant (during the upload, the
hashing and checks, or the transaction). With the hub dead, the data directory must hold no
half-visible version (every version row's files are stored, complete), and one in-process
``collect_garbage`` pass (what ``modhub admin gc`` runs) must leave exactly the blobs the
database references, no staged upload and no incomplete write. The version that was being
published when the hub died publishes again afterwards. Cost: about 1-3 s per round.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from modhub.format.digests import sha256_file
from modhub.format.manifest import MANIFEST_NAME, read_manifest
from modhub.server.app import create_hub
from modhub.server.config import ServerSettings
from modhub.server.models import Blob, File, Module, Version
from modhub.server.services.gc import collect_garbage
from tests.harness import API, free_port, serve_env
from tests.server.conftest import copy_module, relist

# At least 50 kills of a 200 MB publish (a run on a loaded machine may lower them, never CI).
KILLS = int(os.environ.get("CRASH_TEST_KILLS", "50"))
BIG_MB = int(os.environ.get("CRASH_TEST_MB", "200"))


@pytest.fixture(scope="module")
def big_module(tmp_path_factory: pytest.TempPathFactory, feature_module: Path) -> Path:
    module = copy_module(feature_module, tmp_path_factory.mktemp("crash") / "big")
    (module / "assets").mkdir(exist_ok=True)
    with open(module / "assets" / "weights.bin", "wb") as fh:
        for _ in range(BIG_MB):
            fh.write(os.urandom(1 << 20))
    return relist(module)


class Zygote:
    def __init__(self, data_dir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("_zygote.py")), str(data_dir), str(self.port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=serve_env(),
        )

    def _ask(self, line: str) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def start(self) -> int:
        pid = int(self._ask("start"))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}{API}/health", timeout=1).status_code == 200:
                    return pid
            except httpx.TransportError:
                time.sleep(0.02)
        raise AssertionError("the forked hub did not become healthy")

    def kill(self, pid: int) -> None:
        os.kill(pid, signal.SIGKILL)
        self._ask(f"wait {pid}")

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()


def _publish(url: str, token: str, module: Path, version: int, result: dict[str, Any]) -> None:
    with ExitStack() as stack:
        files: list[tuple[str, Any]] = [("manifest", (MANIFEST_NAME, (module / MANIFEST_NAME).read_bytes()))]
        for entry in read_manifest(module).files:
            files.append(("files", (entry.path, stack.enter_context(open(module / entry.path, "rb")))))
        try:
            response = httpx.post(
                f"{url}{API}/modules/acme/big/versions",
                files=files,
                data={"version": str(version)},
                headers={"Authorization": f"Bearer {token}"},
                timeout=120,
            )
            result["status"] = response.status_code
        except httpx.TransportError as exc:
            result["error"] = type(exc).__name__


def _check_consistent_and_collect(settings: ServerSettings) -> set[int]:
    """With the hub dead: no half-visible version, and one gc pass leaves exactly what is referenced."""
    hub = create_hub(settings)
    try:
        with hub.db.session() as session:
            for row in session.scalars(select(Version)):
                assert hub.storage.exists(row.manifest_sha256)
                for entry in session.scalars(select(File).where(File.version_id == row.id)):
                    assert hub.storage.size(entry.sha256) == entry.size, entry.path
            versions = set(
                session.scalars(select(Version.version).join(Version.module).where(Module.name == "big"))
            )
        report = collect_garbage(hub)
        assert report.min_age == 0 and report.kept_young == 0
        with hub.db.session() as session:
            referenced = set(session.scalars(select(Blob.sha256)))
        assert {b.sha256 for b in hub.storage.iter_blobs()} == referenced
        assert list(hub.storage.iter_incomplete()) == []
        assert not settings.staging_dir.exists() or list(settings.staging_dir.iterdir()) == []
        return versions
    finally:
        hub.db.dispose()


def test_sigkill_during_publishes(big_module: Path, tmp_path: Path) -> None:
    from modhub.server.services.tokens import create_token

    settings = ServerSettings(data_dir=tmp_path / "hub")
    hub = create_hub(settings)
    with hub.db.write_session() as session:
        token = create_token(session, publishers=["acme"]).token
        session.commit()
    hub.db.dispose()
    zygote = Zygote(settings.data_dir)
    rng = random.Random(11)
    outcomes: dict[str, int] = {}
    try:
        pid = zygote.start()
        # One publish to completion measures how long a publish takes here.
        result: dict[str, Any] = {}
        start = time.monotonic()
        _publish(zygote.url, token, big_module, 1, result)
        full = time.monotonic() - start
        assert result == {"status": 201}, result
        version = 2
        for _ in range(KILLS):
            result = {}
            thread = threading.Thread(target=_publish, args=(zygote.url, token, big_module, version, result))
            thread.start()
            time.sleep(rng.uniform(0.0, 1.1 * full))
            zygote.kill(pid)
            thread.join()
            versions = _check_consistent_and_collect(settings)
            committed = version in versions
            outcome = "committed" if committed else str(result.get("status", result.get("error")))
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
            if committed:
                version += 1
            pid = zygote.start()
        # The version that was in flight when the hub died publishes again.
        result = {}
        _publish(zygote.url, token, big_module, version, result)
        assert result == {"status": 201}, result
        url = f"{zygote.url}{API}/modules/acme/big/versions/{version}/files/assets/weights.bin"
        with httpx.stream("GET", url, timeout=120) as response, open(tmp_path / "back.bin", "wb") as fh:
            for chunk in response.iter_bytes():
                fh.write(chunk)
        assert sha256_file(tmp_path / "back.bin") == sha256_file(big_module / "assets" / "weights.bin")
        zygote.kill(pid)
    finally:
        zygote.close()
    print(f"\n{KILLS} kills; a full publish took {full:.1f} s; outcomes: {outcomes}")
    # Kills landed at different stages: some publishes died, some committed before the kill.
    assert sum(outcomes.values()) == KILLS and len(outcomes) >= 2, outcomes
