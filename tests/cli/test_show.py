"""``modhub show``: the saved_model_cli of modhub."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from modhub.cli import app


def test_show_prints_task_signatures_preprocessing_files_licence(image_module: Path) -> None:
    result = CliRunner().invoke(app, ["show", str(image_module)])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "task: image-classification" in out
    assert "images: float32 [batch, 3, 32, 32]  (NCHW, values in [0, 1])" in out
    assert "logits: float32 [batch, 5]" in out
    assert "image: 32x32 RGB in [0, 1]" in out
    assert "license: Apache-2.0" in out
    assert "labels: assets/labels.txt" in out
    for name in ("graph.pt2", "model.onnx", "README.md", "assets/labels.txt"):
        assert name in out
    assert "sha256:" in out


def test_show_text_module_lists_tokenizer_and_graph_inputs(text_module: Path) -> None:
    out = CliRunner().invoke(app, ["show", str(text_module)]).output
    assert "texts: string [batch]" in out
    assert "tokenizer: assets/tokenizer.json, max_length 32" in out
    assert "graph inputs (after preprocessing):" in out
    assert "input_ids: int64 [batch, sequence]" in out


def test_show_json_is_the_manifest(image_module: Path) -> None:
    result = CliRunner().invoke(app, ["show", "--json", str(image_module)])
    data = json.loads(result.output)
    manifest = json.loads((image_module / "modhub.json").read_text())
    assert data.pop("path") == str(image_module)
    assert data == manifest


def test_show_missing_module_is_a_clean_error(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "modhub", "show", str(tmp_path)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 1
    assert "is not a modhub module" in proc.stderr
    assert "Traceback" not in proc.stderr
