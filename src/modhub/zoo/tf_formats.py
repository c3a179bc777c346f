"""SavedModel and TFLite for the starter modules, converted from the same torch weights.

TensorFlow never enters the main environment: the conversion runs in a
separate venv whose python is ``MODHUB_TF_PYTHON`` (``make`` builds
``.venv-tf``), as the script ``_tf_convert.py``. This side writes the request
(architecture + weights as numpy arrays + fixed check inputs), runs the script,
compares what the SavedModel and the TFLite model compute with the torch
module's own output, and only then adds ``saved_model/`` and ``model.tflite``
to the module and lists them in its manifest.

Tool choice: the networks are rebuilt as ``tf.Module`` code over the same
weights (not translated from ONNX by onnx2tf, nor by litert-torch): only a
rebuild gives a SavedModel with real variables, BatchNorm that follows
``training=``, and TF Hub's Reusable SavedModel attributes, which
``hub.KerasLayer(url, trainable=True)`` needs to fine-tune; the TFLite model is
then TF's own converter applied to that SavedModel.

Tolerances (max abs difference against the torch module on the check inputs):
``SAVED_MODEL_ATOL`` 1e-4; ``TFLITE_ATOL`` 1e-3 (TFLite's float kernels use
other summation orders; measured about 1e-5 to 1e-4 on the CNNs' logits).

The image modules' SavedModel is also converted to TF.js (``tfjs/``) and run in Node.js
(``modhub.zoo._tfjs_format``, ``TFJS_ATOL`` 1e-4). GloVe's is not: it tokenises with TF string
ops (regex_replace, split, a hash table over strings) that TF.js has no kernels for.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from modhub.errors import ZooError
from modhub.exporting.tfjs import tf_subprocess_env
from modhub.format.manifest import (
    SAVED_MODEL_DIR,
    TFJS_DIR,
    TFLITE_NAME,
    Manifest,
    detect_formats,
    list_files,
    read_manifest,
    write_manifest,
)

__all__ = ["SAVED_MODEL_ATOL", "TFLITE_ATOL", "TF_PYTHON_ENV", "add_glove_formats", "add_image_formats"]

TF_PYTHON_ENV = "MODHUB_TF_PYTHON"
SAVED_MODEL_ATOL = 1e-4
TFLITE_ATOL = 1e-3
_SCRIPT = Path(__file__).with_name("_tf_convert.py")
# Conversion of one module takes ~10-40 s; a hung interpreter must not hang the build.
_TIMEOUT = 900
# Texts the GloVe SavedModel must embed exactly as the torch module does.
GLOVE_CHECK_TEXTS = (
    "The cat sat on the mat.",
    "I don't think it's the U.S. economy's fault -- really...",
    "Stock-market prices fell 3.5% on Monday, analysts said.",
    "qwxzzy blorptastic",  # no known word: the zero vector
    "",
    "Café naïve résumé, and ÜBER-LOUD words!",
    " ".join(["word"] * 1100),  # longer than max_length: truncated the same way
)


def tf_version(tf_python: str | os.PathLike[str]) -> str:
    """The tensorflow version installed beside ``tf_python`` (read from metadata, TF not imported)."""
    code = "import importlib.metadata as m; print(m.version('tensorflow'))"
    try:
        done = subprocess.run(
            [str(tf_python), "-c", code], capture_output=True, text=True, timeout=60, check=False
        )
    except OSError as exc:
        raise ZooError(
            f"{TF_PYTHON_ENV}={tf_python} cannot be run ({exc}); build the TF venv (make)"
        ) from exc
    if done.returncode != 0:
        raise ZooError(
            f"{TF_PYTHON_ENV}={tf_python} has no tensorflow: pip install 'tensorflow==2.21.0' there "
            f"(make builds .venv-tf). {done.stderr.strip()[-300:]}"
        )
    return done.stdout.strip()


def run_tf_script(
    tf_python: str | os.PathLike[str],
    script: Path,
    work: Path,
    *,
    timeout: float,
    what: str,
    hints: Mapping[str, str] | None = None,
) -> None:
    """Run ``script work`` with the TensorFlow venv's python (its requests and results are files
    in ``work``); a ZooError says ``what`` failed, with the last lines of its stderr and the hint
    of ``hints`` whose key that stderr contains."""
    env = tf_subprocess_env()
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    try:
        done = subprocess.run(
            [str(tf_python), "-P", str(script), str(work)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ZooError(f"{what} did not run: {exc}") from exc
    if done.returncode != 0:
        hint = "".join(text for key, text in (hints or {}).items() if key in done.stderr)
        raise ZooError(f"{what} failed{hint}; its last lines:\n" + "\n".join(done.stderr.splitlines()[-15:]))


def _run(
    tf_python: str | os.PathLike[str],
    request: dict[str, Any],
    weights: Mapping[str, np.ndarray],
    inputs: Mapping[str, np.ndarray],
    work: Path,
) -> dict[str, np.ndarray]:
    (work / "request.json").write_text(json.dumps(request), encoding="utf-8")
    # numpy's stubs match **arrays against savez's allow_pickle: bool, hence the ignores.
    np.savez(work / "weights.npz", **weights)  # type: ignore[arg-type]
    np.savez(work / "inputs.npz", **inputs)  # type: ignore[arg-type]
    run_tf_script(tf_python, _SCRIPT, work, timeout=_TIMEOUT, what="the TensorFlow conversion")
    with np.load(work / "outputs.npz") as outputs:
        return {key: outputs[key] for key in outputs.files}


def _check(what: str, got: np.ndarray, expected: np.ndarray, atol: float) -> float:
    if got.shape != expected.shape:
        raise ZooError(f"{what} gives shape {got.shape}, the torch module {expected.shape}")
    diff = float(np.abs(got - expected).max()) if got.size else 0.0
    if not diff <= atol:
        raise ZooError(f"{what} differs from the torch module: max abs diff {diff:.3g} > {atol}")
    return diff


def _install(module_dir: Path, out: Path, checks: dict[str, float]) -> Manifest:
    """Move the converted files into the module and list them (and the measured diffs) in the manifest."""
    manifest = read_manifest(module_dir)
    for name in (SAVED_MODEL_DIR, TFLITE_NAME, TFJS_DIR):
        source = out / name
        target = module_dir / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        if source.exists():
            shutil.move(str(source), str(target))
    files = list_files(module_dir)
    meta = manifest.metadata.model_dump()
    meta["extra"] = {**meta["extra"], "conversion_max_abs_diff": checks}
    updated = Manifest.model_validate(
        {
            **manifest.model_dump(),
            "files": files,
            "formats": detect_formats(entry.path for entry in files),
            "metadata": meta,
        }
    )
    write_manifest(module_dir, updated)
    return updated


def _conv_spec(name: str, conv_bn: Any) -> dict[str, Any]:
    conv = conv_bn.conv
    return {
        "name": name,
        "kernel": conv_bn.kernel,
        "stride": conv_bn.stride,
        # TF "SAME" where the torch module pads in forward; otherwise symmetric k // 2.
        "tf_same": bool(conv_bn.pad_in_forward),
        "pad": int(conv.padding[0]),
        "depthwise": conv.groups > 1,
        "act": type(conv_bn.act).__name__ == "ReLU6",
        "eps": float(conv_bn.bn.eps),
    }


def image_request(
    model: Any, image_size: int, output_name: str
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The architecture and weights of a ``modhub.zoo._vision.ImageModel`` as plain data."""
    body = model.body
    blocks = []
    for i, block in enumerate(body.blocks):
        blocks.append(
            {
                "expand": _conv_spec(f"blocks.{i}.expand", block.expand)
                if block.expand is not None
                else None,
                "depthwise": _conv_spec(f"blocks.{i}.depthwise", block.depthwise),
                "project": _conv_spec(f"blocks.{i}.project", block.project),
                "residual": bool(block.residual),
            }
        )
    request = {
        "kind": "image",
        "image_size": image_size,
        "output_name": output_name,
        "mean": model.mean.flatten().tolist(),
        "std": model.std.flatten().tolist(),
        "stem": _conv_spec("stem", body.stem),
        "blocks": blocks,
        "head": _conv_spec("head", body.head),
        "classifier": model.classifier is not None,
    }
    weights = {
        k: v.detach().numpy() for k, v in body.state_dict().items() if not k.endswith("num_batches_tracked")
    }
    if model.classifier is not None:
        weights["classifier.weight"] = model.classifier.weight.detach().numpy()
        weights["classifier.bias"] = model.classifier.bias.detach().numpy()
    return request, weights


