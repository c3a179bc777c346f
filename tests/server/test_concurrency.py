"""Concurrent publishes at the service level (SQLite by default; PostgreSQL with MODHUB_TEST_POSTGRES)."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from modhub.format.manifest import MANIFEST_NAME, read_manifest
from modhub.server.app import create_hub
from modhub.server.config import ServerSettings
from modhub.server.deps import Hub
from modhub.server.errors import ApiError
from modhub.server.models import Token
from modhub.server.services.publishing import publish_version
from modhub.server.services.tokens import create_token
from modhub.server.uploads import StagedFile, StagedUpload

WORKERS = 6


@pytest.fixture
def hub(settings: ServerSettings) -> Iterator[Hub]:
    hub = create_hub(settings)
    yield hub
    hub.db.dispose()


@pytest.fixture
def admin(hub: Hub) -> Token:
    with hub.db.write_session() as session:
        created = create_token(session, admin=True)
        session.commit()
        token = session.get(Token, created.id)
        assert token is not None
        return token


def _stage(hub: Hub, module: Path, version: int | None) -> StagedUpload:
    """What the multipart receiver would produce for ``module``."""
    staging = hub.new_staging()
    shutil.copytree(module, staging / "module")
    (staging / "module" / MANIFEST_NAME).unlink()
    upload = StagedUpload(
        module_dir=staging / "module",
        manifest=(module / MANIFEST_NAME).read_bytes(),
        version=str(version) if version is not None else None,
    )
    for entry in read_manifest(module).files:
        upload.files[entry.path] = StagedFile(entry.path, entry.size, entry.sha256)
    return upload


def _race(hub: Hub, token: Token, jobs: list[tuple[str, StagedUpload]]) -> list[str]:
    """Publish all jobs at once; return "ok:<version>" or the error code of each."""
    barrier = threading.Barrier(len(jobs))

    def run(job: tuple[str, StagedUpload]) -> str:
        repo, upload = job
        publisher, name = repo.split("/")
        barrier.wait()
        try:
            result = publish_version(
                hub.db, hub.storage, token=token, publisher=publisher, name=name, upload=upload
            )
        except ApiError as exc:
            return exc.code
        return f"ok:{result.version}"

    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        return sorted(pool.map(run, jobs))


Stager = Callable[[int | None], StagedUpload]


@pytest.fixture
def stage(hub: Hub, feature_module: Path) -> Stager:
    return lambda version: _stage(hub, feature_module, version)


def test_same_version_exactly_one_winner(hub: Hub, admin: Token, stage: Stager) -> None:
    results = _race(hub, admin, [("acme/race", stage(1)) for _ in range(WORKERS)])
    assert results == ["ok:1"] + ["version_exists"] * (WORKERS - 1)


def test_next_version_each_get_their_own(hub: Hub, admin: Token, stage: Stager) -> None:
    results = _race(hub, admin, [("acme/race", stage(None)) for _ in range(WORKERS)])
    assert results == sorted(f"ok:{n}" for n in range(1, WORKERS + 1))


def test_lookalike_names_race(hub: Hub, admin: Token, stage: Stager) -> None:
    names = ["acme/my-model", "acme/my_model", "acme/my.model", "acme/my-mode1"]
    results = _race(hub, admin, [(name, stage(None)) for name in names])
    assert results == ["lookalike_name"] * 3 + ["ok:1"]
