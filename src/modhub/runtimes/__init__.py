"""Runtimes: what runs a loaded module's graph.

* ``"torch"`` builds ``graph.pt2`` as a torch graph; calls return torch tensors.
* ``"onnx"`` runs ``model.onnx`` with onnxruntime and never imports torch;
  calls return numpy arrays.
* ``None`` (the default of ``hub.load``): onnx when the module has a
  ``model.onnx`` and onnxruntime is installed, else torch. Calls return torch
  tensors when given a torch tensor, numpy arrays otherwise (text included).

``hub.load(..., output="numpy" | "torch")`` fixes what calls return, whatever
runs the graph (predict and retrain ask for numpy and let the default choose).

``hub.load(..., precision="int8")`` runs the module's int8 variant (an ONNX
graph, ``Manifest.variants``) on the onnx runtime; ``runtime="torch"`` with a
precision is refused (the variants are ONNX-only).

Each runtime reads, and so hashes, only the files it needs.
"""

from __future__ import annotations

from modhub.errors import InputError, ManifestError, not_installed
from modhub.format.manifest import PRECISIONS, Manifest
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
    "check_precision",
    "choose_runtime",
    "fixed_output",
]

RUNTIMES: dict[str, Runtime] = {runtime.name: runtime for runtime in (OnnxRuntime(), TorchRuntime())}
# Tried in this order when no runtime is asked for: the fastest first.
_DEFAULT_ORDER = ("onnx", "torch")
# What ``hub.load(..., output=)`` accepts; None: what the runtime gives (see the module doc).
OUTPUTS: dict[str, Output] = {"numpy": "numpy", "torch": "torch"}


def check_precision(requested: str | None, precision: str | None) -> None:
    """Refuse, before anything is resolved, an unknown precision or a runtime that cannot run it."""
    if precision is None:
        return
    if precision not in PRECISIONS:
        raise InputError(
            f"unknown precision {precision[:40]!r}: use one of {list(PRECISIONS)}, "
            "or None for the exact graph"
        )
    if requested not in (None, "auto", "onnx"):
        raise InputError(
            f"precision={precision!r} runs the module's {precision} variant, an ONNX graph: "
            f"runtime={requested!r} cannot run it. Use runtime='onnx' (or None), or drop precision= "
            "to run the exact graph with torch."
        )


def precision_runtime(manifest: Manifest, requested: str | None, precision: str) -> Runtime:
    """The onnx runtime of variant ``precision``; ManifestError (``Manifest.variant``) without one."""
    check_precision(requested, precision)
    manifest.variant(precision)  # says which variants the module has, and how to add one
    runtime = OnnxRuntime(precision=precision)
    if not runtime.available():
        raise not_installed(runtime.engine, f"precision={precision!r}")
    return runtime


def fixed_output(output: str | None) -> Output | None:
    """``output`` checked: what every call returns, or None for the runtime's own."""
    if output is None:
        return None
    if output not in OUTPUTS:
        raise InputError(f"unknown output {output!r}: use one of {list(OUTPUTS)}, or None for the default")
    return OUTPUTS[output]


def choose_runtime(
    manifest: Manifest, requested: str | None, output: str | None = None, precision: str | None = None
) -> tuple[Runtime, Output]:
    """The runtime that loads this module, and what its calls return.

    ``output``: "numpy" or "torch" makes every call return that, whatever the
    runtime; None keeps the runtime's own (onnx: numpy, torch: torch tensors,
    the default runtime: like the input). ``precision``: run that variant
    (see :func:`precision_runtime`).
    """
    fixed = fixed_output(output)
    if manifest.framework == "tensorflow":
        from modhub.format.verify import tensorflow_only_message

        raise ManifestError(tensorflow_only_message("this module"))
    if precision is not None:
        variant_runtime = precision_runtime(manifest, requested, precision)
        return variant_runtime, fixed or ("numpy" if requested == "onnx" else "like-input")
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
