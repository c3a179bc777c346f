"""Per-machine optimised copies of ONNX graphs, made once, loaded without copying their weights.

Why: onnxruntime's graph optimisations read and rewrite weights while a
session is built. Its layout optimisation (NCHWc, graph level ALL) rewrites
every convolution weight, so the session holds them two or three times and a
load of a small CNN peaks at several times its weights; with it off the CNN
runs 1.6-2.5x slower. Fusions that fold weights (FusedMatMul, the attention
scale in a transformer) need their values too, which shared weights cannot
give while the session is built. An optimised graph depends on this CPU
(its vector width) and on the onnxruntime version, so it cannot ship in the
module; it is made here, once per machine:

* a child process (``python -I -c``, onnxruntime only) builds a session from a
  private copy of the verified ``model.onnx`` + ``model.onnx.data`` and saves
  the optimised graph with its weights in its own ``model.onnx.data``; the
  child's peak memory is its own, never the loading process's;
* it is made only from a checked graph (``plan_weights`` on the verified bytes,
  again here: operators, bounds, weights);
* the copy is checked like a module's graph (``plan_weights``: weights only in
  its own data file, in bounds; operators on the allow-list, onnxruntime's own
  fused and NCHWc operators included; bounds), hashed, and renamed into
  ``<cache>/onnx/<key>/`` in one step, with ``files.json`` listing the sha256
  of each file. The key hashes the source files' sha256s (from the verified
  manifest), the onnxruntime version and the CPU, so a copy is only ever used
  for the very bytes it was made from, on the machine that made it;
* a load reads the copy's files through ``read_module_file`` (one read, the
  sha256 checked unless the cache's records vouch for that very file), checks
  the graph again as above (a copy rewritten in the cache, ``files.json``
  included, runs nothing that is not on the allow-list or over the bounds) and
  gives onnxruntime views of that buffer with optimisation off (it is done):
  the weights exist once.

Anything that goes wrong (no writable cache, the child fails, a damaged copy)
returns None and the caller loads the module the ordinary way.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from modhub.client.cache import ModuleCache
from modhub.errors import HubError
from modhub.format.atomic import replace_directory
from modhub.format.digests import sha256_file
from modhub.format.manifest import ONNX_DATA_NAME, ONNX_NAME, FileEntry
from modhub.format.onnx_graph import OnnxLimits, WeightsPlan, plan_weights
from modhub.format.verify import FileRecords, copy_module_file, open_module_file, read_module_file

__all__ = [
    "FILES_NAME",
    "MIN_WEIGHT_BYTES",
    "SLOW_FUSIONS",
    "OptimisedGraph",
    "optimised_graph",
    "verify_optimised",
]

_log = logging.getLogger(__name__)
# What a missing, damaged or unmakeable copy raises: the load then goes on without one.
_PROBLEMS = (OSError, HubError, ValidationError, ValueError, subprocess.SubprocessError)

# Below this many weight bytes the in-process load costs little memory: a child process is not worth it.
MIN_WEIGHT_BYTES = 1 << 20
# What a copy's directory holds besides the graph and its data.
FILES_NAME = "files.json"
# Bump when the way copies are made changes: old copies are then simply not found.
_RECIPE = 2
# A child that takes longer than this is given up on (the module then loads in process).
_CHILD_SECONDS = 600

# Fusions whose onnxruntime CPU kernels are slower than the standard operators they replace
# (onnxruntime 1.32, MiniLM's shapes, bench/bench_runtimes.py's machine): SkipLayerNormalization
# takes 0.71 ms where Add + Add + LayerNormalization take 0.17 ms, BiasGelu 0.67 ms where Add +
# Gelu take 0.48 ms. Every session modhub builds, and the copies made here, go without them.
SLOW_FUSIONS = ("SkipLayerNormFusion", "BiasGeluFusion")
# What the child keeps of the environment (it needs no module paths, tokens or settings).
_CHILD_ENV = frozenset({"PATH", "LD_LIBRARY_PATH", "TMPDIR", "HOME"})
# The child: onnxruntime only, isolated from the environment's Python paths (-I).
_CHILD = """
import sys
import onnxruntime as ort
source, out, data_name, slow = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
options = ort.SessionOptions()
options.log_severity_level = 3
options.intra_op_num_threads = 1
options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
options.optimized_model_filepath = out
options.add_session_config_entry("session.optimized_model_external_initializers_file_name", data_name)
options.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", "256")
ort.InferenceSession(
    source, options, providers=["CPUExecutionProvider"], disabled_optimizers=slow.split(",")
)
"""


class _Files(BaseModel):
    """``files.json`` of one optimised copy."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format_version: int = Field(ge=1)
    # sha256 of the module's model.onnx and model.onnx.data the copy was made from.
    source: dict[str, str]
    # onnxruntime that made the copy (also part of the key).
    onnxruntime: str
    # The copy's model.onnx and model.onnx.data.
    files: tuple[FileEntry, ...]


