"""S3 blob storage against a real SeaweedFS: streamed multipart uploads, verification, dedup,
presigned redirects, and a client that follows them without sending its token to the store."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from modhub.errors import IntegrityError
from modhub.format.digests import sha256_file
from modhub.format.manifest import read_manifest
from modhub.server.app import create_app
from modhub.server.config import ServerSettings
from modhub.server.storage import BlobStorage, open_storage
from modhub.server.storage import s3 as storage_s3
from modhub.server.storage.s3 import S3BlobStorage
from tests.harness import API, LiveHub, running_hub
from tests.server.conftest import new_token, publish
from tests.server.seaweed import BUCKET

MiB = 1 << 20


@pytest.fixture
def store(s3_env: dict[str, str], tmp_path: Path) -> S3BlobStorage:
    backend = open_storage(ServerSettings(data_dir=tmp_path))
    assert isinstance(backend, S3BlobStorage) and isinstance(backend, BlobStorage)
    return backend


def _keys(store: S3BlobStorage) -> list[str]:
    pages = store.client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=store.prefix + "/")
    return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))


def _pending_uploads(store: S3BlobStorage) -> list[Any]:
    answer = store.client.list_multipart_uploads(Bucket=BUCKET, Prefix=store.prefix + "/")
    return list(answer.get("Uploads", []))


def _chunks(data: bytes, size: int = 1 << 18) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def test_small_blob_roundtrip_and_ranged_reads(store: S3BlobStorage) -> None:
    data = os.urandom(300_000)
    sha = store.put_stream(_chunks(data, 7000))
    assert sha == hashlib.sha256(data).hexdigest()
    assert store.exists(sha) and store.size(sha) == len(data)
    assert _keys(store) == [store.key_for(sha)] == [f"{store.prefix}/{sha[:2]}/{sha[2:4]}/{sha}"]
    with store.open(sha) as fh:
        assert fh.read() == data
        fh.seek(123_456)
        assert fh.read(10) == data[123_456:123_466]
        fh.seek(-5, os.SEEK_END)
        assert fh.read() == data[-5:]
    assert not store.exists("0" * 64)
    with pytest.raises(FileNotFoundError):
        store.size("0" * 64)


def test_large_blob_is_a_verified_multipart_upload(
    store: S3BlobStorage, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(storage_s3, "PART_BYTES", 5 * MiB)  # S3's smallest part: 3 parts here
    data = os.urandom(11 * MiB + 17)
    sha = hashlib.sha256(data).hexdigest()
    staged = tmp_path / "staged"
    staged.write_bytes(data)
    store.put_file(staged, sha)
    assert not staged.exists()
    assert store.size(sha) == len(data)
    with store.open(sha) as fh:
        assert hashlib.sha256(fh.read()).hexdigest() == sha
    # Digest not known in advance: parts go to a temporary key, then to the digest's key.
    other = os.urandom(6 * MiB)
    other_sha = store.put_stream(_chunks(other))
    assert other_sha == hashlib.sha256(other).hexdigest()
    assert _keys(store) == sorted([store.key_for(sha), store.key_for(other_sha)])
    assert _pending_uploads(store) == []


@pytest.mark.parametrize("size", [1000, 6 * MiB])
def test_wrong_bytes_leave_nothing_visible(
    store: S3BlobStorage, monkeypatch: pytest.MonkeyPatch, size: int
) -> None:
    monkeypatch.setattr(storage_s3, "PART_BYTES", 5 * MiB)
    data = os.urandom(size)
    with pytest.raises(IntegrityError):
        store.put_stream(_chunks(data), expected_sha256="0" * 64)
    assert _keys(store) == []
    assert _pending_uploads(store) == []


def test_identical_blobs_are_stored_once(store: S3BlobStorage, tmp_path: Path) -> None:
    data = b"same bytes" * 1000
    sha = hashlib.sha256(data).hexdigest()
    for i in range(3):
        staged = tmp_path / f"staged-{i}"
        staged.write_bytes(data)
        store.put_file(staged, sha)
        assert not staged.exists()
    assert store.put_stream([data]) == sha
    assert store.put_stream([data], expected_sha256=sha) == sha
    with pytest.raises(IntegrityError):
        store.put_stream([b"other"], expected_sha256=sha)
    assert _keys(store) == [store.key_for(sha)]
    assert [b.sha256 for b in store.iter_blobs()] == [sha]


def test_an_object_already_under_the_name_is_replaced_not_trusted(
    store: S3BlobStorage, tmp_path: Path
) -> None:
    data = b"the real bytes"
    sha = hashlib.sha256(data).hexdigest()
    store.client.put_object(Bucket=BUCKET, Key=store.key_for(sha), Body=b"planted, wrong bytes")
    staged = tmp_path / "staged"
    staged.write_bytes(data)
    store.put_file(staged, sha)
    with store.open(sha) as fh:
        assert fh.read() == data


def test_bad_blob_urls_are_refused_with_the_fix(tmp_path: Path) -> None:
    for bad in ("s3:/bucket", "http://x/y", "file://relative/path", "s3://bucket/p?x=1"):
        with pytest.raises(ValueError, match="s3://BUCKET/PREFIX"):
            ServerSettings(data_dir=tmp_path, blob_url=bad)
    local = open_storage(ServerSettings(data_dir=tmp_path, blob_url=(tmp_path / "b").as_uri()))
    assert local.download_url("0" * 64) is None


# --- through the hub --------------------------------------------------------------


def test_hub_on_s3_redirects_downloads_to_presigned_urls(
    s3_settings: ServerSettings, feature_module: Path
) -> None:
    with TestClient(create_app(s3_settings)) as client:
        token = new_token(client, "acme")
        assert publish(client, token, feature_module).status_code == 201
        store = client.app.state.hub.storage  # type: ignore[attr-defined]
        entry = next(e for e in read_manifest(feature_module).files if e.path == "graph.pt2")
        assert store.exists(entry.sha256)
        url = f"{API}/modules/acme/tiny/versions/1/files/graph.pt2"
        redirect = client.get(url, follow_redirects=False)
        assert redirect.status_code == 307
        assert redirect.headers["etag"] == f'"{entry.sha256}"'
        assert redirect.headers["cache-control"] == "no-store"
        location = redirect.headers["location"]
        assert location.startswith(os.environ["MODHUB_SERVER_S3_ENDPOINT"]) and "X-Amz-Signature" in location
        body = httpx.get(location)
        assert body.status_code == 200 and hashlib.sha256(body.content).hexdigest() == entry.sha256
        ranged = httpx.get(location, headers={"Range": "bytes=10-19"})
        assert ranged.status_code == 206 and ranged.content == body.content[10:20]
        # HEAD and conditional requests are answered by the hub itself.
        head = client.head(url)
        assert head.status_code == 200 and head.headers["content-length"] == str(entry.size)
        assert client.get(url, headers={"If-None-Match": f'"{entry.sha256}"'}).status_code == 304
        blob = client.get(f"{API}/blobs/{entry.sha256}", follow_redirects=False)
        assert blob.status_code == 307
        assert (
            client.get(f"{API}/modules/acme/tiny/versions/1/files/nope", follow_redirects=False).status_code
            == 404
        )


def test_streaming_instead_of_redirects(s3_settings: ServerSettings, feature_module: Path) -> None:
    """MODHUB_SERVER_S3_PRESIGN_SECONDS=0: the hub streams from the store (Range included)."""
    settings = s3_settings.model_copy(update={"s3_presign_seconds": 0})
    with TestClient(create_app(settings)) as client:
        token = new_token(client, "acme")
        assert publish(client, token, feature_module).status_code == 201
        url = f"{API}/modules/acme/tiny/versions/1/files/graph.pt2"
        whole = client.get(url, follow_redirects=False)
        assert whole.status_code == 200
        assert hashlib.sha256(whole.content).hexdigest() == sha256_file(feature_module / "graph.pt2")
        part = client.get(url, headers={"Range": "bytes=100-"})
        assert part.status_code == 206 and part.content == whole.content[100:]


class RecordingTransport(httpx.BaseTransport):
    """The real network, with a log of every request the client sent (URL and headers)."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.sent: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request)
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


