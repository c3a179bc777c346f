"""SavedModels of any signature through a modhub hub, run in the TensorFlow venv (not the main one).

``python tf_signatures.py WORK_DIR`` reads ``WORK_DIR/request.json``:

- ``{"mode": "make"}``: writes ``WORK_DIR/style``, a two-input SavedModel as users make them
  (``__call__(content, style)`` and the signatures ``serving_default`` and ``style_vector``),
  and what it computes on ``WORK_DIR/inputs.npz`` in ``WORK_DIR/made.npz``.
- ``{"mode": "use", "style": URL, "text": URL}``: the seeds' tensorflow_hub code on those URLs,
  unmodified but for them; outputs in ``WORK_DIR/outputs.npz``.

It imports neither modhub nor torch. Run with ``TF_USE_LEGACY_KERAS=1`` (tensorflow_hub's
instructions for TF 2.16+), so that ``tf.keras`` is the Keras ``hub.KerasLayer`` is made for.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf
import tensorflow_hub as hub


class StyleTransfer(tf.Module):
    """Magenta's call shape: (content, style) NHWC images in [0, 1] -> the stylised content."""

    def __init__(self) -> None:
        super().__init__()
        self.w = tf.Variable(tf.random.stateless_normal([3, 8], seed=[3, 4]), name="w")
        self.mix = tf.Variable(tf.random.stateless_normal([3, 3], seed=[5, 6]), name="mix")

    @tf.function(input_signature=[tf.TensorSpec([None, 4, 4, 3], tf.float32, name="style")])
    def style_vector(self, style: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"vector": tf.tanh(tf.reduce_mean(tf.einsum("bhwc,cd->bhwd", style, self.w), axis=[1, 2]))}

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, None, None, 3], tf.float32, name="content"),
            tf.TensorSpec([None, 4, 4, 3], tf.float32, name="style"),
        ]
    )
    def __call__(self, content: tf.Tensor, style: tf.Tensor) -> dict[str, tf.Tensor]:
        scale = self.style_vector(style)["vector"][:, None, None, :3]
        return {"stylized_image": tf.sigmoid(tf.einsum("bhwc,cd->bhwd", content, self.mix) * (1 + scale))}


def make(work: Path) -> None:
    module = StyleTransfer()
    tf.saved_model.save(
        module,
        str(work / "style"),
        signatures={"serving_default": module.__call__, "style_vector": module.style_vector},
    )
    inputs = np.load(work / "inputs.npz")
    content, style = tf.constant(inputs["content"]), tf.constant(inputs["style"])
    np.savez(
        work / "made.npz",
        stylized=module(content, style)["stylized_image"].numpy(),
        vector=module.style_vector(style)["vector"].numpy(),
    )


def use(work: Path, request: dict[str, str]) -> None:
    inputs = np.load(work / "inputs.npz")
    outputs: dict[str, np.ndarray] = {}

    # TF Hub's style-transfer pattern: hub_module(content_image, style_image)[0] (here by name).
    style_module = hub.load(request["style"])
    content, style = tf.constant(inputs["content"]), tf.constant(inputs["style"])
    outputs["called"] = style_module(content, style)["stylized_image"].numpy()
    serving = style_module.signatures["serving_default"]
    outputs["serving"] = serving(content=content, style=style)["stylized_image"].numpy()
    outputs["vector"] = style_module.signatures["style_vector"](style=style)["vector"].numpy()

    # The seed's text pattern, as written: a [batch, 1] string input into hub.KerasLayer(url).
    texts = [t.decode("utf-8") for t in inputs["texts"].tolist()]
    text_input = tf.keras.layers.Input(shape=(1,), dtype=tf.string)
    embedding = hub.KerasLayer(request["text"])(text_input)
    model = tf.keras.Model(text_input, embedding)
    outputs["column"] = model(tf.constant([[t] for t in texts])).numpy()
    # ... and the usual [batch] one.
    layer = hub.KerasLayer(request["text"], input_shape=[], dtype=tf.string)
    outputs["flat"] = layer(tf.constant(texts)).numpy()
    np.savez(work / "outputs.npz", **outputs)


def main(work: Path) -> None:
    request = json.loads((work / "request.json").read_text())
    if request["mode"] == "make":
        make(work)
    else:
        use(work, request)
    (work / "result.json").write_text(json.dumps({"done": request["mode"]}))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