@dataclass(frozen=True)
class OptimisedGraph:
    """A verified optimised copy: its graph, its weights and how to view them."""

    graph: bytes
    data: bytes
    plan: WeightsPlan


@functools.cache
def _cpu() -> str:
    """What of this CPU decides onnxruntime's kernels: its architecture and instruction-set flags."""
    flags = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith(("flags", "Features")):
                    flags = " ".join(sorted(line.split(":", 1)[1].split()))
                    break
    except OSError:
        flags = platform.processor()
    return f"{platform.machine()} {flags}"


def _key(source: Mapping[str, str], ort_version: str) -> str:
    facts = {"recipe": _RECIPE, "source": dict(source), "onnxruntime": ort_version, "cpu": _cpu()}
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()


def optimised_graph(
    onnxruntime: Any,
    cache: ModuleCache,
    module_root: Path,
    entries: Mapping[str, FileEntry],
    graph: bytes,
    *,
    limits: OnnxLimits | None = None,
) -> OptimisedGraph | None:
    """The optimised copy of this module's graph, made now if this machine has none; None if it cannot be.

    ``cache``: the load's client cache (the copy lives in ``cache.onnx``);
    ``entries``: the verified manifest's entries for model.onnx and
    model.onnx.data; ``graph``: the verified bytes of model.onnx. The module's
    model.onnx.data is read (and hashed as it is copied for the child) only
    when a copy has to be made. ``graph`` is checked first (UnsafeModuleError
    goes to the caller: nothing is made from a graph that fails), the copy
    after it is made and whenever it is read, against ``limits``.
    """
    plan_weights(
        graph, entries[ONNX_DATA_NAME].size, path=module_root / entries[ONNX_NAME].path, limits=limits
    )
    source = {name: entries[name].sha256 for name in (ONNX_NAME, ONNX_DATA_NAME)}
    final = cache.onnx / _key(source, onnxruntime.__version__)
    try:
        with contextlib.suppress(*_PROBLEMS):
            found = _read_copy(final, source, cache.records, limits)
            if found is not None:
                return found
        cache.ensure()
        with cache.onnx_lock(final.name):
            try:
                found = _read_copy(final, source, cache.records, limits)  # made by another process meanwhile?
            except _PROBLEMS:
                found = None  # damaged: made again below
            if found is not None:
                return found
            weights = (module_root, entries[ONNX_DATA_NAME])
            _make_copy(cache, final, source, onnxruntime.__version__, graph, weights, limits)
            return _read_copy(final, source, cache.records, limits)
    except _PROBLEMS as exc:
        _log.info("no optimised copy of %s (%s); onnxruntime optimises it in this process", module_root, exc)
        return None


