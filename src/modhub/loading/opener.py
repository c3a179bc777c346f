"""Open a module: a handle becomes a verified module, read once, for whatever builds on it.

Every load goes through :func:`open_module` (``hub.load``, ``hub.Layer``,
``hub.KerasLayer``, ``modhub.predict``, ``modhub.retrain``)::

    handle ──is_local──▶ the directory itself
           └─────────▶ Resolver(settings, cache).resolve_hub  (cached copy, or download)
    directory ──▶ verify_module(needed=…, records=…, trusted_keys=…)
                    reads and parses modhub.json once; for a cached copy, checks every
                    listed file is there with its size (else it is downloaded again);
                    asks ``needed(manifest)`` which files the chosen runtime reads,
                    checks the signature once (with MODHUB_TRUSTED_KEYS), then reads
                    and verifies those files
    ──▶ OpenedModule(verified, settings, cache, records)

The caller reads :class:`~modhub.settings.Settings` once at its public entry
point and passes it here; the one :class:`~modhub.client.cache.ModuleCache`
made here is handed on to the runtime, nothing below builds another.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from modhub.client.cache import ModuleCache, check_sizes
from modhub.errors import IntegrityError, ManifestError
from modhub.format.manifest import Manifest
from modhub.format.onnx_bounds import OnnxLimits
from modhub.format.verify import FileRecords, Needed, VerifiedModule, verify_module
from modhub.handles import is_local
from modhub.settings import Settings

__all__ = ["Handle", "OpenedModule", "open_module"]

Handle = str | os.PathLike[str]


@dataclass(frozen=True)
class OpenedModule:
    """A module that passed :func:`~modhub.format.verify.verify_module`, with what opened it.

    Build at most one torch graph from it: the graph's weights are views of the
    ``graph.pt2`` buffer that was read (two graphs would share their weights).
    """

    verified: VerifiedModule
    # The settings of the load (read once by the public entry point).
    settings: Settings
    # The load's client cache: where a runtime keeps what it derives for this machine.
    cache: ModuleCache
    # What vouches for files hashed before (the cache's records, or this process's).
    records: FileRecords
    # Whether the handle was a local directory (not resolved through a hub).
    local: bool

    @property
    def manifest(self) -> Manifest:
        return self.verified.manifest

    @property
    def path(self) -> Path:
        return self.verified.root


def open_module(handle: Handle, *, settings: Settings, needed: Needed) -> OpenedModule:
    """Resolve ``handle`` to a directory and verify it, reading ``modhub.json`` once.

    ``needed``: the files to read (see ``verify_module``), usually a function
    of the manifest (the runtime chooser), so that the manifest is read once.
    """
    cache = ModuleCache(settings.cache)
    keys = _trusted_keys(settings)
    limits = OnnxLimits(materialise_bytes=settings.onnx_max_materialise_bytes)
    if is_local(handle):
        directory = Path(handle).expanduser()
        records = _records(directory, cache)
        verified = verify_module(
            directory, needed=needed, records=records, trusted_keys=keys, onnx_limits=limits
        )
        return OpenedModule(verified=verified, settings=settings, cache=cache, records=records, local=True)

    from modhub.client.resolve import Resolver

    resolver = Resolver(settings, cache=cache)
    text = str(handle)
    # A cached copy is taken as found: its manifest is read once, by verify_module, which
    # checks that every listed file is there with its size (_Complete) before anything
    # else. The signature is checked there too, once (hub.resolve checks it on its own).
    directory = resolver.resolve_hub(text, check_cached=False)
    complete = _Complete(directory, needed)
    records = _records(directory, cache)
    try:
        verified = verify_module(
            directory, needed=complete, records=records, trusted_keys=keys, onnx_limits=limits
        )
    except (_Incomplete, ManifestError) as exc:
        if isinstance(exc, ManifestError) and complete.called:
            raise  # the manifest was read: a chooser's or a check's error, not a damaged copy
        # A damaged copy: resolved again as hub.resolve would (downloaded again; offline,
        # OfflineError says what is wrong), then verified.
        directory = resolver.resolve_hub(text)
        records = _records(directory, cache)
        verified = verify_module(
            directory, needed=needed, records=records, trusted_keys=keys, onnx_limits=limits
        )
    return OpenedModule(verified=verified, settings=settings, cache=cache, records=records, local=False)


class _Incomplete(Exception):
    """A cached version directory lacks a listed file, or holds one of another size."""


class _Complete:
    """``needed`` of a cached copy: first the cheap completeness check of the resolver, on the
    manifest that ``verify_module`` read (a stat per file), then the caller's ``needed``."""

    def __init__(self, directory: Path, needed: Needed) -> None:
        self.directory = directory
        self.needed = needed
        self.called = False

    def __call__(self, manifest: Manifest) -> Collection[str]:
        self.called = True
        try:
            check_sizes(self.directory, manifest)
        except IntegrityError as exc:
            raise _Incomplete(str(exc)) from exc
        if self.needed is None:
            return [entry.path for entry in manifest.files]
        return self.needed(manifest) if callable(self.needed) else self.needed


def _records(directory: Path, cache: ModuleCache) -> FileRecords:
    """The cache's records on disk for a directory inside the cache, this process's otherwise."""
    from modhub.client.records import process_records

    try:
        directory.resolve().relative_to(cache.modules.resolve())
    except ValueError:
        return process_records()
    return cache.records


def _trusted_keys(settings: Settings) -> list[Path] | None:
    """The public keys a module must be signed by (``MODHUB_TRUSTED_KEYS``), or None."""
    if settings.trusted_keys is None:
        return None
    from modhub.format.signature import load_trusted_keys

    return load_trusted_keys(settings.trusted_keys)
