"""SavedModel and TFLite of the starter modules, converted from the same weights at zoo build."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from modhub.format.manifest import read_manifest
from modhub.zoo import starter_names
from modhub.zoo._tfjs_format import TFJS_ATOL, node_tfjs
from modhub.zoo.tf_formats import SAVED_MODEL_ATOL, TFLITE_ATOL
from tests.harness import in_ci

pytestmark = pytest.mark.skipif(
    not os.environ.get("MODHUB_TF_PYTHON"), reason="SavedModel/TFLite are built only with MODHUB_TF_PYTHON"
)

IMAGE = [n for n in starter_names(include_optional=False) if n.startswith(("efficientnet", "mobilenet"))]


@pytest.mark.parametrize("name", IMAGE)
def test_image_modules_carry_savedmodel_and_tflite_within_tolerance(zoo_dir: Path, name: str) -> None:
    manifest = read_manifest(zoo_dir / name)
    assert manifest.formats[:4] == ("pt2", "onnx", "savedmodel", "tflite")
    paths = {e.path for e in manifest.files}
    assert {"saved_model/saved_model.pb", "saved_model/variables/variables.index", "model.tflite"} <= paths
    diffs = manifest.metadata.extra["conversion_max_abs_diff"]
    assert 0 <= diffs["saved_model"] <= SAVED_MODEL_ATOL
    assert 0 <= diffs["tflite"] <= TFLITE_ATOL


def test_glove_carries_a_string_savedmodel(zoo_dir: Path) -> None:
    manifest = read_manifest(zoo_dir / "glove-6b-50")
    assert manifest.formats == ("pt2", "onnx", "savedmodel")
    assert manifest.metadata.extra["conversion_max_abs_diff"]["saved_model"] <= SAVED_MODEL_ATOL
    # Also on a [batch, 1] column of strings (Keras' Input(shape=(1,), dtype=tf.string)).
    assert manifest.metadata.extra["conversion_max_abs_diff"]["saved_model_column"] <= SAVED_MODEL_ATOL


def test_minilm_has_no_savedmodel(zoo_dir: Path) -> None:
    # Its tokenizer (BERT normalisation with NFD accent stripping, WordPiece) is not in core TF ops.
    assert "savedmodel" not in read_manifest(zoo_dir / "minilm-l6").formats


@pytest.mark.parametrize("name", IMAGE)
def test_image_modules_carry_tfjs_checked_in_node(zoo_dir: Path, name: str) -> None:
    """Every starter with an image SavedModel also carries it as TF.js, run in Node.js at build."""
    if node_tfjs() is None:
        if in_ci():
            pytest.fail("CI=true but no Node.js with node_modules/@tensorflow/tfjs (make web)")
        pytest.skip("the TF.js format is built only with Node.js and node_modules (make web)")
    manifest = read_manifest(zoo_dir / name)
    assert manifest.formats == ("pt2", "onnx", "savedmodel", "tflite", "tfjs")
    model = json.loads((zoo_dir / name / "tfjs" / "model.json").read_text(encoding="utf-8"))
    shards = {f"tfjs/{p}" for group in model["weightsManifest"] for p in group["paths"]}
    assert shards | {"tfjs/model.json"} == {e.path for e in manifest.files if e.path.startswith("tfjs/")}
    assert 0 <= manifest.metadata.extra["conversion_max_abs_diff"]["tfjs"] <= TFJS_ATOL


def test_glove_has_no_tfjs(zoo_dir: Path) -> None:
    # Its SavedModel tokenises with TF string ops that TF.js has no kernels for.
    assert "tfjs" not in read_manifest(zoo_dir / "glove-6b-50").formats
