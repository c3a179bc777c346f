"""The zoo's TF.js format without what it needs: skipped with a warning, nothing written.

(With Node.js and node_modules, tests/zoo/test_tf_formats.py checks every starter's TF.js
format; tests/exporting/test_tfjs.py converts and runs one in Node.js.)"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from modhub.zoo._tfjs_format import node_tfjs, tfjs_format


def test_without_tfjs_in_node_modules_the_format_is_skipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "out"
    (out / "saved_model").mkdir(parents=True)
    empty = tmp_path / "node_modules"
    empty.mkdir()
    assert node_tfjs(empty) is None
    with caplog.at_level(logging.WARNING, logger="modhub.zoo._tfjs_format"):
        result = tfjs_format(out, {"images": np.zeros((1, 2), np.float32)}, {}, "python", node_modules=empty)
    assert result is None
    assert not (out / "tfjs").exists()
    assert "no TF.js format" in caplog.text and "make web" in caplog.text