def add_image_formats(
    module_dir: Path, model: Any, image_size: int, output_name: str, tf_python: str | os.PathLike[str]
) -> dict[str, float]:
    """Add ``saved_model/`` and ``model.tflite`` to an image module; return the measured max diffs."""
    import torch

    request, weights = image_request(model, image_size, output_name)
    generator = torch.Generator().manual_seed(1)
    images = torch.rand(4, 3, image_size, image_size, generator=generator)
    with torch.no_grad():
        expected = model(images).numpy()
    nhwc = images.permute(0, 2, 3, 1).contiguous().numpy()
    with tempfile.TemporaryDirectory(dir=module_dir, prefix=".tf-") as tmp:
        work = Path(tmp)
        got = _run(tf_python, request, weights, {"images": nhwc}, work)
        checks = {
            "saved_model": _check("the SavedModel", got["saved_model"], expected, SAVED_MODEL_ATOL),
            "tflite": _check("model.tflite", got["tflite"], expected, TFLITE_ATOL),
        }
        # The SavedModel as TF.js too, run in Node.js (skipped, with a warning, without it).
        from modhub.zoo._tfjs_format import tfjs_format

        tfjs = tfjs_format(work / "out", {"images": nhwc}, {output_name: expected}, str(tf_python))
        if tfjs is not None:
            checks["tfjs"] = tfjs
        _install(module_dir, work / "out", checks)
    return checks


