"""Making modules: a PyTorch model (``export``), its ONNX graph, a SavedModel wrapped, a signature.

* :mod:`modhub.exporting.pytorch`: ``export(model, example, out_dir, ...)`` (torch).
* :mod:`modhub.exporting.onnx`: the ``model.onnx`` made from the same program (torch, onnx).
* :mod:`modhub.exporting.tracing`: a model's call as named inputs and outputs (any signature).
* :mod:`modhub.exporting.onnx_wrap`: ``wrap_onnx``, a plain ONNX file wrapped as a module (no torch).
* :mod:`modhub.exporting.savedmodel`: a TensorFlow SavedModel wrapped as a module (no torch).
* :mod:`modhub.exporting.wrapping`: what ``modhub publish`` wraps (an ONNX file, a SavedModel).
* :mod:`modhub.exporting.signing`: ``modhub keygen`` / ``modhub sign`` (model-signing).

Nothing is imported here eagerly: wrapping a SavedModel or an ONNX file must not import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modhub.exporting.onnx_wrap import wrap_onnx
    from modhub.exporting.pytorch import export

__all__ = ["export", "wrap_onnx"]


def __getattr__(name: str) -> Any:
    if name == "export":
        from modhub.exporting.pytorch import export

        return export
    if name == "wrap_onnx":
        from modhub.exporting.onnx_wrap import wrap_onnx

        return wrap_onnx
    raise AttributeError(f"module 'modhub.exporting' has no attribute {name!r}")
