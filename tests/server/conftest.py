"""Fixtures for hub server tests: an in-process app (TestClient), tokens, tiny modules,
and a REAL server (``python -m modhub serve``) on a free loopback port."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient

from modhub.format.manifest import MANIFEST_NAME, list_files, read_manifest, write_manifest
from modhub.server.app import create_app
from modhub.server.config import ServerSettings
from modhub.server.services.tokens import create_token
from tests.tiny_models import TinyCNN

API = "/api/v1"


@pytest.fixture(scope="session")
def feature_module(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny image-feature-vector module made by modhub.export (read-only: copy before changing)."""
    import modhub as hub

    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("server-modules") / "tiny-features"
    return hub.export(
        TinyCNN(classes=6).eval(),
        torch.rand(2, 3, 32, 32),
        out,
        task="image-feature-vector",
        license="Apache-2.0",
        metadata={"title": "Tiny features", "description": "A tiny CNN for tests", "tags": ["test", "cnn"]},
    )


def copy_module(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def relist(module_dir: Path, **updates: Any) -> Path:
    """Rewrite modhub.json after files changed (the module stays self-consistent)."""
    manifest = read_manifest(module_dir)
    write_manifest(module_dir, manifest.model_copy(update={"files": list_files(module_dir), **updates}))
    return module_dir


def with_description(src: Path, dst: Path, description: str) -> Path:
    """A copy of ``src`` whose metadata differs (so its manifest and card differ)."""
    copy_module(src, dst)
    manifest = read_manifest(dst)
    meta = manifest.metadata.model_copy(update={"description": description})
    write_manifest(dst, manifest.model_copy(update={"metadata": meta}))
    return dst


def unsafe_graph(src: Path, dst: Path) -> Path:
    """A copy whose graph calls a non-aten op; re-listed, so only the safety check refuses it."""
    copy_module(src, dst)
    graph = dst / "graph.pt2"
    with zipfile.ZipFile(graph) as zin:
        entries = [(info, zin.read(info)) for info in zin.infolist()]
    with zipfile.ZipFile(graph, "w") as zout:
        for info, data in entries:
            if info.filename.endswith("models/model.json"):
                text = data.decode()
                assert "torch.ops.aten.relu.default" in text
                data = text.replace(
                    "torch.ops.aten.relu.default", "torch.ops.evilpkg.system.default"
                ).encode()
            zout.writestr(info, data)
    return relist(dst)


def multipart(module_dir: Path, *, extra: dict[str, bytes] | None = None) -> list[tuple[str, Any]]:
    """The publish body for a module directory: manifest + one 'files' part per listed file."""
    parts: list[tuple[str, Any]] = [("manifest", (MANIFEST_NAME, (module_dir / MANIFEST_NAME).read_bytes()))]
    for entry in read_manifest(module_dir).files:
        parts.append(("files", (entry.path, (module_dir / entry.path).read_bytes())))
    for path, data in (extra or {}).items():
        parts.append(("files", (path, data)))
    return parts


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def publish(
    client: httpx.Client,
    token: str | None,
    module_dir: Path,
    repo: str = "acme/tiny",
    version: int | None = None,
    **kwargs: Any,
) -> httpx.Response:
    data = {"version": str(version)} if version is not None else None
    headers = auth(token) if token else {}
    return client.post(
        f"{API}/modules/{repo}/versions", files=multipart(module_dir, **kwargs), data=data, headers=headers
    )


def error_code(response: httpx.Response) -> str:
    return str(response.json()["error"]["code"])


@pytest.fixture
def database_url() -> Iterator[str | None]:
    """None: the embedded SQLite. With MODHUB_TEST_POSTGRES=postgresql+psycopg://user@host:port/db,
    every test gets a fresh PostgreSQL database instead (portability check; optional)."""
    admin_url = os.environ.get("MODHUB_TEST_POSTGRES")
    if not admin_url:
        yield None
        return
    import uuid

    from sqlalchemy import create_engine, text

    name = f"modhub_test_{uuid.uuid4().hex[:12]}"
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    try:
        yield admin_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with engine.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        engine.dispose()


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None) -> ServerSettings:
    return ServerSettings(data_dir=tmp_path / "hub", database_url=database_url)


@pytest.fixture
def client(settings: ServerSettings) -> Iterator[TestClient]:
    app = create_app(settings)
    with TestClient(app) as test_client:
        yield test_client


def new_token(client: TestClient, *publishers: str, admin: bool = False) -> str:
    hub = client.app.state.hub  # type: ignore[attr-defined]
    with hub.db.write_session() as session:
        created = create_token(session, name="test", publishers=publishers, admin=admin)
        session.commit()
    return created.token


@pytest.fixture
def token(client: TestClient) -> str:
    """A token for publisher 'acme'."""
    return new_token(client, "acme")


@pytest.fixture
def admin_token(client: TestClient) -> str:
    return new_token(client, admin=True)


@pytest.fixture
def published(client: TestClient, token: str, feature_module: Path) -> str:
    """acme/tiny/1 published; returns its handle."""
    response = publish(client, token, feature_module)
    assert response.status_code == 201, response.text
    return str(response.json()["handle"])


# --- a real server ---------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _src_dir() -> str:
    import modhub

    return str(Path(modhub.__file__).resolve().parent.parent)


def serve_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_src_dir(), env.get("PYTHONPATH", "")) if p)
    return env


class LiveHub:
    def __init__(self, data_dir: Path, env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.env = env or {}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = data_dir.parent / f"serve-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.startup_s = 0.0

    def start(self, timeout: float = 60.0) -> None:
        start = time.monotonic()
        cmd = [
            sys.executable,
            "-m",
            "modhub",
            "serve",
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
        ]
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, env={**serve_env(), **self.env}
            )
        while time.monotonic() - start < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"modhub serve exited with {self.proc.returncode}:\n{self.log.read_text()}"
                )
            try:
                if httpx.get(f"{self.url}{API}/health", timeout=1.0).status_code == 200:
                    self.startup_s = time.monotonic() - start
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"modhub serve did not become healthy in {timeout} s:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


@pytest.fixture(scope="module")
def live_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveHub]:
    """``python -m modhub serve`` on a free loopback port with a fresh data dir."""
    hub = LiveHub(tmp_path_factory.mktemp("live") / "data")
    hub.start()
    try:
        yield hub
    finally:
        hub.stop()


def admin_cli(data_dir: Path, *args: str, command: str = "create-token") -> str:
    """Run `modhub admin <command>` and return what it printed on stdout (create-token: the token)."""
    cmd = [sys.executable, "-m", "modhub", "admin", command, "--data-dir", str(data_dir), *args]
    result = subprocess.run(cmd, capture_output=True, env=serve_env(), timeout=120, check=False)
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode().strip()


def dump(obj: Any) -> str:
    return json.dumps(obj, indent=1, sort_keys=True)


@pytest.fixture(autouse=True)
def _no_server_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads the developer's MODHUB_SERVER_* settings."""
    for var in list(os.environ):
        if var.startswith("MODHUB_SERVER_"):
            monkeypatch.delenv(var)
