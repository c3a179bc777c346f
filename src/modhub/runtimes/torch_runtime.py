"""The torch runtime: the module's ``graph.pt2``, rebuilt as a ``torch.fx.GraphModule``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from modhub.errors import ManifestError
from modhub.format.manifest import GRAPH_NAME
from modhub.format.verify import FileRecords, VerifiedModule
from modhub.runtimes._base import LoadedModule, Output, Runtime

if TYPE_CHECKING:
    from modhub.client.cache import ModuleCache

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

    def __init__(
        self,
        verified: VerifiedModule,
        output: Output = "torch",
        records: FileRecords | None = None,
        cache: ModuleCache | None = None,
    ) -> None:
        # records, cache unused: verify_module read and verified graph.pt2 whole; nothing is derived.
        super().__init__(verified, output)
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


class TorchRuntime(Runtime):
    name = "torch"
    engine = "torch"
    graph_file = GRAPH_NAME
    module_class = TorchModule
