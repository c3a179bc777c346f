"""A module's SavedModel as a TF.js graph model (``tfjs/model.json`` + weight shards).

``tensorflowjs`` converts it, in the TensorFlow venv (``MODHUB_TF_PYTHON``) like every
TensorFlow step, as the script ``_tfjs_converter.py``; modhub's own environment never imports
TensorFlow. ``modhub publish SAVEDMODEL --tfjs`` and the zoo (which then checks the result in
Node.js, ``modhub.zoo._tfjs_format``) both convert through :func:`convert_saved_model`.
TF.js loads it with ``tf.loadGraphModel(url, {fromTFHub: true})`` from the hub (docs/web.md).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

from modhub.errors import ExportError
from modhub.format.manifest import TFJS_DIR

__all__ = ["TFJS_DIR", "convert_saved_model", "tf_subprocess_env"]

_SCRIPT = Path(__file__).with_name("_tfjs_converter.py")
# MobileNetV2 converts in ~10 s (most of it the TensorFlow import); never hang forever.
_TIMEOUT = 900
# What of this process's environment must not reach the TensorFlow venv's python: our own
# sources and site-packages (PYTHONPATH, PYTHONHOME), and KERAS_BACKEND, which
# modhub.KerasLayer sets to "torch" (Keras in the TF venv must run on TensorFlow).
_NOT_FOR_TF = frozenset({"PYTHONPATH", "PYTHONHOME", "KERAS_BACKEND"})
_HINT = (
    "; install the converter there: pip install --no-deps -r requirements/tensorflow-nodeps.txt "
    "(make venv-tf does it)"
)


def tf_subprocess_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this process's environment) fit for a process of the TensorFlow venv."""
    return {k: v for k, v in (os.environ if base is None else base).items() if k not in _NOT_FOR_TF}


def convert_saved_model(
    saved_model_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    tf_python: str | os.PathLike[str] | None,
) -> list[str]:
    """Write the TF.js graph model of ``saved_model_dir`` (its ``serving_default`` signature) to
    ``out_dir`` (which must not exist); return the names of the files written (model.json first)."""
    if tf_python is None:
        raise ExportError(
            "converting to TF.js needs the TensorFlow venv: set MODHUB_TF_PYTHON to its python "
            "(make venv-tf builds .venv-tf)"
        )
    target = Path(out_dir)
    if target.exists():
        raise ExportError(f"{target} exists already; the TF.js model goes into a new folder")
    env = tf_subprocess_env()
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".tfjs-") as tmp:
        written = Path(tmp) / "out"
        try:
            done = subprocess.run(
                [str(tf_python), "-P", str(_SCRIPT), str(Path(saved_model_dir).resolve()), str(written)],
                capture_output=True,
                text=True,
                timeout=_TIMEOUT,
                env=env,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ExportError(f"the TF.js converter did not run ({tf_python}): {exc}") from exc
        if done.returncode != 0:
            hint = _HINT if "No module named 'tensorflowjs'" in done.stderr else ""
            last = "\n".join(done.stderr.splitlines()[-12:])
            raise ExportError(f"the TF.js conversion failed{hint}; its last lines:\n{last}")
        names = sorted(p.name for p in written.iterdir())
        if "model.json" not in names or any(not (written / n).is_file() for n in names):
            raise ExportError(f"the TF.js converter wrote {names}, not model.json and its weight shards")
        # The converter writes a node's attributes in hash order; sorted, equal models give equal bytes.
        model_json = written / "model.json"
        model = json.loads(model_json.read_text(encoding="utf-8"))
        model_json.write_text(json.dumps(model, sort_keys=True, separators=(",", ":")), encoding="utf-8")
        shutil.move(str(written), str(target))
    return ["model.json", *(n for n in names if n != "model.json")]
