"""Convert a SavedModel to a TF.js graph model: ``python _tfjs_converter.py SAVED_MODEL OUT_DIR``.

Runs in the TensorFlow venv (``MODHUB_TF_PYTHON``), never in modhub's own: it imports the
``tensorflowjs`` converter (installed there ``--no-deps``, see requirements/tensorflow-nodeps.txt)
and nothing of modhub. That converter imports ``tensorflow_decision_forests`` at import time,
which has no release for TF 2.21 and is not used for a plain SavedModel: an empty module of
that name is put on this process's path only (a temporary folder), never installed.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# TF.js fetches shards one by one; 4 MB is the converter's own default.
SHARD_BYTES = 4 * 1024 * 1024


def main(saved_model: Path, out: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="tfdf-stub-") as stub:
        (Path(stub) / "tensorflow_decision_forests").mkdir()
        (Path(stub) / "tensorflow_decision_forests" / "__init__.py").write_text("", encoding="utf-8")
        sys.path.insert(0, stub)
        from tensorflowjs.converters import tf_saved_model_conversion_v2 as conversion

        conversion.convert_tf_saved_model(
            str(saved_model),
            str(out),
            signature_def="serving_default",
            saved_model_tags="serve",
            weight_shard_size_bytes=SHARD_BYTES,
        )


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
