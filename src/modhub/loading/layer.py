"""``hub.Layer``: a module as a ``torch.nn.Module`` layer of your own model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from modhub.errors import InputError
from modhub.format.manifest import GRAPH_NAME, Manifest
from modhub.loading.loader import RuntimeChoice
from modhub.loading.opener import Handle, OpenedModule, open_module
from modhub.runtimes import LoadedModule, ModuleInfo
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

    ``precision="int8"``: a frozen layer that runs the module's int8 variant (an
    ONNX graph, on onnxruntime) and returns torch tensors without gradients; only
    with ``trainable=False`` (an int8 graph has no weights to train). A module
    opened with a precision gives the same.
    """

    # The torch graph (a torch.fx.GraphModule); None when a precision's variant runs instead.
    graph: Any

    def __init__(
        self,
        handle: Handle | OpenedModule,
        trainable: bool = False,
        *,
        signature: str = "default",
        settings: Settings | None = None,
        precision: str | None = None,
    ) -> None:
        torch.nn.Module.__init__(self)
        if isinstance(handle, OpenedModule):
            precision = handle.precision
        if precision is not None and trainable:
            raise InputError(
                f"precision={precision!r} runs the module's {precision} variant, an ONNX graph that "
                "cannot be trained: use hub.Layer(handle, trainable=False, precision=...), or drop "
                "precision= to fine-tune the exact graph"
            )
        choice = RuntimeChoice("onnx", "torch", precision) if precision is not None else None
        if isinstance(handle, OpenedModule):
            opened = handle
        else:
            settings = settings if settings is not None else Settings.from_env()  # read once
            needed = choice if choice is not None else torch_graph_of(signature, "hub.Layer")
            opened = open_module(handle, settings=settings, needed=needed, precision=precision)
        verified = opened.verified
        self._init_info(verified)
        self.signature = signature
        self.trainable = trainable
        self.precision = precision
        # The variant's module (onnxruntime), when a precision runs; else the torch graph below.
        self._variant: LoadedModule | None = None
        if choice is not None:
            choice(verified.manifest)  # the runtime of the variant (a module opened elsewhere, too)
            self._variant = choice.build(opened)
            self._variant.signatures[signature]
            self.graph = None
            self._graph_training = False
            return
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
        if self.graph is None:
            return self  # a variant's graph: always in inference mode
        effective = mode and self.trainable
        if effective != self._graph_training:
            _set_mode_flags(self.graph, effective)
            self._graph_training = effective
        return self

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """``layer(x)``, ``layer(a, b)`` or ``layer(a=..., b=...)``: one output as a tensor, several
        as a dict of tensors by output name (gradients flow through all of them)."""
        if self._variant is not None:
            return self._variant.call_signature(self.signature, args, kwargs)
        call = self._call
        return call.result(call.name_outputs(self.graph(*self._graph_args(*args, **kwargs))))

    def __repr__(self) -> str:
        # nn.Module's repr would list every node of the graph (hundreds of lines).
        precision = "" if self.precision is None else f", precision={self.precision!r}"
        return f"Layer(task={self.task!r}, trainable={self.trainable}{precision}, path={str(self.path)!r})"


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
