"""A REAL hub (``python -m modhub serve`` on loopback) with a few tiny modules published over HTTP.

Published, once per test session:

    acme/tiny-cnn          image-classification, Apache-2.0, pt2 + onnx; versions 1, 2 (yanked), 3
    textco/tiny-embedder   text-embedding, MIT
    vision-lab/tiny-features  image-feature-vector, BSD-3-Clause
    mallory/evil-card      image-feature-vector, MIT; its model card tries script injection
    ghost/all-yanked       image-feature-vector, Apache-2.0; its only version is yanked (hidden)
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("fastapi")

from modhub.format.manifest import read_manifest, write_manifest
from tests.harness import CHROMIUM, CHROMIUM_ARGS, admin_cli, running_hub
from tests.server.conftest import auth, publish, relist
from tests.tiny_models import make_module

REPO_ROOT = Path(__file__).resolve().parents[2]
# Screenshots land here (gitignored) so that people can look at them after a run.
ARTIFACTS = REPO_ROOT / "test-artifacts" / "web"

CNN_CARD = """\
# Tiny CNN

A **tiny** convolutional classifier used by modhub's own tests. It sorts 32x32 RGB
images into five classes: ant, bee, cat, dog and eel.

## Training data

Random noise, lovingly curated. Do not use it for anything real.

| metric | value |
|---|---|
| top-1 | 20.0% |
| parameters | 277 |

```python
print("a code block in the card")
```
"""

EVIL_CARD = """\
# Evil card

<script>window.__pwned = 1; alert("script tag")</script>
<img src="x" onerror="window.__pwned = 2; alert('onerror')">
<a href="javascript:window.__pwned=3">a javascript link</a> and [another](javascript:alert(4)).
<iframe src="https://example.com/"></iframe>
<style>body { display: none }</style>
<div onclick="alert(5)" style="position:fixed;inset:0">click anywhere</div>
<form action="https://example.com/"><input name="password"></form>

Plain text that must survive.
"""


@dataclass(frozen=True)
class WebHub:
    url: str
    data_dir: Path
    admin_token: str

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30.0, **kwargs)  # type: ignore[arg-type]


def _with_card(src: Path, dst: Path, body: str, license: str | None = None, **metadata: object) -> Path:
    """A copy of ``src`` with another README body (front matter kept), licence and metadata, re-listed."""
    shutil.copytree(src, dst)
    manifest = read_manifest(dst)
    card = (dst / "README.md").read_text(encoding="utf-8")
    front = card[: card.index("\n---", 4) + 4]
    if license:
        front = front.replace(f"license: {manifest.license}", f"license: {license}")
    (dst / "README.md").write_text(f"{front}\n\n{body}", encoding="utf-8")
    meta = manifest.metadata.model_copy(update=metadata)
    write_manifest(
        dst, manifest.model_copy(update={"metadata": meta, "license": license or manifest.license})
    )
    return relist(dst)


def _features_module(out: Path, license: str, **metadata: object) -> Path:
    return make_module("image-feature-vector", out, seed=1, classes=4, license=license, metadata=metadata)


def _publish(client: httpx.Client, token: str, module_dir: Path, repo: str) -> None:
    response = publish(client, token, module_dir, repo)
    assert response.status_code == 201, response.text


@pytest.fixture(scope="session")
def web_hub(
    tmp_path_factory: pytest.TempPathFactory, image_module: Path, text_module: Path
) -> Iterator[WebHub]:
    work = tmp_path_factory.mktemp("web-modules")
    cnn_v2 = _with_card(image_module, work / "cnn-v2", "# Tiny CNN v2\n\nBroken build.", description="broken")
    cnn_v3 = _with_card(
        image_module,
        work / "cnn-v3",
        CNN_CARD,
        description="A tiny CNN that sorts images into five animal classes.",
        tags=("test", "animals", "cnn"),
    )
    features = _features_module(
        work / "features",
        "BSD-3-Clause",
        title="Tiny feature extractor",
        description="Image feature vectors from a tiny CNN.",
        tags=("features",),
    )
    evil = _with_card(
        features, work / "evil", EVIL_CARD, "MIT", title="Evil card", description="Script injection attempt"
    )
    ghost = _features_module(work / "ghost", "Apache-2.0", title="Ghost", description="Every version yanked")

    with running_hub(tmp_path_factory.mktemp("web-live") / "data") as live:
        token = admin_cli(live.data_dir, "--admin", "--name", "web tests")
        with httpx.Client(base_url=live.url, timeout=60.0) as client:
            _publish(client, token, image_module, "acme/tiny-cnn")
            _publish(client, token, cnn_v2, "acme/tiny-cnn")
            _publish(client, token, cnn_v3, "acme/tiny-cnn")
            _publish(client, token, text_module, "textco/tiny-embedder")
            _publish(client, token, features, "vision-lab/tiny-features")
            _publish(client, token, evil, "mallory/evil-card")
            _publish(client, token, ghost, "ghost/all-yanked")
            for repo, version, reason in (
                ("acme/tiny-cnn", 2, "broken build"),
                ("ghost/all-yanked", 1, "retired"),
            ):
                response = client.post(
                    f"/api/v1/modules/{repo}/versions/{version}/yank",
                    json={"reason": reason},
                    headers=auth(token),
                )
                assert response.status_code == 200, response.text
            # Downloads as the modhub client counts them, so that "most downloaded" has an order.
            for repo, count in (("textco/tiny-embedder", 3), ("acme/tiny-cnn", 1)):
                for _ in range(count):
                    client.get(f"/api/v1/modules/{repo}/versions/latest", headers={"X-Modhub-Client": "test"})
            # The hub writes download counts in batches (about once a second): wait for them.
            deadline = time.monotonic() + 15
            while client.get("/api/v1/modules/textco/tiny-embedder").json()["downloads"] < 3:
                assert time.monotonic() < deadline, "download counts were never written"
                time.sleep(0.1)
        yield WebHub(url=live.url, data_dir=live.data_dir, admin_token=token)


@pytest.fixture
def http(web_hub: WebHub) -> Iterator[httpx.Client]:
    """A browser-like client (asks for HTML)."""
    with web_hub.client(headers={"Accept": "text/html,application/xhtml+xml"}) as client:
        yield client


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's chromium, headless, driven by Playwright: one per test module."""
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()
