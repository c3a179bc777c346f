"""Open a module: a handle becomes a verified module, read once, for whatever builds on it.

Every load goes through :func:`open_module` (``hub.load``, ``hub.Layer``,
``hub.KerasLayer``, ``modhub.predict``, ``modhub.retrain``)::

    handle ──is_local──▶ the directory itself
           └─────────▶ Resolver(settings, cache).resolve_hub  (cached copy, or download of
                       the files the load reads: ``files_used(manifest, needed(manifest))``)
    directory ──▶ verify_module(needed=…, records=…, trusted_keys=…)
                    reads and parses modhub.json once; for a cached copy, checks every
                    listed file is there with its size (a partial copy: every file this
                    load reads; else the missing ones are downloaded, under the version lock);
                    asks ``needed(manifest)`` which files the chosen runtime reads,
                    checks the signature once (with MODHUB_TRUSTED_KEYS), then reads
                    and verifies those files
    ──▶ OpenedModule(verified, settings, cache, records, precision)

``precision`` ("int8"; None: the exact graphs) is decided here, once: the module
must have that variant (``Manifest.variant`` says what to do otherwise), and
whatever builds on the opened module runs the variant's graphs.

The caller reads :class:`~modhub.settings.Settings` once at its public entry
point and passes it here; the one :class:`~modhub.client.cache.ModuleCache`
made here is handed on to the runtime, nothing below builds another.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from modhub.client.cache import ModuleCache, check_sizes, is_partial
from modhub.errors import IntegrityError, ManifestError
from modhub.format.manifest import Manifest
from modhub.format.onnx_bounds import OnnxLimits
from modhub.format.verify import FileRecords, Needed, VerifiedModule, files_used, verify_module
from modhub.handles import is_local, parse_handle
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
    # The reduced-precision variant the load runs ("int8"), or None for the exact graphs.
    precision: str | None = None
    # What opens this module again (another signature's files on first use): the local
    # directory, or the concrete hub handle (a partial cached copy fetches what it lacks).
    source: str | None = None

    @property
    def manifest(self) -> Manifest:
        return self.verified.manifest

    @property
    def path(self) -> Path:
        return self.verified.root


def open_module(
    handle: Handle, *, settings: Settings, needed: Needed, precision: str | None = None
) -> OpenedModule:
    """Resolve ``handle`` to a directory and verify it, reading ``modhub.json`` once.

    ``needed``: the files to read (see ``verify_module``), usually a function
    of the manifest (the runtime chooser), so that the manifest is read once.
    From a hub, only the files the load reads are downloaded (``files_used``).
    ``precision``: the variant the load runs ("int8"); the module must have it
    (ManifestError from ``Manifest.variant`` otherwise, before any graph is fetched).
    """
    if precision is not None:
        needed = _WithVariant(needed, precision)
    cache = ModuleCache(settings.cache)
    keys = _trusted_keys(settings)
    limits = OnnxLimits(materialise_bytes=settings.onnx_max_materialise_bytes)
    if is_local(handle):
        directory = Path(handle).expanduser()
        records = _records(directory, cache)
        verified = verify_module(
            directory, needed=needed, records=records, trusted_keys=keys, onnx_limits=limits
        )
        return OpenedModule(
            verified=verified,
            settings=settings,
            cache=cache,
            records=records,
            local=True,
            precision=precision,
            source=str(directory),
        )

    from modhub.client.resolve import Resolver

    resolver = Resolver(settings, cache=cache)
    text = str(handle)
    # A cached copy is taken as found: its manifest is read once, by verify_module, which
    # checks that every listed file is there with its size (_Complete) before anything
    # else. The signature is checked there too, once (hub.resolve checks it on its own).
    fetch = _Fetch(needed)
    directory = resolver.resolve_hub(text, check_cached=False, files=fetch)
    complete = _Complete(directory, needed)
    records = _records(directory, cache)
    try:
        verified = verify_module(
            directory, needed=complete, records=records, trusted_keys=keys, onnx_limits=limits
        )
    except (_Incomplete, ManifestError) as exc:
        if isinstance(exc, ManifestError) and complete.called:
            raise  # the manifest was read: a chooser's or a check's error, not a damaged copy
        # A damaged copy (downloaded again, whole, as hub.resolve would), or a partial one
        # without every file this load reads (those added); offline, OfflineError says what
        # is wrong. Then verified.
        directory = resolver.resolve_hub(text, files=fetch if is_partial(directory) else None)
        records = _records(directory, cache)
        verified = verify_module(
            directory, needed=needed, records=records, trusted_keys=keys, onnx_limits=limits
        )
    return OpenedModule(
        verified=verified,
        settings=settings,
        cache=cache,
        records=records,
        local=False,
        precision=precision,
        source=_concrete(text, directory),
    )


def _concrete(text: str, directory: Path) -> str:
    """The handle of the version resolved (its directory is named by the version number)."""
    parsed = parse_handle(text)
    concrete = str(parsed.with_version(int(directory.name)))
    return f"{parsed.endpoint.rstrip('/')}/{concrete}" if parsed.endpoint else concrete


def _decide(needed: Needed, manifest: Manifest) -> Collection[str] | None:
    return needed(manifest) if callable(needed) else needed


class _WithVariant:
    """``needed`` of a load that runs variant ``precision``: the module must have it."""

    def __init__(self, needed: Needed, precision: str) -> None:
        self.needed = needed
        self.precision = precision

    def __call__(self, manifest: Manifest) -> Collection[str]:
        manifest.variant(self.precision)  # ManifestError: which variants it has, what to do
        wanted = _decide(self.needed, manifest)
        return [entry.path for entry in manifest.files] if wanted is None else wanted


class _Fetch:
    """The files the resolver downloads for this load: every file it reads (``files_used``)."""

    def __init__(self, needed: Needed) -> None:
        self.needed = needed

    def __call__(self, manifest: Manifest) -> Collection[str]:
        return files_used(manifest, _decide(self.needed, manifest))


class _Incomplete(Exception):
    """A cached version directory lacks a listed file (one this load reads, when it is partial),
    or holds one of another size."""


class _Complete:
    """``needed`` of a cached copy: first the cheap completeness check of the resolver, on the
    manifest that ``verify_module`` read (a stat per file), then the caller's ``needed``."""

    def __init__(self, directory: Path, needed: Needed) -> None:
        self.directory = directory
        self.needed = needed
        self.called = False

    def __call__(self, manifest: Manifest) -> Collection[str]:
        self.called = True
        if is_partial(self.directory):
            # Only what earlier loads fetched: this load's files must be among them.
            wanted = _decide(self.needed, manifest)
            paths: Collection[str] | None = files_used(manifest, wanted)
        else:
            wanted, paths = None, None
        try:
            check_sizes(self.directory, manifest, paths)
        except IntegrityError as exc:
            raise _Incomplete(str(exc)) from exc
        if paths is None:
            wanted = _decide(self.needed, manifest)
        return [entry.path for entry in manifest.files] if wanted is None else wanted


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
