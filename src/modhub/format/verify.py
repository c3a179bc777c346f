"""Check a module directory before anything in it is used: manifest, files, contract, graph safety."""

from __future__ import annotations

import os
from pathlib import Path

from modhub.errors import ManifestError
from modhub.format.manifest import GRAPH_NAME, Manifest, read_manifest, verify_files
from modhub.format.tasks import check_contract


def verify_module(module_dir: str | os.PathLike[str]) -> Manifest:
    """Return the manifest of a module that passed every check, or raise.

    Order matters: the sha256 of every file is checked first, so the graph the
    safety validator reads is the very file the manifest names; only then may
    torch open it.
    """
    from modhub.format.safety import validate_graph_archive

    root = Path(module_dir)
    manifest = read_manifest(root)
    names = {entry.path for entry in manifest.files}
    if GRAPH_NAME not in names:
        raise ManifestError(f"modhub.json lists no {GRAPH_NAME}; a module needs its graph", path=root)
    verify_files(root, manifest)
    check_contract(manifest, root)
    validate_graph_archive(root / GRAPH_NAME)
    return manifest
