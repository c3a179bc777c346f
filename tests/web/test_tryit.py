"""The module page's "try it" panel: the browser runtime the hub serves, and the panel running
real starter modules in Debian's chromium (Playwright) with onnxruntime-web.

A real hub (``modhub serve``) with the real MobileNetV2 classifier and MiniLM-L6 (the zoo, built
or reused like tests/zoo does), plus the tiny CNN of the test suite twice: as published, and
with its ``model.onnx`` swapped on the hub for other bytes. The runtime's files come from the
checkout's ``node_modules`` (``make web``); without it these tests fail in CI and skip elsewhere.
"""

from __future__ import annotations

import base64
import io
import json
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.harness import CHROMIUM, CHROMIUM_ARGS, admin_run, need, running_hub
from tests.web.conftest import ARTIFACTS
from tests.zoo.conftest import zoo_cache_dir

sync_api = pytest.importorskip("playwright.sync_api")

REPO_ROOT = Path(__file__).resolve().parents[2]
NODE_MODULES = REPO_ROOT / "node_modules"
TRYIT = REPO_ROOT / "src" / "modhub" / "server" / "web" / "static" / "tryit"
STARTERS = ("mobilenet-v2-classification", "minilm-l6")
CAT_CLASSES = {"tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat", "lynx"}
ORT = "/static/vendor/onnxruntime-web@1.30.0"


@pytest.fixture(scope="module")
def runtime() -> Path:
    need((NODE_MODULES / "onnxruntime-web" / "dist").is_dir(), "no node_modules: run `make web` (npm ci)")
    return NODE_MODULES


@pytest.fixture(scope="module")
def starters(runtime: Path) -> Path:
    from modhub.zoo import build_zoo

    root = zoo_cache_dir()
    build_zoo(root, only=STARTERS, progress=False)
    return root


@dataclass(frozen=True)
class Hub:
    url: str
    data_dir: Path


def _seed(data_dir: Path, publisher: str, *dirs: Path) -> None:
    done = admin_run(data_dir, *map(str, dirs), "--publisher", publisher, command="seed")
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def tiny_hub(tmp_path_factory: pytest.TempPathFactory, runtime: Path, image_module: Path) -> Iterator[Hub]:
    """acme/tiny-cnn as published, and evil/tiny-cnn whose model.onnx the hub swapped for other bytes."""
    data_dir = tmp_path_factory.mktemp("tryit-tiny") / "data"
    _seed(data_dir, "acme", image_module)
    _seed(data_dir, "evil", image_module)
    # The hub serves README.md's bytes as evil/tiny-cnn's model.onnx (its manifest is unchanged).
    with sqlite3.connect(data_dir / "modhub.db") as db:
        (version_id,) = db.execute(
            "SELECT v.id FROM versions v JOIN modules m ON m.id = v.module_id "
            "JOIN publishers p ON p.id = m.publisher_id WHERE p.name = 'evil'"
        ).fetchone()
        readme = db.execute(
            "SELECT sha256, size FROM files WHERE version_id = ? AND path = 'README.md'", (version_id,)
        ).fetchone()
        db.execute(
            "UPDATE files SET sha256 = ?, size = ? WHERE version_id = ? AND path = 'model.onnx'",
            (*readme, version_id),
        )
    with running_hub(data_dir) as live:
        yield Hub(live.url, data_dir)


@pytest.fixture(scope="module")
def starter_hub(tmp_path_factory: pytest.TempPathFactory, starters: Path) -> Iterator[Hub]:
    """The real MobileNetV2 classifier and MiniLM-L6 as modhub/<name>."""
    data_dir = tmp_path_factory.mktemp("tryit-starters") / "data"
    _seed(data_dir, "modhub", *(starters / name for name in STARTERS))
    with running_hub(data_dir) as live:
        yield Hub(live.url, data_dir)


@pytest.fixture(scope="module")
def playwright() -> Iterator[Any]:
    need(Path(CHROMIUM).exists(), "no Debian chromium (apt-get install chromium)")
    with sync_api.sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="module")
def browser(playwright: Any) -> Iterator[Any]:
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    try:
        yield browser
    finally:
        browser.close()


class Tab:
    def __init__(self, browser: Any, base: str, **options: Any) -> None:
        self.context = browser.new_context(viewport={"width": 1280, "height": 900}, **options)
        self.context.set_default_timeout(120_000)
        self.page = self.context.new_page()
        self.base = base
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))

    def open(self, path: str, state: str = "ready") -> Any:
        self.page.goto(self.base + path)
        self.page.wait_for_selector(f"#tryit[data-state={state}]")
        return self.page

    def finished(self) -> str:
        self.page.wait_for_selector("#tryit:is([data-state=done], [data-state$=error])")
        return str(self.page.get_attribute("#tryit", "data-state"))

    def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _tab(browser: Any, hub: Hub) -> Iterator[Tab]:
    tab = Tab(browser, hub.url)
    try:
        yield tab
    finally:
        tab.context.close()


