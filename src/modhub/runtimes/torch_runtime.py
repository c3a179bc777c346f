"""The torch runtime: the module's ``graph.pt2``, rebuilt as a ``torch.fx.GraphModule``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from modhub.errors import InputError, ManifestError
from modhub.format.manifest import GRAPH_NAME, Manifest
from modhub.format.verify import FileRecords, VerifiedModule
from modhub.runtimes._base import LoadedModule, Output, Reopen, Runtime
from modhub.runtimes.calls import SignatureCall

if TYPE_CHECKING:
    from modhub.client.cache import ModuleCache

__all__ = ["TorchModule", "TorchRuntime", "build_graph", "no_torch_graph", "torch_args"]


def no_torch_graph(manifest: Manifest, what: str, signature: str = "default") -> ManifestError | None:
    """The error for ``what`` (e.g. "hub.Layer") on a module without a torch graph, or None if it has one."""
    path = manifest.signature(signature).file(GRAPH_NAME)
    if manifest.has_file(path):
        return None
    where = "" if signature == "default" else f" for signature {signature!r}"
    return ManifestError(
        f"this module has no torch graph ({path}){where}: it carries {', '.join(manifest.formats) or 'no'} "
        f"format(s) only, so {what} cannot run it. Load it with hub.load(handle) (the default runtime) "
        "or hub.load(handle, runtime='onnx'); hub.Layer, hub.KerasLayer and fine-tuning need a module "
        "exported from PyTorch (hub.export)."
    )


def build_graph(verified: VerifiedModule, signature: str = "default") -> Any:
    """The verified module's graph (of ``signature``) with weights of its own (a ``torch.fx.GraphModule``)."""
    from modhub.graph import build_graph_module

    path = verified.manifest.signature(signature).file(GRAPH_NAME)
    # verify_module checked every graph it read, on exactly the bytes it hashed.
    program = verified.graphs.get(path)
    if program is None:
        raise ManifestError(f"{path} was not read for this load", path=verified.root)
    # Each load read graph.pt2 into a buffer of its own: its weights can be views of it.
    return build_graph_module(program, take_buffer=True)


def torch_args(call: SignatureCall, args: list[Any]) -> list[Any]:
    """Prepared graph inputs (numpy arrays or tensors) as torch tensors; tensors stay as given."""
    import numpy as np
    import torch

    out = []
    for spec, value in zip(call.graph_inputs, args, strict=True):
        if isinstance(value, np.ndarray):
            if value.dtype == object:
                raise InputError(
                    f"input {spec.name!r} is text ({spec.dtype}), which a torch graph cannot take: "
                    "load the module with runtime='onnx'"
                )
            value = torch.from_numpy(value) if value.flags.writeable else torch.as_tensor(value.copy())
        out.append(value)
    return out


class TorchModule(LoadedModule):
    """A module run by its exported torch graph, in inference mode."""

    runtime: ClassVar[str] = "torch"

    def __init__(
        self,
        verified: VerifiedModule,
        output: Output = "torch",
        records: FileRecords | None = None,
        cache: ModuleCache | None = None,
        reopen: Reopen | None = None,
    ) -> None:
        # records, cache unused: verify_module read and verified graph.pt2 whole; nothing is derived.
        super().__init__(verified, output, records, cache, reopen)
        self._graph = self._engines["default"] = self._build_engine(verified, "default")

    def signature_files(self, name: str) -> set[str]:
        error = no_torch_graph(self.manifest, "runtime='torch'", name)
        if error is not None:
            raise error
        return {self.manifest.signature(name).file(GRAPH_NAME)}

    def _build_engine(self, verified: VerifiedModule, name: str) -> Any:
        return build_graph(verified, name).eval()

    def _run(self, engine: Any, call: SignatureCall, args: list[Any]) -> Any:
        import torch

        tensors = torch_args(call, args)
        with torch.inference_mode():
            return engine(*tensors)

    def _convert_output(self, value: Any, torch_out: bool) -> Any:
        return value if torch_out else value.numpy()


class TorchRuntime(Runtime):
    name = "torch"
    engine = "torch"
    graph_file = GRAPH_NAME
    module_class = TorchModule
