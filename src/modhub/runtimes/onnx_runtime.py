"""The onnx runtime: run a module's ``model.onnx`` with onnxruntime, without importing torch.

Calls return numpy arrays (or torch tensors for torch inputs when loaded with
the default ``runtime=None``); labels, manifest and task are those of the
torch runtime. The session is built from the very bytes that were hashed.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

import modhub.runtimes.onnx_optimised as onnx_optimised
from modhub.errors import ManifestError, UnsafeModuleError
from modhub.format.manifest import ONNX_DATA_NAME, ONNX_NAME, Manifest
from modhub.format.onnx_graph import WeightsPlan, plan_weights
from modhub.format.verify import FileRecords, VerifiedModule, open_module_file, read_module_file
from modhub.runtimes._base import LoadedModule, Output, Runtime
from modhub.runtimes.preprocessing import is_torch_tensor

if TYPE_CHECKING:
    from modhub.client.cache import ModuleCache

__all__ = ["OnnxModule", "OnnxRuntime"]

_PROC_FD = Path("/proc/self/fd")


class OnnxModule(LoadedModule):
    """A module run by an ``onnxruntime.InferenceSession`` on the CPU."""

    runtime: ClassVar[str] = "onnx"

    def __init__(
        self,
        verified: VerifiedModule,
        output: Output = "numpy",
        records: FileRecords | None = None,
        cache: ModuleCache | None = None,
    ) -> None:
        super().__init__(verified, output)
        # _weights: the verified buffer's views the session uses in place (kept alive with it).
        self._session, self._weights = _session(verified, records, cache)
        graph_names = [spec.name for spec in self.manifest.graph_inputs]
        session_names = [i.name for i in self._session.get_inputs()]
        missing = [name for name in session_names if name not in graph_names]
        if missing:
            raise ManifestError(
                f"{ONNX_NAME} of {self.path} takes inputs {missing} that the manifest's graph_inputs "
                f"({graph_names}) do not name; load it with runtime='torch' or re-export the module",
                path=self.path,
            )
        # Graph inputs the ONNX export dropped (unused) are not fed.
        self._feed_names = [name if name in session_names else None for name in graph_names]
        self._output_name = self._session.get_outputs()[0].name

    def run(self, inputs: Any) -> np.ndarray:
        """Call the module; always returns a numpy array."""
        if self._encoder is not None:
            arrays = self._encoder.encode(inputs)
        else:
            arrays = (_to_numpy(self._image_batch(inputs)),)
        feeds = {name: array for name, array in zip(self._feed_names, arrays, strict=True) if name}
        result: np.ndarray = self._session.run([self._output_name], feeds)[0]
        return result

    def __call__(self, inputs: Any) -> Any:
        result = self.run(inputs)
        if self._wants_torch(inputs):
            import torch

            return torch.from_numpy(result)
        return result


def _session(
    verified: VerifiedModule, records: FileRecords | None, cache: ModuleCache | None
) -> tuple[Any, tuple[Any, ...]]:
    """An InferenceSession built from exactly the model.onnx (and model.onnx.data) that was verified.

    Returns the session and what must outlive it (the weights it uses in place).
    """
    import onnxruntime

    # A model's "external data" makes onnxruntime read files by name: relative to the
    # lookup folder, which is an empty temporary directory, so only what is given in
    # memory (the verified model.onnx.data) can be read.
    with tempfile.TemporaryDirectory(prefix="modhub-onnx-") as nowhere:
        if any(entry.path == ONNX_DATA_NAME for entry in verified.manifest.files):
            return _session_with_data(onnxruntime, verified, records, cache, Path(nowhere))
        return _session_embedded(onnxruntime, verified, records, _options(onnxruntime, Path(nowhere))), ()


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
    graph = verified.files[ONNX_NAME]
    entry = verified.manifest.file(ONNX_DATA_NAME)
    if cache is not None and entry.size >= onnx_optimised.MIN_WEIGHT_BYTES:
        entries = {name: verified.manifest.file(name) for name in (ONNX_NAME, ONNX_DATA_NAME)}
        copy = onnx_optimised.optimised_graph(onnxruntime, cache, verified.root, entries, graph)
        if copy is not None:
            options = _options(onnxruntime, nowhere)
            # Optimised already, for this machine: optimising again would only copy the weights.
            options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
            return _shared_session(onnxruntime, copy.graph, copy.data, copy.plan, options, nowhere, verified)
    data = verified.files.get(ONNX_DATA_NAME)
    if data is None:
        data = read_module_file(verified.root, entry, records=records)
    plan = plan_weights(graph, len(data), path=verified.root / ONNX_NAME)
    if plan.shared:
        try:
            return _shared_session(
                onnxruntime, graph, data, plan, _options(onnxruntime, nowhere), nowhere, verified
            )
        except (ManifestError, UnsafeModuleError):
            # An optimisation read a shared weight while it loaded (it got the empty
            # placeholder): let onnxruntime copy the weights instead; that attempt decides.
            (nowhere / ONNX_DATA_NAME).unlink(missing_ok=True)
    options = _options(onnxruntime, nowhere)
    options.add_external_initializers_from_files_in_memory([ONNX_DATA_NAME], [data], [len(data)])
    return _create(onnxruntime, graph, options, verified), ()


def _shared_session(
    onnxruntime: Any,
    graph: bytes,
    data: bytes,
    plan: WeightsPlan,
    options: Any,
    nowhere: Path,
    verified: VerifiedModule,
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
    return _create(onnxruntime, graph, options, verified), values


def _session_embedded(
    onnxruntime: Any, verified: VerifiedModule, records: FileRecords | None, options: Any
) -> Any:
    """A model.onnx with its weights inside (modules exported before model.onnx.data).

    onnxruntime given bytes copies them (into its own buffer, then into the
    parsed model), so the file is opened once, hashed by streaming, and
    onnxruntime reads that same open file through ``/proc/self/fd/N`` (about
    1.6x the weights at peak); a swap of the path meanwhile has no effect and
    a write to the file is caught (``open_module_file``). Such a model may not
    name external data (it would be looked up in the empty folder).
    """
    entry = verified.manifest.file(ONNX_NAME)
    if ONNX_NAME in verified.files:  # read already (a caller asked for it)
        graph = verified.files[ONNX_NAME]
        plan_weights(graph, None, path=verified.root / ONNX_NAME)
        return _create(onnxruntime, graph, options, verified)
    if not _PROC_FD.is_dir():  # no /proc (not Linux): read the verified bytes once
        graph = read_module_file(verified.root, entry, records=records)
        plan_weights(graph, None, path=verified.root / ONNX_NAME)
        return _create(onnxruntime, graph, options, verified)
    with open_module_file(verified.root, entry, records=records) as fd:
        return _create(onnxruntime, str(_PROC_FD / str(fd)), options, verified)


def _create(onnxruntime: Any, source: str | bytes, options: Any, verified: VerifiedModule) -> Any:
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
        path = verified.root / ONNX_NAME
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
    name = "onnx"
    engine = "onnxruntime"
    graph_file = ONNX_NAME
    module_class = OnnxModule

    def needed_files(self, manifest: Manifest) -> set[str]:
        if any(entry.path == ONNX_DATA_NAME for entry in manifest.files):
            # The graph is read and hashed here; its weights when the session is built, once, and
            # not at all when this machine's optimised copy stands in for them (onnx_optimised).
            return {ONNX_NAME}
        return set()  # a model.onnx with its weights inside is opened and verified by the session itself
