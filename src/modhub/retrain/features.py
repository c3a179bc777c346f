"""Feature vectors of a frozen module, computed once and cached on disk.

Layout under ``<MODHUB_CACHE>/features/``::

    <module key>/            sha256 of the module's modhub.json + the preprocessing settings
        <shard>.safetensors  one tensor per example, named by its content sha256

The module key changes whenever any file of the module changes (modhub.json
lists every file's sha256) or the way inputs are prepared changes, so a stale
feature is never served. Example keys are content digests (image bytes, UTF-8
text): renaming or moving files keeps the cache valid, and one cache serves
every dataset that shares examples. Shards are written to a temp file and
renamed into place, so an interrupted run leaves whole shards only; two runs
writing at once each add their own shard.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from modhub.format.atomic import write_bytes
from modhub.format.manifest import Manifest

__all__ = ["FeatureCache", "extract_features", "module_key"]

# Bump when the meaning of cached features changes (e.g. a new image decoder).
CACHE_FORMAT = 1
# Examples written per shard: an interrupted extraction loses at most this many.
SHARD_SIZE = 2048


def module_key(manifest: Manifest, preprocessing: Mapping[str, Any]) -> str:
    """Digest naming a module + input preparation; any change gives a new key.

    The module is named by its verified manifest (which lists every file's sha256),
    never by re-reading ``modhub.json`` from disk.
    """
    digest = hashlib.sha256()
    digest.update(manifest.model_dump_json().encode())
    digest.update(json.dumps({"cache_format": CACHE_FORMAT, **preprocessing}, sort_keys=True).encode())
    return digest.hexdigest()


class FeatureCache:
    """Feature vectors by example key, for one module key. Counts hits and misses."""

    def __init__(self, root: Path, key: str) -> None:
        self.dir = root / key
        self.hits = 0
        self.misses = 0
        self._index: dict[str, Path] = {}
        if self.dir.is_dir():
            self._scan()

    def _scan(self) -> None:
        from safetensors import safe_open

        for shard in sorted(self.dir.glob("*.safetensors")):
            try:
                with safe_open(str(shard), framework="numpy") as fh:
                    for name in fh.keys():  # noqa: SIM118 (safe_open has no __iter__)
                        self._index.setdefault(name, shard)
            except Exception:
                continue

    def get(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        """Cached vectors for ``keys`` (missing keys are absent from the result)."""
        from safetensors import safe_open

        by_shard: dict[Path, list[str]] = {}
        for key in dict.fromkeys(keys):
            shard = self._index.get(key)
            if shard is not None:
                by_shard.setdefault(shard, []).append(key)
        found: dict[str, np.ndarray] = {}
        for shard, names in by_shard.items():
            try:
                with safe_open(str(shard), framework="numpy") as fh:
                    for name in names:
                        found[name] = fh.get_tensor(name)
            except Exception:
                continue
        unique = len(dict.fromkeys(keys))
        self.hits += len(found)
        self.misses += unique - len(found)
        return found

    def put(self, vectors: Mapping[str, np.ndarray]) -> None:
        """Write ``vectors`` as one new shard, atomically."""
        from safetensors.numpy import save

        if not vectors:
            return
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        target = self.dir / f"{uuid.uuid4().hex}.safetensors"
        # Atomic: readers only ever see complete shards.
        write_bytes(target, save({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in vectors.items()}))
        for key in vectors:
            self._index[key] = target


def extract_features(
    keys: Sequence[str],
    compute: Callable[[list[int]], np.ndarray],
    cache: FeatureCache | None,
    *,
    batch_size: int,
    progress: Callable[[int], Any] | None = None,
) -> tuple[np.ndarray, int]:
    """Vectors for every key, in order; ``compute(indices)`` runs the module on a batch.

    Returns (features [N, D], number of examples the module was run on).
    ``progress(total)``, called only when there is something to compute, returns
    a tqdm-like context manager advanced once per computed example.
    """
    cached = cache.get(keys) if cache is not None else {}
    todo: dict[str, int] = {}
    for index, key in enumerate(keys):
        if key not in cached and key not in todo:
            todo[key] = index
    fresh: dict[str, np.ndarray] = {}
    pending: dict[str, np.ndarray] = {}
    items = list(todo.items())
    bar = progress(len(items)) if progress is not None and items else contextlib.nullcontext()
    with bar as counter:
        for start in range(0, len(items), batch_size):
            chunk = items[start : start + batch_size]
            vectors = compute([index for _, index in chunk])
            for (key, _), vector in zip(chunk, vectors, strict=True):
                fresh[key] = vector
                pending[key] = vector
            if cache is not None and len(pending) >= SHARD_SIZE:
                cache.put(pending)
                pending = {}
            if counter is not None:
                counter.update(len(chunk))
    if cache is not None:
        cache.put(pending)
    table = {**cached, **fresh}
    return np.stack([table[key] for key in keys]).astype(np.float32, copy=False), len(fresh)
