"""SavedModels of any signature, published to a real hub and loaded back by unmodified
tensorflow_hub (in the TensorFlow venv): a two-input style transfer with a second signature,
and modhub's own text SavedModel on a [batch, 1] string column (a seed's Keras pattern)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np

from modhub.zoo._text import FIRST_WORD_ID, GLOVE_TOKEN_PATTERN
from modhub.zoo.tf_formats import SAVED_MODEL_ATOL, _run
from tests.compat.conftest import run_tf
from tests.harness import API, running_hub, serve_env

TEXTS = ("the cat sat", "a dog", "qwxz blorp", "")
WORDS = ("the", "cat", "sat", "a", "dog")


def _publish(url: str, token: str, source: Path, repo: str, task: str) -> None:
    env = {**serve_env(), "MODHUB_ENDPOINT": url, "MODHUB_TOKEN": token}
    cmd = [sys.executable, "-m", "modhub", "publish", str(source), repo, "--task", task, "--license", "MIT"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, check=False)
    assert done.returncode == 0, done.stderr


def _text_saved_model(tf_python: Path, work: Path) -> tuple[Path, np.ndarray]:
    """modhub's text SavedModel (zoo/_tf_convert.py, as the GloVe module gets it) on a tiny vocabulary."""
    work.mkdir()
    (work / "words.txt").write_text("\n".join(WORDS), encoding="utf-8")
    request = {
        "kind": "text",
        "output_name": "embeddings",
        "words_file": str(work / "words.txt"),
        "first_word_id": FIRST_WORD_ID,
        "unk_id": 1,
        "max_length": 16,
        "pattern": GLOVE_TOKEN_PATTERN,
    }
    table = np.random.default_rng(0).normal(size=(FIRST_WORD_ID + len(WORDS), 6)).astype(np.float32)
    texts = np.array([t.encode() for t in TEXTS])
    got = _run(tf_python, request, {"embeddings": table}, {"texts": texts}, work)
    # The converter's own check: the [batch, 1] column gives what [batch] gives.
    assert got["saved_model_column"].shape == (len(TEXTS), 6)
    assert np.abs(got["saved_model_column"] - got["saved_model"]).max() <= SAVED_MODEL_ATOL
    return work / "out" / "saved_model", got["saved_model"]


def test_savedmodels_of_any_signature_load_back_through_tensorflow_hub(
    tf_python: Path, tmp_path: Path
) -> None:
    rng = np.random.default_rng(1)
    work = tmp_path / "work"
    work.mkdir()
    np.savez(
        work / "inputs.npz",
        content=rng.random((2, 6, 5, 3), dtype=np.float32),
        style=rng.random((2, 4, 4, 3), dtype=np.float32),
        texts=np.array([t.encode() for t in TEXTS]),
    )
    (work / "request.json").write_text(json.dumps({"mode": "make"}))
    run_tf(tf_python, "tf_signatures.py", work)
    made = np.load(work / "made.npz")
    text_model, embeddings = _text_saved_model(tf_python, tmp_path / "text")

    with running_hub(tmp_path / "data", token_for="acme") as live:
        # Task "other": a SavedModel's SignatureDefs say dtypes and shapes but not that a tensor
        # holds images, which the image-style-transfer contract asks of both inputs.
        _publish(live.url, live.token, work / "style", "acme/style", "other")
        _publish(live.url, live.token, text_model, "acme/words", "text-embedding")
        # The hub's API carries every signature of the SavedModel.
        detail = httpx.get(f"{live.url}{API}/modules/acme/style/versions/1").json()
        assert list(detail["signatures"]) == ["default", "style_vector"]
        assert [i["name"] for i in detail["signatures"]["default"]["inputs"]] == ["content", "style"]

        request = {"mode": "use", "style": f"{live.url}/acme/style/1", "text": f"{live.url}/acme/words/1"}
        (work / "request.json").write_text(json.dumps(request))
        run_tf(tf_python, "tf_signatures.py", work, TF_USE_LEGACY_KERAS="1")
    got = np.load(work / "outputs.npz")
    for key in ("called", "serving"):
        assert np.abs(got[key] - made["stylized"]).max() <= 1e-6, key
    assert np.abs(got["vector"] - made["vector"]).max() <= 1e-6
    assert got["column"].shape == got["flat"].shape == (len(TEXTS), 6)
    assert np.abs(got["column"] - embeddings).max() <= 1e-6
    assert np.abs(got["flat"] - embeddings).max() <= 1e-6
