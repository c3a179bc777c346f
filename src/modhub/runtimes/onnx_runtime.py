"""The onnx runtime: run a module's ``model.onnx`` with onnxruntime, without importing torch.

Calls return numpy arrays (or torch tensors for torch inputs when loaded with
the default ``runtime=None``); labels, manifest and task are those of the
torch runtime. The session is built from the very bytes that were hashed.

With a precision (``hub.load(h, precision="int8")``) it runs the module's
reduced-precision variant instead (``Manifest.variants``): the graphs in the
variant's folder, checked by ``verify_module`` as every ``model.onnx`` is. This
machine's optimised copy (``onnx_optimised``) is made for every graph with 1 MiB
of weights or more, the exact one's and a variant's alike.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

import modhub.runtimes.onnx_optimised as onnx_optimised
from modhub.errors import ManifestError, UnsafeModuleError
from modhub.format.manifest import ONNX_DATA_NAME, ONNX_NAME, Manifest, check_engine
from modhub.format.onnx_graph import WeightsPlan, plan_weights
from modhub.format.verify import FileRecords, VerifiedModule, read_module_file
from modhub.runtimes._base import LoadedModule, Output, Reopen, Runtime
from modhub.runtimes.calls import SignatureCall
from modhub.runtimes.preprocessing import is_torch_tensor

if TYPE_CHECKING:
    from modhub.client.cache import ModuleCache

__all__ = ["OnnxModule", "OnnxRuntime"]


class OnnxModule(LoadedModule):
    """A module run by an ``onnxruntime.InferenceSession`` on the CPU (one per signature used)."""

    runtime: ClassVar[str] = "onnx"

    def __init__(
        self,
        verified: VerifiedModule,
        output: Output = "numpy",
        records: FileRecords | None = None,
        cache: ModuleCache | None = None,
        reopen: Reopen | None = None,
        *,
        precision: str | None = None,
    ) -> None:
        super().__init__(verified, output, records, cache, reopen)
        self._cache = cache
        # The variant that runs ("int8"), or None for the exact graphs.
        self.precision = precision
        default = self._engines["default"] = _Session(self, verified, "default", records, cache)
        # Kept for callers of the single-signature module.
        self._session, self._weights = default.session, default.weights

    def signature_files(self, name: str) -> set[str]:
        if self.precision is not None:
            return _needed(self.manifest, name, self.precision)
        path = self.manifest.signature(name).file(ONNX_NAME)
        if not self.manifest.has_file(path):
            raise ManifestError(
                f"signature {name!r} has no {path}: call it on a module loaded with runtime='torch'",
                path=self.path / path,
            )
        return _needed(self.manifest, name)

    def _build_engine(self, verified: VerifiedModule, name: str) -> Any:
        return _Session(self, verified, name, self._records, self._cache)

    def _run(self, engine: Any, call: SignatureCall, args: list[Any]) -> Any:
        del call  # the session knows its feeds
        return engine.run(args)

    def _convert_output(self, value: Any, torch_out: bool) -> Any:
        if torch_out and isinstance(value, np.ndarray) and value.dtype != object:
            import torch

            return torch.from_numpy(value)
        return value

    def run(self, *args: Any, **kwargs: Any) -> Any:
        """Call the default signature; always returns numpy arrays (a dict of them for several outputs)."""
        call = self._signature_call("default")
        return call.result(call.run(self._engines["default"].run, call.prepare(call.bind(args, kwargs))))


class _Session:
    """The onnxruntime session of one signature, with what its feeds and fetches are called."""

    def __init__(
        self,
        module: OnnxModule,
        verified: VerifiedModule,
        name: str,
        records: FileRecords | None,
        cache: ModuleCache | None,
    ) -> None:
        manifest = verified.manifest
        onnx_path, data_path = _graph_files(manifest, name, module.precision)
        # weights: the verified buffer's views the session uses in place (kept alive with it).
        self.session, self.weights = _session(
            verified, records, cache, onnx_path=onnx_path, data_path=data_path
        )
        where = module.path / onnx_path
        graph_names = [spec.name for spec in manifest.graph_inputs_of(name)]
        session_names = [i.name for i in self.session.get_inputs()]
        missing = [n for n in session_names if n not in graph_names]
        if missing:
            raise ManifestError(
                f"{onnx_path} of {module.path} takes inputs {missing} that the manifest's graph inputs "
                f"({graph_names}) do not name; load it with runtime='torch' or re-export the module",
                path=where,
            )
        # Graph inputs the ONNX export dropped (unused) are not fed.
        self.feed_names = [n if n in session_names else None for n in graph_names]
        wanted = [spec.name for spec in manifest.graph_outputs_of(name)]
        given = [o.name for o in self.session.get_outputs()]
        if all(n in given for n in wanted):
            self.fetch_names = wanted
        elif len(given) >= len(wanted):
            # Graphs exported before outputs were named: the manifest's order is the graph's.
            self.fetch_names = given[: len(wanted)]
        else:
            raise ManifestError(
                f"{onnx_path} of {module.path} has {len(given)} outputs, the manifest names {wanted}; "
                "re-export the module",
                path=where,
            )

    def run(self, args: list[Any]) -> list[Any]:
        feeds = {n: _to_numpy(a) for n, a in zip(self.feed_names, args, strict=True) if n}
        results: list[Any] = self.session.run(self.fetch_names, feeds)
        return results


def _needed(manifest: Manifest, name: str = "default", precision: str | None = None) -> set[str]:
    """What ``verify_module`` reads for a signature's model.onnx (see OnnxRuntime.needed_files)."""
    # The graph is read, hashed and checked (operators, bounds, weights) by verify_module, with
    # or without its weights inside; model.onnx.data is read when the session is built, once, and
    # not at all when this machine's optimised copy stands in for it (onnx_optimised).
    return {_graph_files(manifest, name, precision)[0]}


