"""The "try it" panel's catalog renderers in a real browser, on the real starter modules.

Debian's chromium (Playwright) opens each module's page on a real hub, picks a sample, and the
module runs in the page with onnxruntime-web (static/tryit/tasks-catalog.js, tasks-audio.js).
The renderers write what they found as JSON into ``pre.tryit-data``; each test compares it with
``hub.load`` of the same module on the same sample in Python.
"""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.harness import CHROMIUM, admin_run, need, running_hub
from tests.web.conftest import ARTIFACTS
from tests.zoo.conftest import zoo_cache_dir

sync_api = pytest.importorskip("playwright.sync_api")
pytest.importorskip("skimage")

STARTERS = (
    "movenet-lightning",
    "centernet-coco",
    "selfie-segmentation",
    "arbitrary-image-stylization",
    "silero-vad",
)
REPO_ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def zoo() -> Path:
    from modhub.zoo import build_zoo

    need((REPO_ROOT / "node_modules" / "onnxruntime-web").is_dir(), "no node_modules: run `make web`")
    need(Path(CHROMIUM).exists(), "no Debian chromium (apt-get install chromium)")
    root = zoo_cache_dir()
    build_zoo(root, only=STARTERS, progress=False)
    return root


@pytest.fixture(scope="module")
def hub_url(tmp_path_factory: pytest.TempPathFactory, zoo: Path) -> Iterator[str]:
    """The five starters as modhub/<name>, on a real hub."""
    data_dir = tmp_path_factory.mktemp("tryit-catalog") / "data"
    dirs = [str(zoo / name) for name in STARTERS]
    done = admin_run(data_dir, *dirs, "--publisher", "modhub", command="seed")
    assert done.returncode == 0, done.stderr
    with running_hub(data_dir) as live:
        yield live.url


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    context.set_default_timeout(120_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield page
        assert not errors, errors
    finally:
        context.close()


def _sample(hub_url: str, filename: str) -> bytes:
    import httpx

    response = httpx.get(f"{hub_url}/static/tryit/samples/{filename}", timeout=60)
    assert response.status_code == 200, filename
    return response.content


def _open(page: Any, hub_url: str, name: str) -> None:
    page.goto(f"{hub_url}/modhub/{name}/1")
    page.wait_for_selector("#tryit[data-state=ready]")


def _result(page: Any, name: str) -> dict[str, Any]:
    page.wait_for_selector("#tryit[data-state=done], #tryit[data-state=error]")
    state = page.get_attribute("#tryit", "data-state")
    assert state == "done", page.locator("#tryit .tryit-errors").inner_text()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.locator("#tryit").screenshot(path=str(ARTIFACTS / f"tryit-{name}.png"))
    return json.loads(page.locator("#tryit pre.tryit-data").text_content())  # type: ignore[no-any-return]


def _run_on(page: Any, hub_url: str, name: str, sample: str) -> dict[str, Any]:
    _open(page, hub_url, name)
    page.click(f'#tryit button[data-sample="{sample}"]')
    return _result(page, name)


def _load(zoo: Path, name: str) -> Any:
    import modhub as hub

    return hub.load(zoo / name, output="numpy")


def _photo(data: bytes) -> Any:
    from PIL import Image

    return Image.open(io.BytesIO(data)).convert("RGB")


def test_movenet_draws_17_keypoints_where_python_finds_them(page: Any, hub_url: str, zoo: Path) -> None:
    from modhub.predict.draw import from_model_frame

    found = _run_on(page, hub_url, "movenet-lightning", "An astronaut")
    points = found["keypoints"]
    assert len(points) == 17
    assert points[0]["name"] == "nose"
    photo = _photo(_sample(hub_url, "astronaut.jpg"))
    expected = np.asarray(_load(zoo, "movenet-lightning")(photo)).reshape(17, 3)
    pixels = from_model_frame(expected[:, :2], photo.size, (192, 192), "pad")
    got = np.array([[p["y"], p["x"]] for p in points])
    assert np.abs(got - pixels).max() <= 3.0, np.abs(got - pixels).max()
    scores = np.array([p["score"] for p in points])
    assert np.abs(scores - expected[:, 2]).max() <= 0.05
    # Inside the person's region (her face and body occupy the left two thirds of the photo).
    confident = got[scores >= 0.3]
    assert len(confident) >= 8
    assert (confident[:, 1] < 400).all() and (confident[:, 0] < photo.height).all()


def test_detection_finds_the_astronaut(page: Any, hub_url: str, zoo: Path) -> None:
    found = _run_on(page, hub_url, "centernet-coco", "An astronaut")
    people = [d for d in found["detections"] if d["label"] == "person"]
    assert people and people[0]["score"] >= 0.4, found
    photo = _photo(_sample(hub_url, "astronaut.jpg"))
    out = _load(zoo, "centernet-coco")(photo)
    best = int(np.argmax(np.where(out["detection_classes"][0] == 0, out["detection_scores"][0], -1)))
    top, left, bottom, right = out["detection_boxes"][0][best] * np.array([512, 512, 512, 512])
    assert np.abs(np.array(people[0]["box"]) - [top, left, bottom, right]).max() <= 4.0


def test_segmentation_mask_matches_python(page: Any, hub_url: str, zoo: Path) -> None:
    found = _run_on(page, hub_url, "selfie-segmentation", "An astronaut")
    height, width = found["height"], found["width"]
    runs = np.asarray(found["rle"])
    mask = np.repeat(np.arange(len(runs)) % 2 == 1, runs).reshape(height, width)
    photo = _photo(_sample(hub_url, "astronaut.jpg"))
    expected = np.asarray(_load(zoo, "selfie-segmentation")(photo)).reshape(height, width) > 0.5
    iou = (mask & expected).sum() / (mask | expected).sum()
    assert iou >= 0.9, iou
    assert 0.3 <= mask.mean() <= 0.8  # the person, not everything


def test_style_transfer_gives_an_image_of_the_content_size(page: Any, hub_url: str) -> None:
    _open(page, hub_url, "arbitrary-image-stylization")
    sides = page.locator("#tryit .tryit-pair-side")
    sides.nth(0).locator('button[data-sample="An astronaut"]').click()
    sides.nth(1).locator('button[data-sample="Stained tissue"]').click()
    found = _result(page, "arbitrary-image-stylization")
    assert [found["width"], found["height"]] == found["content"] == [512, 512]
    assert page.locator("#tryit figure canvas").count() == 3


def test_voice_activity_finds_speech_and_refuses_non_sound(page: Any, hub_url: str, zoo: Path) -> None:
    if shutil.which("espeak-ng") is None:
        pytest.skip("the spoken sample needs espeak-ng")
    found = _run_on(page, hub_url, "silero-vad", "A spoken sentence")
    scores = np.asarray(found["scores"])
    assert (scores > 0.5).mean() >= 0.5, scores
    expected = np.asarray(_load(zoo, "silero-vad")(_sample(hub_url, "speech.wav"))).reshape(-1)
    assert abs(len(expected) - len(scores)) <= 1
    n = min(len(expected), len(scores))
    # The browser resamples 22.05 -> 16 kHz itself (Python uses soxr): speech/no-speech agrees.
    assert ((scores[:n] > 0.5) == (expected[:n] > 0.5)).mean() >= 0.9
    # A file that is not sound gets a message in the page, not a crash.
    page.set_input_files(
        "#tryit input[type=file]",
        files=[{"name": "notes.wav", "mimeType": "audio/wav", "buffer": b"not a sound at all"}],
    )
    page.wait_for_selector("#tryit .tryit-error")
    assert "sound" in page.locator("#tryit .tryit-error").inner_text()


def test_sample_sounds_are_wav_files_that_modhub_reads() -> None:
    pytest.importorskip("soundfile")
    from modhub.runtimes.audio import load_audio
    from modhub.server.web.samples import SAMPLE_SOUNDS, sample_sound

    for name in sorted(SAMPLE_SOUNDS):
        data = sample_sound(name)
        if data is None:  # speech without espeak-ng
            assert shutil.which("espeak-ng") is None, name
            continue
        # espeak-ng's streamed header (sizes 0x7fffffff) is rewritten: modhub's reader refuses it.
        seconds = len(load_audio(data, 16000, name)) / 16000
        assert 0.5 < seconds < 10, (name, seconds)
