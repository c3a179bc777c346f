"""A CNN's model.onnx optimised for this machine: made once in a child process, verified, used in place."""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import modhub as hub
from modhub.cli import app
from modhub.client.cache import ModuleCache
from modhub.format.manifest import ONNX_DATA_NAME, ONNX_NAME
from modhub.runtimes import onnx_optimised
from modhub.settings import Settings


class WideCNN(torch.nn.Module):
    """Convolutions with ~2.5 MB of weights: above the size that gets an optimised copy."""

    def __init__(self) -> None:
        super().__init__()
        self.a = torch.nn.Conv2d(3, 64, 3, padding=1)
        self.b = torch.nn.Conv2d(64, 256, 3, padding=1)
        self.c = torch.nn.Conv2d(256, 256, 3, padding=1, groups=1)
        self.d = torch.nn.Conv2d(256, 256, 3, padding=1, groups=256)  # depthwise, as in MobileNets

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.a(x))
        x = torch.relu(self.b(x))
        x = self.d(torch.relu(self.c(x)))
        return x.mean(dim=(2, 3))


def _export(model: torch.nn.Module, out: Path) -> Path:
    example = torch.rand(2, 3, 16, 16)
    return hub.export(model.eval(), example, out, task="image-feature-vector", license="MIT", onnx=True)


