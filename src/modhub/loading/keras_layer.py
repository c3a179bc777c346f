"""``hub.KerasLayer``: a module as a Keras 3 layer (torch backend), like ``tensorflow_hub.KerasLayer``.

    import modhub as hub
    import keras

    model = keras.Sequential([
        hub.KerasLayer("modhub/mobilenet-v2-feature-vector/1", trainable=False),
        keras.layers.Dense(5, activation="softmax"),
    ])

Keras runs on the torch backend here (modhub modules are torch programs). If
keras has not been imported yet and ``KERAS_BACKEND`` is unset, importing this
module selects the torch backend; otherwise it must already be torch.

Images follow Keras' ``image_data_format`` (channels last by default:
[batch, H, W, 3], RGB in [0, 1]); text modules take a list or NumPy array of
strings when the layer is called directly (Keras' torch backend has no string
tensors, so ``fit`` on raw text is not possible: embed the texts first with
``hub.load``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any, cast

if "keras" not in sys.modules:
    # Keras picks its backend once, on first import; modhub modules need torch.
    os.environ.setdefault("KERAS_BACKEND", "torch")

try:
    # Keras runs on torch here (KERAS_BACKEND above): either missing is a MissingExtra.
    import keras
    import torch
except ImportError as exc:  # pragma: no cover - depends on the installation
    from modhub.errors import missing_extra

    raise (missing_extra(exc, "hub.KerasLayer") or exc) from None

if keras.backend.backend() != "torch":
    raise ImportError(
        f"hub.KerasLayer needs Keras' torch backend, but Keras runs on {keras.backend.backend()!r}. "
        "Set KERAS_BACKEND=torch before keras is first imported (or import modhub.KerasLayer first)."
    )

import numpy as np

from modhub.errors import InputError
from modhub.loading.layer import Layer, torch_graph_of
from modhub.loading.opener import open_module
from modhub.settings import Settings

__all__ = ["KerasLayer"]


@keras.saving.register_keras_serializable(package="modhub")
class KerasLayer(keras.layers.Layer):
    """A modhub module as a Keras layer.

    ``trainable=False`` (default): the module's weights are frozen and its
    BatchNorm/dropout run in inference mode, whatever ``training`` says: a fixed
    feature extractor. ``trainable=True``: the weights are trained by
    ``model.fit`` and BatchNorm uses batch statistics while training. Setting
    ``layer.trainable`` later works as for any Keras layer (recompile after).

    Saving a model (``model.save("m.keras")``) stores the handle and the
    module's current weights; ``keras.models.load_model`` loads the module again
    by its handle (verified as ``hub.load`` does) and restores the weights.
    """

    def __init__(
        self,
        handle: str | os.PathLike[str],
        trainable: bool = False,
        *,
        signature: str = "default",
        output_key: str | None = None,
        settings: Settings | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(trainable=trainable, **kwargs)
        settings = settings if settings is not None else Settings.from_env()  # read once
        opened = open_module(handle, settings=settings, needed=torch_graph_of(signature, "hub.KerasLayer"))
        # A local directory is stored absolute so a saved model reloads from any working directory.
        self.handle = str(opened.path.resolve()) if opened.local else str(handle)
        module = Layer(opened, trainable=trainable, signature=signature)
        self._modality = module.modality if signature == "default" else "tensor"
        self.signature = signature
        spec = module.manifest.signature(signature)
        self._inputs = spec.inputs
        self._outputs = spec.outputs
        names = [out.name for out in spec.outputs]
        if output_key is not None and output_key not in names:
            raise InputError(
                f"output_key {output_key!r} is not an output of {signature!r}; its outputs: {names}"
            )
        self.output_key = output_key
        # Keras wraps a torch.nn.Module attribute in a TorchModuleWrapper, which
        # tracks its parameters as Keras variables and saves its state_dict
        # (BatchNorm statistics included) with the model.
        self.wrapped = module

    @property
    def module(self) -> Layer:
        """The underlying ``hub.Layer`` (a torch.nn.Module)."""
        return cast(Layer, self.wrapped.module)

    def __call__(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        if self._modality == "text" and isinstance(inputs, (list, tuple, np.ndarray)):
            # Keras accepts only tensors as layer inputs, and its torch backend has no
            # string tensors: a text layer called on strings runs eagerly.
            return self.call(inputs, training=kwargs.get("training"))
        return super().__call__(inputs, *args, **kwargs)

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        """One input: a tensor. Several: a list in the signature's order, or a dict by input name.
        One output: a tensor; several: a dict by output name (or the one ``output_key`` names)."""
        module = self.module
        # Keras' trainable flag is the source of truth (it can change after construction).
        module.trainable = self.trainable
        module.train(bool(training) and self.trainable)
        if self._modality == "text":
            return module(_texts(inputs))
        if len(self._inputs) == 1:
            result = module(self._tensor(self._inputs[0], inputs))
        elif isinstance(inputs, dict):
            result = module(
                **{name: self._tensor(self._input(name), value) for name, value in inputs.items()}
            )
        elif isinstance(inputs, (list, tuple)):
            result = module(*(self._tensor(spec, v) for spec, v in zip(self._inputs, inputs, strict=False)))
        else:
            names = ", ".join(spec.name for spec in self._inputs)
            raise InputError(f"this layer takes {len(self._inputs)} inputs ({names}): pass a list or a dict")
        if self.output_key is not None and isinstance(result, dict):
            return result[self.output_key]
        return result

    def _input(self, name: str) -> Any:
        for spec in self._inputs:
            if spec.name == name:
                return spec
        return None  # the module's own check names what is wrong

    def _tensor(self, spec: Any, value: Any) -> torch.Tensor:
        tensor = keras.ops.convert_to_tensor(value)
        # The original image tasks take NCHW; Keras images are channels last by default.
        if (
            spec is not None
            and self._modality == "image"
            and spec.layout == "NCHW"
            and tensor.dim() == 4
            and keras.config.image_data_format() == "channels_last"
        ):
            tensor = tensor.permute(0, 3, 1, 2)
        return tensor

    def compute_output_shape(self, input_shape: Any) -> Any:
        batch = _batch_of(input_shape)
        shapes = {spec.name: _keras_shape(spec.shape, batch) for spec in self._outputs}
        if self.output_key is not None:
            return shapes[self.output_key]
        return next(iter(shapes.values())) if len(shapes) == 1 else shapes

    def get_config(self) -> dict[str, Any]:
        config = {**super().get_config(), "handle": self.handle}
        if self.signature != "default":
            config["signature"] = self.signature
        if self.output_key is not None:
            config["output_key"] = self.output_key
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> KerasLayer:
        return cls(**config)


def _batch_of(input_shape: Any) -> int | None:
    """The batch size of a (possibly nested) Keras input shape, None when unknown."""
    while isinstance(input_shape, dict):
        input_shape = next(iter(input_shape.values()), None)
    while (
        isinstance(input_shape, (list, tuple)) and input_shape and isinstance(input_shape[0], (list, tuple))
    ):
        input_shape = input_shape[0]
    if isinstance(input_shape, (list, tuple)) and input_shape:
        first = input_shape[0]
        return first if isinstance(first, int) else None
    return None


def _keras_shape(shape: Sequence[int | str], batch: int | None) -> tuple[int | None, ...]:
    """A TensorSpec shape for Keras: the first named dimension is the batch, other names unknown."""
    out: list[int | None] = []
    for axis, dim in enumerate(shape):
        if isinstance(dim, int):
            out.append(dim)
        else:
            out.append(batch if axis == 0 else None)
    return tuple(out)


def _texts(inputs: Any) -> list[str]:
    if isinstance(inputs, np.ndarray):
        inputs = inputs.reshape(-1).tolist()
    if isinstance(inputs, (list, tuple)):
        return [t.decode("utf-8") if isinstance(t, bytes) else t for t in inputs]
    raise InputError(
        f"a text module's KerasLayer takes a list or NumPy array of strings, got {type(inputs).__name__}. "
        "Keras' torch backend has no string tensors: to train on text, compute embeddings with "
        "hub.load(handle)(texts) and fit on those."
    )
