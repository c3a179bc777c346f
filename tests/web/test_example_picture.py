"""The module page shows the module's picture of its output (``assets/example.png``), served
from the module's own file URL, captioned by ``metadata.extra.example.caption``; a module
without one shows no picture."""

from __future__ import annotations

import io
import re
import shutil
from pathlib import Path

import httpx
import pytest
from PIL import Image

pytest.importorskip("fastapi")

from modhub.format.manifest import read_manifest, write_manifest
from tests.harness import running_hub
from tests.server.conftest import publish, relist

CAPTION = "boxes & labels on <astronaut>"


def _with_example(src: Path, dst: Path) -> tuple[Path, bytes]:
    shutil.copytree(src, dst)
    buffer = io.BytesIO()
    Image.new("RGB", (4, 3), (200, 30, 30)).save(buffer, format="PNG")
    (dst / "assets").mkdir(exist_ok=True)
    (dst / "assets" / "example.png").write_bytes(buffer.getvalue())
    manifest = read_manifest(dst)
    extra = {**manifest.metadata.extra, "example": {"caption": CAPTION, "file": "assets/example.png"}}
    write_manifest(
        dst, manifest.model_copy(update={"metadata": manifest.metadata.model_copy(update={"extra": extra})})
    )
    return relist(dst), buffer.getvalue()


def test_the_page_shows_the_example_picture(image_module: Path, tmp_path: Path) -> None:
    module, png = _with_example(image_module, tmp_path / "with-example")
    with (
        running_hub(tmp_path / "data", token_for="acme") as live,
        httpx.Client(base_url=live.url, timeout=60.0) as client,
    ):
        for directory, repo in ((module, "acme/pictured"), (image_module, "acme/plain")):
            response = publish(client, live.token, directory, repo)
            assert response.status_code == 201, response.text
        html = client.get("/acme/pictured/1", headers={"Accept": "text/html"}).text
        found = re.search(r'<figure[^>]*id="example"[^>]*>\s*<img src="([^"]+)" alt="([^"]*)"', html)
        assert found is not None, html
        src, alt = found.groups()
        assert src == "/api/v1/modules/acme/pictured/versions/1/files/assets/example.png"
        assert "boxes &amp; labels on &lt;astronaut&gt;" in alt, "the caption, escaped"
        assert "<figcaption" in html and "&lt;astronaut&gt;</figcaption>" in html
        assert client.get(src).content == png, "the image is the module's own file"
        plain = client.get("/acme/plain/1", headers={"Accept": "text/html"}).text
        assert 'id="example"' not in plain
