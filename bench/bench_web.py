"""The module page's "try it" panel: time to first result in headless chromium vs Python onnxruntime.

For MobileNetV2 (chelsea, a sample photo) and MiniLM-L6 (the panel's four sample sentences):

* browser cold: a fresh browser context (empty cache), the module page opened, the sample
  chosen; timed from the click to the result on the page: downloading onnxruntime-web's WASM and
  the module's files, checking their sha256, compiling, creating the session, running;
* browser warm (reload): the same context, the page opened again (HTTP cache and the panel's
  Cache Storage warm: module files are not downloaded again, still checked), the same
  click, timed the same way;
* browser warm (2nd run): the same page, the same input once more (session already made);
* Python: onnxruntime ``InferenceSession`` of the same ``model.onnx`` (+ ``model.onnx.data``)
  created and called once on the same input, prepared as modhub prepares it (cold); then a
  second call (warm).

It also prints the bytes the visitor downloads on the cold run (runtime files, module files, the
rest), from the page's resource timing. One run each; times are wall clock on whatever else the
machine is doing.

    python bench/bench_web.py [--zoo DIR]

``--zoo``: built starter modules (default: ``MODHUB_ZOO_CACHE``, else ``.modhub/zoo``; ``modhub
zoo build --only mobilenet-v2-classification,minilm-l6`` builds them). The benchmark seeds them into
a fresh hub of its own on a loopback port. Needs ``make web`` (node_modules) and Debian's chromium.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking"]
MODELS = ("mobilenet-v2-classification", "minilm-l6")
SENTENCES = [
    "A cat is sleeping on the warm windowsill.",
    "The kitten naps in the sun by the window.",
    "Stock markets fell sharply after the announcement.",
    "She is learning to play the violin.",
]


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("MODHUB_")}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def _hub(zoo: Path, work: Path) -> Iterator[str]:
    data = work / "data"
    dirs = [str(zoo / name) for name in MODELS]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "modhub",
            "admin",
            "seed",
            *dirs,
            "--publisher",
            "modhub",
            "--data-dir",
            str(data),
        ],
        env=_env(),
        check=True,
        capture_output=True,
    )
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with open(work / "serve.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "modhub", "serve", "--port", str(port), "--data-dir", str(data)],
            env=_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/api/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the hub did not start: {(work / 'serve.log').read_text()}")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(30)


# ------------------------------------------------------------------------------ browser


def _act(page: Any, name: str) -> float:
    """Click the model's input, wait for the result; seconds from the click."""
    start = time.perf_counter()
    if name == "minilm-l6":
        page.click(".tryit-run")
    else:
        page.click(".tryit-sample[data-sample='Chelsea the cat']")
    page.wait_for_selector("#tryit:is([data-state=done], [data-state$=error])", timeout=600_000)
    seconds = time.perf_counter() - start
    state = page.get_attribute("#tryit", "data-state")
    if state != "done":
        raise SystemExit(f"{name}: the panel ended in {state}: {page.inner_text('#tryit')}")
    return seconds


