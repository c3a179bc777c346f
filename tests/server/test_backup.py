"""`modhub admin backup OUT` while the hub serves (and publishes), `modhub admin restore OUT` into
an empty hub: every module still verifies, tokens still work, nothing half-written."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from modhub.format.digests import sha256_file
from modhub.format.manifest import read_manifest
from tests.harness import (
    API,
    LiveHub,
    admin_cli,
    admin_run,
    database_env,
    fresh_postgres_database,
    running_hub,
)
from tests.server.conftest import with_description


@contextlib.contextmanager
def _empty_target(
    tmp: Path, database_url: str | None, request: pytest.FixtureRequest
) -> Iterator[dict[str, str]]:
    """Settings (as environment) of an empty hub of the same kind: a new data directory, and a
    new PostgreSQL database when the source was on PostgreSQL."""
    if database_url is None:
        yield {}
        return
    with fresh_postgres_database(request.getfixturevalue("postgres_admin_url")) as url:
        yield database_env(url)


def _verify_everything(hub: LiveHub, cache: Path) -> list[str]:
    """Resolve every version of every module on ``hub`` and check every file's sha256."""
    from modhub.client.resolve import resolve
    from modhub.settings import Settings

    handles = []
    for item in httpx.get(f"{hub.url}{API}/modules", params={"per_page": 100}).json()["items"]:
        for version in httpx.get(f"{hub.url}{API}/modules/{item['handle']}").json()["versions"]:
            handle = f"{item['handle']}/{version['version']}"
            local = resolve(handle, settings=Settings(endpoint=hub.url, cache=cache, progress=False))
            for entry in read_manifest(local).files:
                assert sha256_file(local / entry.path) == entry.sha256, (handle, entry.path)
            handles.append(handle)
    return sorted(handles)


def test_backup_while_publishing_then_restore(
    live_hub: LiveHub,
    module_database_url: str | None,
    feature_module: Path,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    from modhub.client.publish import publish
    from modhub.settings import Settings

    token = live_hub.admin("--publisher", "keep")
    client = Settings(endpoint=live_hub.url, token=token, progress=False)
    publish(feature_module, "keep/first", settings=client)
    second = with_description(feature_module, tmp_path / "second", "published during the backup")
    errors: list[BaseException] = []

    def publish_during() -> None:
        try:
            for _ in range(3):
                publish(second, "keep/during", settings=client)
        except BaseException as exc:
            errors.append(exc)

    out = tmp_path / "backup"
    thread = threading.Thread(target=publish_during)
    thread.start()
    printed = live_hub.admin(str(out), command="backup")
    thread.join()
    assert not errors, errors
    assert printed == str(out)
    header = json.loads((out / "backup.json").read_text())
    assert header["blob_mode"] == "copied" and header["rows"]["versions"] >= 1
    assert not list(tmp_path.glob(".backup.partial-*"))
    again = admin_run(live_hub.data_dir, str(out), command="backup", env=live_hub.env)
    assert again.returncode == 1 and "not empty" in again.stderr

    with _empty_target(tmp_path, module_database_url, request) as env:
        target = tmp_path / "restored"
        restored = admin_cli(target, str(out), command="restore", env=env)
        assert restored == ""
        refused = admin_run(target, str(out), command="restore", env=env)
        assert refused.returncode == 1 and "not empty" in refused.stderr
        with running_hub(target, env) as hub:
            handles = _verify_everything(hub, tmp_path / "cache")
            assert "keep/first/1" in handles
            # The snapshot holds whole publishes only: as many "during" versions as it counted.
            assert len(handles) == header["rows"]["versions"]
            # Tokens came back, and new rows get fresh ids after the restored ones.
            third = with_description(feature_module, tmp_path / "third", "after the restore")
            handle = publish(
                third, "keep/after", settings=Settings(endpoint=hub.url, token=token, progress=False)
            )
            assert handle == "keep/after/1"