def _make_copy(
    cache: ModuleCache,
    final: Path,
    source: Mapping[str, str],
    ort_version: str,
    graph: bytes,
    data: tuple[Path, FileEntry],
    limits: OnnxLimits | None,
) -> None:
    """Make the copy in ``final`` from model.onnx's verified bytes and where its weights are."""
    work = Path(tempfile.mkdtemp(prefix="onnx-", dir=cache.tmp))
    try:
        # The child reads these copies of the verified bytes, never the module's own files; the
        # weights are hashed as they are copied, through a small buffer (never held here whole).
        (work / "in").mkdir()
        (work / "in" / ONNX_NAME).write_bytes(graph)
        copy_module_file(data[0], data[1], work / "in" / ONNX_DATA_NAME)
        out = work / "out"
        out.mkdir()
        paths = (str(work / "in" / ONNX_NAME), str(out / ONNX_NAME), ONNX_DATA_NAME)
        done = subprocess.run(
            [sys.executable, "-I", "-c", _CHILD, *paths, ",".join(SLOW_FUSIONS)],
            capture_output=True,
            timeout=_CHILD_SECONDS,
            env={k: v for k, v in os.environ.items() if k in _CHILD_ENV or k.startswith(("OMP_", "ORT_"))},
            check=False,
        )
        if done.returncode != 0:
            raise OSError(f"the optimising process failed: {done.stderr.decode(errors='replace')[-500:]}")
        made = sorted(p.name for p in out.iterdir())
        if made != sorted((ONNX_NAME, ONNX_DATA_NAME)):
            raise OSError(f"the optimising process wrote {made}")
        new_graph, new_data = (out / ONNX_NAME).read_bytes(), out / ONNX_DATA_NAME
        data_size = new_data.stat().st_size
        if not plan_weights(
            new_graph, data_size, path=out / ONNX_NAME, limits=limits, optimised=True
        ).aligned:
            raise OSError("onnxruntime saved weights that cannot be viewed in place")
        files = (
            FileEntry(path=ONNX_NAME, size=len(new_graph), sha256=hashlib.sha256(new_graph).hexdigest()),
            FileEntry(path=ONNX_DATA_NAME, size=data_size, sha256=sha256_file(new_data)),
        )
        record = _Files(format_version=1, source=dict(source), onnxruntime=ort_version, files=files)
        (out / FILES_NAME).write_text(record.model_dump_json(indent=2))
        final.parent.mkdir(parents=True, exist_ok=True)
        replace_directory(out, final)  # over a damaged copy (one that failed its check), if any
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _record(copy: Path) -> _Files:
    """A copy's ``files.json`` (read without following links; FileNotFoundError if it has none)."""
    from modhub.format._files import read_regular

    return _Files.model_validate_json(read_regular(copy, FILES_NAME, 1 << 20))


def _read_copy(
    final: Path, source: Mapping[str, str], records: FileRecords | None, limits: OnnxLimits | None
) -> OptimisedGraph | None:
    """The copy in ``final``, verified; None if there is none. A damaged copy raises IntegrityError."""
    try:
        record = _record(final)
    except FileNotFoundError:
        return None
    if record.source != dict(source) or [e.path for e in record.files] != [ONNX_NAME, ONNX_DATA_NAME]:
        raise OSError(f"{final / FILES_NAME} does not describe a copy of this module")
    graph, data = (read_module_file(final, entry, records=records) for entry in record.files)
    plan = plan_weights(graph, len(data), path=final / ONNX_NAME, limits=limits, optimised=True)
    if not plan.aligned:
        raise OSError(f"{final} holds weights that cannot be viewed in place")
    return OptimisedGraph(graph=graph, data=data, plan=plan)


def verify_optimised(cache: ModuleCache) -> list[tuple[Path, str]]:
    """Hash every optimised copy (``modhub cache verify``); damaged ones are removed.

    Each file is hashed by streaming and recorded in ``cache.records`` (which
    ``ModuleCache.verify`` has just cleared). A removed copy is made again by
    the next load that needs it.
    """
    problems: list[tuple[Path, str]] = []
    if not cache.onnx.is_dir():
        return problems
    for copy in sorted(p for p in cache.onnx.iterdir() if p.is_dir()):
        try:
            for entry in _record(copy).files:
                with open_module_file(copy, entry, records=cache.records):
                    pass
        except _PROBLEMS as exc:
            cache.discard(copy)
            problems.append((copy, f"optimised ONNX copy removed (the next load makes it again): {exc}"))
    return problems


def prune_optimised(cache: ModuleCache, graphs: set[str] | None) -> int:
    """Remove the optimised copies made from these model.onnx sha256s (None: every copy); bytes freed."""
    freed = 0
    if not cache.onnx.is_dir():
        return freed
    for copy in [p for p in cache.onnx.iterdir() if p.is_dir()]:
        if graphs is not None:
            try:
                source = _record(copy).source
            except _PROBLEMS:
                continue  # damaged or being made: `modhub cache verify` deals with it
            if source.get(ONNX_NAME) not in graphs:
                continue
        with cache.onnx_lock(copy.name):
            freed += sum(p.stat().st_size for p in copy.iterdir() if p.is_file())
            cache.discard(copy)
    return freed
