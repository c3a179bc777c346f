"""The seeds' tensorflow_hub code, unmodified but for the URL, against a real modhub hub on loopback.

The client side runs in the separate TensorFlow venv (TF 2.21, tf-keras 2.21, tensorflow-hub
0.16.1; see tf_patterns.py); outputs are compared here with the torch modules on the same photos.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

import modhub
from tests.compat.conftest import run_tf
from tests.harness import LiveHub, admin_cli, running_hub, serve_env
from tests.zoo.conftest import photo

CLASSIFIER = "efficientnet-lite0-classification"
FEATURES = "mobilenet-v2-feature-vector"
TEXT = "glove-6b-50"
PHOTOS = ("chelsea", "coffee", "astronaut", "rocket")
TEXTS = ("A wonderful, moving film.", "I don't think it's any good...", "Dull and far too long.", "qwxz")
ATOL = 1e-4


@pytest.fixture(scope="module")
def tf_hub(
    zoo_dir: Path,
    tf_python: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[LiveHub, str]]:
    """A real hub seeded with three starter modules that carry SavedModels; yields (hub, token)."""
    root = tmp_path_factory.mktemp("tfhub")
    seed = root / "seed"
    seed.mkdir()
    for name in (CLASSIFIER, FEATURES, TEXT):
        assert (zoo_dir / name / "saved_model" / "saved_model.pb").is_file(), f"{name} has no SavedModel"
        (seed / name).symlink_to(zoo_dir / name)
    admin_cli(root / "data", str(seed), "--publisher", "modhub", command="seed")
    with running_hub(root / "data", token_for="acme") as live:
        yield live, live.token


def modhub_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modhub", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


def test_seed_patterns_and_published_savedmodel(
    tf_hub: tuple[LiveHub, str],
    tf_python: Path,
    zoo_dir: Path,
    tmp_path: Path,
) -> None:
    live, token = tf_hub
    work = tmp_path / "work"
    work.mkdir()
    nchw = torch.stack([photo(name, 224) for name in PHOTOS])
    small = np.random.default_rng(0).random((3, 8, 8, 3), dtype=np.float32)
    np.savez(
        work / "inputs.npz",
        images=nchw.permute(0, 2, 3, 1).contiguous().numpy(),
        labels=np.array([0, 1, 0, 1]),
        texts=np.array([t.encode() for t in TEXTS]),
        small=small,
    )

    # A plain SavedModel, and hostile ones, made with TensorFlow as users make them.
    made = run_tf(tf_python, "tf_saved_models.py", work)
    env = {**serve_env(), "MODHUB_ENDPOINT": live.url, "MODHUB_TOKEN": token}
    published = modhub_cli(
        "publish",
        str(work / "plain"),
        "acme/plain",
        "--task",
        "image-feature-vector",
        "--license",
        "MIT",
        env=env,
    )
    assert published.returncode == 0, published.stderr
    assert published.stdout.strip() == "acme/plain/1"
    shown = modhub_cli("show", "acme/plain/1", env={**env, "MODHUB_CACHE": str(tmp_path / "cache")})
    assert "signature_def['serving_default']:" in shown.stdout, shown.stderr
    assert "shape: (-1, 8, 8, 3)" in shown.stdout
    for kind in made["hostile"]:
        refused = modhub_cli(
            "publish",
            str(work / f"hostile-{kind}"),
            f"acme/{kind}",
            "--task",
            "image-feature-vector",
            "--license",
            "MIT",
            env=env,
        )
        assert refused.returncode == 1, (kind, refused.stdout)
        assert "SavedModel function" in refused.stderr and "op " in refused.stderr, refused.stderr

    # The seeds' code: URLs of this hub, one of them unversioned (the hub redirects to /1).
    base = f"{live.url}/modhub"
    urls = {
        "classifier": f"{base}/{CLASSIFIER}/1",
        "features": f"{base}/{FEATURES}",
        "text": f"{base}/{TEXT}/1",
        "published": f"{live.url}/acme/plain/1",
    }
    (work / "request.json").write_text(json.dumps(urls))
    result = run_tf(tf_python, "tf_patterns.py", work)
    outputs = np.load(work / "outputs.npz")

    classifier = modhub.load(zoo_dir / CLASSIFIER, runtime="torch")  # the reference: the torch graph
    features = modhub.load(zoo_dir / FEATURES, runtime="torch")  # the reference: the torch graph
    text = modhub.load(zoo_dir / TEXT, runtime="torch")  # the reference: the torch graph
    with torch.no_grad():
        logits = classifier(nchw).numpy()
        vectors = features(nchw).numpy()
    assert np.abs(outputs["logits"] - logits).max() <= ATOL
    assert outputs["logits"].argmax(1).tolist() == logits.argmax(1).tolist()
    assert np.abs(outputs["features"] - vectors).max() <= ATOL
    assert np.abs(outputs["embeddings"] - text(list(TEXTS)).detach().numpy()).max() <= ATOL
    assert np.abs(outputs["published"] - np.load(work / "plain.npz")["features"]).max() <= 1e-6

    frozen, tuned = result["frozen"], result["trainable"]
    assert frozen["trainable_weights"] == 0 and not frozen["backbone_changed"] and frozen["head_changed"]
    assert tuned["trainable_weights"] > 100 and tuned["backbone_changed"]
    assert all(np.isfinite(result["text"]["loss"]))
    assert result["classifier_variables"] > 0
