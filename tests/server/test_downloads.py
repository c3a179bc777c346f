"""File downloads: ETag = sha256, If-None-Match, Range (206/416), HEAD, blobs by address, counts."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from modhub.format.manifest import read_manifest
from modhub.server.config import ServerSettings
from modhub.server.errors import RangeNotSatisfiable
from modhub.server.ranges import parse_range
from tests.server.conftest import API, error_code

GRAPH = f"{API}/modules/acme/tiny/versions/1/files/graph.pt2"


@pytest.fixture
def settings(settings: ServerSettings) -> ServerSettings:
    """The hub of these tests flushes download counts only when a test says so.

    The server's own flush runs every second: on a busy machine it could write the
    counts in the middle of a test that counts what one flush writes (seen: 29 of 50).
    """
    return settings.model_copy(update={"download_flush_seconds": 3600.0})


@pytest.fixture
def graph(feature_module: Path) -> bytes:
    return (feature_module / "graph.pt2").read_bytes()


@pytest.fixture
def graph_sha(feature_module: Path) -> str:
    return read_manifest(feature_module).file("graph.pt2").sha256


def test_etag_and_full_download(client: TestClient, published: str, graph: bytes, graph_sha: str) -> None:
    response = client.get(GRAPH)
    assert response.status_code == 200
    assert response.content == graph
    assert response.headers["etag"] == f'"{graph_sha}"'
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["content-length"] == str(len(graph))
    assert "immutable" in response.headers["cache-control"]


def test_if_none_match_gives_304(client: TestClient, published: str, graph_sha: str) -> None:
    response = client.get(GRAPH, headers={"If-None-Match": f'"{graph_sha}"'})
    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["etag"] == f'"{graph_sha}"'
    other = client.get(GRAPH, headers={"If-None-Match": '"0000"'})
    assert other.status_code == 200


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [("bytes=0-9", 0, 9), ("bytes=100-", 100, None), ("bytes=-50", -50, None), ("bytes=10-10", 10, 10)],
)
def test_range_gives_206(
    client: TestClient, published: str, graph: bytes, header: str, start: int, end: int | None
) -> None:
    response = client.get(GRAPH, headers={"Range": header})
    assert response.status_code == 206
    expected = graph[start : (end + 1 if end is not None else None)] if start >= 0 else graph[start:]
    assert response.content == expected
    first = start if start >= 0 else len(graph) + start
    last = end if end is not None else len(graph) - 1
    assert response.headers["content-range"] == f"bytes {first}-{last}/{len(graph)}"
    assert response.headers["content-length"] == str(len(expected))


def test_range_past_the_end_is_clamped(client: TestClient, published: str, graph: bytes) -> None:
    response = client.get(GRAPH, headers={"Range": f"bytes=5-{len(graph) * 2}"})
    assert response.status_code == 206
    assert response.content == graph[5:]


@pytest.mark.parametrize("header", ["bytes=999999999-", "bytes=9-2", "bytes=abc", "bytes=-0", "bytes=-"])
def test_bad_range_gives_416(client: TestClient, published: str, graph: bytes, header: str) -> None:
    response = client.get(GRAPH, headers={"Range": header})
    assert response.status_code == 416
    assert error_code(response) == "range_not_satisfiable"
    assert response.headers["content-range"] == f"bytes */{len(graph)}"


def test_other_units_multi_ranges_and_stale_if_range_send_everything(
    client: TestClient, published: str, graph: bytes
) -> None:
    for headers in (
        {"Range": "items=0-1"},
        {"Range": "bytes=0-1,5-6"},
        {"Range": "bytes=0-1", "If-Range": '"x"'},
    ):
        response = client.get(GRAPH, headers=headers)
        assert response.status_code == 200
        assert response.content == graph


def test_head(client: TestClient, published: str, graph: bytes, graph_sha: str) -> None:
    response = client.head(GRAPH)
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["content-length"] == str(len(graph))
    assert response.headers["etag"] == f'"{graph_sha}"'
    partial = client.head(GRAPH, headers={"Range": "bytes=0-3"})
    assert partial.status_code == 206
    assert partial.headers["content-length"] == "4"


def test_blob_by_address(client: TestClient, published: str, graph: bytes, graph_sha: str) -> None:
    response = client.get(f"{API}/blobs/{graph_sha}", headers={"Range": "bytes=0-3"})
    assert response.status_code == 206
    assert response.content == graph[:4]
    for bad in ("0" * 64, "not-a-sha", "../../etc/passwd"):
        missing = client.get(f"{API}/blobs/{bad}")
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] in ("blob_not_found", "not_found")


def test_unknown_files_versions_modules(client: TestClient, published: str) -> None:
    cases = {
        f"{API}/modules/acme/tiny/versions/1/files/nope.bin": "file_not_found",
        f"{API}/modules/acme/tiny/versions/1/files/../../../etc/passwd": "file_not_found",
        f"{API}/modules/acme/tiny/versions/9/files/graph.pt2": "version_not_found",
        f"{API}/modules/acme/tiny/versions/x/files/graph.pt2": "version_not_found",
        f"{API}/modules/acme/nope/versions/1/files/graph.pt2": "module_not_found",
    }
    for url, code in cases.items():
        response = client.get(url)
        if response.status_code == 404 and error_code(response) == "not_found":
            continue  # the client normalised '..' away: no such route, fine too
        assert (response.status_code, error_code(response)) == (404, code), url


def test_downloads_count_client_manifest_fetches_only(client: TestClient, published: str) -> None:
    url = f"{API}/modules/acme/tiny/versions/1"
    client.get(url)  # a browser or curl: not counted
    client.get(f"{API}/modules/acme/tiny/versions/latest", headers={"X-Modhub-Client": "0.1.0"})
    client.get(url, headers={"X-Modhub-Client": "0.1.0"})
    client.get(GRAPH, headers={"X-Modhub-Client": "0.1.0"})  # files are not counted
    hub = client.app.state.hub  # type: ignore[attr-defined]
    assert hub.settings.download_flush_seconds > 60  # only the flushes below write counts
    # Counted in memory, written in one transaction per flush (not one per GET).
    assert hub.downloads.pending == 2
    assert hub.downloads.flush(hub.db) == 2 and hub.downloads.pending == 0
    assert client.get(f"{API}/modules/acme/tiny").json()["downloads"] == 2
    for _ in range(50):
        client.get(url, headers={"X-Modhub-Client": "0.1.0"})
    assert client.get(f"{API}/modules/acme/tiny").json()["downloads"] == 2
    assert hub.downloads.flush(hub.db) == 50
    assert client.get(f"{API}/modules/acme/tiny").json()["downloads"] == 52


def test_the_server_flushes_download_counts_by_itself(tmp_path: Path, feature_module: Path) -> None:
    import time

    from modhub.server.app import create_app
    from modhub.server.config import ServerSettings
    from tests.server.conftest import new_token, publish

    settings = ServerSettings(data_dir=tmp_path / "hub", download_flush_seconds=0.05)
    with TestClient(create_app(settings)) as client:
        assert publish(client, new_token(client, "acme"), feature_module).status_code == 201
        client.get(f"{API}/modules/acme/tiny/versions/1", headers={"X-Modhub-Client": "0.1.0"})
        deadline = time.monotonic() + 10
        while client.get(f"{API}/modules/acme/tiny").json()["downloads"] == 0:
            assert time.monotonic() < deadline, "the counts were never written"
            time.sleep(0.05)
        client.get(f"{API}/modules/acme/tiny/versions/1", headers={"X-Modhub-Client": "0.1.0"})
    # Stopping the server writes what is pending.
    with TestClient(create_app(settings)) as client:
        assert client.get(f"{API}/modules/acme/tiny").json()["downloads"] == 2


def test_parse_range_unit() -> None:
    assert parse_range("bytes=0-0", 10) == (0, 0)
    assert parse_range("bytes=-100", 10) == (0, 9)
    assert parse_range("bytes=9-", 10) == (9, 9)
    assert parse_range("items=1-2", 10) is None
    for bad in ("bytes=10-", "bytes=-0", "bytes=5-4", "bytes=x-1"):
        with pytest.raises(RangeNotSatisfiable):
            parse_range(bad, 10)
    with pytest.raises(RangeNotSatisfiable):
        parse_range("bytes=-5", 0)


def test_a_hugging_face_download_counts_once_by_its_manifest(client: TestClient, published: str) -> None:
    hub = client.app.state.hub  # type: ignore[attr-defined]
    client.get("/acme/tiny/resolve/main/graph.pt2")  # every other file: not counted
    client.head("/acme/tiny/resolve/main/modhub.json")  # a cached client's HEAD: not counted
    assert hub.downloads.pending == 0
    assert client.get("/acme/tiny/resolve/main/modhub.json").status_code == 200
    assert client.get("/acme/tiny/resolve/1/modhub.json").status_code == 200
    assert hub.downloads.flush(hub.db) == 2
    assert client.get(f"{API}/modules/acme/tiny").json()["downloads"] == 2
