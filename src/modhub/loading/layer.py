"""``hub.Layer``: a module as a ``torch.nn.Module`` layer of your own model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from modhub.format.manifest import GRAPH_NAME, Manifest
from modhub.loading.opener import Handle, OpenedModule, open_module
from modhub.runtimes import ModuleInfo
from modhub.runtimes.torch_runtime import build_graph, no_torch_graph, torch_args
from modhub.settings import Settings

__all__ = ["Layer"]

# Nodes whose behaviour depends on train/eval mode, with the position and name of that flag.
_MODE_FLAGS: dict[Any, tuple[int, str]] = {
    torch.ops.aten.batch_norm.default: (5, "training"),
    torch.ops.aten.dropout.default: (2, "train"),
    torch.ops.aten.feature_dropout.default: (2, "train"),
    torch.ops.aten.alpha_dropout.default: (2, "train"),
    torch.ops.aten.feature_alpha_dropout.default: (2, "train"),
}


class Layer(ModuleInfo, torch.nn.Module):
    """A module as a ``torch.nn.Module`` layer of your own model.

    ``trainable=False`` (default): the weights are frozen and BatchNorm/dropout
    stay in inference mode, whatever ``.train()`` says; the layer is a fixed
    feature extractor. ``trainable=True``: weights receive gradients and
    ``.train()``/``.eval()`` switch BatchNorm and dropout as eager PyTorch does.
    Every Layer has its own copy of the weights. Layer always runs the torch graph:
    a module without one (ONNX-only) raises a ManifestError saying to use ``hub.load``.

    Called like the module's signature (``signature``, default "default"):
    ``layer(x)``, ``layer(a, b)``, ``layer(content=a, style=b)``; one output is a
    tensor, several a dict of tensors by name.

    ``handle`` may also be a module opened already with ``graph.pt2`` among
    its needed files (:func:`modhub.loading.opener.open_module`), as
    ``KerasLayer`` and retraining do; ``settings`` is then the one it was opened with.
    """

    def __init__(
        self,
        handle: Handle | OpenedModule,
        trainable: bool = False,
        *,
        signature: str = "default",
        settings: Settings | None = None,
    ) -> None:
        torch.nn.Module.__init__(self)
        if isinstance(handle, OpenedModule):
            opened = handle
        else:
            settings = settings if settings is not None else Settings.from_env()  # read once
            opened = open_module(handle, settings=settings, needed=torch_graph_of(signature, "hub.Layer"))
        verified = opened.verified
        self._init_info(verified)
        error = no_torch_graph(verified.manifest, "hub.Layer", signature)
        if error is not None:
            raise error
        self.signature = signature
        self._call = self._signature_call(signature)
        graph = build_graph(verified, signature)
        self.trainable = trainable
        for param in graph.parameters():
            param.requires_grad_(trainable)
        self.graph = graph
        self._graph_training = False  # exported in eval mode
        self.train(self.training)

    def _graph_args(self, *args: Any, **kwargs: Any) -> tuple[torch.Tensor, ...]:
        """The graph's inputs for a call's arguments: converted and checked, tensors kept as given."""
        call = self._call
        return tuple(torch_args(call, call.prepare(call.bind(args, kwargs))))

    def train(self, mode: bool = True) -> Layer:
        # An exported graph has its mode baked into the batch_norm/dropout
        # nodes (exported in eval mode), so switch those flags instead.
        self.training = mode
        effective = mode and self.trainable
        if effective != self._graph_training:
            _set_mode_flags(self.graph, effective)
            self._graph_training = effective
        return self

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """``layer(x)``, ``layer(a, b)`` or ``layer(a=..., b=...)``: one output as a tensor, several
        as a dict of tensors by output name (gradients flow through all of them)."""
        call = self._call
        return call.result(call.name_outputs(self.graph(*self._graph_args(*args, **kwargs))))

    def __repr__(self) -> str:
        # nn.Module's repr would list every node of the graph (hundreds of lines).
        return f"Layer(task={self.task!r}, trainable={self.trainable}, path={str(self.path)!r})"


def torch_graph_of(signature: str, what: str) -> Callable[[Manifest], set[str]]:
    """``needed`` for ``open_module``: the torch graph of ``signature``, or a clear error without one."""

    def needed(manifest: Manifest) -> set[str]:
        error = no_torch_graph(manifest, what, signature)
        if error is not None:
            raise error
        return {manifest.signature(signature).file(GRAPH_NAME)}

    return needed


def _set_mode_flags(graph: Any, training: bool) -> None:
    changed = False
    for node in graph.graph.nodes:
        flag = _MODE_FLAGS.get(node.target)
        if flag is None:
            continue
        position, name = flag
        if len(node.args) > position:
            args = list(node.args)
            args[position] = training
            node.args = tuple(args)
        else:
            node.kwargs = {**node.kwargs, name: training}
        changed = True
    if changed:
        graph.recompile()
