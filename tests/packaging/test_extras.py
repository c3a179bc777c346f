"""``pip install modhub`` is the client: with torch (or the server) absent, what needs it says which
extra to install, in one line, and everything else works (issue 28, docs/install.md).

Each check runs in a fresh interpreter where a meta path finder hides the packages of an extra,
as if it were not installed: the package itself stays in .venv for the rest of the suite.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from modhub.errors import EXTRA_OF_PACKAGE, MissingExtra, missing_extra, not_installed
from tests.tiny_models import make_module

ROOT = Path(__file__).resolve().parents[2]

# Prepended to each child's code: every finder is asked through one that finds no hidden package,
# so `import torch` raises ModuleNotFoundError and find_spec("torch") is None, as on a machine
# where torch was never installed.
_HIDE = """
import sys
HIDDEN = set({hidden!r})
class _Hide:
    def __init__(self, finders):
        self.finders = finders
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in HIDDEN:
            return None
        for finder in self.finders:
            spec = finder.find_spec(name, path, target) if hasattr(finder, "find_spec") else None
            if spec is not None:
                return spec
        return None
    def invalidate_caches(self):
        for finder in self.finders:
            getattr(finder, "invalidate_caches", lambda: None)()
sys.meta_path[:] = [_Hide(list(sys.meta_path))]
"""


def run_without(hidden: set[str], code: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``code`` in a fresh interpreter where the packages ``hidden`` are not installed."""
    program = _HIDE.format(hidden=sorted(hidden)) + textwrap.dedent(code)
    return subprocess.run(
        [sys.executable, "-c", program, *args], capture_output=True, text=True, cwd=ROOT, timeout=120
    )


@pytest.fixture(scope="module")
def onnx_module(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_module("image-feature-vector", tmp_path_factory.mktemp("extras") / "cnn", onnx=True)


def test_import_modhub_imports_no_torch() -> None:
    done = run_without(
        set(),
        "import sys, modhub; print(sorted(m for m in ('torch', 'keras', 'fastapi') if m in sys.modules))",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_onnx_module_loads_and_runs_without_torch(onnx_module: Path) -> None:
    done = run_without(
        {"torch", "keras", "fastapi"},
        """
        import sys, numpy as np, modhub as hub
        module = hub.load(sys.argv[1])
        out = module(np.zeros((2, 3, 32, 32), np.float32))
        print(type(out).__name__, out.shape, "torch" in sys.modules)
        """,
        str(onnx_module),
    )
    assert done.returncode == 0, done.stderr
    kind, *_, torch_imported = done.stdout.split()
    assert (kind, torch_imported) == ("ndarray", "False"), done.stdout


# Each public entry that needs torch, and the expression that reaches it.
TORCH_ENTRIES = {
    "runtime=torch": "hub.load(sys.argv[1], runtime='torch')",
    "Layer": "hub.Layer",
    "KerasLayer": "hub.KerasLayer",
    "export": "hub.export",
    "retrain": "__import__('modhub.retrain')",
}


@pytest.mark.parametrize("entry", TORCH_ENTRIES)
def test_torch_entries_say_which_extra(entry: str, onnx_module: Path) -> None:
    done = run_without(
        {"torch"},
        f"""
        import sys, modhub as hub
        try:
            {TORCH_ENTRIES[entry]}
        except hub.MissingExtra as exc:
            print(json.dumps([str(exc), exc.extra, isinstance(exc, ImportError)]))
        """.replace("import sys,", "import json, sys,"),
        str(onnx_module),
    )
    assert done.returncode == 0, done.stderr
    message, extra, is_import_error = json.loads(done.stdout)
    assert extra == "torch" and is_import_error
    assert "\n" not in message and message.endswith("pip install 'modhub[torch]'"), message


def test_torch_only_module_without_torch_says_install_torch(tmp_path: Path) -> None:
    module = make_module("image-feature-vector", tmp_path / "pt2")  # graph.pt2, no model.onnx
    done = run_without(
        {"torch"},
        """
        import sys, modhub as hub
        try:
            hub.load(sys.argv[1])
        except hub.MissingExtra as exc:
            print(exc)
        """,
        str(module),
    )
    assert done.returncode == 0, done.stderr
    assert (
        done.stdout.strip()
        == "this module (graph.pt2) needs torch, which is not installed: pip install 'modhub[torch]'"
    )


@pytest.mark.parametrize(
    ("hidden", "argv", "extra"),
    [
        ({"fastapi", "uvicorn"}, ["serve", "--port", "1"], "server"),
        ({"torch"}, ["retrain", "images", "photos", "--module", "x/y/1", "--out", "out"], "torch"),
    ],
)
def test_cli_without_an_extra_is_one_line(
    hidden: set[str], argv: list[str], extra: str, tmp_path: Path
) -> None:
    (tmp_path / "photos").mkdir()
    done = run_without(hidden, "from modhub.cli import app; app()", *argv)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().endswith(f"pip install 'modhub[{extra}]'"), done.stderr


def test_missing_extra_only_for_packages_of_an_extra() -> None:
    assert missing_extra(ModuleNotFoundError("No module named 'nothing'", name="nothing"), "x") is None
    # A package that is installed but fails to import is another problem: not "install an extra".
    assert missing_extra(ImportError("cannot import name 'x' from 'torch'", name="torch"), "x") is None
    error = missing_extra(ModuleNotFoundError("No module named 'fastapi'", name="fastapi"), "the hub")
    assert isinstance(error, MissingExtra) and error.extra == "server"
    assert str(not_installed("torch", "hub.Layer")) == (
        "hub.Layer needs torch, which is not installed: pip install 'modhub[torch]'"
    )


def test_every_extra_named_is_in_pyproject() -> None:
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert set(EXTRA_OF_PACKAGE.values()) <= set(extras)
