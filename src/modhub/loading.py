"""Load a module: ``load`` for calling it, ``Layer`` for using it inside a model.

Nothing from the module reaches torch before ``verify_module`` has checked the
manifest, the sha256 of the files a load uses, the task contract and the
graph's safety; the graph, labels and tokenizer are then built from the very
bytes that were checked (each file is read once).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from modhub.format.manifest import GRAPH_NAME, Manifest
from modhub.format.tasks import get_contract, parse_labels
from modhub.format.verify import VerifiedModule, verify_module
from modhub.preprocessing import TextEncoder, check_images
from modhub.settings import Settings

__all__ = ["Layer", "LoadedModule", "load"]

Handle = str | os.PathLike[str]

# Nodes whose behaviour depends on train/eval mode, with the position and name of that flag.
_MODE_FLAGS: dict[Any, tuple[int, str]] = {
    torch.ops.aten.batch_norm.default: (5, "training"),
    torch.ops.aten.dropout.default: (2, "train"),
    torch.ops.aten.feature_dropout.default: (2, "train"),
    torch.ops.aten.alpha_dropout.default: (2, "train"),
    torch.ops.aten.feature_alpha_dropout.default: (2, "train"),
}


def _module_dir(handle: Handle, settings: Settings | None) -> Path:
    from modhub.handles import is_local

    if is_local(handle):
        return Path(handle).expanduser()
    from modhub.client.resolve import resolve

    return resolve(handle, settings=settings)


def _verified(module_dir: Path, settings: Settings | None) -> tuple[VerifiedModule, torch.fx.GraphModule]:
    """Verify the module, then build its graph (with weights of its own) from the checked bytes."""
    from modhub.graph import build_graph_module

    verified = verify_module(module_dir, needed=(GRAPH_NAME,), trusted_keys=trusted_keys(settings))
    assert verified.graph is not None  # the graph was among the needed files
    return verified, build_graph_module(verified.graph)


def trusted_keys(settings: Settings | None) -> list[Path] | None:
    """The public keys a module must be signed by (``MODHUB_TRUSTED_KEYS``), or None."""
    settings = settings if settings is not None else Settings.from_env()
    if settings.trusted_keys is None:
        return None
    from modhub.signing import load_trusted_keys

    return load_trusted_keys(settings.trusted_keys)


class _ModuleBase:
    """What ``load`` and ``Layer`` share: the manifest, preprocessing and labels."""

    manifest: Manifest
    path: Path

    def _init_common(self, verified: VerifiedModule) -> None:
        manifest = verified.manifest
        self.path = verified.root
        self.manifest = manifest
        self.task = manifest.task
        # Fingerprint of the trusted key that signed the module (None without MODHUB_TRUSTED_KEYS).
        self.signed_by = verified.signed_by
        # "image" or "text": what a call takes.
        self.modality = get_contract(manifest.task).modality
        tok = manifest.preprocessing.tokenizer
        self._encoder = TextEncoder(tok, verified.files[tok.file]) if tok is not None else None
        self.labels: list[str] | None = (
            parse_labels(verified.files[manifest.labels], manifest.labels) if manifest.labels else None
        )

    def _graph_args(self, inputs: Any) -> tuple[torch.Tensor, ...]:
        if self._encoder is not None:
            return self._encoder(inputs)
        return (check_images(inputs, self.manifest),)


class LoadedModule(_ModuleBase):
    """A module ready to call: ``module(images)`` or ``module(["some text"])``.

    Calls run in inference mode (no autograd); use ``Layer`` to train through it.
    Attributes: ``manifest``, ``task``, ``labels`` (classification), ``path``.
    """

    def __init__(self, verified: VerifiedModule, graph: torch.fx.GraphModule) -> None:
        self._init_common(verified)
        self._graph = graph.eval()

    def __call__(self, inputs: Any) -> torch.Tensor:
        args = self._graph_args(inputs)
        with torch.inference_mode():
            return self._graph(*args)

    def __repr__(self) -> str:
        return f"LoadedModule(task={self.task!r}, path={str(self.path)!r})"


def load(handle: Handle, *, settings: Settings | None = None) -> LoadedModule:
    """Load a module by handle (``publisher/name/version``), URL, or local directory.

    The module runs without the code that defined it; files are verified
    against the manifest and the graph is checked for safety before torch reads it.
    """
    verified, graph = _verified(_module_dir(handle, settings), settings)
    return LoadedModule(verified, graph)


class Layer(_ModuleBase, torch.nn.Module):
    """A module as a ``torch.nn.Module`` layer of your own model.

    ``trainable=False`` (default): the weights are frozen and BatchNorm/dropout
    stay in inference mode, whatever ``.train()`` says; the layer is a fixed
    feature extractor. ``trainable=True``: weights receive gradients and
    ``.train()``/``.eval()`` switch BatchNorm and dropout as eager PyTorch does.
    Every Layer has its own copy of the weights.
    """

    def __init__(
        self,
        handle: Handle,
        trainable: bool = False,
        *,
        settings: Settings | None = None,
    ) -> None:
        torch.nn.Module.__init__(self)
        verified, graph = _verified(_module_dir(handle, settings), settings)
        self._init_common(verified)
        self.trainable = trainable
        for param in graph.parameters():
            param.requires_grad_(trainable)
        self.graph = graph
        self._graph_training = False  # exported in eval mode
        self.train(self.training)

    def train(self, mode: bool = True) -> Layer:
        # An exported graph has its mode baked into the batch_norm/dropout
        # nodes (exported in eval mode), so switch those flags instead.
        self.training = mode
        effective = mode and self.trainable
        if effective != self._graph_training:
            _set_mode_flags(self.graph, effective)
            self._graph_training = effective
        return self

    def forward(self, inputs: Any) -> torch.Tensor:
        return self.graph(*self._graph_args(inputs))

    def __repr__(self) -> str:
        # nn.Module's repr would list every node of the graph (hundreds of lines).
        return f"Layer(task={self.task!r}, trainable={self.trainable}, path={str(self.path)!r})"


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
