"""huggingface_hub 2.4 against a real hub on loopback: model_info, list_repo_files, hf_hub_download,
snapshot_download, their errors, and hub.load on the snapshot."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import huggingface_hub as hf
import pytest
import torch
from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

import modhub
from modhub.client.publish import publish
from modhub.format.manifest import read_manifest
from modhub.settings import Settings
from tests.harness import LiveHub, running_hub, serve_env
from tests.server.conftest import with_description

REPO_ID = "acme/tiny"


@pytest.fixture(scope="module")
def hf_hub(image_module: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveHub]:
    """A real hub with acme/tiny versions 1 and 2."""
    root = tmp_path_factory.mktemp("hf")
    with running_hub(root / "data", token_for="acme") as live:
        settings = Settings(endpoint=live.url, token=live.token, cache=root / "modhub-cache")
        publish(image_module, REPO_ID, settings=settings, config=root)
        second = with_description(image_module, root / "v2", "the second version")
        publish(second, REPO_ID, settings=settings, config=root)
        yield live


def api(live: LiveHub) -> hf.HfApi:
    return hf.HfApi(endpoint=live.url)


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "hf-cache"


def test_model_info_and_file_list(hf_hub: LiveHub, image_module: Path) -> None:
    info = api(hf_hub).model_info(REPO_ID)
    assert info.id == REPO_ID
    assert len(info.sha or "") == 40
    v2 = api(hf_hub).model_info(REPO_ID, revision="2")
    v1 = api(hf_hub).model_info(REPO_ID, revision="1")
    assert info.sha == v2.sha != v1.sha  # main is the latest version
    assert api(hf_hub).model_info(REPO_ID, revision=v1.sha).sha == v1.sha
    expected = sorted(["modhub.json", *(e.path for e in read_manifest(image_module).files)])
    assert sorted(s.rfilename for s in info.siblings or []) == expected
    assert info.last_modified is not None and info.card_data is not None
    assert info.card_data.get("license") == "Apache-2.0"
    assert sorted(api(hf_hub).list_repo_files(REPO_ID, revision="1")) == expected


def test_hf_hub_download_headers_and_range(hf_hub: LiveHub, cache: Path, image_module: Path) -> None:
    manifest = read_manifest(image_module)
    entry = manifest.file("graph.pt2")
    path = hf.hf_hub_download(REPO_ID, "graph.pt2", revision="1", cache_dir=cache, endpoint=hf_hub.url)
    assert hashlib.sha256(Path(path).read_bytes()).hexdigest() == entry.sha256
    sha = api(hf_hub).model_info(REPO_ID, revision="1").sha
    assert Path(path).parent.name == sha  # snapshot folder = model_info.sha = X-Repo-Commit
    url = f"{hf_hub.url}/{REPO_ID}/resolve/1/graph.pt2"
    head = httpx.head(url)
    assert head.status_code == 200
    assert head.headers["x-repo-commit"] == sha
    assert head.headers["etag"] == f'"{entry.sha256}"'
    assert head.headers["content-length"] == str(entry.size)
    assert not [h for h in head.headers if h.lower().startswith("x-xet")]
    part = httpx.get(url, headers={"Range": "bytes=10-"})
    assert part.status_code == 206 and part.content == (image_module / "graph.pt2").read_bytes()[10:]


def test_snapshot_is_a_complete_module_that_hub_load_runs(
    hf_hub: LiveHub, cache: Path, image_module: Path
) -> None:
    snapshot = hf.snapshot_download(REPO_ID, revision="1", cache_dir=cache, endpoint=hf_hub.url)
    assert (Path(snapshot) / "modhub.json").read_bytes() == (image_module / "modhub.json").read_bytes()
    images = torch.rand(2, 3, 32, 32)
    assert torch.equal(modhub.load(snapshot)(images), modhub.load(image_module)(images))
    # The tree listing the snapshot used, with LFS sha256s the client checks.
    tree = httpx.get(f"{hf_hub.url}/api/models/{REPO_ID}/tree/1", params={"recursive": "True"}).json()
    files = {item["path"]: item for item in tree if item["type"] == "file"}
    assert files["graph.pt2"]["lfs"]["oid"] == read_manifest(image_module).file("graph.pt2").sha256


def test_errors_map_to_the_clients_exceptions(hf_hub: LiveHub, cache: Path) -> None:
    kwargs = {"cache_dir": cache, "endpoint": hf_hub.url}
    with pytest.raises(RepositoryNotFoundError):
        hf.hf_hub_download("acme/nothing", "modhub.json", **kwargs)
    with pytest.raises(RepositoryNotFoundError):
        api(hf_hub).model_info("Bad_Name/x")
    with pytest.raises(RevisionNotFoundError):
        hf.hf_hub_download(REPO_ID, "modhub.json", revision="7", **kwargs)
    with pytest.raises(RevisionNotFoundError):
        api(hf_hub).model_info(REPO_ID, revision="0" * 40)
    with pytest.raises(EntryNotFoundError):
        hf.hf_hub_download(REPO_ID, "model.safetensors", **kwargs)
    missing = httpx.head(f"{hf_hub.url}/{REPO_ID}/resolve/main/pytorch_model.bin")
    assert missing.status_code == 404 and missing.headers["x-error-code"] == "EntryNotFound"
    assert len(missing.headers["x-repo-commit"]) == 40


def test_hf_endpoint_from_the_environment(hf_hub: LiveHub, tmp_path: Path) -> None:
    """The unchanged user code: HF_ENDPOINT and HF_HOME set, nothing passed in code."""
    code = (
        "import json, huggingface_hub as h\n"
        f"p = h.snapshot_download({REPO_ID!r})\n"
        f"print(json.dumps({{'path': p, 'sha': h.model_info({REPO_ID!r}).sha}}))\n"
    )
    env = {k: v for k, v in serve_env().items() if not k.startswith("HF_")}
    env.update(HF_ENDPOINT=hf_hub.url, HF_HOME=str(tmp_path / "hf-home"))
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert Path(result["path"]).name == result["sha"]
    assert str(tmp_path / "hf-home") in result["path"]
    assert (Path(result["path"]) / "graph.pt2").is_file()
    assert os.path.islink(Path(result["path"]) / "graph.pt2")  # the cache layout, as on the Hub
