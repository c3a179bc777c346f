"""retrain_images / retrain_text end to end on tiny modules: module, report, cache, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import modhub as hub
from modhub.errors import ExportError, InputError
from modhub.format.manifest import read_manifest
from modhub.retrain import TrainConfig, retrain_images, retrain_text
from modhub.retrain.data import decode_image

FAST = TrainConfig(epochs=15, lr=0.1, batch_size=8)


def _images(paths: list[Path], size: int = 32, resize: str = "crop") -> torch.Tensor:
    return torch.from_numpy(np.stack([decode_image(p.read_bytes(), size, size, resize) for p in paths]))


def test_retrain_images_writes_a_module_with_its_report(
    photo_dir: Path, feature_module: Path, tmp_path: Path
) -> None:
    result = retrain_images(photo_dir, feature_module, tmp_path / "colours", config=FAST, progress=False)
    out = result.module_dir
    manifest = read_manifest(out)
    assert manifest.task == "image-classification"
    assert manifest.metadata.base_module == str(feature_module)
    assert manifest.license == "Apache-2.0"  # inherited from the base module
    assert manifest.preprocessing.image is not None
    assert manifest.preprocessing.image.resize == "squash"  # the policy it was trained with
    module = hub.load(out)
    assert module.labels == ["blue", "green", "red"]

    report = result.report
    # Cross-validation: every example is a validation example, predicted by a head without it.
    assert report["data"]["validation"] == report["data"]["examples"] == 24
    assert sum(map(sum, report["validation"]["confusion_matrix"])) == 24
    assert report["cross_validation"]["folds"] == 5
    assert "cross-validation" in report["validation"]["method"]
    assert result.accuracy >= 2 / 3  # three plain colours: the tiny module separates them

    # The module takes the photos themselves and prepares them as in training (squash).
    paths = sorted(photo_dir.rglob("*.*"))[:5]
    from_photos = np.asarray(module([str(p) for p in paths]))
    from_batch = np.asarray(module(_images(paths, resize="squash")))
    np.testing.assert_allclose(from_photos, from_batch, atol=1e-5)

    files = {e.path for e in manifest.files}
    assert {
        "assets/report/metrics.json",
        "assets/report/confusion_matrix.png",
        "assets/report/cross_validation.png",
        "assets/labels.txt",
    } <= files
    for png in ("confusion_matrix.png", "cross_validation.png"):
        assert (out / "assets" / "report" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = json.loads((out / "assets" / "report" / "metrics.json").read_text())
    assert saved["validation"]["accuracy"] == result.accuracy
    assert set(saved["validation"]["per_class"]["red"]) == {"precision", "recall", "f1", "support"}
    assert saved["data"]["counts"]["train"] == {"blue": 8, "green": 8, "red": 8}
    card = (out / "README.md").read_text()
    assert f"Accuracy **{result.accuracy:.3f}**" in card and "| red |" in card
    assert "5-fold stratified cross-validation" in card and "resize policy `squash`" in card
    assert "task: image-classification" in card


def test_report_shows_misclassified_photos(feature_module: Path, tmp_path: Path) -> None:
    from tests.retrain.conftest import write_photos

    data = write_photos(tmp_path / "data", per_class=8)
    # A blue photo filed as red: cross-validation must get it wrong and show it.
    (data / "blue" / "00.jpg").rename(data / "red" / "mislabelled.jpg")
    result = retrain_images(data, feature_module, tmp_path / "m", config=FAST, progress=False)
    wrong = result.report["validation"]["misclassified"]
    assert {"name": "red/mislabelled.jpg", "true": "red", "predicted": "blue"}.items() <= next(
        e for e in wrong if e["name"] == "red/mislabelled.jpg"
    ).items()
    grid = result.module_dir / "assets" / "report" / "misclassified.png"
    assert grid.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    card = (result.module_dir / "README.md").read_text()
    assert "misclassified.png" in card and "| red/mislabelled.jpg | red | blue |" in card


def test_second_run_takes_every_feature_from_the_cache(
    photo_dir: Path, feature_module: Path, tmp_path: Path
) -> None:
    first = retrain_images(photo_dir, feature_module, tmp_path / "a", config=FAST, progress=False)
    assert first.extracted == 24 and first.report["features"]["cache_misses"] == 24
    second = retrain_images(photo_dir, feature_module, tmp_path / "b", config=FAST, progress=False)
    assert second.extracted == 0
    assert second.report["features"]["cache_hits"] == 24
    # Seeded: the same data and settings give the same classifier.
    assert second.report["validation"] == first.report["validation"]
    assert second.report["cross_validation"] == first.report["cross_validation"]


def test_each_resize_policy_has_its_own_cache_and_flip_adds_features(
    photo_dir: Path, feature_module: Path, tmp_path: Path
) -> None:
    crop = TrainConfig(resize="crop", flip=True)
    result = retrain_images(photo_dir, feature_module, tmp_path / "c", config=crop, progress=False)
    assert result.extracted == 48  # not the squash features: 24 photos + 24 flipped
    assert read_manifest(result.module_dir).preprocessing.image.resize == "crop"  # type: ignore[union-attr]
    with pytest.raises(InputError, match="resize policy 'zoom'"):
        retrain_images(photo_dir, feature_module, tmp_path / "z", config=TrainConfig(resize="zoom"))


def test_fine_tune_trains_the_module_too(photo_dir: Path, feature_module: Path, tmp_path: Path) -> None:
    config = TrainConfig(epochs=2, lr=0.02, batch_size=8, fine_tune=True, augment=True)
    result = retrain_images(photo_dir, feature_module, tmp_path / "tuned", config=config, progress=False)
    stages = [e["stage"] for e in result.report["history"]["epochs"]]
    assert stages == ["head", "head", "fine-tune", "fine-tune"]
    module = hub.load(result.module_dir)
    assert module.task == "image-classification" and module.labels == ["blue", "green", "red"]
    card = (result.module_dir / "README.md").read_text()
    assert "then the module and the head together" in card
    assert "BatchNorm statistics kept from the module" in card


def test_frozen_augmentation_runs_the_module_every_epoch(
    photo_dir: Path, feature_module: Path, tmp_path: Path
) -> None:
    config = TrainConfig(epochs=2, lr=0.02, batch_size=8, augment=True)
    result = retrain_images(photo_dir, feature_module, tmp_path / "aug", config=config, progress=False)
    assert result.report["config"]["augment"] is True
    hub.load(result.module_dir)


def test_retrain_text(text_csv: Path, text_module: Path, tmp_path: Path) -> None:
    result = retrain_text(
        text_csv,
        text_module,
        tmp_path / "topics",
        text_column="sentence",
        label_column="topic",
        config=TrainConfig(epochs=30, lr=0.05, batch_size=8),
        progress=False,
    )
    manifest = read_manifest(result.module_dir)
    assert manifest.task == "text-classification"
    assert manifest.preprocessing.tokenizer == read_manifest(text_module).preprocessing.tokenizer
    module = hub.load(result.module_dir)
    assert module.labels == ["animal", "vehicle"]
    logits = module(["cat dog sat mat cat", "fast red car blue car"])
    assert logits.shape == (2, 2)
    assert result.accuracy >= 0.8
    assert logits.argmax(1).tolist() == [0, 1]
    assert result.report["fine_tune"] is None


def test_retrain_text_fine_tune_is_contrastive_and_bounded(
    text_csv: Path, text_module: Path, tmp_path: Path
) -> None:
    from modhub.retrain.setfit import make_pairs

    config = TrainConfig(fine_tune=True, pairs_per_example=2)
    result = retrain_text(
        text_csv, text_module, tmp_path / "tuned", text_column="sentence", label_column="topic",
        config=config, progress=False,
    )  # fmt: skip
    tuned = result.report["fine_tune"]
    assert tuned["pairs"] == tuned["pairs_planned"] == 60 and not tuned["stopped_by_time"]
    assert "optimistic" in result.report["validation"]["method"]
    # The exported module carries the fine-tuned encoder: its logits differ from a frozen run's.
    frozen = retrain_text(
        text_csv, text_module, tmp_path / "frozen", text_column="sentence", label_column="topic",
        progress=False,
    )  # fmt: skip
    texts = ["cat dog sat mat cat", "fast red car blue car"]
    tuned_logits, frozen_logits = hub.load(result.module_dir)(texts), hub.load(frozen.module_dir)(texts)
    assert not np.allclose(tuned_logits, frozen_logits)
    assert tuned_logits.argmax(1).tolist() == [0, 1]
    # The time bound stops the pair stage.
    bounded = TrainConfig(fine_tune=True, fine_tune_seconds=1e-9)
    quick = retrain_text(
        text_csv, text_module, tmp_path / "quick", text_column="sentence", label_column="topic",
        config=bounded, progress=False,
    )  # fmt: skip
    assert quick.report["fine_tune"]["stopped_by_time"] and quick.report["fine_tune"]["pairs"] == 0
    # Pairs: balanced, seeded, each a real same/different-class pair.
    labels = np.array([0, 0, 0, 1, 1, 1])
    pairs = make_pairs(labels, 4, seed=3)
    assert len(pairs) == 24 and pairs[:, 2].sum() == 12
    assert all((labels[int(a)] == labels[int(b)]) == bool(t) for a, b, t in pairs)
    assert (make_pairs(labels, 4, seed=3) == pairs).all()


def test_a_text_module_given_to_retrain_images(photo_dir: Path, text_module: Path, tmp_path: Path) -> None:
    with pytest.raises(
        InputError, match="text-embedding module; for a text-embedding module use `modhub retrain text`"
    ):
        retrain_images(photo_dir, text_module, tmp_path / "x", config=FAST, progress=False)
    assert not (tmp_path / "x").exists()


def test_a_classification_module_is_not_a_feature_vector(
    photo_dir: Path, image_module: Path, tmp_path: Path
) -> None:
    with pytest.raises(InputError, match=r"image-feature-vector.*feature-vector"):
        retrain_images(photo_dir, image_module, tmp_path / "x", config=FAST, progress=False)


def test_an_image_module_given_to_retrain_text(text_csv: Path, feature_module: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="`modhub retrain images`"):
        retrain_text(
            text_csv,
            feature_module,
            tmp_path / "x",
            text_column="sentence",
            label_column="topic",
            progress=False,
        )


def test_existing_output_is_refused_before_training(
    photo_dir: Path, feature_module: Path, tmp_path: Path
) -> None:
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ExportError, match="--overwrite"):
        retrain_images(photo_dir, feature_module, out, config=FAST, progress=False)
    assert (out / "keep.txt").read_text() == "mine"
    assert not (Path(str(tmp_path)) / "cache").exists()


def test_augment_is_for_images(text_csv: Path, text_module: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="drop --augment"):
        retrain_text(text_csv, text_module, tmp_path / "x", config=TrainConfig(augment=True))


def test_frozen_features_come_from_onnxruntime_when_the_module_has_onnx(
    photo_dir: Path, feature_module: Path, tmp_path: Path
) -> None:
    from tests.tiny_models import make_module

    with_onnx = make_module("image-feature-vector", tmp_path / "tiny-onnx", seed=1, classes=8, onnx=True)
    onnx_run = retrain_images(photo_dir, with_onnx, tmp_path / "a", config=FAST, progress=False)
    torch_run = retrain_images(photo_dir, feature_module, tmp_path / "b", config=FAST, progress=False)
    assert onnx_run.report["timings"]["runtime"] == "onnx"
    assert torch_run.report["timings"]["runtime"] == "torch"
    # Same weights (same seed): onnxruntime's features give the same classifier.
    assert onnx_run.report["cross_validation"]["C"] == torch_run.report["cross_validation"]["C"]
    paths = sorted(photo_dir.rglob("*.*"))
    a = np.asarray(hub.load(onnx_run.module_dir)(paths))
    b = np.asarray(hub.load(torch_run.module_dir)(paths))
    np.testing.assert_allclose(a, b, atol=1e-3)
