"""The seeds' tensorflow_hub patterns, run in the TensorFlow venv (not the main one).

``python tf_patterns.py WORK_DIR``: reads ``WORK_DIR/request.json`` (the hub URLs) and
``WORK_DIR/inputs.npz`` (photos NHWC, labels), writes ``WORK_DIR/result.json`` and
``WORK_DIR/outputs.npz``. The code below is what a TF Hub user writes; only the URLs
point at a modhub hub. It imports neither modhub nor torch.
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
import tf_keras


def weights_of(layer: tf_keras.layers.Layer) -> list[np.ndarray]:
    return [w.numpy().copy() for w in layer.weights]


def changed(before: list[np.ndarray], after: list[np.ndarray]) -> bool:
    return any(not np.array_equal(a, b) for a, b in zip(before, after, strict=True))


def main(work: Path) -> None:
    request = json.loads((work / "request.json").read_text())
    inputs = np.load(work / "inputs.npz")
    images = inputs["images"]
    labels = inputs["labels"]
    result: dict[str, object] = {}
    outputs: dict[str, np.ndarray] = {}

    # hub.load(url)(images): a classifier's logits.
    classifier = hub.load(request["classifier"])
    outputs["logits"] = classifier(images).numpy()
    result["classifier_variables"] = len(classifier.variables)

    # Frozen feature extractor + a new softmax head: only the head trains.
    tf_keras.utils.set_random_seed(0)
    frozen = hub.KerasLayer(request["features"], trainable=False)
    classes = len(set(labels.tolist()))
    model = tf_keras.Sequential([frozen, tf_keras.layers.Dense(classes, activation="softmax")])
    model.build([None, *images.shape[1:]])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    before, head_before = weights_of(frozen), weights_of(model.layers[1])
    history = model.fit(images, labels, epochs=2, batch_size=2, verbose=0)
    result["frozen"] = {
        "trainable_weights": len(frozen.trainable_weights),
        "backbone_changed": changed(before, weights_of(frozen)),
        "head_changed": changed(head_before, weights_of(model.layers[1])),
        "loss": [float(x) for x in history.history["loss"]],
    }
    outputs["features"] = frozen(images).numpy()

    # trainable=True fine-tunes the backbone itself.
    tf_keras.utils.set_random_seed(0)
    tuned = hub.KerasLayer(request["features"], trainable=True)
    model = tf_keras.Sequential([tuned, tf_keras.layers.Dense(classes, activation="softmax")])
    model.build([None, *images.shape[1:]])
    model.compile(optimizer=tf_keras.optimizers.SGD(0.01), loss="sparse_categorical_crossentropy")
    before = [w.numpy().copy() for w in tuned.trainable_weights]
    model.fit(images, labels, epochs=1, batch_size=2, verbose=0)
    result["trainable"] = {
        "trainable_weights": len(tuned.trainable_weights),
        "backbone_changed": changed(before, [w.numpy() for w in tuned.trainable_weights]),
    }

    # A text layer on strings.
    texts = [t.decode("utf-8") for t in inputs["texts"].tolist()]
    embed = hub.KerasLayer(request["text"], input_shape=[], dtype=tf.string)
    outputs["embeddings"] = embed(tf.constant(texts)).numpy()
    tf_keras.utils.set_random_seed(0)
    text_model = tf_keras.Sequential([embed, tf_keras.layers.Dense(1, activation="sigmoid")])
    text_model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    text_labels = np.array([i % 2 for i in range(len(texts))], dtype=np.float32)
    text_history = text_model.fit(tf.constant(texts), text_labels, epochs=2, verbose=0)
    result["text"] = {"loss": [float(x) for x in text_history.history["loss"]]}

    # A plain SavedModel someone published with `modhub publish DIR publisher/name --task ...`.
    if "published" in request:
        published = hub.load(request["published"])
        outputs["published"] = published.signatures["serving_default"](images=inputs["small"])[
            "features"
        ].numpy()

    np.savez(work / "outputs.npz", **outputs)
    (work / "result.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
