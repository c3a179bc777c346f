"""Probe inputs: small arrays that fit a signature, to run a module's formats side by side.

Used where a module is run on inputs nobody chose: the hub's publish check that
a module's formats agree, ``modhub cache verify --deep``, and tests. Values are
drawn from each tensor's declared ``value_range`` (or a safe default), so an
integer input never indexes past a table it does not know the size of.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from modhub.errors import ManifestError
from modhub.format.manifest import TensorSpec

__all__ = ["numpy_dtype", "probe_arrays", "resolve_shape"]

# A dynamic dimension's size in a probe, by what the tensor holds.
_DYNAMIC_SIZE = {"image": 64, "audio": 16000, None: 8}


def numpy_dtype(dtype: str) -> np.dtype[Any] | None:
    """The numpy dtype of a manifest dtype ("string" -> object, holding Python str); None for
    bfloat16, which numpy has not (such tensors travel as torch tensors)."""
    if dtype == "string":
        return np.dtype(object)
    if dtype == "bfloat16":
        return None
    return np.dtype(dtype)


def resolve_shape(
    spec: TensorSpec, sizes: dict[str, int], *, batch: int = 2, dynamic: int | None = None
) -> tuple[int, ...]:
    """``spec``'s shape with each named dimension fixed: the same name, the same size (kept in ``sizes``)."""
    shape = []
    for dim in spec.shape:
        if isinstance(dim, int):
            shape.append(dim)
            continue
        if dim not in sizes:
            if dim == "batch":
                sizes[dim] = batch
            elif dynamic is not None:
                sizes[dim] = dynamic
            else:
                sizes[dim] = _DYNAMIC_SIZE.get(spec.kind, _DYNAMIC_SIZE[None])
        shape.append(sizes[dim])
    return tuple(shape)


def probe_arrays(
    specs: Sequence[TensorSpec],
    rng: np.random.Generator,
    *,
    batch: int = 2,
    dynamic: int | None = None,
) -> dict[str, np.ndarray]:
    """One array per spec, by name, with the declared dtype and shape (named dims consistent)."""
    sizes: dict[str, int] = {}
    arrays: dict[str, np.ndarray] = {}
    for spec in specs:
        shape = resolve_shape(spec, sizes, batch=batch, dynamic=dynamic)
        arrays[spec.name] = _values(spec, shape, rng)
    return arrays


def _values(spec: TensorSpec, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    dtype = numpy_dtype(spec.dtype)
    if dtype is None:
        raise ManifestError(f"{spec.name} is {spec.dtype}, which has no numpy dtype to probe with")
    if spec.dtype == "string":
        words = np.array(["a probe sentence", "modhub", "hello world", ""], dtype=object)
        return words[rng.integers(0, len(words), size=shape)]
    if spec.dtype == "bool":
        return rng.random(shape) < 0.5
    if dtype.kind == "f":
        lo, hi = spec.value_range if spec.value_range is not None else (0.0, 1.0)
        return rng.uniform(lo, hi, size=shape).astype(dtype)
    # Integers: ids and indices of unknown range stay 0/1, which every table has.
    info = np.iinfo(dtype)
    lo_i, hi_i = (0, 1) if spec.value_range is None else spec.value_range
    lo_i, hi_i = max(int(lo_i), info.min), min(int(hi_i), info.max)
    return rng.integers(lo_i, hi_i + 1, size=shape).astype(dtype)
