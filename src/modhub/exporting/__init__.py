"""Making modules: a PyTorch model (``export``), its ONNX graph, a SavedModel wrapped, a signature.

* :mod:`modhub.exporting.pytorch`: ``export(model, example, out_dir, ...)`` (torch).
* :mod:`modhub.exporting.onnx`: the ``model.onnx`` made from the same program (torch, onnx).
* :mod:`modhub.exporting.savedmodel`: a TensorFlow SavedModel wrapped as a module (no torch).
* :mod:`modhub.exporting.signing`: ``modhub keygen`` / ``modhub sign`` (model-signing).

Nothing is imported here eagerly: wrapping a SavedModel must not import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modhub.exporting.pytorch import export

__all__ = ["export"]


def __getattr__(name: str) -> Any:
    if name == "export":
        from modhub.exporting.pytorch import export

        return export
    raise AttributeError(f"module 'modhub.exporting' has no attribute {name!r}")
