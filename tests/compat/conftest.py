"""Fixtures for the real-client tests: the TensorFlow venv (MODHUB_TF_PYTHON), scripts run in it."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from modhub.exporting.tfjs import tf_subprocess_env
from tests.zoo.conftest import zoo_dir  # noqa: F401  (the built starter modules, shared)

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def tf_python() -> Path:
    """The python of the separate TensorFlow venv; CI (make test) always has one."""
    configured = os.environ.get("MODHUB_TF_PYTHON")
    if not configured:
        if os.environ.get("CI"):
            pytest.fail("MODHUB_TF_PYTHON is not set; make test builds .venv-tf and sets it")
        pytest.skip("needs the TensorFlow venv: make venv-tf; MODHUB_TF_PYTHON=$PWD/.venv-tf/bin/python")
    return Path(configured)


def run_tf(tf_python: Path, script: str, work: Path, timeout: float = 600, **env: str) -> dict[str, Any]:
    """Run ``tests/compat/<script>`` in the TF venv on ``work``; return its result.json."""
    clean = tf_subprocess_env()
    clean.update(TF_CPP_MIN_LOG_LEVEL="2", TFHUB_CACHE_DIR=str(work / "tfhub-cache"), **env)
    done = subprocess.run(
        [str(tf_python), "-P", str(HERE / script), str(work)],
        capture_output=True,
        text=True,
        env=clean,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"{script} failed:\n{done.stderr[-4000:]}"
    result: dict[str, Any] = json.loads((work / "result.json").read_text())
    return result
