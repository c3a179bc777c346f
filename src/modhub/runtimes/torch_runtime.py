"""The torch runtime: the module's ``graph.pt2``, rebuilt as a ``torch.fx.GraphModule``."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, ClassVar

from modhub.errors import ManifestError
from modhub.format.manifest import GRAPH_NAME, Manifest
from modhub.format.verify import FileRecords, VerifiedModule
from modhub.runtimes._base import LoadedModule, Output

__all__ = ["TorchModule", "TorchRuntime", "build_graph"]


def build_graph(verified: VerifiedModule) -> Any:
    """The verified module's graph with weights of its own (a ``torch.fx.GraphModule``)."""
    from modhub.graph import build_graph_module

    if verified.graph is None:
        raise ManifestError(f"{GRAPH_NAME} was not read for this load", path=verified.root)
    # Each load read graph.pt2 into a buffer of its own: its weights can be views of it.
    return build_graph_module(verified.graph, take_buffer=True)


class TorchModule(LoadedModule):
    """A module run by its exported torch graph, in inference mode."""

    runtime: ClassVar[str] = "torch"

    def __init__(self, verified: VerifiedModule, output: Output = "torch") -> None:
        self._init_info(verified)
        self.output = output
        self._graph = build_graph(verified).eval()

    def graph_args(self, inputs: Any) -> tuple[Any, ...]:
        import torch

        if self._encoder is not None:
            return self._encoder(inputs)
        return (torch.as_tensor(self._image_batch(inputs)),)

    def __call__(self, inputs: Any) -> Any:
        import torch

        args = self.graph_args(inputs)
        with torch.inference_mode():
            result = self._graph(*args)
        return result if self._wants_torch(inputs) else result.numpy()


class TorchRuntime:
    name = "torch"

    def available(self) -> bool:
        return importlib.util.find_spec("torch") is not None

    def has_format(self, manifest: Manifest) -> bool:
        return any(entry.path == GRAPH_NAME for entry in manifest.files)

    def needed_files(self, manifest: Manifest) -> set[str]:
        return {GRAPH_NAME}

    def build(
        self, verified: VerifiedModule, output: Output, records: FileRecords | None, cache: Path | None = None
    ) -> LoadedModule:
        return TorchModule(verified, output)