def _open(page: Any, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("#tryit[data-state=ready]", timeout=60_000)


def _bytes(page: Any) -> dict[str, int]:
    entries = page.evaluate(
        """() => [
            ...performance.getEntriesByType("navigation"),
            ...performance.getEntriesByType("resource"),
        ].map((e) => [e.name, e.transferSize || e.encodedBodySize || 0])"""
    )
    out = {"runtime": 0, "module": 0, "page": 0}
    for name, size in entries:
        key = "runtime" if "/static/vendor/" in name else "module" if "/files/" in name else "page"
        out[key] += int(size)
    return out


def browser_times(hub: str) -> dict[str, dict[str, Any]]:
    from playwright.sync_api import sync_playwright

    results: dict[str, dict[str, Any]] = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            for name in MODELS:
                url = f"{hub}/modhub/{name}"
                context = browser.new_context()
                page = context.new_page()
                _open(page, url)
                cold = _act(page, name)
                downloaded = _bytes(page)
                second = _act(page, name)
                page.close()
                page = context.new_page()
                _open(page, url)
                warm = _act(page, name)
                warm_bytes = _bytes(page)
                context.close()
                results[name] = {
                    "cold": cold,
                    "warm": warm,
                    "second": second,
                    "bytes": downloaded,
                    "warm_bytes": warm_bytes,
                }
        finally:
            browser.close()
    return results


# ------------------------------------------------------------------------------ Python


def _inputs(zoo: Path, name: str) -> dict[str, np.ndarray]:
    from modhub.format.manifest import read_manifest

    manifest = read_manifest(zoo / name)
    if name == "minilm-l6":
        from modhub.runtimes.preprocessing import TextEncoder

        spec = manifest.preprocessing.tokenizer
        assert spec is not None
        arrays = TextEncoder(spec, (zoo / name / spec.file).read_bytes()).encode(SENTENCES)
        return dict(zip(spec.graph_inputs, arrays, strict=True))
    from skimage import data

    from modhub.runtimes.images import prepare_images

    image = manifest.preprocessing.image
    assert image is not None
    return {"images": prepare_images(data.chelsea(), image)}


def python_times(zoo: Path) -> dict[str, dict[str, float]]:
    import onnxruntime as ort

    results = {}
    for name in MODELS:
        # Inputs prepared before the clock starts each time: the photo / texts as modhub prepares them.
        feeds = _inputs(zoo, name)
        start = time.perf_counter()
        session = ort.InferenceSession(str(zoo / name / "model.onnx"), providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]
        session.run(None, dict(zip(names, feeds.values(), strict=True)))
        cold = time.perf_counter() - start
        start = time.perf_counter()
        session.run(None, dict(zip(names, feeds.values(), strict=True)))
        warm = time.perf_counter() - start
        results[name] = {"cold": cold, "warm": warm}
    return results


def _mb(n: int) -> str:
    return f"{n / 2**20:.1f} MB"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    default_zoo = os.environ.get("MODHUB_ZOO_CACHE") or str(ROOT / ".modhub" / "zoo")
    parser.add_argument("--zoo", type=Path, default=Path(default_zoo))
    args = parser.parse_args()
    missing = [n for n in MODELS if not (args.zoo / n / "modhub.json").is_file()]
    if missing:
        raise SystemExit(f"no {', '.join(missing)} in {args.zoo}: modhub zoo build --only {','.join(MODELS)}")
    with tempfile.TemporaryDirectory(prefix="bench-web-") as tmp, _hub(args.zoo, Path(tmp)) as hub:
        web = browser_times(hub)
    py = python_times(args.zoo)
    print(f"cores: {os.cpu_count()}, load average: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print("time to first result, seconds (browser: from the click; Python: session + first call)")
    header = (
        f"{'module':<30}{'browser cold':>14}{'py cold':>10}{'ratio':>8}{'browser warm':>14}{'2nd run':>10}"
    )
    print(header + f"{'py warm':>10}{'ratio':>8}")
    for name in MODELS:
        b, p = web[name], py[name]
        print(
            f"{name:<30}{b['cold']:>14.2f}{p['cold']:>10.2f}{b['cold'] / p['cold']:>7.1f}x"
            f"{b['warm']:>14.2f}{b['second']:>10.3f}{p['warm']:>10.3f}{b['second'] / p['warm']:>7.1f}x"
        )
    print("\nbytes the visitor downloads (transfer sizes from resource timing)")
    print(f"{'module':<30}{'runtime':>12}{'module':>12}{'page':>12}{'cold total':>12}{'warm total':>12}")
    for name in MODELS:
        d = web[name]["bytes"]
        total = sum(d.values())
        warm = sum(web[name]["warm_bytes"].values())
        print(
            f"{name:<30}{_mb(d['runtime']):>12}{_mb(d['module']):>12}{_mb(d['page']):>12}"
            f"{_mb(total):>12}{_mb(warm):>12}"
        )
    print(
        "\nbrowser warm = the page opened again in the same context (HTTP cache and the panel's "
        "Cache Storage warm), from the click; "
        "2nd run = the same page, the same input again; py warm = a second session.run."
    )


if __name__ == "__main__":
    main()