@pytest.fixture(scope="module")
def s3_live_hub(
    tmp_path_factory: pytest.TempPathFactory, seaweedfs: Any, module_database_url: str | None
) -> Any:
    env = {**seaweedfs.env, "MODHUB_SERVER_BLOB_URL": f"s3://{BUCKET}/live-{os.getpid()}-{id(seaweedfs)}"}
    if module_database_url:
        env["MODHUB_SERVER_DATABASE_URL"] = module_database_url
    with running_hub(tmp_path_factory.mktemp("s3-live") / "data", env) as hub:
        yield hub


def test_client_follows_redirects_verifies_and_keeps_its_token(
    s3_live_hub: LiveHub, feature_module: Path, tmp_path: Path
) -> None:
    from modhub.client.publish import publish as publish_module
    from modhub.client.resolve import Resolver
    from modhub.settings import Settings

    token = s3_live_hub.admin("--publisher", "acme")
    handle = publish_module(
        feature_module, "acme/on-s3", settings=Settings(endpoint=s3_live_hub.url, token=token, progress=False)
    )
    settings = Settings(endpoint=s3_live_hub.url, token=token, cache=tmp_path / "cache", progress=False)
    transport = RecordingTransport()
    resolver = Resolver(settings, transport=transport)
    entry = next(e for e in read_manifest(feature_module).files if e.path == "graph.pt2")
    # Half of the graph is already here from an interrupted download: it resumes with Range.
    data = (feature_module / "graph.pt2").read_bytes()
    partial = resolver.cache.incomplete_path(entry.sha256)
    partial.parent.mkdir(parents=True, exist_ok=True)
    partial.write_bytes(data[: len(data) // 2])
    local = resolver.resolve(handle)
    for e in read_manifest(feature_module).files:
        assert sha256_file(local / e.path) == e.sha256
    store_port = httpx.URL(s3_live_hub.env["MODHUB_SERVER_S3_ENDPOINT"]).port
    to_store = [r for r in transport.sent if r.url.port == store_port]
    to_hub = [r for r in transport.sent if r.url.port == s3_live_hub.port]
    assert to_store and to_hub
    assert all("authorization" not in r.headers for r in to_store)
    assert all(r.headers.get("authorization") == f"Bearer {token}" for r in to_hub)
    graph = [r for r in to_store if entry.sha256 in r.url.path]
    assert [r.headers.get("range") for r in graph] == [f"bytes={len(data) // 2}-"]


def test_client_refuses_a_store_that_serves_other_bytes(
    s3_live_hub: LiveHub, feature_module: Path, tmp_path: Path, seaweedfs: Any
) -> None:
    """The sha256 is checked on the bytes the object store sent, not trusted from the hub."""
    from modhub.client.publish import publish as publish_module
    from modhub.settings import Settings

    token = s3_live_hub.admin("--publisher", "acme")
    handle = publish_module(
        feature_module,
        "acme/tampered",
        settings=Settings(endpoint=s3_live_hub.url, token=token, progress=False),
    )
    entry = next(e for e in read_manifest(feature_module).files if e.path == "graph.pt2")
    prefix = s3_live_hub.env["MODHUB_SERVER_BLOB_URL"].removeprefix(f"s3://{BUCKET}/")
    key = f"{prefix}/{entry.sha256[:2]}/{entry.sha256[2:4]}/{entry.sha256}"
    original = seaweedfs.client().get_object(Bucket=BUCKET, Key=key)["Body"].read()
    tampered = bytearray(original)
    tampered[len(tampered) // 2] ^= 0xFF
    seaweedfs.client().put_object(
        Bucket=BUCKET, Key=key, Body=bytes(tampered), Metadata={"sha256": entry.sha256}
    )
    try:
        from modhub.client.resolve import resolve

        with pytest.raises(IntegrityError, match="sha256"):
            resolve(handle, settings=Settings(endpoint=s3_live_hub.url, cache=tmp_path / "c", progress=False))
    finally:
        seaweedfs.client().put_object(
            Bucket=BUCKET, Key=key, Body=original, Metadata={"sha256": entry.sha256}
        )


def test_admin_commands_and_gc_on_s3_with_the_database_url(
    s3_live_hub: LiveHub, feature_module: Path, tmp_path: Path, seaweedfs: Any
) -> None:
    """create-token, seed and gc work from MODHUB_SERVER_DATABASE_URL + _BLOB_URL alone on
    PostgreSQL (create-token writes nothing locally), and with --data-dir on SQLite."""
    from modhub.client.publish import publish as publish_module
    from modhub.settings import Settings
    from tests.harness import admin_cli

    home = tmp_path / "home"
    home.mkdir()
    env = {**s3_live_hub.env, "HOME": str(home), "XDG_DATA_HOME": str(home / "data")}
    on_postgres = "MODHUB_SERVER_DATABASE_URL" in env
    data_dir = None if on_postgres else s3_live_hub.data_dir

    token = admin_cli(data_dir, "--publisher", "acme", env=env)
    if on_postgres:
        assert list(home.iterdir()) == []  # no data directory was needed
    handle = publish_module(
        feature_module,
        "acme/gc-kept",
        settings=Settings(endpoint=s3_live_hub.url, token=token, progress=False),
    )
    seeds = tmp_path / "seeds"
    (seeds / "seeded").parent.mkdir()
    import shutil

    shutil.copytree(feature_module, seeds / "seeded")
    seeded = admin_cli(data_dir, str(seeds), "--publisher", "acme", command="seed", env=env)
    assert seeded.split() == ["published", "acme/seeded/1"]

    # What dead publishes leave in the bucket: an unreferenced blob, an open multipart upload.
    store = S3BlobStorage(
        BUCKET,
        env["MODHUB_SERVER_BLOB_URL"].removeprefix(f"s3://{BUCKET}/"),
        client=seaweedfs.client(),
    )
    orphan = store.put_stream([b"bytes of a publish that died"])
    pending = store.client.create_multipart_upload(Bucket=BUCKET, Key=store.key_for("e" * 64))
    kept = {b.sha256 for b in store.iter_blobs()} - {orphan}
    dry = admin_cli(data_dir, "--dry-run", "--min-age", "0", command="gc", env=env)
    assert f"would remove blob {orphan}" in dry and pending["UploadId"] in dry
    assert store.exists(orphan)
    admin_cli(data_dir, "--min-age", "0", command="gc", env=env)
    assert {b.sha256 for b in store.iter_blobs()} == kept
    assert _pending_uploads(store) == []
    # What is published still downloads and verifies.
    from modhub.client.resolve import resolve

    for published in (handle, "acme/seeded/1"):
        local = resolve(
            published, settings=Settings(endpoint=s3_live_hub.url, cache=tmp_path / "c", progress=False)
        )
        for entry in read_manifest(feature_module).files:
            assert sha256_file(local / entry.path) == entry.sha256


def test_backup_of_an_s3_hub_lists_its_blobs_and_restores_next_to_the_store(
    s3_live_hub: LiveHub, feature_module: Path, tmp_path: Path
) -> None:
    from modhub.client.publish import publish as publish_module
    from modhub.settings import Settings
    from tests.harness import admin_run
    from tests.server.test_backup import _verify_everything

    token = s3_live_hub.admin("--publisher", "bak")
    publish_module(
        feature_module, "bak/on-s3", settings=Settings(endpoint=s3_live_hub.url, token=token, progress=False)
    )
    out = tmp_path / "backup"
    s3_live_hub.admin(str(out), command="backup")
    header = json.loads((out / "backup.json").read_text())
    assert header["blob_mode"] == "listed" and not (out / "blobs").exists()
    listed = (out / "blobs.txt").read_text().split()
    assert header["blobs"] == len(listed) // 2 > 0
    # Into an empty hub (new SQLite data directory) on the same bucket: it serves everything.
    env = {k: v for k, v in s3_live_hub.env.items() if k != "MODHUB_SERVER_DATABASE_URL"}
    wrong = admin_run(
        tmp_path / "elsewhere",
        str(out),
        command="restore",
        env={**env, "MODHUB_SERVER_BLOB_URL": f"s3://{BUCKET}/empty"},
    )
    assert wrong.returncode == 1 and "lacks" in wrong.stderr
    restored = admin_run(tmp_path / "restored", str(out), command="restore", env=env)
    assert restored.returncode == 0, restored.stderr
    with running_hub(tmp_path / "restored", env) as hub:
        assert "bak/on-s3/1" in _verify_everything(hub, tmp_path / "cache")