def add_glove_formats(module_dir: Path, tf_python: str | os.PathLike[str]) -> dict[str, float]:
    """Add ``saved_model/`` (tokenisation inside, core TF string ops) to the GloVe module."""
    from modhub.loading import load
    from modhub.zoo._text import FIRST_WORD_ID, GLOVE_TOKEN_PATTERN, glove_files, glove_table, glove_words
    from modhub.zoo.text import GLOVE_MAX_LENGTH

    module = load(module_dir, runtime="torch")  # checked against the torch graph
    expected = module(list(GLOVE_CHECK_TEXTS)).detach().numpy()
    index_file, vectors_file = glove_files()
    words = glove_words(index_file)
    if any("\n" in w for w in words):
        raise ZooError("a GloVe word contains a newline; the vocabulary file cannot hold it")
    table = glove_table(vectors_file, len(words))
    with tempfile.TemporaryDirectory(dir=module_dir, prefix=".tf-") as tmp:
        work = Path(tmp)
        words_file = work / "words.txt"
        words_file.write_text("\n".join(words), encoding="utf-8")
        request = {
            "kind": "text",
            "output_name": "embeddings",
            "words_file": str(words_file),
            "first_word_id": FIRST_WORD_ID,
            "unk_id": 1,
            "max_length": GLOVE_MAX_LENGTH,
            "pattern": GLOVE_TOKEN_PATTERN,
        }
        texts = np.array([t.encode("utf-8") for t in GLOVE_CHECK_TEXTS])
        got = _run(tf_python, request, {"embeddings": table.detach().numpy()}, {"texts": texts}, work)
        checks = {
            "saved_model": _check("the SavedModel", got["saved_model"], expected, SAVED_MODEL_ATOL),
            # The same texts as a [batch, 1] column (tf.keras.layers.Input(shape=(1,), dtype=tf.string)).
            "saved_model_column": _check(
                "the SavedModel on [batch, 1] strings", got["saved_model_column"], expected, SAVED_MODEL_ATOL
            ),
        }
        _install(module_dir, work / "out", checks)
    return checks
