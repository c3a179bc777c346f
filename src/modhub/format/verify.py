"""Check a module directory before anything in it is used: manifest, files, contract, graph safety."""

from __future__ import annotations

import os
from pathlib import Path

from modhub.errors import ManifestError
from modhub.format.manifest import (
    GRAPH_NAME,
    SAVED_MODEL_DIR,
    SAVED_MODEL_PB,
    Manifest,
    read_manifest,
    verify_files,
)
from modhub.format.tasks import check_contract


def verify_module(module_dir: str | os.PathLike[str], *, saved_model: bool = False) -> Manifest:
    """Return the manifest of a module that passed every check, or raise.

    Order matters: the sha256 of every file is checked first, so the graph the
    safety validator reads is the very file the manifest names; only then may
    torch open it. ``saved_model=True`` (the hub on publish) also checks every op
    of ``saved_model/`` (needs the tensorboard package, not TensorFlow); a
    "tensorflow" module, which has no graph.pt2, is always checked that way.
    """
    root = Path(module_dir)
    manifest = read_manifest(root)
    names = {entry.path for entry in manifest.files}
    if manifest.framework == "tensorflow":
        from modhub.format.savedmodel import check_tf_contract

        if SAVED_MODEL_PB not in names:
            raise ManifestError(
                f"modhub.json lists no {SAVED_MODEL_PB}; a tensorflow module needs it", path=root
            )
        verify_files(root, manifest)
        check_tf_contract(manifest)
        _verify_saved_model(root, names)
        return manifest
    from modhub.format.safety import validate_graph_archive

    if GRAPH_NAME not in names:
        raise ManifestError(f"modhub.json lists no {GRAPH_NAME}; a module needs its graph", path=root)
    verify_files(root, manifest)
    check_contract(manifest, root)
    validate_graph_archive(root / GRAPH_NAME)
    if saved_model and SAVED_MODEL_PB in names:
        _verify_saved_model(root, names)
    return manifest


def _verify_saved_model(root: Path, names: set[str]) -> None:
    from modhub.format.savedmodel import verify_saved_model_dir

    prefix = SAVED_MODEL_DIR + "/"
    verify_saved_model_dir(root / SAVED_MODEL_DIR, [n[len(prefix) :] for n in names if n.startswith(prefix)])
