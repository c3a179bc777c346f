"""model.onnx with its weights in model.onnx.data: read and hashed once, used in place, nothing else read."""

from __future__ import annotations

import ctypes
import functools
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import modhub as hub
from modhub.format.manifest import ONNX_DATA_NAME, ONNX_NAME, list_files, read_manifest, write_manifest
from modhub.format.onnx_graph import _SCHEMA, plan_weights
from tests.conftest import export_tiny_text
from tests.tiny_models import TinyTextEncoder


@pytest.fixture(scope="session")
def onnx_text(tiny_text_encoder: TinyTextEncoder, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_tiny_text(tiny_text_encoder, tmp_path_factory, "tiny-text-weights", onnx=True)


def _relist(root: Path) -> None:
    write_manifest(root, read_manifest(root).model_copy(update={"files": list_files(root)}))


def _external(model: onnx.ModelProto) -> list[TensorProto]:
    return [t for t in model.graph.initializer if t.data_location == TensorProto.EXTERNAL]


def test_export_writes_weights_to_model_onnx_data(image_module: Path, onnx_text: Path) -> None:
    for root in (image_module, onnx_text):
        listed = {entry.path for entry in read_manifest(root).files}
        assert {ONNX_NAME, ONNX_DATA_NAME} <= listed
        model = onnx.load(str(root / ONNX_NAME), load_external_data=False)
        external = _external(model)
        assert external, "the weights are external"
        data_size = (root / ONNX_DATA_NAME).stat().st_size
        for tensor in external:
            info = {e.key: e.value for e in tensor.external_data}
            assert info["location"] == ONNX_DATA_NAME
            assert int(info["offset"]) % 64 == 0 and int(info["offset"]) + int(info["length"]) <= data_size
        # Only small tensors (shapes, axes) stay inside the graph.
        assert all(len(t.raw_data) < 256 for t in model.graph.initializer if t.HasField("raw_data"))


def test_transformer_weights_are_views_of_the_verified_buffer(onnx_text: Path) -> None:
    module = hub.load(onnx_text, runtime="onnx")
    assert module._weights, "a graph without convolutions shares its weights"
    # Every shared weight lies inside one buffer (model.onnx.data, read once), in the file's order.
    pointers = sorted(value.data_ptr() for value in module._weights)
    size = (onnx_text / ONNX_DATA_NAME).stat().st_size
    assert pointers[-1] - pointers[0] < size
    owners = set()
    for value in module._weights:
        array = value._numpy_obj  # what the OrtValue was made from, and uses in place
        assert value.data_ptr() == array.ctypes.data
        while isinstance(array.base, np.ndarray):
            array = array.base
        owners.add(id(array.base))
        buffer = array.base
    if isinstance(buffer, memoryview):
        buffer = buffer.obj
    assert len(owners) == 1 and isinstance(buffer, bytearray) and len(buffer) == size
    start = ctypes.addressof(ctypes.c_char.from_buffer(buffer))
    assert all(start <= p < start + size for p in pointers)
    texts = ["the cat sat on the mat", "a dog"]
    torch_out = hub.load(onnx_text, runtime="torch")(texts).numpy()
    assert np.abs(module(texts) - torch_out).max() <= 1e-4


def test_convolution_graphs_get_weights_onnxruntime_copies(image_module: Path) -> None:
    # onnxruntime's layout optimisation rewrites convolution weights: it owns its copies.
    graph = (image_module / ONNX_NAME).read_bytes()
    plan = plan_weights(graph, (image_module / ONNX_DATA_NAME).stat().st_size, path=image_module)
    assert plan.tensors and not plan.shared
    assert hub.load(image_module, runtime="onnx")._weights == ()


def test_damaged_model_onnx_data_stops_only_the_onnx_runtime(onnx_text: Path, tmp_path: Path) -> None:
    copy = shutil.copytree(onnx_text, tmp_path / "m")
    data = bytearray((copy / ONNX_DATA_NAME).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / ONNX_DATA_NAME).write_bytes(bytes(data))
    with pytest.raises(hub.IntegrityError, match=r"model\.onnx\.data"):
        hub.load(copy, runtime="onnx")
    assert hub.load(copy, runtime="torch").runtime == "torch"


def test_modules_with_weights_inside_model_onnx_still_load(image_module: Path, tmp_path: Path) -> None:
    """Modules exported before model.onnx.data: one model.onnx holding everything."""
    copy = shutil.copytree(image_module, tmp_path / "m")
    model = onnx.load(str(copy / ONNX_NAME))  # external data read back in
    (copy / ONNX_DATA_NAME).unlink()
    onnx.save_model(model, str(copy / ONNX_NAME))
    _relist(copy)
    assert ONNX_DATA_NAME not in {e.path for e in read_manifest(copy).files}
    images = np.random.default_rng(0).random((2, 3, 32, 32), dtype=np.float32)
    got = hub.load(copy, runtime="onnx")(images)
    assert np.abs(got - hub.load(image_module, runtime="onnx")(images)).max() == 0


# ------------------------------------------------- hostile model.onnx in the new layout

Edit = Callable[[onnx.ModelProto, TensorProto, Path], None]


def _set(tensor: TensorProto, **values: str) -> None:
    info = {e.key: e.value for e in tensor.external_data}
    info.update(values)
    del tensor.external_data[:]
    for key, value in info.items():
        tensor.external_data.add(key=key, value=value)


def _constant_attribute(model: onnx.ModelProto, tensor: TensorProto, secret: Path) -> None:
    value = TensorProto(name="c", data_type=TensorProto.FLOAT, dims=[4], data_location=TensorProto.EXTERNAL)
    _set(value, location=ONNX_DATA_NAME, offset="0", length="16")
    node = helper.make_node("Constant", [], ["unused_constant"], value=value)
    model.graph.node.insert(0, node)


def _subgraph(model: onnx.ModelProto, tensor: TensorProto, secret: Path) -> None:
    inner = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[4], data_location=TensorProto.EXTERNAL)
    _set(inner, location=ONNX_DATA_NAME, offset="0", length="16")
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])
    branch = helper.make_graph([helper.make_node("Identity", ["w"], ["y"])], "b", [], [out], [inner])
    cond = helper.make_tensor("cond", TensorProto.BOOL, [], [True])
    model.graph.initializer.append(cond)
    model.graph.node.insert(
        0, helper.make_node("If", ["cond"], ["unused_if"], then_branch=branch, else_branch=branch)
    )


