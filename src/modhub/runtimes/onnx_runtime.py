"""The onnx runtime: run a module's ``model.onnx`` with onnxruntime, without importing torch.

Calls return numpy arrays (or torch tensors for torch inputs when loaded with
the default ``runtime=None``); labels, manifest and task are those of the
torch runtime. The session is built from the very bytes that were hashed.
"""

from __future__ import annotations

import importlib.util
from typing import Any, ClassVar

import numpy as np

from modhub.errors import InputError
from modhub.format.manifest import ONNX_NAME, Manifest
from modhub.format.verify import VerifiedModule
from modhub.preprocessing import is_torch_tensor
from modhub.runtimes._base import LoadedModule, Output

__all__ = ["OnnxModule", "OnnxRuntime"]


class OnnxModule(LoadedModule):
    """A module run by an ``onnxruntime.InferenceSession`` on the CPU."""

    runtime: ClassVar[str] = "onnx"

    def __init__(self, verified: VerifiedModule, output: Output = "numpy") -> None:
        import onnxruntime

        self._init_info(verified)
        self.output = output
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # errors only: no warnings on stderr for every load
        # From the bytes that were hashed, never from the path (which could be swapped since).
        self._session = onnxruntime.InferenceSession(
            verified.files[ONNX_NAME], sess_options=options, providers=["CPUExecutionProvider"]
        )
        graph_names = [spec.name for spec in self.manifest.graph_inputs]
        session_names = [i.name for i in self._session.get_inputs()]
        missing = [name for name in session_names if name not in graph_names]
        if missing:
            raise InputError(
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
        return {ONNX_NAME}

    def build(self, verified: VerifiedModule, output: Output) -> LoadedModule:
        return OnnxModule(verified, output)