@pytest.fixture
def tab(browser: Any, tiny_hub: Hub) -> Iterator[Tab]:
    yield from _tab(browser, tiny_hub)


@pytest.fixture
def starter_tab(browser: Any, starter_hub: Hub) -> Iterator[Tab]:
    yield from _tab(browser, starter_hub)


def _jpeg(name: str) -> bytes:
    from PIL import Image
    from skimage import data

    buffer = io.BytesIO()
    Image.fromarray(getattr(data, name)()).save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


def _drop(page: Any, selector: str, name: str, mime: str, body: bytes) -> None:
    """Drop a file on ``selector`` as a person dragging it from their desktop would."""
    transfer = page.evaluate_handle(
        """([name, mime, b64]) => {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, { type: mime }));
            return transfer;
        }""",
        [name, mime, base64.b64encode(body).decode()],
    )
    page.dispatch_event(selector, "drop", {"dataTransfer": transfer})


# ----------------------------------------------------------------- the files the hub serves


def test_runtime_files_are_served_with_their_types(tiny_hub: Hub) -> None:
    with httpx.Client(base_url=tiny_hub.url) as client:
        wasm = client.get(f"{ORT}/ort-wasm-simd-threaded.wasm")
        assert wasm.status_code == 200
        assert wasm.headers["content-type"] == "application/wasm"
        assert wasm.content[:4] == b"\0asm"
        assert "immutable" in wasm.headers["cache-control"]
        for path in (f"{ORT}/ort.wasm.min.mjs", f"{ORT}/ort-wasm-simd-threaded.mjs", "/static/tryit/core.js"):
            response = client.get(path)
            assert response.status_code == 200, path
            assert response.headers["content-type"].startswith("text/javascript"), path
        tokenizers = client.get("/static/vendor/tokenizers@0.2.0/tokenizers.min.mjs")
        assert tokenizers.status_code == 200 and "Tokenizer" in tokenizers.text
        # Only the allow-listed files, only at the installed version, never a path.
        for path in (
            "/static/vendor/onnxruntime-web@1.30.0/ort.all.min.mjs",
            "/static/vendor/onnxruntime-web@1.29.0/ort.wasm.min.mjs",
            "/static/vendor/onnxruntime-web@1.30.0/..%2Fpackage.json",
            "/static/vendor/onnxruntime-web@1.30.0/../../package.json",
            "/static/vendor/..%2F..%2Fpackage.json/x",
            "/static/tryit/..%2Fsite.css",
            "/static/tryit/samples/..%2F..%2Fsite.css",
            "/static/tryit/samples/moon.jpg",
        ):
            assert client.get(path).status_code == 404, path
        page = client.get("/acme/tiny-cnn", headers={"Accept": "text/html"})
        # WebAssembly needs 'wasm-unsafe-eval'; nothing else is loosened.
        assert "script-src 'self' 'wasm-unsafe-eval';" in page.headers["content-security-policy"]
        assert 'id="tryit"' in page.text and "tryit-missing" not in page.text


def test_a_hub_without_the_runtime_says_how_to_add_it(start_hub: Any, tiny_hub: Hub, tmp_path: Path) -> None:
    # A second hub on the same data directory, told to look for the runtime where there is none.
    live = start_hub(tiny_hub.data_dir, env={"MODHUB_SERVER_WEB_RUNTIME_DIR": str(tmp_path / "nothing")})
    with httpx.Client(base_url=live.url) as client:
        page = client.get("/acme/tiny-cnn", headers={"Accept": "text/html"})
        assert page.status_code == 200
        assert 'id="tryit"' not in page.text and "core.js" not in page.text
        assert "MODHUB_SERVER_WEB_RUNTIME_DIR" in page.text and "make web" in page.text
        assert "wasm-unsafe-eval" not in page.headers["content-security-policy"]
        assert client.get(f"{ORT}/ort-wasm-simd-threaded.wasm").status_code == 404