HOSTILE: dict[str, tuple[Edit, str]] = {
    "unlisted file": (lambda m, t, s: _set(t, location="other.bin"), "only model.onnx.data"),
    "parent directory": (lambda m, t, s: _set(t, location=f"../{s.name}"), "only model.onnx.data"),
    "absolute path": (lambda m, t, s: _set(t, location=str(s)), "only model.onnx.data"),
    "open descriptor": (lambda m, t, s: _set(t, location="/proc/self/fd/0"), "only model.onnx.data"),
    "no location": (lambda m, t, s: t.external_data.pop(0), "no location"),
    "offset past the end": (lambda m, t, s: _set(t, offset=str(1 << 40)), "not within"),
    "length past the end": (lambda m, t, s: _set(t, length=str(1 << 40)), "not within"),
    "negative offset": (lambda m, t, s: _set(t, offset="-4"), "not within"),
    "no length": (lambda m, t, s: _set(t, length=""), "not within"),
    "length unlike its shape": (lambda m, t, s: _set(t, length="4"), "external data has 4 bytes"),
    "unknown key": (lambda m, t, s: _set(t, basepath="/"), "external data key"),
    "node attribute": (_constant_attribute, "a node attribute"),
    "subgraph": (_subgraph, "a subgraph"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
@pytest.mark.parametrize("which", ["text", "image"])
def test_hostile_external_data_is_refused_before_onnxruntime_reads_it(
    case: str, which: str, onnx_text: Path, image_module: Path, tmp_path: Path
) -> None:
    source = onnx_text if which == "text" else image_module
    copy = shutil.copytree(source, tmp_path / "m")
    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.arange(1 << 16, dtype=np.float32).tobytes())
    model = onnx.load(str(copy / ONNX_NAME), load_external_data=False)
    tensor = max(_external(model), key=lambda t: int({e.key: e.value for e in t.external_data}["length"]))
    edit, message = HOSTILE[case]
    edit(model, tensor, secret)
    (copy / ONNX_NAME).write_bytes(model.SerializeToString())
    _relist(copy)
    before = os.stat(secret).st_atime_ns
    with pytest.raises(hub.UnsafeModuleError, match=message) as caught:
        hub.load(copy, runtime="onnx")
    assert "re-export the module" in str(caught.value)
    assert os.stat(secret).st_atime_ns == before


def test_schema_field_numbers_are_onnx_s() -> None:
    """The subset modhub parses has onnx.proto's field numbers and types."""
    from onnx import onnx_ml_pb2

    for message, fields in _SCHEMA:
        real = functools.reduce(getattr, message.split("_"), onnx_ml_pb2).DESCRIPTOR  # Outer_Inner
        for name, number, kind, _label, type_name in fields:
            field = real.fields_by_name[name]
            assert field.number == number, (message, name)
            expected = 5 if field.type == 14 else field.type  # enums are read as int32
            assert expected == kind, (message, name)
            if type_name:
                assert field.message_type.name == type_name.split("_")[-1]
