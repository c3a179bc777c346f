"""``modhub publish SAVEDMODEL --tfjs``: the SavedModel converted to TF.js (``tfjs/``) in the
TensorFlow venv, listed in the manifest, and computing what the SavedModel computes when the
real ``@tensorflow/tfjs`` runs it in Node.js."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from modhub.exporting.savedmodel import wrap_saved_model
from modhub.format.manifest import read_manifest
from modhub.zoo._tfjs_format import node_tfjs, run_tfjs
from tests.harness import in_ci, serve_env

# A small dense layer saved by TensorFlow as users save models; its outputs on a fixed input.
MAKE_SAVED_MODEL = """
import sys
import numpy as np
import tensorflow as tf

class Dense(tf.Module):
    def __init__(self):
        rng = np.random.default_rng(0)
        self.w = tf.Variable(rng.standard_normal((6, 4)).astype(np.float32))
        self.b = tf.Variable(rng.standard_normal(4).astype(np.float32))

    @tf.function(input_signature=[tf.TensorSpec([None, 6], tf.float32, name="features")])
    def serve(self, features):
        return {"scores": tf.nn.relu(tf.matmul(features, self.w) + self.b)}

model = Dense()
tf.saved_model.save(model, sys.argv[1] + "/plain", signatures={"serving_default": model.serve})
x = np.linspace(-1, 1, 18, dtype=np.float32).reshape(3, 6)
np.save(sys.argv[1] + "/x.npy", x)
np.save(sys.argv[1] + "/y.npy", model.serve(tf.constant(x))["scores"].numpy())
"""


def _tf_python() -> str:
    configured = os.environ.get("MODHUB_TF_PYTHON")
    if not configured:
        if in_ci():
            pytest.fail("MODHUB_TF_PYTHON is not set; make test builds .venv-tf and sets it")
        pytest.skip("needs the TensorFlow venv: make venv-tf; MODHUB_TF_PYTHON=$PWD/.venv-tf/bin/python")
    return configured


@pytest.fixture(scope="module")
def tf_python() -> str:
    return _tf_python()


@pytest.fixture(scope="module")
def saved_model(tf_python: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("tfjs-sm")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "KERAS_BACKEND")}
    done = subprocess.run(
        [tf_python, "-c", MAKE_SAVED_MODEL, str(work)],
        capture_output=True,
        text=True,
        env={**env, "TF_CPP_MIN_LOG_LEVEL": "2"},
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return work


def test_wrap_with_tfjs_adds_a_checked_tfjs_format(saved_model: Path, tf_python: str, tmp_path: Path) -> None:
    module = wrap_saved_model(
        saved_model / "plain", tmp_path / "module", task="other", license="MIT", tfjs_python=tf_python
    )
    manifest = read_manifest(module)
    assert manifest.formats == ("savedmodel", "tfjs")
    paths = {entry.path for entry in manifest.files}
    assert {"tfjs/model.json", "tfjs/group1-shard1of1.bin"} <= paths
    runtime = node_tfjs()
    if runtime is None:
        if in_ci():
            pytest.fail("CI=true but no Node.js with node_modules/@tensorflow/tfjs (make web)")
        pytest.skip("no Node.js with node_modules/@tensorflow/tfjs (make web)")
    x, want = np.load(saved_model / "x.npy"), np.load(saved_model / "y.npy")
    got = run_tfjs(runtime, module / "tfjs", {"features": x}, tmp_path / "run")
    assert float(np.abs(got["scores"] - want).max()) <= 1e-5


def test_publish_tfjs_is_refused_where_it_cannot_apply(tmp_path: Path, image_module: Path) -> None:
    env = {**serve_env(), "MODHUB_ENDPOINT": "http://127.0.0.1:9", "MODHUB_TOKEN": "mh_x"}
    env.pop("MODHUB_TF_PYTHON", None)
    done = subprocess.run(
        [sys.executable, "-m", "modhub", "publish", str(image_module), "acme/tiny", "--tfjs"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2 and "--tfjs are for SavedModel directories" in done.stderr
