"""The onnx runtime: run a module's ``model.onnx`` with onnxruntime, without importing torch.

Calls return numpy arrays (or torch tensors for torch inputs when loaded with
the default ``runtime=None``); labels, manifest and task are those of the
torch runtime. The session is built from the very bytes that were hashed.
"""

from __future__ import annotations

import importlib.util
import tempfile
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from modhub.errors import ManifestError, UnsafeModuleError
from modhub.format.manifest import ONNX_NAME, Manifest
from modhub.format.verify import FileRecords, VerifiedModule, open_module_file, read_module_file
from modhub.preprocessing import is_torch_tensor
from modhub.runtimes._base import LoadedModule, Output

__all__ = ["OnnxModule", "OnnxRuntime"]

_PROC_FD = Path("/proc/self/fd")


class OnnxModule(LoadedModule):
    """A module run by an ``onnxruntime.InferenceSession`` on the CPU."""

    runtime: ClassVar[str] = "onnx"

    def __init__(
        self, verified: VerifiedModule, output: Output = "numpy", records: FileRecords | None = None
    ) -> None:
        self._init_info(verified)
        self.output = output
        self._session = _session(verified, records)
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


def _session(verified: VerifiedModule, records: FileRecords | None) -> Any:
    """An InferenceSession built from exactly the model.onnx that was verified.

    Memory: onnxruntime given bytes copies them (into its own buffer, then into
    the parsed model), so a load would peak at about 3x the weights. Instead
    the file is opened once, hashed by streaming, and onnxruntime reads that
    same open file through ``/proc/self/fd/N`` (about 1.6x the weights at
    peak, measured by bench/bench_runtimes.py); a swap of the path meanwhile
    has no effect and a write to the file is caught (``open_module_file``).
    """
    import onnxruntime

    entry = verified.manifest.file(ONNX_NAME)
    # A modhub model.onnx holds all its weights. ONNX "external data" would make
    # onnxruntime read other files by name: relative to /proc/self/fd that means
    # any open descriptor of this process. Point the lookup at an empty directory.
    with tempfile.TemporaryDirectory(prefix="modhub-onnx-") as nowhere:
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # errors only: no warnings on stderr for every load
        options.add_session_config_entry("session.model_external_initializers_file_folder_path", nowhere)
        if ONNX_NAME in verified.files:  # read already (a caller asked for it)
            return _create(onnxruntime, verified.files[ONNX_NAME], options, verified)
        if not _PROC_FD.is_dir():  # no /proc (not Linux): read the verified bytes once
            return _create(
                onnxruntime, read_module_file(verified.root, entry, records=records), options, verified
            )
        with open_module_file(verified.root, entry, records=records) as fd:
            return _create(onnxruntime, str(_PROC_FD / str(fd)), options, verified)


def _create(onnxruntime: Any, source: str | bytes, options: Any, verified: VerifiedModule) -> Any:
    try:
        return onnxruntime.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for every failure
        path = verified.root / ONNX_NAME
        if "external data" in str(exc).lower():
            raise UnsafeModuleError(
                f"{ONNX_NAME} is refused: it refers to external data files, which modhub modules do "
                f"not have (all weights are inside {ONNX_NAME}). Re-export the module with modhub.export.",
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


class OnnxRuntime:
    name = "onnx"

    def available(self) -> bool:
        return importlib.util.find_spec("onnxruntime") is not None

    def has_format(self, manifest: Manifest) -> bool:
        return any(entry.path == ONNX_NAME for entry in manifest.files)

    def needed_files(self, manifest: Manifest) -> set[str]:
        return set()  # model.onnx is opened and verified by the session itself (see _session)

    def build(self, verified: VerifiedModule, output: Output, records: FileRecords | None) -> LoadedModule:
        return OnnxModule(verified, output, records)
