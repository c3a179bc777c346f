"""hub.load's runtimes: onnx without torch, equal outputs, the default, what is read and hashed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import modhub
import modhub as hub
from modhub.client.records import MemoryRecords
from modhub.format.verify import verify_module
from modhub.loading.opener import open_module
from modhub.settings import Settings
from tests.conftest import export_tiny_text
from tests.tiny_models import TinyTextEncoder

SENTENCES = ["the cat sat on the mat", "a dog", "red blue house tree car the a cat dog", "zzz", "The CAT"]


@pytest.fixture(scope="session")
def onnx_text_module(tiny_text_encoder: TinyTextEncoder, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_tiny_text(tiny_text_encoder, tmp_path_factory, "tiny-text-onnx", onnx=True)


ONNX_IN_FRESH_PROCESS = """
import json, sys
import numpy as np
import modhub as hub
image = hub.load(sys.argv[1], runtime="onnx")
text = hub.load(sys.argv[2], runtime="onnx")
default = hub.load(sys.argv[1])
images = np.load(sys.argv[3])
out = {
    "image": image(images).tolist(),
    "default": default(images).tolist(),
    "default_runtime": default.runtime,
    "text": text(json.loads(sys.argv[4])).tolist(),
    "types": [type(image(images)).__module__, type(text(["a cat"])).__module__],
    "labels": image.labels,
    "task": [image.task, text.task],
    "torch_loaded": sorted(m for m in sys.modules if m == "torch" or m.startswith("torch.")),
}
print(json.dumps(out))
"""


def test_onnx_runtime_does_not_import_torch_and_matches_torch(
    image_module: Path, onnx_text_module: Path, tmp_path: Path
) -> None:
    images = np.random.default_rng(0).random((7, 3, 32, 32), dtype=np.float32)
    np.save(tmp_path / "images.npy", images)
    # The modhub under test (this checkout), not whatever is installed.
    env = dict(os.environ, PYTHONPATH=str(Path(modhub.__file__).parents[1]))
    proc = subprocess.run(
        [sys.executable, "-c", ONNX_IN_FRESH_PROCESS, str(image_module), str(onnx_text_module),
         str(tmp_path / "images.npy"), json.dumps(SENTENCES)],
        capture_output=True, text=True, env=env, cwd=tmp_path, check=False, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.splitlines()[-1])
    assert out["torch_loaded"] == []
    assert out["types"] == ["numpy", "numpy"]
    assert out["default_runtime"] == "onnx"

    torch_image = hub.load(image_module, runtime="torch")
    torch_text = hub.load(onnx_text_module, runtime="torch")
    expected = torch_image(torch.from_numpy(images)).numpy()
    assert np.abs(np.array(out["image"]) - expected).max() <= 1e-4
    assert np.abs(np.array(out["default"]) - expected).max() <= 1e-4
    assert np.abs(np.array(out["text"]) - torch_text(SENTENCES).numpy()).max() <= 1e-4
    assert out["labels"] == torch_image.labels == ["ant", "bee", "cat", "dog", "eel"]
    assert out["task"] == [torch_image.task, torch_text.task]


def test_runtimes_share_manifest_labels_task(image_module: Path) -> None:
    on_onnx = hub.load(image_module, runtime="onnx")
    on_torch = hub.load(image_module, runtime="torch")
    assert (on_onnx.runtime, on_torch.runtime) == ("onnx", "torch")
    assert on_onnx.manifest == on_torch.manifest
    assert on_onnx.labels == on_torch.labels and on_onnx.task == on_torch.task == "image-classification"
    assert on_onnx.modality == "image" and on_onnx.path == on_torch.path
    assert "runtime='onnx'" in repr(on_onnx)


@pytest.mark.parametrize("batch", [1, 32])
def test_onnx_text_matches_torch_on_ragged_batches(onnx_text_module: Path, batch: int) -> None:
    texts = [SENTENCES[i % len(SENTENCES)] * (1 + i % 3) for i in range(batch)]
    got = hub.load(onnx_text_module, runtime="onnx")(texts)
    expected = hub.load(onnx_text_module, runtime="torch")(texts)
    assert isinstance(got, np.ndarray) and got.dtype == np.float32 and got.shape == tuple(expected.shape)
    assert np.abs(got - expected.numpy()).max() <= 1e-4


def test_onnx_runtime_takes_torch_tensors_and_returns_numpy(image_module: Path) -> None:
    images = torch.rand(3, 3, 32, 32)
    got = hub.load(image_module, runtime="onnx")(images)
    assert isinstance(got, np.ndarray)
    assert np.abs(got - hub.load(image_module, runtime="torch")(images).numpy()).max() <= 1e-4


def test_default_output_follows_the_input(image_module: Path, text_module: Path) -> None:
    default = hub.load(image_module)
    assert default.runtime == "onnx"  # the module has model.onnx
    images = torch.rand(2, 3, 32, 32)
    assert isinstance(default(images), torch.Tensor)
    assert isinstance(default(images.numpy()), np.ndarray)
    # No model.onnx: the torch graph runs, and the output type follows the same rule.
    text = hub.load(text_module)
    assert text.runtime == "torch"
    assert isinstance(text(["a cat"]), np.ndarray)


@pytest.mark.parametrize(
    ("images", "message"),
    [
        (np.random.rand(3, 32, 32).astype(np.float32), r"images\[None\]"),
        (np.random.rand(2, 32, 32, 3).astype(np.float32), "channels last"),
        (np.random.rand(2, 3, 32, 32), "got float64"),
        ([[1.0]], "is a list"),
    ],
    ids=["unbatched", "nhwc", "float64", "list"],
)
def test_onnx_runtime_refuses_bad_images_clearly(image_module: Path, images: object, message: str) -> None:
    with pytest.raises(hub.InputError, match=message):
        hub.load(image_module, runtime="onnx")(images)


def test_onnx_runtime_refuses_bad_texts(onnx_text_module: Path) -> None:
    with pytest.raises(hub.InputError, match="pass a list of strings"):
        hub.load(onnx_text_module, runtime="onnx")("one string")


def test_onnx_runtime_without_model_onnx_says_what_to_do(text_module: Path) -> None:
    with pytest.raises(hub.ManifestError, match=r"no file for runtime='onnx'.*onnx=True"):
        hub.load(text_module, runtime="onnx")


def test_unknown_runtime_is_refused(image_module: Path) -> None:
    with pytest.raises(hub.InputError, match=r"unknown runtime 'tensorflow'.*'onnx', 'torch'"):
        hub.load(image_module, runtime="tensorflow")


# ------------------------------------------------------- what a load reads and hashes


def _damage(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_each_runtime_hashes_only_the_files_it_reads(image_module: Path, tmp_path: Path) -> None:
    copy = shutil.copytree(image_module, tmp_path / "m")
    _damage(copy / "graph.pt2")
    # The onnx runtime never reads graph.pt2, so its damage does not stop it ...
    assert hub.load(copy, runtime="onnx")(np.zeros((1, 3, 32, 32), np.float32)).shape == (1, 5)
    # ... but the torch runtime refuses it.
    with pytest.raises(hub.IntegrityError, match=r"graph\.pt2"):
        hub.load(copy, runtime="torch")
    copy2 = shutil.copytree(image_module, tmp_path / "m2")
    _damage(copy2 / "model.onnx")
    with pytest.raises(hub.IntegrityError, match=r"model\.onnx"):
        hub.load(copy2, runtime="onnx")
    assert hub.load(copy2, runtime="torch").runtime == "torch"


class CountingRecords(MemoryRecords):
    """Process records that count how many files were hashed (marked after a hash)."""

    def __init__(self) -> None:
        super().__init__()
        self.hashed: list[str] = []

    def mark_verified(self, path: Path, entry, st) -> None:  # type: ignore[no-untyped-def]
        self.hashed.append(entry.path)
        super().mark_verified(path, entry, st)


def test_records_hash_a_file_once_until_it_changes(image_module: Path, tmp_path: Path) -> None:
    copy = shutil.copytree(image_module, tmp_path / "m")
    records = CountingRecords()
    verify_module(copy, needed={"model.onnx"}, records=records)
    assert sorted(records.hashed) == ["assets/labels.txt", "model.onnx"]
    records.hashed.clear()
    verify_module(copy, needed={"model.onnx"}, records=records)
    assert records.hashed == []
    # Other bytes of the same size, with the old mtime put back: ctime still changed,
    # so the record no longer matches and the damage is found.
    labels = copy / "assets/labels.txt"
    before = labels.stat()
    labels.write_bytes(labels.read_bytes().replace(b"cat", b"cow"))
    os.utime(labels, ns=(before.st_atime_ns, before.st_mtime_ns))
    with pytest.raises(hub.IntegrityError, match=r"labels\.txt"):
        verify_module(copy, needed={"model.onnx"}, records=records)


def test_local_directories_are_hashed_once_per_process(image_module: Path, tmp_path: Path) -> None:
    copy = shutil.copytree(image_module, tmp_path / "m")
    records = open_module(copy, settings=Settings.from_env(), needed=()).records
    assert isinstance(records, MemoryRecords)
    hub.load(copy, runtime="onnx")
    entry = hub.load(copy, runtime="onnx").manifest.file("model.onnx")
    assert records.is_verified(copy / "model.onnx", entry, (copy / "model.onnx").stat())


def test_model_onnx_swapped_during_a_load_has_no_effect(image_module: Path, tmp_path: Path) -> None:
    from modhub.format.manifest import read_manifest
    from modhub.format.verify import open_module_file

    copy = shutil.copytree(image_module, tmp_path / "m")
    entry = read_manifest(copy).file("model.onnx")
    original = (copy / "model.onnx").read_bytes()
    with open_module_file(copy, entry) as fd:
        # Someone renames other bytes over the path after the check ...
        (tmp_path / "evil").write_bytes(b"x" * entry.size)
        os.replace(tmp_path / "evil", copy / "model.onnx")
        # ... the engine reads the descriptor that was verified.
        assert Path(f"/proc/self/fd/{fd}").read_bytes() == original


def test_model_onnx_written_during_a_load_is_refused(image_module: Path, tmp_path: Path) -> None:
    from modhub.format.manifest import read_manifest
    from modhub.format.verify import open_module_file

    copy = shutil.copytree(image_module, tmp_path / "m")
    entry = read_manifest(copy).file("model.onnx")
    with (
        pytest.raises(hub.IntegrityError, match="modified while it was being loaded"),
        open_module_file(copy, entry),
        open(copy / "model.onnx", "r+b") as fh,
    ):
        fh.write(b"\0")


def _onnx_with_external_data(location: str) -> bytes:
    from onnx import TensorProto, helper

    weight = TensorProto(name="W", data_type=TensorProto.FLOAT, dims=[4], data_location=TensorProto.EXTERNAL)
    for key, value in (("location", location), ("offset", "0"), ("length", "16")):
        weight.external_data.add(key=key, value=value)
    graph = helper.make_graph(
        [helper.make_node("Add", ["images", "W"], ["logits"])],
        "g",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [4])],
        [weight],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]).SerializeToString()


@pytest.mark.parametrize("target", ["descriptor", "sibling"])
def test_onnx_external_data_cannot_read_other_files(image_module: Path, tmp_path: Path, target: str) -> None:
    """A hostile model.onnx naming "external data" (an open descriptor's number, a file beside it)."""
    from modhub.format.manifest import list_files, read_manifest, write_manifest

    copy = shutil.copytree(image_module, tmp_path / "m")
    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.arange(4, dtype=np.float32).tobytes())
    fd = os.open(secret, os.O_RDONLY)
    try:
        location = str(fd) if target == "descriptor" else "../secret.bin"
        (copy / "model.onnx").write_bytes(_onnx_with_external_data(location))
        manifest = read_manifest(copy)
        write_manifest(copy, manifest.model_copy(update={"files": list_files(copy)}))
        with pytest.raises(hub.UnsafeModuleError, match="external data"):
            hub.load(copy, runtime="onnx")
    finally:
        os.close(fd)


