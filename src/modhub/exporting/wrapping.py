"""A model file that is not a module yet (a plain ``.onnx`` file, a SavedModel directory), wrapped.

``plain_model(path)`` says what ``modhub publish PATH`` was given; ``wrap``
makes the module (:mod:`modhub.exporting.onnx_wrap`,
:mod:`modhub.exporting.savedmodel`). A module directory (with ``modhub.json``)
is never wrapped.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from modhub.errors import ExportError
from modhub.format.manifest import MANIFEST_NAME

__all__ = ["parse_meaning", "plain_model", "wrap"]

PlainModel = Literal["onnx", "savedmodel"]


def plain_model(path: Path) -> tuple[PlainModel, Path] | None:
    """("onnx", the .onnx file) for an ONNX file or a directory holding exactly one (and no
    modhub.json); ("savedmodel", the directory) for a SavedModel directory; None otherwise."""
    from modhub.exporting.onnx_wrap import is_onnx_file
    from modhub.exporting.savedmodel import is_saved_model_dir

    if is_onnx_file(path):
        return "onnx", path
    if not path.is_dir() or (path / MANIFEST_NAME).exists():
        return None
    if is_saved_model_dir(path):
        return "savedmodel", path
    found = [p for p in path.iterdir() if is_onnx_file(p)]
    return ("onnx", found[0]) if len(found) == 1 else None


def wrap(
    kind: PlainModel,
    source: Path,
    out_dir: Path,
    *,
    task: str,
    license: str,
    title: str = "",
    meaning: Mapping[str, Mapping[str, Any]] | None = None,
    tfjs_python: str | os.PathLike[str] | None = None,
) -> Path:
    """The module made from ``source`` (see :func:`plain_model`) at ``out_dir``, checked.
    ``tfjs_python`` (a SavedModel only): add its TF.js format, converted with that python."""
    if kind == "onnx":
        from modhub.exporting.onnx_wrap import wrap_onnx

        return wrap_onnx(source, out_dir, task=task, license=license, title=title, name_meaning=meaning)
    from modhub.exporting.savedmodel import wrap_saved_model

    return wrap_saved_model(
        source,
        out_dir,
        task=task,
        license=license,
        title=title,
        name_meaning=meaning,
        tfjs_python=tfjs_python,
    )


def parse_meaning(text: str | os.PathLike[str] | None) -> dict[str, dict[str, Any]] | None:
    """``--meaning``: JSON (or a JSON file) mapping tensor names to their meaning, e.g.
    ``{"image": {"kind": "image", "layout": "NHWC", "value_range": [0, 255]}}``."""
    if text is None:
        return None
    raw = str(text)
    if not raw.lstrip().startswith("{"):
        try:
            raw = Path(raw).read_text(encoding="utf-8")
        except OSError as exc:
            raise ExportError(f"--meaning is neither JSON nor a readable JSON file: {exc}") from None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ExportError(f"--meaning is not valid JSON: {exc}") from None
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        raise ExportError('--meaning must map tensor names to objects, e.g. {"image": {"kind": "image"}}')
    return value
