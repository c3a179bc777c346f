"""The wheel works (issue 28): ``python -m build`` makes an sdist and a wheel (built from the
sdist, so both are complete); the wheel, installed in a fresh venv and run from outside the
repository, loads an onnx module with no torch installed; with ``[server]`` added to the same
venv, ``modhub serve`` + ``modhub publish`` + ``hub.load`` make a round trip, so templates, static
files and the migrations are inside the wheel.

One venv for both steps. Packages come from the index through pip's cache (the first run on a
machine downloads onnxruntime and the server's packages; later runs take about a minute).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.tiny_models import make_module

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "modhub"


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 600) -> str:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(cmd)}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def _clean_env(tmp: Path) -> dict[str, str]:
    """The environment of a user outside the repository: no MODHUB_*, no PYTHONPATH, own cache."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODHUB_") and k != "PYTHONPATH"}
    env["MODHUB_CACHE"] = str(tmp / "cache")
    return env


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The sdist and the wheel built from it (no isolation: .venv has setuptools, and it is fast)."""
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT)], cwd=out)
    (wheel,) = out.glob("modhub-*.whl")
    (sdist,) = out.glob("modhub-*.tar.gz")
    return {"wheel": wheel, "sdist": sdist}


@pytest.fixture(scope="module")
def venv(dists: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh venv with the wheel installed (the client: no torch), shared by the tests below."""
    where = tmp_path_factory.mktemp("venv")
    _run([sys.executable, "-m", "venv", str(where / "venv")], cwd=where)
    python = where / "venv" / "bin" / "python"
    _run([str(python), "-m", "pip", "install", "--progress-bar", "off", str(dists["wheel"])], cwd=where)
    yield python


def test_wheel_holds_every_package_file(dists: dict[str, Path]) -> None:
    """Every file of src/modhub that is not bytecode is in the wheel: templates, static JS/CSS,
    the alembic migrations (directories without __init__.py), py.typed."""
    expected = {
        "modhub/" + path.relative_to(PACKAGE).as_posix()
        for path in PACKAGE.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }
    with zipfile.ZipFile(dists["wheel"]) as wheel:
        names = set(wheel.namelist())
        metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
        requires = [
            line for line in wheel.read(metadata).decode().splitlines() if line.startswith("Requires-Dist:")
        ]
    assert sorted(expected - names) == []
    core = [line for line in requires if "extra ==" not in line]
    assert not any("torch" in line or "fastapi" in line for line in core), core


def test_client_loads_an_onnx_module_without_torch(venv: Path, tmp_path: Path) -> None:
    module = make_module("image-feature-vector", tmp_path / "cnn", onnx=True)
    out = _run(
        [
            str(venv),
            "-c",
            "import importlib.util, sys, numpy as np, modhub as hub\n"
            "assert importlib.util.find_spec('torch') is None, 'torch is installed'\n"
            "module = hub.load(sys.argv[1])\n"
            "print(hub.__file__)\n"
            "print(module(np.zeros((2, 3, 32, 32), np.float32)).shape)\n"
            "try:\n"
            "    hub.Layer\n"
            "except hub.MissingExtra as exc:\n"
            "    print(exc)\n",
            str(module),
        ],
        cwd=tmp_path,
        env=_clean_env(tmp_path),
    )
    where, shape, layer = out.splitlines()
    assert Path(where).is_relative_to(venv.parent.parent), where  # the wheel's copy, not src/
    assert shape == "(2, 5)"
    assert layer.endswith("pip install 'modhub[torch]'")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_server_extra_serves_publishes_and_loads(venv: Path, dists: dict[str, Path], tmp_path: Path) -> None:
    _run(
        [str(venv), "-m", "pip", "install", "--progress-bar", "off", f"{dists['wheel']}[server]"],
        cwd=tmp_path,
    )
    # An ONNX-only module: a hub without the torch extra checks model.onnx and refuses graph.pt2
    # (safety_unavailable: checking a torch graph needs torch), as docs/install.md says.
    from modhub.exporting.onnx_wrap import wrap_onnx

    exported = make_module("image-feature-vector", tmp_path / "cnn", onnx=True)
    module = wrap_onnx(exported / "model.onnx", tmp_path / "onnx-only", task="other", license="Apache-2.0")
    bin_dir = venv.parent
    env = _clean_env(tmp_path)
    data = tmp_path / "hub"
    token = _run(
        [str(bin_dir / "modhub"), "admin", "create-token", "--data-dir", str(data), "--publisher", "wheel"],
        cwd=tmp_path,
        env=env,
    ).strip()
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [str(bin_dir / "modhub"), "serve", "--port", str(port), "--data-dir", str(data)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for _ in range(600):  # up to a minute on a busy machine; not a timed assertion
            if server.poll() is not None:
                pytest.fail(f"modhub serve exited: {server.stderr.read() if server.stderr else ''}")
            try:
                if httpx.get(f"{endpoint}/api/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        client_env = {**env, "MODHUB_ENDPOINT": endpoint, "MODHUB_TOKEN": token}
        _run([str(bin_dir / "modhub"), "publish", str(module), "wheel/cnn"], cwd=tmp_path, env=client_env)
        out = _run(
            [
                str(venv),
                "-c",
                "import numpy as np, modhub as hub\n"
                "print(hub.load('wheel/cnn/1')(np.zeros((1, 3, 32, 32), np.float32)).shape)",
            ],
            cwd=tmp_path,
            env=client_env,
        )
        assert out.strip() == "(1, 5)"
        page = httpx.get(f"{endpoint}/wheel/cnn/1", headers={"Accept": "text/html"}, timeout=30)
        assert page.status_code == 200 and "<html" in page.text.lower()
        static = {line.split('"')[0] for line in page.text.split('src="')[1:] if line.startswith("/static")}
        for path in static:  # the page's scripts are served from the wheel's static files
            assert httpx.get(endpoint + path, timeout=30).status_code == 200, path
    finally:
        server.terminate()
        server.communicate(timeout=30)  # waits, and closes the stderr pipe
