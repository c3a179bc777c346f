"""KerasLayer: Keras 3 on the torch backend; frozen means frozen; models save and reload."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import modhub as hub
from modhub.errors import InputError

# Keras as modhub imports it: with the torch backend selected before its first import.
from modhub.loading.keras_layer import KerasLayer, keras

# Keras' predict() converts torch tensors with np.array(tensor); torch 2.13's
# Tensor.__array__ has no `copy` keyword, which NumPy 2 reports as a DeprecationWarning.
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)


def _data(n: int = 24) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.random((n, 32, 32, 3), dtype=np.float32), rng.integers(0, 3, n)


def _state(layer: KerasLayer) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in layer.module.state_dict().items()}


def _model(layer: KerasLayer) -> keras.Model:
    keras.utils.set_random_seed(0)
    model = keras.Sequential([layer, keras.layers.Dense(3, activation="softmax")])
    model.compile(
        optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    return model


def test_keras_runs_on_torch() -> None:
    assert keras.backend.backend() == "torch"


def test_frozen_layer_fits_without_changing_the_module(image_module: Path, tmp_path: Path) -> None:
    layer = KerasLayer(image_module)
    model = _model(layer)
    x, y = _data()
    before = _state(layer)
    model(x[:2])  # builds the Dense layer
    dense_before = model.layers[1].get_weights()[0].copy()
    history = model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    assert len(history.history["loss"]) == 2
    after = _state(layer)
    # Weights and BatchNorm statistics alike: a frozen layer runs in inference mode.
    assert any("running_mean" in k for k in after)
    for name, value in before.items():
        assert torch.equal(value, after[name]), name
    assert not np.array_equal(model.layers[1].get_weights()[0], dense_before)
    assert layer.trainable_weights == [] and len(layer.non_trainable_weights) > 0

    # Channels-last images give what the module gives on channels-first ones.
    expected = hub.load(image_module, runtime="torch")(torch.from_numpy(x[:4]).permute(0, 3, 1, 2))
    np.testing.assert_allclose(layer(x[:4]).detach().numpy(), expected.numpy(), atol=1e-5)

    path = tmp_path / "frozen.keras"
    model.save(path)
    reloaded = keras.models.load_model(path)
    assert isinstance(reloaded.layers[0], KerasLayer)
    np.testing.assert_allclose(reloaded.predict(x[:5], verbose=0), model.predict(x[:5], verbose=0), atol=1e-6)


def test_trainable_layer_trains_and_its_weights_are_saved(image_module: Path, tmp_path: Path) -> None:
    layer = KerasLayer(image_module, trainable=True)
    model = _model(layer)
    x, y = _data()
    before = _state(layer)
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    after = _state(layer)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert any(k.endswith("conv.weight") for k in changed)
    assert any(k.endswith("running_mean") for k in changed)  # BatchNorm trains too

    path = tmp_path / "tuned.keras"
    model.save(path)
    reloaded = keras.models.load_model(path)
    reloaded_state = reloaded.layers[0].module.state_dict()
    for name, value in after.items():
        assert torch.equal(value, reloaded_state[name]), name
    np.testing.assert_allclose(reloaded.predict(x[:5], verbose=0), model.predict(x[:5], verbose=0), atol=1e-6)


def test_freezing_after_construction(image_module: Path) -> None:
    layer = KerasLayer(image_module, trainable=True)
    layer.trainable = False
    model = _model(layer)
    before = _state(layer)
    model.fit(*_data(), epochs=1, batch_size=8, verbose=0)
    assert all(torch.equal(v, _state(layer)[k]) for k, v in before.items())


def test_text_module_as_keras_layer(text_module: Path) -> None:
    layer = KerasLayer(text_module)
    out = layer(["the cat sat", "a red car"])
    expected = hub.load(text_module, runtime="torch")(["the cat sat", "a red car"])
    np.testing.assert_allclose(out.detach().numpy(), expected.numpy(), atol=1e-6)
    assert layer.compute_output_shape((None,)) == (None, expected.shape[1])
    with pytest.raises(InputError, match="list or NumPy array of strings"):
        layer(torch.zeros(2, 3))


def test_config_round_trip(image_module: Path) -> None:
    layer = KerasLayer(image_module, name="backbone")
    config = layer.get_config()
    assert config["handle"] == str(image_module.resolve())
    assert config["trainable"] is False
    clone = KerasLayer.from_config(config)
    assert clone.name == "backbone" and clone.trainable is False