def _graph_files(manifest: Manifest, name: str, precision: str | None) -> tuple[str, str]:
    """The module paths of signature ``name``'s model.onnx and model.onnx.data, exact or of a variant."""
    sig = manifest.signature(name)
    if precision is None:
        return sig.file(ONNX_NAME), sig.file(ONNX_DATA_NAME)
    variant = manifest.variant(precision)  # a ManifestError without one, saying what to do
    if name not in variant.signatures:
        raise ManifestError(
            f"the {precision} variant has no graph for signature {name!r} (it has "
            f"{', '.join(variant.signatures)}); call that signature on a module loaded without precision="
        )
    return variant.file(sig, ONNX_NAME), variant.file(sig, ONNX_DATA_NAME)


def _session(
    verified: VerifiedModule,
    records: FileRecords | None,
    cache: ModuleCache | None,
    *,
    onnx_path: str = ONNX_NAME,
    data_path: str = ONNX_DATA_NAME,
) -> tuple[Any, tuple[Any, ...]]:
    """An InferenceSession built from exactly the model.onnx (and model.onnx.data) that was verified.

    ``onnx_path``, ``data_path``: the module paths of the signature's files (the
    default signature's are at the root). Returns the session and what must
    outlive it (the weights it uses in place).
    """
    import onnxruntime

    check_engine(verified.manifest, "onnxruntime", onnxruntime.__version__, path=verified.root)

    # A model's "external data" makes onnxruntime read files by name: relative to the
    # lookup folder, which is an empty temporary directory, so only what is given in
    # memory (the verified model.onnx.data) can be read.
    with tempfile.TemporaryDirectory(prefix="modhub-onnx-") as nowhere:
        if verified.manifest.has_file(data_path):
            return _session_with_data(
                onnxruntime, verified, records, cache, Path(nowhere), onnx_path=onnx_path, data_path=data_path
            )
        options = _options(onnxruntime, Path(nowhere))
        return _session_embedded(onnxruntime, verified, records, options, onnx_path=onnx_path), ()


