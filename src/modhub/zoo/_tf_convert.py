"""Rebuild a starter module in TensorFlow from its torch weights: a Reusable SavedModel and TFLite.

This file runs in the separate TensorFlow venv (``MODHUB_TF_PYTHON``), as a
script: ``python _tf_convert.py REQUEST_DIR``. It imports tensorflow and numpy
only, never modhub or torch. ``modhub.zoo.tf_formats`` writes the request
(``request.json``: the architecture; ``weights.npz``; ``inputs.npz``), runs
this, and compares the outputs it writes (``outputs.npz``) with the torch
module's. The network is written out here op by op (a ``tf.Module`` over the
same weights) rather than translated from ONNX, so that the SavedModel has
real variables, BatchNorm that follows ``training=``, and the attributes of TF
Hub's Reusable SavedModel API (``variables``, ``trainable_variables``,
``regularization_losses``) that ``hub.KerasLayer(..., trainable=True)`` needs.
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf

# torch's BatchNorm: running = (1 - m) * running + m * batch, with the unbiased batch variance.
BN_MOMENTUM = 0.1


class ConvBN(tf.Module):
    """Convolution (regular or depthwise) + BatchNorm + optional ReLU6, NHWC."""

    def __init__(self, spec: dict[str, Any], weights: Any) -> None:
        super().__init__(name=spec["name"].replace(".", "_"))
        name = spec["name"]
        self.kernel, self.stride = int(spec["kernel"]), int(spec["stride"])
        self.depthwise, self.act = bool(spec["depthwise"]), bool(spec["act"])
        self.tf_same, self.pad = bool(spec["tf_same"]), int(spec["pad"])
        self.eps = float(spec["eps"])
        w = weights[f"{name}.conv.weight"]  # torch: [out, in/groups, k, k]
        # tf: conv2d [k, k, in, out]; depthwise [k, k, channels, 1]
        kernel = w.transpose(2, 3, 0, 1) if self.depthwise else w.transpose(2, 3, 1, 0)
        self.w = tf.Variable(kernel, name="kernel")
        self.gamma = tf.Variable(weights[f"{name}.bn.weight"], name="gamma")
        self.beta = tf.Variable(weights[f"{name}.bn.bias"], name="beta")
        self.moving_mean = tf.Variable(weights[f"{name}.bn.running_mean"], trainable=False, name="mean")
        self.moving_var = tf.Variable(weights[f"{name}.bn.running_var"], trainable=False, name="var")

    def __call__(self, x: tf.Tensor, training: bool) -> tf.Tensor:
        if self.tf_same:
            padding = "SAME"
        else:
            p = self.pad
            x = tf.pad(x, [[0, 0], [p, p], [p, p], [0, 0]])
            padding = "VALID"
        strides = [1, self.stride, self.stride, 1]
        if self.depthwise:
            x = tf.nn.depthwise_conv2d(x, self.w, strides, padding)
        else:
            x = tf.nn.conv2d(x, self.w, strides, padding)
        if training:
            mean, var = tf.nn.moments(x, axes=[0, 1, 2])
            count = tf.cast(tf.reduce_prod(tf.shape(x)[:3]), tf.float32)
            unbiased = var * count / tf.maximum(count - 1.0, 1.0)
            self.moving_mean.assign((1 - BN_MOMENTUM) * self.moving_mean + BN_MOMENTUM * mean)
            self.moving_var.assign((1 - BN_MOMENTUM) * self.moving_var + BN_MOMENTUM * unbiased)
        else:
            mean, var = self.moving_mean, self.moving_var
        x = tf.nn.batch_normalization(x, mean, var, self.beta, self.gamma, self.eps)
        return tf.nn.relu6(x) if self.act else x


class Block(tf.Module):
    def __init__(self, spec: dict[str, Any], weights: Any) -> None:
        super().__init__()
        self.expand = ConvBN(spec["expand"], weights) if spec["expand"] else None
        self.depthwise = ConvBN(spec["depthwise"], weights)
        self.project = ConvBN(spec["project"], weights)
        self.residual = bool(spec["residual"])

    def __call__(self, x: tf.Tensor, training: bool) -> tf.Tensor:
        y = self.expand(x, training) if self.expand is not None else x
        y = self.project(self.depthwise(y, training), training)
        return x + y if self.residual else y


class ImageNet(tf.Module):
    """RGB in [0, 1], NHWC -> normalise -> CNN -> global average pool [-> linear]."""

    def __init__(self, request: dict[str, Any], weights: Any) -> None:
        super().__init__(name="image_module")
        self.mean = tf.constant(np.asarray(request["mean"], np.float32).reshape(1, 1, 1, 3))
        self.std = tf.constant(np.asarray(request["std"], np.float32).reshape(1, 1, 1, 3))
        self.stem = ConvBN(request["stem"], weights)
        self.blocks = [Block(b, weights) for b in request["blocks"]]
        self.head = ConvBN(request["head"], weights)
        if request["classifier"]:
            self.classifier_w = tf.Variable(weights["classifier.weight"].T, name="classifier_kernel")
            self.classifier_b = tf.Variable(weights["classifier.bias"], name="classifier_bias")

    def forward(self, images: tf.Tensor, training: bool) -> tf.Tensor:
        x = (images - self.mean) / self.std
        x = self.stem(x, training)
        for block in self.blocks:
            x = block(x, training)
        x = tf.reduce_mean(self.head(x, training), axis=[1, 2])
        if hasattr(self, "classifier_w"):
            x = tf.matmul(x, self.classifier_w) + self.classifier_b
        return x


# tokens: what GloVe's tokenizer.json (Rust regex) splits on, in RE2 syntax. RE2 has no
# look-ahead, so "don't" -> "do n't" happens first, in a separate replacement.
CLITIC_SPLIT = (r"(\pL)(n't)\b", r"\1 \2")


def re2_token_pattern(pattern: str) -> str:
    """Drop the look-ahead alternative (handled by CLITIC_SPLIT) from the tokenizer's pattern."""
    parts = pattern.split("|")
    kept = [p for p in parts if "(?=" not in p]
    return "|".join(kept)