def test_onnx_runtime_takes_photos_like_the_torch_runtime(image_module: Path, tmp_path: Path) -> None:
    from PIL import Image

    rng = np.random.default_rng(1)
    photo = Image.fromarray(rng.integers(0, 255, (57, 81, 3), dtype=np.uint8))
    photo.save(tmp_path / "photo.png")
    grey = rng.integers(0, 255, (20, 40), dtype=np.uint8)
    inputs = [photo, tmp_path / "photo.png", (tmp_path / "photo.png").read_bytes(), grey]
    got = hub.load(image_module, runtime="onnx")(inputs)
    expected = hub.load(image_module, runtime="torch")(inputs)
    assert isinstance(got, np.ndarray) and got.shape == (4, 5)
    assert np.abs(got - expected.numpy()).max() <= 1e-4
    assert np.abs(got[0] - got[1]).max() == 0  # the same photo as an image, a path and bytes


def test_torch_weights_are_views_of_the_verified_buffer(image_module: Path) -> None:
    """One copy of the weights per load: the buffer graph.pt2 was read (and hashed) into."""
    import ctypes

    from modhub.graph import build_graph_module

    def inside(tensor: torch.Tensor, data: bytes) -> bool:
        start = ctypes.addressof(ctypes.c_char.from_buffer(data))  # type: ignore[arg-type]
        return start <= tensor.untyped_storage().data_ptr() < start + len(data)

    verified = verify_module(image_module, needed={"graph.pt2"})
    assert verified.graph is not None
    data = verified.files["graph.pt2"]
    copied = build_graph_module(verified.graph)
    assert not any(inside(p, data) for p in copied.parameters())
    taken = build_graph_module(verified.graph, take_buffer=True)
    assert all(inside(p, data) for p in taken.parameters())
    x = torch.rand(2, 3, 32, 32)
    assert torch.equal(copied(x), taken(x))


def test_default_falls_back_to_torch_without_onnxruntime(
    image_module: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modhub.runtimes import RUNTIMES

    monkeypatch.setattr(RUNTIMES["onnx"], "available", lambda: False)
    module = hub.load(image_module)
    assert module.runtime == "torch"
    assert isinstance(module(np.zeros((1, 3, 32, 32), np.float32)), np.ndarray)  # same output rule
    with pytest.raises(hub.MissingExtra, match=r"pip install 'modhub\[onnx\]'"):
        hub.load(image_module, runtime="onnx")