def _options(onnxruntime: Any, nowhere: Path) -> Any:
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only: no warnings on stderr for every load
    options.add_session_config_entry("session.model_external_initializers_file_folder_path", str(nowhere))
    return options


def _session_with_data(
    onnxruntime: Any,
    verified: VerifiedModule,
    records: FileRecords | None,
    cache: ModuleCache | None,
    nowhere: Path,
    *,
    onnx_path: str = ONNX_NAME,
    data_path: str = ONNX_DATA_NAME,
) -> tuple[Any, tuple[Any, ...]]:
    """model.onnx (the graph) with its weights in model.onnx.data, each read and hashed once.

    Memory: onnxruntime given a model with its weights inside copies them
    (parsed model, then its own tensors): a load peaks at about 1.6x the
    weights. Here the graph is small and the weights are one verified buffer;
    onnxruntime's tensors are numpy views of it (``add_initializer``: shared,
    never copied), so they exist once (about 1.15x at peak, bench/bench_runtimes.py).
    Prepacking is off for those shared weights: onnxruntime would keep a
    packed copy beside them.

    onnxruntime's graph optimisations need the weights' values (convolutions'
    NCHWc layout, a 1.6-2.5x speedup on CPU, rewrites them and holds them two
    or three times meanwhile; fusions such as FusedMatMul read
    them), so a module with 1 MiB of weights or more is loaded from this
    machine's optimised copy in the cache (``onnx_optimised``: made once, in
    a child process), whose weights are shared the same way, with
    optimisation off; the module's own model.onnx.data is then not read at
    all. Without a copy (no cache, small weights, the copy could not be made)
    the graph is optimised here: with shared weights if it has no
    convolutions (optimisations that would need their values are skipped),
    else from copies onnxruntime makes of the verified bytes
    (``add_external_initializers_from_files_in_memory``).
    """
    graph = verified.files[onnx_path]
    entry = verified.manifest.file(data_path)
    if cache is not None and entry.size >= onnx_optimised.MIN_WEIGHT_BYTES:
        # The signature's or the variant's graph; the copy is keyed by the two files' sha256s.
        entries = {ONNX_NAME: verified.manifest.file(onnx_path), ONNX_DATA_NAME: entry}
        copy = onnx_optimised.optimised_graph(
            onnxruntime, cache, verified.root, entries, graph, limits=verified.onnx_limits
        )
        if copy is not None:
            options = _options(onnxruntime, nowhere)
            # Optimised already, for this machine: optimising again would only copy the weights.
            options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
            return _shared_session(onnxruntime, copy.graph, copy.data, copy.plan, options, nowhere, verified)
    data = verified.files.get(data_path)
    if data is None:
        data = read_module_file(verified.root, entry, records=records)
    plan = plan_weights(graph, len(data), path=verified.root / onnx_path, limits=verified.onnx_limits)
    if plan.shared:
        try:
            return _shared_session(
                onnxruntime, graph, data, plan, _options(onnxruntime, nowhere), nowhere, verified, onnx_path
            )
        except (ManifestError, UnsafeModuleError):
            # An optimisation read a shared weight while it loaded (it got the empty
            # placeholder): let onnxruntime copy the weights instead; that attempt decides.
            (nowhere / ONNX_DATA_NAME).unlink(missing_ok=True)
    options = _options(onnxruntime, nowhere)
    options.add_external_initializers_from_files_in_memory([ONNX_DATA_NAME], [data], [len(data)])
    return _create(onnxruntime, graph, options, verified, onnx_path), ()


