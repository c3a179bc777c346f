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


def _images(paths: list[Path], size: int = 32) -> torch.Tensor:
    return torch.from_numpy(np.stack([decode_image(p.read_bytes(), size, size) for p in paths]))


def test_retrain_images_writes_a_module_with_its_report(
    photo_dir: Path, feature_module: Path, tmp_path: Path
) -> None:
    result = retrain_images(photo_dir, feature_module, tmp_path / "colours", config=FAST, progress=False)
    out = result.module_dir
    manifest = read_manifest(out)
    assert manifest.task == "image-classification"
    assert manifest.metadata.base_module == str(feature_module)
    assert manifest.license == "Apache-2.0"  # inherited from the base module
    module = hub.load(out)
    assert module.labels == ["blue", "green", "red"]

    # The exported graph reproduces the report: same predictions on the validation split.
    report = result.report
    val_paths = [photo_dir / name for name in report["data"]["validation_examples"]]
    truth = [module.labels.index(name.split("/")[0]) for name in report["data"]["validation_examples"]]
    predicted = module(_images(val_paths)).argmax(1).tolist()
    matrix = np.zeros((3, 3), dtype=int)
    np.add.at(matrix, (truth, predicted), 1)
    assert matrix.tolist() == report["validation"]["confusion_matrix"]
    assert result.accuracy >= 2 / 3  # three plain colours: the tiny module separates them

    files = {e.path for e in manifest.files}
    assert {
        "assets/report/metrics.json",
        "assets/report/confusion_matrix.png",
        "assets/report/training_curve.png",
        "assets/labels.txt",
    } <= files
    for png in ("confusion_matrix.png", "training_curve.png"):
        assert (out / "assets" / "report" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = json.loads((out / "assets" / "report" / "metrics.json").read_text())
    assert saved["validation"]["accuracy"] == result.accuracy
    assert set(saved["validation"]["per_class"]["red"]) == {"precision", "recall", "f1", "support"}
    assert saved["data"]["counts"]["validation"] == {"blue": 2, "green": 2, "red": 2}
    assert len(saved["history"]["epochs"]) == FAST.epochs
    card = (out / "README.md").read_text()
    assert f"Accuracy **{result.accuracy:.3f}**" in card and "| red |" in card
    assert "task: image-classification" in card


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
    assert second.report["history"]["epochs"][-1]["train_loss"] == pytest.approx(
        first.report["history"]["epochs"][-1]["train_loss"]
    )


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
