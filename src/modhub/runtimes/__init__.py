"""Runtimes: what runs a loaded module's graph.

* ``"torch"`` builds ``graph.pt2`` as a torch graph; calls return torch tensors.
* ``"onnx"`` runs ``model.onnx`` with onnxruntime and never imports torch;
  calls return numpy arrays.
* ``None`` (the default of ``hub.load``): onnx when the module has a
  ``model.onnx`` and onnxruntime is installed, else torch. Calls return torch
  tensors when given a torch tensor, numpy arrays otherwise (text included).

``hub.load(..., output="numpy" | "torch")`` fixes what calls return, whatever
runs the graph (predict and retrain ask for numpy and let the default choose).

Each runtime reads, and so hashes, only the files it needs.
"""

from __future__ import annotations

from modhub.errors import InputError, ManifestError, not_installed
from modhub.format.manifest import Manifest
from modhub.runtimes._base import LoadedModule, ModuleInfo, Output, Runtime
from modhub.runtimes.onnx_runtime import OnnxRuntime
from modhub.runtimes.torch_runtime import TorchRuntime

__all__ = [
    "OUTPUTS",
    "RUNTIMES",
    "LoadedModule",
    "ModuleInfo",
    "Output",
    "Runtime",
    "choose_runtime",
    "fixed_output",
]

RUNTIMES: dict[str, Runtime] = {runtime.name: runtime for runtime in (OnnxRuntime(), TorchRuntime())}
# Tried in this order when no runtime is asked for: the fastest first.
_DEFAULT_ORDER = ("onnx", "torch")
# What ``hub.load(..., output=)`` accepts; None: what the runtime gives (see the module doc).
OUTPUTS: dict[str, Output] = {"numpy": "numpy", "torch": "torch"}


def fixed_output(output: str | None) -> Output | None:
    """``output`` checked: what every call returns, or None for the runtime's own."""
    if output is None:
        return None
    if output not in OUTPUTS:
        raise InputError(f"unknown output {output!r}: use one of {list(OUTPUTS)}, or None for the default")
    return OUTPUTS[output]


def choose_runtime(
    manifest: Manifest, requested: str | None, output: str | None = None
) -> tuple[Runtime, Output]:
    """The runtime that loads this module, and what its calls return.

    ``output``: "numpy" or "torch" makes every call return that, whatever the
    runtime; None keeps the runtime's own (onnx: numpy, torch: torch tensors,
    the default runtime: like the input).
    """
    fixed = fixed_output(output)
    if manifest.framework == "tensorflow":
        from modhub.format.verify import tensorflow_only_message

        raise ManifestError(tensorflow_only_message("this module"))
    if requested is None or requested == "auto":
        for name in _DEFAULT_ORDER:
            candidate = RUNTIMES[name]
            if candidate.has_format(manifest) and candidate.available():
                return candidate, fixed or "like-input"
        for name in _DEFAULT_ORDER:
            if RUNTIMES[name].has_format(manifest):
                raise not_installed(RUNTIMES[name].engine, f"this module ({RUNTIMES[name].graph_file})")
        raise ManifestError("modhub.json lists neither graph.pt2 nor model.onnx; nothing can run this module")
    runtime = RUNTIMES.get(requested)
    if runtime is None:
        raise InputError(
            f"unknown runtime {requested!r}: use one of {sorted(RUNTIMES)}, or None for the default"
        )
    if requested == "torch" and not runtime.has_format(manifest):
        from modhub.runtimes.torch_runtime import no_torch_graph

        raise no_torch_graph(manifest, "runtime='torch'") or ManifestError("no graph.pt2")
    if not runtime.has_format(manifest):
        files = ", ".join(entry.path for entry in manifest.files)
        raise ManifestError(
            f"this module has no file for runtime={requested!r} (it has {files}); load it with "
            f"runtime=None or another runtime, or re-export it (hub.export(..., onnx=True) adds model.onnx)"
        )
    if not runtime.available():
        raise not_installed(runtime.engine, f"runtime={requested!r}")
    return runtime, fixed or ("torch" if requested == "torch" else "numpy")
