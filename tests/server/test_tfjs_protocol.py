"""TF.js's protocol (``model.json?tfjs-format=file`` and its shards): served from the version's
``tfjs/`` folder, with CORS on these answers only, private modules hidden, bad paths 4xx.

The module here carries a small hand-written ``tfjs/`` folder (the hub never runs it); TF.js
itself loads a real converted starter in ``tests/web/test_tfjs.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from modhub.errors import ManifestError
from modhub.format.manifest import detect_formats, list_files
from modhub.format.verify import check_module
from modhub.server.app import create_app
from modhub.server.config import ServerSettings
from tests.harness import API
from tests.server.conftest import auth, copy_module, error_code, new_token_scoped, publish, relist

SHARDS = {"group1-shard1of2.bin": b"\x00" * 64, "group1-shard2of2.bin": b"\x01" * 32}
QUERY = "?tfjs-format=file"
ORIGIN = {"Origin": "https://elsewhere.example"}


def _model_json(paths: list[str]) -> dict[str, object]:
    weights = [{"name": "w", "shape": [24], "dtype": "float32"}]
    return {
        "format": "graph-model",
        "modelTopology": {"node": []},
        "weightsManifest": [{"paths": paths, "weights": weights}],
    }


def with_tfjs(src: Path, dst: Path, model: dict[str, object] | None = None) -> Path:
    copy_module(src, dst)
    (dst / "tfjs").mkdir()
    (dst / "tfjs" / "model.json").write_text(
        json.dumps(model or _model_json(sorted(SHARDS))), encoding="utf-8"
    )
    for name, data in SHARDS.items():
        (dst / "tfjs" / name).write_bytes(data)
    files = list_files(dst)
    return relist(dst, formats=detect_formats(f.path for f in files))


@pytest.fixture
def tfjs_hub(client: TestClient, feature_module: Path, tmp_path: Path) -> TestClient:
    """acme/web/1 (with tfjs/), acme/plain/1 (without), secretco/web/1 (private, with tfjs/)."""
    module = with_tfjs(feature_module, tmp_path / "web")
    acme = new_token_scoped(client, "acme", scope="publish")
    assert publish(client, acme, module, "acme/web").status_code == 201
    assert publish(client, acme, feature_module, "acme/plain").status_code == 201
    secret = new_token_scoped(client, "secretco", scope="publish")
    response = publish(client, secret, module, "secretco/web", data={"private": "true"})
    assert response.status_code == 201, response.text
    return client


def test_verify_lists_tfjs_and_refuses_a_model_json_naming_unlisted_shards(
    feature_module: Path, tmp_path: Path
) -> None:
    assert "tfjs" in check_module(with_tfjs(feature_module, tmp_path / "ok")).formats
    bad = with_tfjs(feature_module, tmp_path / "bad", _model_json(["group1-shard1of2.bin", "../modhub.json"]))
    with pytest.raises(ManifestError, match="outside tfjs/"):
        check_module(bad)
    missing = with_tfjs(feature_module, tmp_path / "missing", _model_json(["group1-shard9of9.bin"]))
    with pytest.raises(ManifestError, match="does not list"):
        check_module(missing)
    (tmp_path / "ok" / "tfjs" / "model.json").write_text('{"format": "layers-model"}', encoding="utf-8")
    with pytest.raises(ManifestError, match=r"not a TF\.js graph model"):
        check_module(relist(tmp_path / "ok"))


def test_model_json_and_shards_are_served_with_cors(tfjs_hub: TestClient) -> None:
    model = tfjs_hub.get(f"/acme/web/1/model.json{QUERY}", headers=ORIGIN)
    assert model.status_code == 200, model.text
    assert model.headers["access-control-allow-origin"] == "*"
    assert model.headers["content-type"] == "application/json"
    assert model.json()["weightsManifest"][0]["paths"] == sorted(SHARDS)
    for name, data in SHARDS.items():
        shard = tfjs_hub.get(f"/acme/web/1/{name}{QUERY}", headers=ORIGIN)
        assert shard.status_code == 200 and shard.content == data
        assert shard.headers["access-control-allow-origin"] == "*"
    # The browser's preflight (a page that sends a read token as Authorization).
    preflight = tfjs_hub.options(
        f"/acme/web/1/model.json{QUERY}",
        headers={
            **ORIGIN,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert preflight.status_code == 204
    assert "Authorization" in preflight.headers["access-control-allow-headers"]


def test_no_cors_on_the_site_or_the_api(tfjs_hub: TestClient) -> None:
    for url in ("/acme/web/1", "/acme/web", f"{API}/modules/acme/web", "/acme/web/1/model.json", "/"):
        response = tfjs_hub.get(url, headers=ORIGIN)
        assert response.status_code in (200, 404), url
        assert "access-control-allow-origin" not in response.headers, url
    # Without the query the page is the site's (its 404 page), as before.
    assert "text/html" in tfjs_hub.get("/acme/web/1/model.json").headers["content-type"]


def test_private_module_is_404_without_a_read_token(tfjs_hub: TestClient) -> None:
    url = f"/secretco/web/1/model.json{QUERY}"
    anonymous = tfjs_hub.get(url)
    assert anonymous.status_code == 404 and error_code(anonymous) == "module_not_found"
    assert anonymous.headers["access-control-allow-origin"] == "*"
    reader = new_token_scoped(tfjs_hub, "secretco", scope="read")
    seen = tfjs_hub.get(url, headers=auth(reader))
    assert seen.status_code == 200, seen.text
    assert tfjs_hub.get(f"/secretco/web/1/group1-shard1of2.bin{QUERY}").status_code == 404


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        (f"/acme/plain/1/model.json{QUERY}", 404, "format_not_available"),
        (f"/acme/web/1/group1-shard7of2.bin{QUERY}", 404, "file_not_found"),
        (f"/acme/web/1/modhub.json{QUERY}", 404, "file_not_found"),
        (f"/acme/web/9/model.json{QUERY}", 404, "version_not_found"),
        (f"/acme/web/x/model.json{QUERY}", 404, "version_not_found"),
        (f"/acme/nope/1/model.json{QUERY}", 404, "module_not_found"),
        (f"/Bad..Name/web/1/model.json{QUERY}", 404, "module_not_found"),
        (f"/acme/web/model.json{QUERY}", 404, "version_not_found"),
        (f"/acme/web/1{QUERY}", 404, "file_not_found"),
        ("/acme/web/1/model.json?tfjs-format=zip", 400, "format_not_supported"),
    ],
)
def test_bad_requests_are_4xx_with_a_code(tfjs_hub: TestClient, path: str, status: int, code: str) -> None:
    response = tfjs_hub.get(path)
    assert response.status_code == status, response.text
    assert error_code(response) == code
    assert response.headers["access-control-allow-origin"] == "*"


def test_unversioned_url_names_the_version_to_use(tfjs_hub: TestClient) -> None:
    response = tfjs_hub.get(f"/acme/web/model.json{QUERY}")
    assert "/acme/web/1" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    "path",
    [
        "/acme/web/1/..%2Fmodhub.json",
        "/acme/web/1/tfjs%2Fmodel.json",
        "/acme/web/1/%00",
        "/acme/web/1/a%01b.bin",
    ],
)
def test_odd_paths_are_404_never_5xx(tfjs_hub: TestClient, path: str) -> None:
    # A decoded "/" makes another path (the site's 404 page); nothing outside tfjs/ is served.
    assert tfjs_hub.get(path + QUERY).status_code == 404


def test_on_s3_the_files_are_streamed_not_redirected(
    s3_settings: ServerSettings, feature_module: Path, tmp_path: Path
) -> None:
    """A 307 to the store would need the store's CORS too: a page on another origin could not follow it."""
    with TestClient(create_app(s3_settings)) as client:
        token = new_token_scoped(client, "acme", scope="publish")
        assert (
            publish(client, token, with_tfjs(feature_module, tmp_path / "web"), "acme/web").status_code == 201
        )
        # The hub's own downloads still redirect to the store (S3 presigned mode is on).
        assert (
            client.get(
                f"{API}/modules/acme/web/versions/1/files/graph.pt2", follow_redirects=False
            ).status_code
            == 307
        )
        for name, data in SHARDS.items():
            shard = client.get(f"/acme/web/1/{name}{QUERY}", follow_redirects=False)
            assert shard.status_code == 200 and shard.content == data
            assert shard.headers["access-control-allow-origin"] == "*"


def test_the_format_filter_knows_tfjs(tfjs_hub: TestClient) -> None:
    found = tfjs_hub.get(f"{API}/modules", params={"format": "tfjs"}).json()
    assert [item["handle"] for item in found["items"]] == ["acme/web"]
    assert '<option value="tfjs"' in tfjs_hub.get("/", headers={"Accept": "text/html"}).text
