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
    import keras
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError("hub.KerasLayer needs Keras 3: pip install 'modhub[keras]'") from exc

if keras.backend.backend() != "torch":
    raise ImportError(
        f"hub.KerasLayer needs Keras' torch backend, but Keras runs on {keras.backend.backend()!r}. "
        "Set KERAS_BACKEND=torch before keras is first imported (or import modhub.KerasLayer first)."
    )

import numpy as np
import torch

from modhub.errors import InputError
from modhub.format.manifest import GRAPH_NAME
from modhub.loading.layer import Layer
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
        settings: Settings | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(trainable=trainable, **kwargs)
        settings = settings if settings is not None else Settings.from_env()  # read once
        opened = open_module(handle, settings=settings, needed={GRAPH_NAME})
        # A local directory is stored absolute so a saved model reloads from any working directory.
        self.handle = str(opened.path.resolve()) if opened.local else str(handle)
        module = Layer(opened, trainable=trainable)
        self._modality = module.modality
        signature = module.manifest.default_signature
        self._output_size = int(signature.outputs[0].shape[1])
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

    def call(self, inputs: Any, training: bool | None = None) -> torch.Tensor:
        module = self.module
        # Keras' trainable flag is the source of truth (it can change after construction).
        module.trainable = self.trainable
        module.train(bool(training) and self.trainable)
        if self._modality == "text":
            return module(_texts(inputs))
        images = keras.ops.convert_to_tensor(inputs)
        if images.dim() == 4 and keras.config.image_data_format() == "channels_last":
            images = images.permute(0, 3, 1, 2)
        return module(images)

    def compute_output_shape(self, input_shape: Sequence[int | None]) -> tuple[int | None, int]:
        return (input_shape[0] if input_shape else None, self._output_size)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "handle": self.handle}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> KerasLayer:
        return cls(**config)


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
