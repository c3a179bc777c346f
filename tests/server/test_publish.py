"""Publishing through the API (in-process): validation, immutability, limits, atomicity."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from modhub.format.manifest import MANIFEST_NAME, read_manifest
from modhub.server.config import ServerSettings
from tests.server.conftest import (
    API,
    copy_module,
    error_code,
    multipart,
    new_token,
    publish,
    relist,
    unsafe_graph,
    with_description,
)


def _no_leftovers(settings: ServerSettings) -> None:
    """Nothing half-written: no staged upload and no temp blob remain."""
    assert list(settings.staging_dir.glob("*")) == []
    assert list((settings.resolved_blob_dir / ".tmp").glob("*")) == []


def _versions(client: TestClient, repo: str = "acme/tiny") -> list[int]:
    response = client.get(f"{API}/modules/{repo}")
    if response.status_code == 404:
        return []
    return [v["version"] for v in response.json()["versions"]]


def test_publish_round_trip(client: TestClient, token: str, feature_module: Path) -> None:
    response = publish(client, token, feature_module)
    assert response.status_code == 201, response.text
    assert response.json() == {"handle": "acme/tiny/1", "version": 1}

    detail = client.get(f"{API}/modules/acme/tiny/versions/1").json()
    manifest = read_manifest(feature_module)
    assert detail["manifest"] == manifest.model_dump(mode="json")
    assert detail["card"] == (feature_module / "README.md").read_text()
    assert detail["yanked"] is False
    for entry in manifest.files:
        got = client.get(f"{API}/modules/acme/tiny/versions/1/files/{entry.path}")
        assert got.status_code == 200
        assert got.content == (feature_module / entry.path).read_bytes()
        assert got.headers["etag"] == f'"{entry.sha256}"'
    # The exact manifest bytes are served too.
    raw = client.get(f"{API}/modules/acme/tiny/versions/1/files/{MANIFEST_NAME}")
    assert raw.content == (feature_module / MANIFEST_NAME).read_bytes()

    module = client.get(f"{API}/modules/acme/tiny").json()
    assert module["latest_version"] == 1
    assert module["task"] == "image-feature-vector"
    assert module["formats"] == ["pt2"]
    assert module["title"] == "Tiny features"
    assert module["tags"] == ["test", "cnn"]
    assert [v["version"] for v in module["versions"]] == [1]


def test_next_version_and_explicit_version(
    client: TestClient, token: str, feature_module: Path, tmp_path: Path
) -> None:
    assert publish(client, token, feature_module).json()["version"] == 1
    assert publish(client, token, feature_module).json()["version"] == 2
    assert publish(client, token, feature_module, version=7).json()["version"] == 7
    assert publish(client, token, feature_module).json()["version"] == 8
    assert _versions(client) == [1, 2, 7, 8]


def test_republishing_a_version_is_refused(
    client: TestClient, token: str, feature_module: Path, tmp_path: Path
) -> None:
    assert publish(client, token, feature_module, version=1).status_code == 201
    changed = with_description(feature_module, tmp_path / "changed", "different bytes")
    response = publish(client, token, changed, version=1)
    assert response.status_code == 409
    assert error_code(response) == "version_exists"
    assert "never change" in response.json()["error"]["message"]
    # Version 1 still serves the original bytes.
    served = client.get(f"{API}/modules/acme/tiny/versions/1/files/{MANIFEST_NAME}").content
    assert served == (feature_module / MANIFEST_NAME).read_bytes()
    # There is no endpoint that changes a published version's files.
    for method in ("put", "delete", "patch"):
        attempt = client.request(method.upper(), f"{API}/modules/acme/tiny/versions/1/files/graph.pt2")
        assert attempt.status_code == 405


def test_identical_blobs_are_stored_once(
    client: TestClient, token: str, feature_module: Path, tmp_path: Path, settings: ServerSettings
) -> None:
    assert publish(client, token, feature_module).status_code == 201
    assert publish(client, token, feature_module, repo="acme/other").status_code == 201
    changed = with_description(feature_module, tmp_path / "changed", "new description")
    assert publish(client, token, changed).status_code == 201
    blobs = client.app.state.hub.storage  # type: ignore[attr-defined]
    stored = sorted(b.sha256 for b in blobs.iter_blobs())
    # Each distinct content once: the files + 2 distinct manifests (acme/other's equals acme/tiny/1's).
    files = {e.sha256 for e in read_manifest(feature_module).files} | {
        e.sha256 for e in read_manifest(changed).files
    }
    assert len(stored) == len(files) + 2
    assert len(stored) == len(set(stored))


@pytest.mark.parametrize(
    "path", ["../evil.txt", "/etc/passwd", "assets/../../x", "a\\b", "./x", "assets//x", "C:/x"]
)
def test_path_traversal_is_refused(
    client: TestClient, token: str, feature_module: Path, settings: ServerSettings, path: str
) -> None:
    response = publish(client, token, feature_module, extra={path: b"boom"})
    assert response.status_code == 400
    assert error_code(response) == "unsafe_path"
    assert not (settings.data_dir.parent / "evil.txt").exists()
    assert _versions(client) == []
    _no_leftovers(settings)


def test_manifest_sent_as_file_and_duplicate_files_are_refused(
    client: TestClient, token: str, feature_module: Path
) -> None:
    response = publish(client, token, feature_module, extra={MANIFEST_NAME: b"{}"})
    assert (response.status_code, error_code(response)) == (400, "unsafe_path")
    response = publish(client, token, feature_module, extra={"README.md": b"again"})
    assert (response.status_code, error_code(response)) == (400, "duplicate_file")


def test_tampered_file_is_refused(
    client: TestClient, token: str, feature_module: Path, tmp_path: Path, settings: ServerSettings
) -> None:
    module = copy_module(feature_module, tmp_path / "tampered")
    card = module / "README.md"
    card.write_text(card.read_text().replace("a", "b"))  # same size, other sha256
    response = publish(client, token, module)
    assert response.status_code == 422
    assert error_code(response) == "integrity_error"
    message = response.json()["error"]["message"]
    assert "README.md" in message and "re-export" in message
    assert _versions(client) == []
    _no_leftovers(settings)


def test_missing_and_unlisted_files_are_refused(client: TestClient, token: str, feature_module: Path) -> None:
    parts = [p for p in multipart(feature_module) if p[1][0] != "README.md"]
    response = client.post(
        f"{API}/modules/acme/tiny/versions", files=parts, headers={"Authorization": f"Bearer {token}"}
    )
    assert (response.status_code, error_code(response)) == (422, "missing_file")
    response = publish(client, token, feature_module, extra={"assets/extra.txt": b"x"})
    assert (response.status_code, error_code(response)) == (422, "unexpected_file")


def test_invalid_manifest_and_contract_are_refused(
    client: TestClient, token: str, feature_module: Path, tmp_path: Path
) -> None:
    broken = copy_module(feature_module, tmp_path / "broken")
    (broken / MANIFEST_NAME).write_text('{"format_version": 1, "task": ')
    parts = multipart(feature_module)
    parts[0] = ("manifest", (MANIFEST_NAME, (broken / MANIFEST_NAME).read_bytes()))
    headers = {"Authorization": f"Bearer {token}"}
    response = client.post(f"{API}/modules/acme/tiny/versions", files=parts, headers=headers)
    assert (response.status_code, error_code(response)) == (422, "invalid_manifest")

    wrong = copy_module(feature_module, tmp_path / "wrong-task")
    data = json.loads((wrong / MANIFEST_NAME).read_text())
    data["task"] = "image-classification"  # needs labels it does not have
    (wrong / MANIFEST_NAME).write_text(json.dumps(data))
    response = publish(client, token, wrong)
    assert (response.status_code, error_code(response)) == (422, "contract_error")
    assert "logits" in response.json()["error"]["message"]


def test_unsafe_graph_is_refused(
    client: TestClient, token: str, feature_module: Path, tmp_path: Path, settings: ServerSettings
) -> None:
    module = unsafe_graph(feature_module, tmp_path / "unsafe")
    response = publish(client, token, module)
    assert response.status_code == 422, response.text
    assert error_code(response) == "unsafe_module"
    assert "torch.ops.evilpkg.system.default" in response.json()["error"]["message"]
    assert _versions(client) == []
    _no_leftovers(settings)


def test_tokenless_wrong_scope_and_revoked_publishes_are_refused(
    client: TestClient, feature_module: Path, admin_token: str
) -> None:
    response = publish(client, None, feature_module)
    assert (response.status_code, error_code(response)) == (401, "auth_required")
    assert "modhub login" in response.json()["error"]["message"]
    assert response.headers["www-authenticate"] == "Bearer"

    response = publish(client, "mh_not-a-real-token", feature_module)
    assert (response.status_code, error_code(response)) == (401, "invalid_token")

    other = new_token(client, "someone-else")
    response = publish(client, other, feature_module)
    assert (response.status_code, error_code(response)) == (403, "forbidden")

    me = client.get(f"{API}/tokens/me", headers={"Authorization": f"Bearer {other}"}).json()
    revoked = client.delete(f"{API}/tokens/{me['id']}", headers={"Authorization": f"Bearer {admin_token}"})
    assert revoked.status_code == 200
    response = publish(client, other, feature_module, repo="someone-else/tiny")
    assert (response.status_code, error_code(response)) == (401, "invalid_token")

    # An admin token may publish anywhere.
    assert publish(client, admin_token, feature_module, repo="anyone/tiny").status_code == 201
    assert _versions(client) == []


def test_lookalike_names_are_refused(client: TestClient, admin_token: str, feature_module: Path) -> None:
    assert publish(client, admin_token, feature_module, repo="acme/my-model").status_code == 201
    for repo in ("acme/my_model", "acme/my.model", "acme/my-mode1"):
        response = publish(client, admin_token, feature_module, repo=repo)
        assert (response.status_code, error_code(response)) == (409, "lookalike_name"), repo
        assert "acme/my-model" in response.json()["error"]["message"]
    # The same name keeps working, and clearly different names are fine.
    assert publish(client, admin_token, feature_module, repo="acme/my-model").status_code == 201
    assert publish(client, admin_token, feature_module, repo="acme/your-model").status_code == 201


@pytest.mark.parametrize("repo", ["Acme/tiny", "acme/-tiny", "acme/ti--ny", "acme/" + "x" * 65])
def test_invalid_names_are_refused(
    client: TestClient, admin_token: str, feature_module: Path, repo: str
) -> None:
    response = publish(client, admin_token, feature_module, repo=repo)
    assert (response.status_code, error_code(response)) == (400, "invalid_name")


def test_size_limits(tmp_path: Path, feature_module: Path) -> None:
    from modhub.server.app import create_app

    graph_size = (feature_module / "graph.pt2").stat().st_size
    total = sum(e.size for e in read_manifest(feature_module).files)
    for limits in ({"max_file_bytes": graph_size - 1}, {"max_version_bytes": total - 1}):
        settings = ServerSettings(data_dir=tmp_path / str(limits), **limits)
        with TestClient(create_app(settings)) as client:
            token = new_token(client, "acme")
            response = publish(client, token, feature_module)
            assert response.status_code == 413, response.text
            assert error_code(response) == "too_large"
            assert "MODHUB_SERVER_MAX_" in response.json()["error"]["message"]
            assert _versions(client) == []
            _no_leftovers(settings)
    # A declared Content-Length over the limit is refused before the body is read.
    settings = ServerSettings(
        data_dir=tmp_path / "small", max_version_bytes=10, max_manifest_bytes=10, max_files=1
    )
    with TestClient(create_app(settings)) as client:
        token = new_token(client, "acme")
        response = client.post(
            f"{API}/modules/acme/tiny/versions",
            content=b"x" * 50_000,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "multipart/form-data; boundary=b"},
        )
        assert (response.status_code, error_code(response)) == (413, "too_large")


def test_malformed_bodies_are_refused(client: TestClient, token: str) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    url = f"{API}/modules/acme/tiny/versions"
    response = client.post(url, json={"manifest": {}}, headers=headers)
    assert (response.status_code, error_code(response)) == (400, "invalid_request")
    response = client.post(url, files=[("files", ("x.txt", b"x"))], headers=headers)
    assert (response.status_code, error_code(response)) == (400, "invalid_request")
    assert "manifest" in response.json()["error"]["message"]
    response = client.post(url, files=[("other", ("x", b"x"))], headers=headers)
    assert (response.status_code, error_code(response)) == (400, "invalid_request")
    for version in ("0", "-1", "x", "1" * 30):
        parts = [("manifest", ("m", b"{}"))]
        response = client.post(url, files=parts, data={"version": version}, headers=headers)
        assert (response.status_code, error_code(response)) == (400, "invalid_request"), version
    huge = client.post(f"{API}/modules/acme/tiny/versions/{'9' * 30}/yank", headers=headers)
    assert (huge.status_code, error_code(huge)) == (404, "version_not_found")
    assert client.get(f"{API}/modules/acme/tiny/versions/{'9' * 30}").status_code == 404
    assert client.get(f"{API}/modules", params={"page": 10**30}).status_code == 400


def test_relisted_module_with_new_file_publishes(
    client: TestClient, token: str, feature_module: Path, tmp_path: Path
) -> None:
    """Sanity check for the test helpers: a consistent module with an extra asset is accepted."""
    module = copy_module(feature_module, tmp_path / "more")
    (module / "assets").mkdir(exist_ok=True)
    (module / "assets" / "notes.txt").write_text("hello\n")
    relist(module)
    response = publish(client, token, module)
    assert response.status_code == 201, response.text
    got = client.get(f"{API}/modules/acme/tiny/versions/1/files/assets/notes.txt")
    assert got.content == b"hello\n"
