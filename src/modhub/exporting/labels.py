"""Label files of a module being made: one class name per line, named by the manifest or an output."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from modhub.errors import ExportError
from modhub.format.manifest import TensorSpec

__all__ = ["attach_labels", "write_label_file"]


def write_label_file(labels: Any, staging: Path, rel: str) -> str:
    """One label per line at ``rel`` in the module, from a list of names or a text file; returns ``rel``."""
    if isinstance(labels, (str, os.PathLike)):
        lines = Path(labels).read_text(encoding="utf-8").splitlines()
    elif isinstance(labels, Sequence) and all(isinstance(label, str) for label in labels):
        lines = list(labels)
    else:
        raise ExportError(f"labels must be a list of names or a text file, got {type(labels).__name__}")
    if any("\n" in line for line in lines):
        raise ExportError("labels must not contain newlines")
    dest = staging / rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return rel


def attach_labels(outputs: tuple[TensorSpec, ...], path: str) -> tuple[TensorSpec, ...]:
    """The module's ``labels=`` on a general signature: the class outputs (kind "classes"), else a
    lone output, name the labels file, unless their meaning names one already."""
    targets = [s.name for s in outputs if s.kind == "classes"]
    if not targets and len(outputs) == 1:
        targets = [outputs[0].name]
    return tuple(
        s.model_copy(update={"labels": path}) if s.name in targets and s.labels is None else s
        for s in outputs
    )
