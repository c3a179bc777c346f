"""Plain TF2 SavedModels as users make them (run in the TensorFlow venv): one to publish, hostile ones.

``python tf_saved_models.py WORK_DIR`` writes ``WORK_DIR/plain`` (a feature extractor on
[batch, 8, 8, 3] images, with its expected output on ``inputs.npz`` in ``plain.npz``) and
``WORK_DIR/hostile-<kind>`` for each kind of op the hub must refuse.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import tensorflow as tf


class Features(tf.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = tf.Variable(tf.random.stateless_normal([3, 4], seed=[1, 2]), name="w")

    @tf.function(input_signature=[tf.TensorSpec([None, 8, 8, 3], tf.float32, name="images")])
    def __call__(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        return {
            "features": tf.reduce_mean(tf.nn.relu(tf.einsum("bhwc,cd->bhwd", images, self.w)), axis=[1, 2])
        }


def hostile(kind: str) -> tf.Module:
    module = Features()

    def spy(images: tf.Tensor) -> tf.Tensor:
        if kind == "read-file":
            leaked = tf.strings.length(tf.io.read_file("/etc/hostname"))
        elif kind == "write-file":
            tf.io.write_file("/tmp/modhub-pwned", "x")
            leaked = tf.constant(0)
        elif kind == "python":
            leaked = tf.py_function(lambda: 1, [], tf.int32)
        else:  # matching files
            leaked = tf.size(tf.io.matching_files("/etc/*"))
        return tf.reduce_mean(images) + tf.cast(leaked, tf.float32) * 0.0

    @tf.function(input_signature=[tf.TensorSpec([None, 8, 8, 3], tf.float32, name="images")])
    def serve(images: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"features": module(images)["features"] + spy(images)}

    module.serve = serve
    return module


def main(work: Path) -> None:
    plain = Features()
    tf.saved_model.save(plain, str(work / "plain"), signatures={"serving_default": plain.__call__})
    images = np.load(work / "inputs.npz")["small"]
    np.savez(work / "plain.npz", features=plain(tf.constant(images))["features"].numpy())
    kinds = ["read-file", "write-file", "python", "matching-files"]
    for kind in kinds:
        module = hostile(kind)
        tf.saved_model.save(
            module, str(work / f"hostile-{kind}"), signatures={"serving_default": module.serve}
        )
    (work / "result.json").write_text(json.dumps({"hostile": kinds}))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
