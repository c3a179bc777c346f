"""Formats agree: a module whose model.onnx computes something else than its graph.pt2 is caught."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from modhub.format.manifest import ONNX_NAME
from modhub.loading.agree import ATOL, RTOL, check_agreement, check_formats_agree
from tests.conftest import export_tiny_text
from tests.format.corpus import rehash
from tests.tiny_models import TinyTextEncoder


def zeroed_onnx(module: Path, dest: Path, factor: float = 0.0) -> Path:
    """A copy of ``module`` whose model.onnx multiplies its first output by ``factor``,
    with model.onnx's size and sha256 in modhub.json made to match (every other check passes)."""
    shutil.copytree(module, dest)
    model = onnx.load(str(dest / ONNX_NAME), load_external_data=False)
    graph = model.graph
    output = graph.output[0].name
    hidden = f"{output}_before_zero"
    for node in graph.node:
        node.output[:] = [hidden if name == output else name for name in node.output]
        node.input[:] = [hidden if name == output else name for name in node.input]
    graph.initializer.append(numpy_helper.from_array(np.array(factor, dtype=np.float32), "zero_factor"))
    graph.node.append(helper.make_node("Mul", [hidden, "zero_factor"], [output], name="zero_mul"))
    (dest / ONNX_NAME).write_bytes(model.SerializeToString())
    rehash(dest)
    return dest


def test_a_model_onnx_that_multiplies_by_zero_is_caught(image_module: Path, tmp_path: Path) -> None:
    hostile = zeroed_onnx(image_module, tmp_path / "zero")
    report = check_agreement(hostile)
    assert not report.agrees
    [line] = report.problems
    assert "signature 'default': output 0: max abs difference" in line
    # Both outputs summarised: shape, mean, first values; the ONNX one is all zeros.
    assert "torch: float32[2, 5] mean" in line and "onnx: float32[2, 5] mean 0 first [0, -0, -0, -0]" in line
    [sig] = report.signatures
    assert sig.max_abs_diff is not None and sig.allowed is not None and sig.max_abs_diff > sig.allowed


def test_a_faithful_module_agrees(image_module: Path) -> None:
    report = check_agreement(image_module)
    assert report.agrees and report.problems == []
    [sig] = report.signatures
    assert sig.formats == ["torch", "onnx"] and sig.max_abs_diff is not None
    assert sig.max_abs_diff <= ATOL + RTOL * 1e3 and set(sig.seconds) == {"torch", "onnx"}


def test_a_small_difference_within_the_tolerance_passes_and_a_larger_one_does_not(
    image_module: Path, tmp_path: Path
) -> None:
    assert check_agreement(zeroed_onnx(image_module, tmp_path / "close", 1 + RTOL / 10)).agrees
    assert not check_agreement(zeroed_onnx(image_module, tmp_path / "far", 1 + RTOL * 10)).agrees


def test_text_modules_are_probed_through_their_tokenizer(
    tiny_text_encoder: TinyTextEncoder, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    module = export_tiny_text(tiny_text_encoder, tmp_path_factory, "tiny-text-agree", onnx=True)
    assert check_agreement(module).agrees
    assert not check_agreement(zeroed_onnx(module, tmp_path / "zero")).agrees


def test_in_a_child_process_and_without_a_second_format(
    image_module: Path, text_module: Path, tmp_path: Path
) -> None:
    report = check_formats_agree(zeroed_onnx(image_module, tmp_path / "zero"))
    assert report.unchecked is None and len(report.problems) == 1 and report.seconds > 0
    single = check_formats_agree(text_module)  # graph.pt2 only: no child, a note
    assert single.agrees and single.seconds == 0.0
    assert "not compared: 1 runnable format(s)" in single.notes()[0]


def test_a_check_over_its_time_limit_is_unchecked_not_passed(image_module: Path) -> None:
    report = check_formats_agree(image_module, seconds=0.01)
    assert not report.agrees and report.unchecked is not None and "longer than" in report.unchecked


def test_cache_verify_deep_names_the_version_whose_formats_disagree(
    image_module: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A cache holding one hostile version, laid out as resolve leaves it.
    cache = tmp_path / "cache"
    version_dir = cache / "modules" / "127.0.0.1_8000" / "acme" / "tiny" / "1"
    zeroed_onnx(image_module, version_dir)
    env = {"MODHUB_CACHE": str(cache), "PATH": "/usr/bin:/bin"}
    deep = subprocess.run(
        [sys.executable, "-m", "modhub", "cache", "verify", "--deep"], capture_output=True, text=True, env=env
    )
    assert deep.returncode == 1, deep.stdout + deep.stderr
    assert "formats disagree: signature 'default': output 0: max abs difference" in deep.stderr
    assert str(version_dir) in deep.stderr
    assert deep.stderr.count("damaged:") == 1  # every digest matches: only the formats disagree