class GloveNet(tf.Module):
    """Strings -> lowercase, split into GloVe tokens -> lookup -> mean of known words' vectors."""

    def __init__(self, request: dict[str, Any], weights: Any) -> None:
        super().__init__(name="text_module")
        words = Path(request["words_file"]).read_text(encoding="utf-8").split("\n")
        first = int(request["first_word_id"])
        keys = tf.constant(words, dtype=tf.string)
        values = tf.range(first, first + len(words), dtype=tf.int64)
        self.table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(keys, values), default_value=int(request["unk_id"])
        )
        self.embeddings = tf.Variable(weights["embeddings"], name="embeddings")
        self.first = first
        self.max_length = int(request["max_length"])
        self.pattern = re2_token_pattern(request["pattern"])

    def tokens(self, texts: tf.Tensor) -> tf.RaggedTensor:
        text = tf.strings.lower(texts, encoding="utf-8")
        text = tf.strings.regex_replace(text, *CLITIC_SPLIT)
        text = tf.strings.regex_replace(text, self.pattern, r" \0 ")
        return tf.strings.split(text)[:, : self.max_length]

    def forward(self, texts: tf.Tensor) -> tf.Tensor:
        ids = self.table.lookup(self.tokens(texts))
        flat = ids.flat_values
        known = tf.cast(flat >= self.first, tf.float32)
        rows = ids.value_rowids()
        batch = ids.nrows()
        vectors = tf.gather(self.embeddings, flat) * known[:, None]
        total = tf.math.unsorted_segment_sum(vectors, rows, batch)
        count = tf.math.unsorted_segment_sum(known, rows, batch)
        return total / tf.maximum(count, 1.0)[:, None]


def reusable(net: tf.Module, call: Any, serving: Any) -> tf.train.Checkpoint:
    """The saved root object: ``__call__`` plus the Reusable SavedModel attributes."""
    root = tf.train.Checkpoint()
    root.net = net
    root.__call__ = call
    root.variables = list(net.variables)
    root.trainable_variables = list(net.trainable_variables)
    root.regularization_losses = []
    root.serving = serving
    return root


