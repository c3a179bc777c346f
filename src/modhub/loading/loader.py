"""``hub.load``: verify a module, then hand it to the runtime that runs it.

Nothing from the module reaches a runtime before ``verify_module`` has checked
the manifest, the task contract, the sha256 of every file the runtime reads
and, for the torch runtime, the graph's safety. Only the files the chosen
runtime reads are read and hashed; a file hashed before and unchanged since
(same inode, size, mtime and ctime) is not hashed again: cached modules keep
records on disk (``<cache>/records``), local directories for the life of the process.

This module imports no torch: ``hub.load(h, runtime="onnx")`` runs without it.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from pathlib import Path

from modhub.errors import IntegrityError
from modhub.format.verify import FileRecords, VerifiedModule, verify_module
from modhub.runtimes import LoadedModule, choose_runtime
from modhub.settings import Settings

__all__ = ["LoadedModule", "load"]

Handle = str | os.PathLike[str]


def module_dir(handle: Handle, settings: Settings | None) -> Path:
    """The local directory of a handle: the path itself, or the cached copy (downloaded if needed)."""
    from modhub.handles import is_local

    if is_local(handle):
        return Path(handle).expanduser()
    from modhub.client.resolve import resolve

    return resolve(handle, settings=settings)


def records_for(directory: Path, settings: Settings | None) -> FileRecords:
    """The cache's records on disk for a directory inside the cache, this process's otherwise."""
    from modhub.client.cache import ModuleCache
    from modhub.client.records import process_records

    cache = ModuleCache((settings or Settings.from_env()).cache)
    try:
        Path(directory).resolve().relative_to(cache.modules.resolve())
    except ValueError:
        return process_records()
    return cache.records


def trusted_keys(settings: Settings | None) -> list[Path] | None:
    """The public keys a module must be signed by (``MODHUB_TRUSTED_KEYS``), or None."""
    settings = settings if settings is not None else Settings.from_env()
    if settings.trusted_keys is None:
        return None
    from modhub.format.signature import load_trusted_keys

    return load_trusted_keys(settings.trusted_keys)


def verified_module(
    directory: Path, needed: Collection[str] | None, settings: Settings | None = None
) -> VerifiedModule:
    """Verify the module and read the ``needed`` files (None: all), hashing what no record vouches for."""
    return verify_module(
        directory,
        needed=needed,
        records=records_for(directory, settings),
        trusted_keys=trusted_keys(settings),
    )


def load(handle: Handle, *, runtime: str | None = None, settings: Settings | None = None) -> LoadedModule:
    """Load a module by handle (``publisher/name/version``), URL, or local directory.

    ``runtime``: ``"onnx"`` runs ``model.onnx`` with onnxruntime (no torch
    imported; calls return numpy arrays), ``"torch"`` runs ``graph.pt2``
    (calls return torch tensors). ``None``: onnx when the module has a
    ``model.onnx``, torch otherwise; calls then return torch tensors for torch
    inputs and numpy arrays for anything else (numpy images, lists of strings).

    The module runs without the code that defined it; the files the runtime
    reads are verified against the manifest (and the torch graph is checked for
    safety) before the runtime sees them.
    """
    from modhub.format.manifest import read_manifest

    settings = settings if settings is not None else Settings.from_env()  # read once for this load
    directory = module_dir(handle, settings)
    manifest = read_manifest(directory)
    chosen, output = choose_runtime(manifest, runtime)
    records = records_for(directory, settings)
    verified = verify_module(
        directory, needed=chosen.needed_files(manifest), records=records, trusted_keys=trusted_keys(settings)
    )
    if verified.manifest != manifest:
        raise IntegrityError(
            f"{directory / 'modhub.json'} changed while the module was loading; load it again",
            path=directory,
        )
    return chosen.build(verified, output, records, settings.cache)
