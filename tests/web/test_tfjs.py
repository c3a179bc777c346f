"""TF.js against a real hub: ``tf.loadGraphModel(url, {fromTFHub: true})``, unchanged, from
Node.js 20 and from a page on another origin in Debian's chromium, on the real MobileNetV2
classifier (the zoo's, built with its TF.js format like tests/zoo does), compared with the
module's torch graph.

The TF.js runtime is the real ``@tensorflow/tfjs`` of the checkout's ``node_modules`` (``make
web``, from package-lock.json); the TF.js format is built only with the TensorFlow venv
(``MODHUB_TF_PYTHON``). Without either these tests fail in CI and skip elsewhere. The protocol's
rules (CORS only there, private modules, bad paths) are in tests/server/test_tfjs_protocol.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modhub.format.manifest import read_manifest
from tests.harness import CHROMIUM, CHROMIUM_ARGS, admin_run, need, running_hub
from tests.zoo.conftest import photo, zoo_cache_dir

REPO_ROOT = Path(__file__).resolve().parents[2]
NODE_MODULES = REPO_ROOT / "node_modules"
TFJS_BUNDLE = NODE_MODULES / "@tensorflow" / "tfjs" / "dist" / "tf.min.js"
STARTER = "mobilenet-v2-classification"
HANDLE = f"modhub/{STARTER}/1"
ATOL = 1e-4

pytestmark = pytest.mark.slow  # builds (or reuses) a real starter with its TensorFlow formats


@pytest.fixture(scope="module")
def starter() -> Path:
    need(shutil.which("node") is not None, "no Node.js (apt-get install nodejs)")
    need(TFJS_BUNDLE.is_file(), "no node_modules/@tensorflow/tfjs: run `make web` (npm ci)")
    need(bool(os.environ.get("MODHUB_TF_PYTHON")), "no MODHUB_TF_PYTHON: the TF.js format needs .venv-tf")
    from modhub.zoo import build_zoo

    root = zoo_cache_dir()
    build_zoo(root, only=(STARTER,), progress=False)
    assert "tfjs" in read_manifest(root / STARTER).formats
    return root / STARTER


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory, starter: Path) -> Iterator[str]:
    data_dir = tmp_path_factory.mktemp("tfjs") / "data"
    done = admin_run(data_dir, str(starter), "--publisher", "modhub", command="seed")
    assert done.returncode == 0, done.stderr
    with running_hub(data_dir) as live:
        yield live.url


@pytest.fixture(scope="module")
def photos_nhwc() -> np.ndarray:
    """chelsea (a cat) and coffee, [2, 224, 224, 3] in [0, 1]: the SavedModel's (and TF.js's) layout."""
    import torch

    nchw = torch.stack([photo("chelsea", 224), photo("coffee", 224)])
    return nchw.permute(0, 2, 3, 1).contiguous().numpy()


@pytest.fixture(scope="module")
def torch_logits(starter: Path, photos_nhwc: np.ndarray) -> np.ndarray:
    import torch

    import modhub

    module = modhub.load(starter, runtime="torch")
    with torch.no_grad():
        return np.asarray(module(torch.from_numpy(photos_nhwc).permute(0, 3, 1, 2).contiguous()))


NODE_SCRIPT = """
const fs = require("fs");
const tf = require(process.env.TFJS);
(async () => {
  await tf.setBackend("cpu");
  const model = await tf.loadGraphModel(process.env.HUB_URL + "/" + process.env.HANDLE, { fromTFHub: true });
  const buf = fs.readFileSync(process.env.INPUT);
  const x = tf.tensor(new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4), [2, 224, 224, 3]);
  const y = model.predict(x);
  fs.writeFileSync(process.env.OUTPUT, Buffer.from((await y.data()).buffer));
  console.log(JSON.stringify(y.shape));
})().catch((e) => { console.error(e); process.exit(1); });
"""


def test_node_loads_the_module_from_the_hub_with_from_tfhub(
    hub: str, photos_nhwc: np.ndarray, torch_logits: np.ndarray, tmp_path: Path
) -> None:
    (tmp_path / "run.js").write_text(NODE_SCRIPT, encoding="utf-8")
    photos_nhwc.astype("<f4").tofile(tmp_path / "in.bin")
    env = {
        **os.environ,
        "TFJS": str(NODE_MODULES / "@tensorflow" / "tfjs"),
        "HUB_URL": hub,
        "HANDLE": HANDLE,
        "INPUT": str(tmp_path / "in.bin"),
        "OUTPUT": str(tmp_path / "out.bin"),
    }
    done = subprocess.run(
        ["node", str(tmp_path / "run.js")], capture_output=True, text=True, env=env, timeout=600, check=False
    )
    assert done.returncode == 0, done.stderr
    shape = json.loads(done.stdout.strip().splitlines()[-1])
    got = np.fromfile(tmp_path / "out.bin", dtype="<f4").reshape(shape)
    assert got.shape == torch_logits.shape == (2, 1000)
    assert float(np.abs(got - torch_logits).max()) <= ATOL


PAGE = """<!doctype html>
<html><head><link rel="icon" href="data:,"><script src="/tf.min.js"></script></head><body>tfjs</body></html>
"""

PAGE_SCRIPT = """async ([url, pixels]) => {
  await tf.setBackend("cpu");
  const model = await tf.loadGraphModel(url, { fromTFHub: true });
  const logits = model.predict(tf.tensor(pixels, [1, 224, 224, 3]));
  return Array.from(await logits.data());
}"""


@pytest.fixture(scope="module")
def page_origin() -> Iterator[str]:
    """Another origin than the hub's: a plain file server on another loopback port, serving a
    page and the TF.js bundle (a real server: Chromium lets only a loopback page reach loopback)."""
    files = {
        "/index.html": (PAGE.encode(), "text/html"),
        "/tf.min.js": (TFJS_BUNDLE.read_bytes(), "text/javascript"),
    }

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body, kind = files.get(self.path, (b"not found", "text/plain"))
            self.send_response(200 if self.path in files else 404)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            del format, args

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_a_page_on_another_origin_loads_the_module(
    hub: str, page_origin: str, photos_nhwc: np.ndarray, torch_logits: np.ndarray
) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    need(Path(CHROMIUM).exists(), "no Debian chromium (apt-get install chromium)")
    assert page_origin != hub
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page()
            page.set_default_timeout(300_000)
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(f"{page_origin}/index.html")
            chelsea = photos_nhwc[0].ravel().tolist()
            logits = np.asarray(page.evaluate(PAGE_SCRIPT, [f"{hub}/{HANDLE}", chelsea]), dtype=np.float32)
        finally:
            browser.close()
    assert not errors, errors
    assert int(logits.argmax()) == int(torch_logits[0].argmax())
    assert float(np.abs(logits - torch_logits[0]).max()) <= ATOL