def save_image(request: dict[str, Any], weights: Any, out: Path) -> tf.types.experimental.ConcreteFunction:
    net = ImageNet(request, weights)
    size = int(request["image_size"])
    spec = tf.TensorSpec([None, size, size, 3], tf.float32, name="images")
    output = request["output_name"]

    @tf.function
    def call(images: tf.Tensor, training: bool = False) -> tf.Tensor:
        return net.forward(images, training)

    @tf.function(input_signature=[spec])
    def serving(images: tf.Tensor) -> dict[str, tf.Tensor]:
        return {output: net.forward(images, False)}

    # Both traces are saved: hub.KerasLayer picks training=True while fitting.
    call.get_concrete_function(spec, training=False)
    call.get_concrete_function(spec, training=True)
    root = reusable(net, call, serving)
    tf.saved_model.save(root, str(out / "saved_model"), signatures={"serving_default": serving})
    return serving.get_concrete_function()


def save_text(request: dict[str, Any], weights: Any, out: Path) -> None:
    net = GloveNet(request, weights)
    spec = tf.TensorSpec([None], tf.string, name="texts")
    # A column of strings, [batch, 1]: what hub.KerasLayer(url) gets from
    # tf.keras.layers.Input(shape=(1,), dtype=tf.string) (a seed's pattern). TF Hub's own text
    # modules take only [batch]; this one takes both, squeezing the column.
    column = tf.TensorSpec([None, 1], tf.string, name="texts")
    output = request["output_name"]

    @tf.function
    def call(texts: tf.Tensor, training: bool = False) -> tf.Tensor:
        del training  # no dropout or batch statistics in a word-vector mean
        if texts.shape.rank == 2:
            texts = tf.squeeze(texts, axis=1)
        return net.forward(texts)

    @tf.function(input_signature=[spec])
    def serving(texts: tf.Tensor) -> dict[str, tf.Tensor]:
        return {output: net.forward(texts)}

    for traced in (spec, column):
        call.get_concrete_function(traced, training=False)
        call.get_concrete_function(traced, training=True)
    root = reusable(net, call, serving)
    root.table = net.table
    tf.saved_model.save(root, str(out / "saved_model"), signatures={"serving_default": serving})


def drop_fingerprint(saved_model: Path) -> None:
    """fingerprint.pb holds a random UUID per save; it is optional, and without it a build is
    byte-for-byte reproducible."""
    (saved_model / "fingerprint.pb").unlink(missing_ok=True)


def write_tflite(saved_model: Path, dest: Path) -> None:
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model), signature_keys=["serving_default"])
    dest.write_bytes(converter.convert())


def run_tflite(path: Path, images: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter is deprecated in favour of ai-edge-litert
        interpreter = tf.lite.Interpreter(model_path=str(path))
    runner = interpreter.get_signature_runner("serving_default")
    outs = [next(iter(runner(images=images[i : i + 1]).values())) for i in range(len(images))]
    return np.concatenate(outs)


def main(request_dir: Path) -> None:
    request = json.loads((request_dir / "request.json").read_text(encoding="utf-8"))
    weights = np.load(request_dir / "weights.npz")
    inputs = np.load(request_dir / "inputs.npz")
    out = request_dir / "out"
    out.mkdir()
    results: dict[str, np.ndarray] = {}
    if request["kind"] == "image":
        save_image(request, weights, out)
        drop_fingerprint(out / "saved_model")
        loaded = tf.saved_model.load(str(out / "saved_model"))
        results["saved_model"] = loaded(tf.constant(inputs["images"]), training=False).numpy()
        write_tflite(out / "saved_model", out / "model.tflite")
        results["tflite"] = run_tflite(out / "model.tflite", inputs["images"])
    elif request["kind"] == "text":
        save_text(request, weights, out)
        drop_fingerprint(out / "saved_model")
        loaded = tf.saved_model.load(str(out / "saved_model"))
        texts = [t.decode("utf-8") for t in inputs["texts"].tolist()]
        results["saved_model"] = loaded(tf.constant(texts)).numpy()
        results["saved_model_column"] = loaded(tf.constant(texts)[:, None]).numpy()
    else:
        raise SystemExit(f"unknown request kind {request['kind']!r}")
    np.savez(request_dir / "outputs.npz", **results)  # type: ignore[arg-type]


if __name__ == "__main__":
    main(Path(sys.argv[1]))