def _shared_session(
    onnxruntime: Any,
    graph: bytes,
    data: bytes,
    plan: WeightsPlan,
    options: Any,
    nowhere: Path,
    verified: VerifiedModule,
    onnx_path: str = ONNX_NAME,
) -> tuple[Any, tuple[Any, ...]]:
    # onnxruntime checks that each external location exists before it takes the shared
    # tensors instead: an empty file, so anything that still reads it gets no bytes.
    (nowhere / ONNX_DATA_NAME).touch()
    options.add_session_config_entry("session.disable_prepacking", "1")
    buffer = np.frombuffer(data, dtype=np.uint8)
    values = tuple(
        onnxruntime.OrtValue.ortvalue_from_numpy(
            buffer[t.offset : t.offset + t.length]
            .view(t.dtype or "uint8")
            .reshape(t.dims)  # dtype: see WeightsPlan
        )
        for t in plan.tensors
    )
    for tensor, value in zip(plan.tensors, values, strict=True):
        options.add_initializer(tensor.name, value)
    return _create(onnxruntime, graph, options, verified, onnx_path), values


def _session_embedded(
    onnxruntime: Any,
    verified: VerifiedModule,
    records: FileRecords | None,
    options: Any,
    *,
    onnx_path: str = ONNX_NAME,
) -> Any:
    """A model.onnx with its weights inside (modules exported before model.onnx.data).

    The file was read once and checked (operators, bounds, no external data: it
    would be looked up in the empty folder) by ``verify_module``; onnxruntime
    gets those very bytes (it copies them: about 2x the weights at peak).
    """
    graph = verified.files.get(onnx_path)
    if graph is None:  # a caller's own VerifiedModule without it: read and verify it now
        graph = read_module_file(verified.root, verified.manifest.file(onnx_path), records=records)
    plan_weights(graph, None, path=verified.root / onnx_path, limits=verified.onnx_limits)
    return _create(onnxruntime, graph, options, verified, onnx_path)


def _create(
    onnxruntime: Any, source: str | bytes, options: Any, verified: VerifiedModule, onnx_path: str = ONNX_NAME
) -> Any:
    if isinstance(source, bytearray):  # onnxruntime takes bytes only; graphs are small beside their weights
        source = bytes(source)
    try:
        return onnxruntime.InferenceSession(
            source,
            options,
            providers=["CPUExecutionProvider"],
            disabled_optimizers=list(onnx_optimised.SLOW_FUSIONS),
        )
    except Exception as exc:  # onnxruntime raises its own exception types for every failure
        path = verified.root / onnx_path
        if "external data" in str(exc).lower() or "external initializer" in str(exc).lower():
            raise UnsafeModuleError(
                f"{ONNX_NAME} is refused: it refers to external data that is not in the module's "
                f"{ONNX_DATA_NAME} ({exc}). Re-export the module with hub.export(..., onnx=True).",
                path=path,
            ) from None
        raise ManifestError(
            f"onnxruntime cannot load {path}: {exc}. Load the module with runtime='torch', "
            "or re-export it with hub.export(..., onnx=True).",
            path=path,
        ) from None


def _to_numpy(images: Any) -> np.ndarray:
    if is_torch_tensor(images):
        images = images.detach().cpu().numpy()
    return np.ascontiguousarray(images)


class OnnxRuntime(Runtime):
    """Runs ``model.onnx``; ``OnnxRuntime(precision="int8")`` runs the module's int8 variant instead."""

    name = "onnx"
    engine = "onnxruntime"
    graph_file = ONNX_NAME
    module_class = OnnxModule

    def __init__(self, precision: str | None = None) -> None:
        self.precision = precision

    def has_format(self, manifest: Manifest, signature: str = "default") -> bool:
        if self.precision is None:
            return super().has_format(manifest, signature)
        variant = (manifest.variants or {}).get(self.precision)  # type: ignore[call-overload]
        return variant is not None and signature in variant.signatures

    def needed_files(self, manifest: Manifest) -> set[str]:
        return _needed(manifest, "default", self.precision)

    def build(
        self,
        verified: VerifiedModule,
        output: Output,
        records: FileRecords | None,
        cache: ModuleCache | None = None,
        reopen: Reopen | None = None,
    ) -> LoadedModule:
        return OnnxModule(verified, output, records, cache, reopen, precision=self.precision)
