"""``modhub admin gc`` and blob integrity: orphans go in one pass, damaged blobs are never served."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from modhub.cli import app as cli
from modhub.format.manifest import read_manifest
from modhub.server.app import create_hub
from modhub.server.config import ServerSettings
from modhub.server.services.gc import collect_garbage, serving_lock
from modhub.server.storage import LocalBlobStorage
from tests.server.conftest import API, copy_module, error_code, publish, relist, server_env


def _leftovers(settings: ServerSettings, storage: LocalBlobStorage) -> tuple[str, Path, Path]:
    """What a dead publish leaves: an unreferenced blob, a staged upload, a storage temp file."""
    orphan = storage.put_stream([b"orphaned bytes of a publish that died"])
    staged = settings.staging_dir / "upload-dead"
    (staged / "module").mkdir(parents=True)
    (staged / "module" / "graph.pt2").write_bytes(b"x" * 1000)
    temp = storage.root / ".tmp" / "put-dead"
    temp.write_bytes(b"y" * 10)
    return orphan, staged, temp


def test_gc_removes_every_orphan_in_one_pass(
    client: TestClient, token: str, feature_module: Path, settings: ServerSettings
) -> None:
    assert publish(client, token, feature_module).status_code == 201
    hub = client.app.state.hub  # type: ignore[attr-defined]
    kept = {b.sha256 for b in hub.storage.iter_blobs()}
    orphan, staged, temp = _leftovers(settings, hub.storage)
    client.__exit__(None, None, None)  # the hub stops serving (releases its serving lock)
    runner = CliRunner(env=server_env(settings))  # the hub's database may be PostgreSQL
    data = ["--data-dir", str(settings.data_dir)]
    if settings.database_url:  # a shared database: gc cannot know no hub elsewhere is publishing
        data += ["--min-age", "0"]
    dry = runner.invoke(cli, ["admin", "gc", *data, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert f"would remove blob {orphan}" in dry.stdout
    assert "would remove staged upload" in dry.stdout and "incomplete write .tmp/put-dead" in dry.stdout
    assert hub.storage.exists(orphan) and staged.exists() and temp.exists()
    result = runner.invoke(cli, ["admin", "gc", *data])
    assert result.exit_code == 0, result.output
    assert f"removed blob {orphan}" in result.stdout and "removed 3 item(s)" in result.stderr
    assert not hub.storage.exists(orphan) and not staged.exists() and not temp.exists()
    assert {b.sha256 for b in hub.storage.iter_blobs()} == kept
    again = runner.invoke(cli, ["admin", "gc", *data])
    assert again.stdout == "" and "removed 0 item(s), 0 bytes" in again.stderr
    # Everything published still downloads and verifies.
    with TestClient(client.app) as reopened:
        for entry in read_manifest(feature_module).files:
            response = reopened.get(f"{API}/modules/acme/tiny/versions/1/files/{entry.path}")
            assert hashlib.sha256(response.content).hexdigest() == entry.sha256


def test_gc_keeps_young_leftovers_while_a_hub_serves(tmp_path: Path) -> None:
    settings = ServerSettings(data_dir=tmp_path / "hub")
    hub = create_hub(settings)
    try:
        orphan, staged, _ = _leftovers(settings, hub.storage)  # type: ignore[arg-type]
        with serving_lock(settings, exclusive=False):  # as `modhub serve` holds it
            report = collect_garbage(hub)
            assert report.min_age == 3600 and report.kept_young == 3 and not report.blobs
            assert hub.storage.exists(orphan)
            # Old enough leftovers go even then.
            old = time.time() - 7200
            os.utime(hub.storage.path_for(orphan), (old, old))  # type: ignore[attr-defined]
            report = collect_garbage(hub)
            assert [b.sha256 for b in report.blobs] == [orphan] and not hub.storage.exists(orphan)
            assert collect_garbage(hub, min_age=0).staged[0].path == staged
    finally:
        hub.db.dispose()


def test_damaged_blob_is_never_served_and_a_publish_repairs_it(
    client: TestClient, token: str, feature_module: Path, tmp_path: Path
) -> None:
    assert publish(client, token, feature_module).status_code == 201
    hub = client.app.state.hub  # type: ignore[attr-defined]
    entry = next(e for e in read_manifest(feature_module).files if e.path == "graph.pt2")
    url = f"{API}/modules/acme/tiny/versions/1/files/graph.pt2"
    assert client.get(url).status_code == 200
    # Same size, other bytes (bit rot, a bad disk, an operator's mistake).
    path = hub.storage.path_for(entry.sha256)
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF
    path.write_bytes(bytes(data))
    response = client.get(url)
    assert (response.status_code, error_code(response)) == (503, "blob_damaged")
    assert not path.exists() and list((hub.storage.root / ".corrupt").iterdir())
    # A fresh storage object (a restarted hub) verifies before it first serves, too.
    path.write_bytes(bytes(data))
    fresh = LocalBlobStorage(hub.storage.root)
    try:
        fresh.open(entry.sha256)
    except Exception as exc:
        assert type(exc).__name__ == "IntegrityError"
    else:
        raise AssertionError("a damaged blob was opened")
    # Publishing the same file again installs its own hashed copy instead of adopting the damaged one.
    path.write_bytes(bytes(data))
    assert publish(client, token, feature_module, repo="acme/again").status_code == 201
    response = client.get(url)
    assert response.status_code == 200 and hashlib.sha256(response.content).hexdigest() == entry.sha256


def test_unicode_file_name_in_content_disposition(
    client: TestClient, token: str, feature_module: Path, tmp_path: Path
) -> None:
    module = copy_module(feature_module, tmp_path / "uni")
    name = "nötes ünïcode €😀.txt"
    (module / "assets").mkdir(exist_ok=True)
    (module / "assets" / name).write_text("hello")
    relist(module)
    created = publish(client, token, module)
    assert created.status_code == 201, created.text
    response = client.get(f"{API}/modules/acme/tiny/versions/1/files/assets/{name}")
    assert response.status_code == 200 and response.text == "hello"
    header = response.headers["content-disposition"]
    assert header.startswith('attachment; filename="n_tes _')
    assert "filename*=UTF-8''n%C3%B6tes%20%C3%BCn%C3%AFcode%20%E2%82%AC%F0%9F%98%80.txt" in header
    from modhub.server.ranges import content_disposition

    assert content_disposition('dir/a"b\\c%\n.txt') == (
        "attachment; filename=\"a_b_c__.txt\"; filename*=UTF-8''a%22b%5Cc%25%0A.txt"
    )
    content_disposition("\udcff").encode("latin-1")  # even a lone surrogate fits the header