def test_an_s3_hub_lets_the_panel_fetch_from_its_object_store(tmp_path: Path) -> None:
    from modhub.server.config import ServerSettings
    from modhub.server.web.vendor import TRYIT_CSP, tryit_csp

    local = ServerSettings(data_dir=tmp_path)
    assert tryit_csp(local) == TRYIT_CSP and "connect-src" not in TRYIT_CSP
    s3 = ServerSettings(
        data_dir=tmp_path, blob_url="s3://models/hub", s3_endpoint="http://s3.internal:8333",
        s3_public_endpoint="https://blobs.example.org/x",
    )  # fmt: skip
    assert tryit_csp(s3).endswith("; connect-src 'self' https://blobs.example.org")
    streamed = ServerSettings(data_dir=tmp_path, blob_url="s3://models/hub", s3_presign_seconds=0)
    assert tryit_csp(streamed) == TRYIT_CSP


def test_photos_are_resized_exactly_as_python_does(runtime: Path, tmp_path: Path) -> None:
    """images.js (Pillow's bilinear resampling ported) gives Pillow's pixels, for every policy."""
    from PIL import Image
    from skimage import data

    from modhub.runtimes.images import fit_photo

    shutil.copy(TRYIT / "images.js", tmp_path / "images.mjs")
    photos = {"chelsea": data.chelsea(), "odd": data.astronaut()[::37, ::29]}
    cases = [
        (n, r, h, w) for n in photos for r in ("crop", "squash", "pad") for h, w in ((224, 224), (90, 130))
    ]
    script = """
    import { fitPhoto } from "./images.mjs";
    import fs from "node:fs";
    const job = JSON.parse(fs.readFileSync(0, "utf8"));
    const out = job.cases.map(([name, resize, h, w]) => {
      const p = job.photos[name];
      const rgb = Buffer.from(p.b64, "base64");
      const rgba = new Uint8ClampedArray(p.w * p.h * 4).fill(255);
      for (let i = 0; i < p.w * p.h; i++) rgba.set(rgb.subarray(i * 3, i * 3 + 3), i * 4);
      const r = fitPhoto({ width: p.w, height: p.h, data: rgba }, h, w, resize, [0.485, 0.456, 0.406]);
      return Buffer.from(r.data.filter((_, i) => i % 4 !== 3)).toString("base64");
    });
    process.stdout.write(JSON.stringify(out));
    """
    job = {
        "cases": cases,
        "photos": {
            k: {
                "w": v.shape[1],
                "h": v.shape[0],
                "b64": base64.b64encode(np.ascontiguousarray(v).tobytes()).decode(),
            }
            for k, v in photos.items()
        },
    }
    done = subprocess.run(
        ["node", "--input-type=module", "-e", script],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    for (name, resize, h, w), got in zip(cases, json.loads(done.stdout), strict=True):
        want = np.asarray(fit_photo(Image.fromarray(photos[name]), h, w, resize, (0.485, 0.456, 0.406)))
        pixels = np.frombuffer(base64.b64decode(got), dtype=np.uint8).reshape(want.shape)
        assert np.array_equal(pixels, want), (name, resize, h, w)


# ----------------------------------------------------------------- the panel in a browser


@pytest.mark.slow
def test_chelsea_dropped_on_the_classifier_is_a_cat(starter_tab: Tab) -> None:
    tab = starter_tab
    page = tab.open("/modhub/mobilenet-v2-classification")
    _drop(page, ".tryit-drop", "chelsea.jpg", "image/jpeg", _jpeg("chelsea"))
    assert tab.finished() == "done"
    top5 = page.locator(".tryit-bars li").evaluate_all("items => items.map(li => li.dataset.label)")
    assert len(top5) == 5
    assert CAT_CLASSES & set(top5), top5
    tab.shot("tryit-mobilenet")
    # The sample photos the hub makes: coffee is an espresso, and the second run reuses the session.
    page.click(".tryit-sample[data-sample='A cup of coffee']")
    assert tab.finished() == "done"
    assert "espresso" in page.locator(".tryit-bars li").evaluate_all(
        "items => items.map(li => li.dataset.label)"
    )
    assert tab.errors == []


@pytest.mark.slow
def test_minilm_finds_the_two_cat_sentences_with_pythons_token_ids(starter_tab: Tab, starters: Path) -> None:
    from modhub.format.manifest import read_manifest
    from modhub.runtimes.preprocessing import TextEncoder

    tab = starter_tab
    page = tab.open("/modhub/minilm-l6")
    texts = page.input_value(".tryit-text").splitlines()
    assert len(texts) == 4 and sum("cat" in t or "kitten" in t for t in texts) == 2
    page.click(".tryit-run")
    assert tab.finished() == "done"
    closest = [int(i) for i in str(page.get_attribute(".tryit-matrix", "data-closest")).split(",")]
    assert {texts[i] for i in closest} == {t for t in texts if "cat" in t or "kitten" in t}
    tab.shot("tryit-minilm")

    # Token ids: the browser's (the page shows them) equal Python's, accents, punctuation,
    # other scripts and a text longer than max_length included.
    manifest = read_manifest(starters / "minilm-l6")
    spec = manifest.preprocessing.tokenizer
    assert spec is not None
    hard = [
        "Crème brûlée, déjà vu — naïve café! Straße?",
        'Hello,world!!! (quoted) "x" 3.14 e-mail@example.org #tag',
        "日本語のテキスト and an emoji 🐱 ½",
        "a long text " * 200 + "that ends here",
    ]
    page.fill(".tryit-text", "\n".join(hard))
    page.click(".tryit-run")
    assert tab.finished() == "done"
    browser_ids = json.loads(str(page.get_attribute(".tryit-ids", "data-ids")))
    encoder = TextEncoder(spec, (starters / "minilm-l6" / spec.file).read_bytes())
    python_ids = encoder.encode(hard)[spec.graph_inputs.index("input_ids")].tolist()
    assert len(python_ids[3]) == spec.max_length
    assert browser_ids == python_ids
    assert tab.errors == []


def test_a_file_that_fails_its_sha256_is_not_run(tab: Tab) -> None:
    page = tab.open("/evil/tiny-cnn")
    page.set_input_files(
        ".tryit-file", files=[{"name": "cat.jpg", "mimeType": "image/jpeg", "buffer": _jpeg("chelsea")}]
    )
    assert tab.finished() == "integrity-error"
    message = page.inner_text(".tryit-error")
    assert "model.onnx does not match the manifest" in message and "sha256" in message
    assert page.locator(".tryit-out > *").count() == 0
    tab.shot("tryit-tampered")


def test_the_untampered_tiny_module_runs(tab: Tab) -> None:
    page = tab.open("/acme/tiny-cnn")
    page.set_input_files(
        ".tryit-file", files=[{"name": "cat.jpg", "mimeType": "image/jpeg", "buffer": _jpeg("chelsea")}]
    )
    assert tab.finished() == "done"
    labels = page.locator(".tryit-bars li").evaluate_all("items => items.map(li => li.dataset.label)")
    assert sorted(labels) == ["ant", "bee", "cat", "dog", "eel"]
    assert tab.errors == []


def test_not_an_image_gets_a_clear_message(tab: Tab) -> None:
    page = tab.open("/acme/tiny-cnn")
    page.set_input_files(
        ".tryit-file", files=[{"name": "notes.png", "mimeType": "image/png", "buffer": b"not a png"}]
    )
    page.wait_for_selector("#tryit[data-state=input-error]")
    assert "notes.png is not an image" in page.inner_text(".tryit-error")
    _drop(page, ".tryit-drop", "notes.txt", "text/plain", b"hello")
    page.wait_for_selector(".tryit-error:has-text('notes.txt is not an image')")


def test_without_javascript_there_is_no_panel(browser: Any, tiny_hub: Hub) -> None:
    tab = Tab(browser, tiny_hub.url, java_script_enabled=False)
    try:
        tab.page.goto(tiny_hub.url + "/acme/tiny-cnn")
        assert tab.page.locator("#tryit").count() == 1
        assert not tab.page.locator("#tryit").is_visible()
        assert not tab.page.get_by_text("Try it").is_visible()
        assert tab.page.locator("#usage").is_visible()
        assert tab.errors == []
    finally:
        tab.context.close()


def test_a_module_too_large_for_a_browser_says_so(tab: Tab) -> None:
    # The page's limit (MAX_DOWNLOAD_BYTES, 120 MB) lowered in the HTML to under the tiny CNN's size.
    def lower_limit(route: Any) -> None:
        response = route.fetch()
        body = response.text().replace('data-max-bytes="125829120"', 'data-max-bytes="1000"')
        route.fulfill(response=response, body=body)

    tab.page.route(f"{tab.base}/acme/tiny-cnn", lower_limit)
    page = tab.open("/acme/tiny-cnn", state="too-large")
    assert "too large to try in a browser" in page.inner_text(".tryit-too-large")
    assert page.locator(".tryit-drop").count() == 0
    assert tab.errors == []


def test_plain_http_elsewhere_than_localhost_says_it_needs_https(playwright: Any, tiny_hub: Hub) -> None:
    # tryit.test resolves to the hub, but http://tryit.test is no secure context: no SubtleCrypto.
    rules = "--host-resolver-rules=MAP tryit.test 127.0.0.1"
    browser = playwright.chromium.launch(
        executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, rules], headless=True
    )
    try:
        tab = Tab(browser, tiny_hub.url.replace("127.0.0.1", "tryit.test"))
        page = tab.open("/acme/tiny-cnn", state="insecure")
        assert "needs the page over https" in page.inner_text("#tryit")
        assert tab.errors == []
    finally:
        browser.close()
