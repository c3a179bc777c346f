"""Manifests evolve without breaking clients (issue 28, docs/module-format.md "How manifests
evolve"): the client of the previous release, installed from git into a fresh venv, loads a
module written today that carries a field it has never seen, and still verifies every file.

The previous release is OLD_CLIENT_REF, or else the newest ``v*`` tag that is an ancestor of
HEAD; with no such tag (before the first release) the test is skipped. The old client is
installed with ``--no-deps`` plus its own core dependencies minus torch: it loads model.onnx.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.tiny_models import make_module

ROOT = Path(__file__).resolve().parents[2]
# The release whose client must read today's modules; None: the newest v* tag before HEAD.
OLD_CLIENT_REF: str | None = None


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout


def old_client_ref() -> str | None:
    if OLD_CLIENT_REF is not None:
        return OLD_CLIENT_REF
    tags = _git("tag", "--merged", "HEAD", "--list", "v*", "--sort=-v:refname").split()
    return tags[0] if tags else None


def _core_dependencies(ref: str) -> list[str]:
    """The old release's own dependencies (pyproject.toml at ``ref``), torch left out."""
    project = tomllib.loads(_git("show", f"{ref}:pyproject.toml"))["project"]
    return [dep for dep in project["dependencies"] if not re.match(r"torch\b", dep)]


@pytest.fixture(scope="module")
def old_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ref = old_client_ref()
    if ref is None:
        pytest.skip("no v* release tag before HEAD yet: nothing older to test against")
    commit = _git("rev-parse", f"{ref}^{{commit}}").strip()  # pip checks out a commit, not "HEAD"
    where = tmp_path_factory.mktemp("old-client")
    subprocess.run([sys.executable, "-m", "venv", str(where / "venv")], check=True)
    python = where / "venv" / "bin" / "python"
    pip = [str(python), "-m", "pip", "install", "--progress-bar", "off"]
    for args in (_core_dependencies(ref), ["--no-deps", f"git+file://{ROOT}@{commit}"]):
        done = subprocess.run([*pip, *args], capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr[-3000:]
    return python


def _load(python: Path, module: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    code = (
        "import sys, numpy as np, modhub as hub\n"
        "out = hub.load(sys.argv[1], runtime='onnx')(np.zeros((1, 3, 32, 32), np.float32))\n"
        "print(hub.__version__, out.shape)\n"
    )
    return subprocess.run(
        [str(python), "-c", code, str(module)], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def test_old_client_ignores_a_new_optional_field_and_verifies_files(old_python: Path, tmp_path: Path) -> None:
    module = make_module("image-feature-vector", tmp_path / "new", onnx=True)
    manifest_path = module / "modhub.json"
    manifest = json.loads(manifest_path.read_text())
    # What a future release may add: a top-level field and one inside a known object.
    manifest["provenance"] = {"pipeline": "2027 exporter", "steps": 3}
    manifest["metadata"]["citation"] = "a field no release reads yet"
    manifest_path.write_text(json.dumps(manifest, indent=2))

    done = _load(old_python, module, tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-2:] == ["(1,", "5)"]

    # Ignoring a field never skips a digest: a changed weight file is still refused.
    tampered = tmp_path / "tampered"
    shutil.copytree(module, tampered)
    data = tampered / "model.onnx.data"
    data.write_bytes(bytes([data.read_bytes()[0] ^ 1]) + data.read_bytes()[1:])
    done = _load(old_python, tampered, tmp_path)
    assert done.returncode != 0
    assert "IntegrityError" in done.stderr, done.stderr[-2000:]


def test_old_client_loads_a_module_with_an_int8_variant(old_python: Path, tmp_path: Path) -> None:
    from modhub.exporting.quantize import quantize_module

    module = make_module("image-feature-vector", tmp_path / "with-variant", onnx=True)
    quantize_module(module, method="dynamic")
    assert (module / "int8" / "model.onnx").is_file()
    # The old release ignores "variants", verifies the variant's files like any other, runs the exact graph.
    done = _load(old_python, module, tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-2:] == ["(1,", "5)"]