@pytest.fixture(scope="module")
def wide_cnn(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    return _export(WideCNN(), tmp_path_factory.mktemp("modules") / "wide-cnn")


def _cache() -> ModuleCache:
    return ModuleCache(Settings.from_env().cache)


def _copies() -> list[Path]:
    onnx_dir = _cache().onnx
    return sorted(p for p in onnx_dir.iterdir()) if onnx_dir.is_dir() else []


def _images() -> np.ndarray:
    return np.random.default_rng(0).random((3, 3, 16, 16), dtype=np.float32)


def _matches_torch(module: hub.LoadedModule, root: Path) -> None:
    expected = hub.load(root, runtime="torch")(_images()).numpy()
    assert np.abs(module(_images()) - expected).max() <= 1e-4


def _flip(path: Path, index: int) -> bytes:
    """Flip one byte of a file in place (same size); returns the new contents."""
    data = bytearray(path.read_bytes())
    data[index] ^= 0xFF
    path.write_bytes(bytes(data))
    return bytes(data)


def _no_child(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Make any attempt to start the optimising child fail, and count the attempts."""
    calls: list[object] = []

    def refuse(*args: object, **kwargs: object) -> None:
        calls.append(args)
        raise OSError("no child in this test")

    monkeypatch.setattr(onnx_optimised.subprocess, "run", refuse)
    return calls


def _weights_inside_copy(module: hub.LoadedModule, copy: Path) -> None:
    """Every weight the session uses lies in one buffer holding the copy's model.onnx.data."""
    weights = module._weights  # type: ignore[attr-defined]
    size = (copy / ONNX_DATA_NAME).stat().st_size
    assert weights, "the copy's weights are shared with onnxruntime, not copied"
    buffers = set()
    for value in weights:
        array = value._numpy_obj
        assert value.data_ptr() == array.ctypes.data
        while isinstance(array.base, np.ndarray):
            array = array.base
        buffer = array.base.obj if isinstance(array.base, memoryview) else array.base
        buffers.add(id(buffer))
    assert len(buffers) == 1 and len(buffer) == size
    start = ctypes.addressof(ctypes.c_char.from_buffer(buffer))
    assert all(start <= value.data_ptr() < start + size for value in weights)
    assert bytes(buffer) == (copy / ONNX_DATA_NAME).read_bytes()


def test_a_cnn_is_optimised_once_and_then_loaded_from_its_copy(
    wide_cnn: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = hub.load(wide_cnn, runtime="onnx")
    [copy] = _copies()
    made = sorted(p.name for p in copy.iterdir())
    assert made == sorted([ONNX_NAME, ONNX_DATA_NAME, onnx_optimised.FILES_NAME])
    _matches_torch(first, wide_cnn)
    _weights_inside_copy(first, copy)
    assert not any(_cache().tmp.iterdir()), "nothing is left in the cache's tmp/"

    calls = _no_child(monkeypatch)
    again = hub.load(wide_cnn, runtime="onnx")
    assert calls == [], "the second load uses the copy: no child process"
    assert np.array_equal(again(_images()), first(_images()))
    _weights_inside_copy(again, copy)


class WideMLP(torch.nn.Module):
    """No convolutions, ~1.6 MB of weights: its fusions need the weights' values too."""

    def __init__(self) -> None:
        super().__init__()
        self.a = torch.nn.Linear(3 * 16 * 16, 512)
        self.norm = torch.nn.LayerNorm(512)
        self.b = torch.nn.Linear(512, 64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.a(x.flatten(1))
        return self.b(torch.nn.functional.gelu(self.norm(h) + h))


def test_graphs_without_convolutions_get_a_copy_too(tmp_path: Path) -> None:
    torch.manual_seed(0)
    mlp = _export(WideMLP(), tmp_path / "mlp")
    module = hub.load(mlp, runtime="onnx")
    [copy] = _copies()
    _weights_inside_copy(module, copy)
    _matches_torch(module, mlp)


def test_the_copy_is_the_same_graph_onnxruntime_optimises_in_process(wide_cnn: Path) -> None:
    from_copy = hub.load(wide_cnn, runtime="onnx")(_images())
    in_process = hub.load(wide_cnn, runtime="onnx", settings=Settings(cache=Path(os.devnull) / "x"))
    assert in_process._weights == ()  # type: ignore[attr-defined]  # no cache: onnxruntime copies
    assert np.abs(in_process(_images()) - from_copy).max() <= 1e-5


def test_a_damaged_copy_is_made_again(wide_cnn: Path) -> None:
    hub.load(wide_cnn, runtime="onnx")
    [copy] = _copies()
    damaged = _flip(copy / ONNX_DATA_NAME, (copy / ONNX_DATA_NAME).stat().st_size // 2)
    module = hub.load(wide_cnn, runtime="onnx")
    [remade] = _copies()
    assert (remade / ONNX_DATA_NAME).read_bytes() != damaged
    _matches_torch(module, wide_cnn)


def test_a_copy_serves_only_the_bytes_it_was_made_from(wide_cnn: Path, tmp_path: Path) -> None:
    hub.load(wide_cnn, runtime="onnx")
    torch.manual_seed(1)
    other = _export(WideCNN(), tmp_path / "other")
    module = hub.load(other, runtime="onnx")
    assert len(_copies()) == 2
    _matches_torch(module, other)


def test_without_a_copy_the_module_still_loads(wide_cnn: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _no_child(monkeypatch)
    module = hub.load(wide_cnn, runtime="onnx")
    assert len(calls) == 1 and _copies() == []
    assert not any(_cache().tmp.iterdir())
    _matches_torch(module, wide_cnn)


def test_a_failing_child_leaves_nothing_behind(wide_cnn: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(onnx_optimised, "_CHILD", "raise SystemExit(3)")
    module = hub.load(wide_cnn, runtime="onnx")
    assert _copies() == [] and not any(_cache().tmp.iterdir())
    assert module(_images()).shape == (3, 256)


def test_a_damaged_module_is_refused_before_any_copy_is_made(wide_cnn: Path, tmp_path: Path) -> None:
    import shutil

    damaged = shutil.copytree(wide_cnn, tmp_path / "m")
    _flip(damaged / ONNX_DATA_NAME, 100)
    with pytest.raises(hub.IntegrityError, match=r"model\.onnx\.data"):
        hub.load(damaged, runtime="onnx")
    assert _copies() == []


def test_cache_verify_and_rm_cover_the_copies(wide_cnn: Path) -> None:
    hub.load(wide_cnn, runtime="onnx")
    [copy] = _copies()
    runner = CliRunner()
    assert runner.invoke(app, ["cache", "verify"]).exit_code == 0
    _flip(copy / ONNX_NAME, -1)
    result = runner.invoke(app, ["cache", "verify"])
    assert result.exit_code == 1 and "optimised ONNX copy removed" in result.output
    assert _copies() == []
    hub.load(wide_cnn, runtime="onnx")
    assert len(_copies()) == 1
    result = runner.invoke(app, ["cache", "rm", "--all"])
    assert result.exit_code == 0, result.output
    assert _copies() == []


class WiderCNN(WideCNN):
    """WideCNN and one more convolution: over 1 MiB of weights even as int8."""

    def __init__(self) -> None:
        super().__init__()
        self.e = torch.nn.Conv2d(256, 512, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.a(x))
        x = torch.relu(self.b(x))
        x = torch.relu(self.c(x))
        return self.e(self.d(x)).mean(dim=(2, 3))


def test_an_int8_variant_gets_a_copy_of_its_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from modhub.exporting.quantize import Calibration, quantize_module

    torch.manual_seed(0)
    root = _export(WiderCNN(), tmp_path / "wider")
    photos = list(np.random.default_rng(0).integers(0, 256, size=(8, 16, 16, 3), dtype=np.uint8))
    quantize_module(root, calibration=Calibration(photos, "8 noise photos"), floor=-1.0)
    exact = hub.load(root, runtime="onnx")
    first = hub.load(root, precision="int8")
    copies = _copies()
    assert len(copies) == 2, "one copy for the exact graph, one for the variant"
    [variant_copy] = [c for c in copies if (c / ONNX_DATA_NAME).stat().st_size < 4 << 20]
    _weights_inside_copy(first, variant_copy)
    assert not np.array_equal(first(_images()), exact(_images()))

    calls = _no_child(monkeypatch)
    again = hub.load(root, precision="int8")
    assert calls == [], "the second int8 load uses the variant's copy"
    assert np.array_equal(again(_images()), first(_images()))
    monkeypatch.undo()
    in_process = hub.load(root, precision="int8", settings=Settings(cache=Path(os.devnull) / "x"))
    assert np.abs(in_process(_images()) - first(_images())).max() <= 1e-4
