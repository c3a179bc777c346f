"""The ONNX allow-list, its bounds and the SavedModel bounds on real graphs (hostile: test_onnx_corpus)."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import modhub as hub
from modhub.format.manifest import ONNX_DATA_NAME, ONNX_NAME
from modhub.format.onnx_bounds import OnnxLimits
from modhub.format.onnx_graph import plan_weights
from modhub.format.onnx_ops import allowed_op, render_markdown
from modhub.format.savedmodel import check_saved_model_bounds
from tests.format.corpus import rehash

DOCS = Path(__file__).parents[2] / "docs" / "security.md"


def test_the_docs_list_the_table() -> None:
    text = DOCS.read_text()
    block = re.search(r"<!-- onnx-operators:begin[^>]*-->\n(.*?)\n<!-- onnx-operators:end -->", text, re.S)
    assert block is not None
    assert block.group(1) == render_markdown(), "run python -m modhub.format.onnx_ops and paste its output"


def test_lookup_is_by_domain_op_and_opset() -> None:
    assert allowed_op("", "Conv", 18) is not None
    assert allowed_op("ai.onnx", "Conv", 23) is not None
    assert allowed_op("", "Conv", 7) is None, "opsets outside the range are refused"
    assert allowed_op("ai.onnx.ml", "Normalizer", 3) is None
    assert allowed_op("com.microsoft", "FusedConv", 1) is None, "onnxruntime's ops: optimised copies only"
    assert allowed_op("com.microsoft", "FusedConv", 1, optimised=True) is not None
    assert allowed_op("com.microsoft", "Inverse", 1, optimised=True) is None


def _graph(nodes: list[onnx.NodeProto], inits: list[TensorProto], opset: int = 18, **kw: object) -> bytes:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
    outs = [helper.make_tensor_value_info(n.output[0], TensorProto.FLOAT, None) for n in nodes[-1:]]
    model = helper.make_model(
        helper.make_graph(nodes, "g", [x], outs, inits), opset_imports=[helper.make_opsetid("", opset)], **kw
    )
    return model.SerializeToString()


def test_a_refused_operator_is_named_with_how_to_propose_it(tmp_path: Path) -> None:
    graph = _graph([helper.make_node("Det", ["x"], ["y"])], [])
    with pytest.raises(hub.UnsafeModuleError) as caught:
        plan_weights(graph, None, path=tmp_path / ONNX_NAME)
    message = str(caught.value)
    assert "'Det'" in message and "'ai.onnx'" in message and "opset 18" in message
    assert "docs/security.md" in message and "ONNX operators" in message


def _fill(nbytes: int) -> bytes:
    shape = numpy_helper.from_array(np.array([nbytes // 4], dtype=np.int64), "s")
    return _graph([helper.make_node("ConstantOfShape", ["s"], ["y"])], [shape])


def test_the_bound_is_relative_to_the_weights_with_a_floor(tmp_path: Path) -> None:
    path = tmp_path / ONNX_NAME
    plan_weights(_fill(60 << 20), None, path=path)  # under the 64 MiB floor
    with pytest.raises(hub.UnsafeModuleError, match="MODHUB_ONNX_MAX_MATERIALISE_BYTES"):
        plan_weights(_fill(100 << 20), None, path=path)
    plan_weights(_fill(100 << 20), 60 << 20, path=path)  # 2 x 60 MiB of weights
    plan_weights(_fill(100 << 20), None, path=path, limits=OnnxLimits(materialise_bytes=128 << 20))
    with pytest.raises(hub.UnsafeModuleError, match="more than the 4294967296 bytes"):
        plan_weights(_fill(5 << 30), 4 << 30, path=path)


def test_shape_arithmetic_is_followed(tmp_path: Path) -> None:
    # Shape of a constant, Gather, Mul, Concat, Unsqueeze: the exporters' way of building shapes.
    inits = [
        numpy_helper.from_array(np.zeros((3, 7), np.float32), "w"),
        numpy_helper.from_array(np.array(1, np.int64), "i"),
        numpy_helper.from_array(np.array([0], np.int64), "axes"),
        numpy_helper.from_array(np.array(100_000, np.int64), "k"),
    ]
    nodes = [
        helper.make_node("Shape", ["w"], ["s"]),
        helper.make_node("Gather", ["s", "i"], ["d"]),
        helper.make_node("Mul", ["d", "k"], ["big"]),
        helper.make_node("Unsqueeze", ["big", "axes"], ["b1"]),
        helper.make_node("Concat", ["b1", "b1"], ["shape"], axis=0),
        helper.make_node("ConstantOfShape", ["shape"], ["y"]),
    ]
    with pytest.raises(
        hub.UnsafeModuleError, match=r"ConstantOfShape\) in the main graph would make 1960000000000"
    ):
        plan_weights(_graph(nodes, inits), None, path=tmp_path / ONNX_NAME)


def test_sizes_that_depend_on_inputs_are_left_to_call_time(tmp_path: Path) -> None:
    nodes = [helper.make_node("Shape", ["x"], ["s"]), helper.make_node("ConstantOfShape", ["s"], ["y"])]
    plan_weights(_graph(nodes, []), None, path=tmp_path / ONNX_NAME)


@pytest.mark.parametrize("fixture", ["image_module", "text_module"])
def test_exported_modules_pass_and_load(fixture: str, request: pytest.FixtureRequest) -> None:
    root: Path = request.getfixturevalue(fixture)
    if not (root / ONNX_NAME).exists():
        pytest.skip("exported without model.onnx")
    data = root / ONNX_DATA_NAME
    plan_weights((root / ONNX_NAME).read_bytes(), data.stat().st_size if data.exists() else None, path=root)
    assert hub.load(root, runtime="onnx").runtime == "onnx"


def test_the_setting_raises_the_floor_for_a_load(
    image_module: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = shutil.copytree(image_module, tmp_path / "m")
    model = onnx.load(str(copy / ONNX_NAME), load_external_data=False)
    model.graph.initializer.append(numpy_helper.from_array(np.array([20 << 20], np.int64), "fill_shape"))
    model.graph.node.append(helper.make_node("ConstantOfShape", ["fill_shape"], ["filled"]))
    model.graph.output.append(helper.make_tensor_value_info("filled", TensorProto.FLOAT, None))
    (copy / ONNX_NAME).write_bytes(model.SerializeToString())
    rehash(copy)
    with pytest.raises(hub.UnsafeModuleError, match="would make 83886080 bytes"):
        hub.load(copy, runtime="onnx")
    monkeypatch.setenv("MODHUB_ONNX_MAX_MATERIALISE_BYTES", str(128 << 20))
    assert hub.load(copy, runtime="onnx").runtime == "onnx"


def test_a_tampered_optimised_copy_never_runs(tmp_path: Path) -> None:
    import torch

    from modhub.client.cache import ModuleCache
    from modhub.runtimes import onnx_optimised
    from modhub.settings import Settings
    from tests.runtimes.test_onnx_optimised import WideCNN, _export

    torch.manual_seed(0)
    root = _export(WideCNN(), tmp_path / "wide")
    images = np.random.default_rng(0).random((2, 3, 16, 16), dtype=np.float32)
    expected = hub.load(root, runtime="onnx")(images)
    [copy] = sorted(ModuleCache(Settings.from_env().cache).onnx.iterdir())
    # An attacker with write access to the cache adds an operator onnxruntime would run and
    # makes files.json match.
    model = onnx.load(str(copy / ONNX_NAME), load_external_data=False)
    model.opset_import.append(helper.make_opsetid("ai.onnx.ml", 3))
    model.graph.node.append(
        helper.make_node("Normalizer", [model.graph.output[0].name], ["leak"], domain="ai.onnx.ml")
    )
    model.graph.output.append(helper.make_tensor_value_info("leak", TensorProto.FLOAT, None))
    graph = model.SerializeToString()
    (copy / ONNX_NAME).write_bytes(graph)
    record = json.loads((copy / onnx_optimised.FILES_NAME).read_text())
    record["files"][0].update(size=len(graph), sha256=hashlib.sha256(graph).hexdigest())
    (copy / onnx_optimised.FILES_NAME).write_text(json.dumps(record))
    again = hub.load(root, runtime="onnx")
    assert np.abs(again(images) - expected).max() <= 1e-5
    [remade] = sorted(ModuleCache(Settings.from_env().cache).onnx.iterdir())
    assert b"Normalizer" not in (remade / ONNX_NAME).read_bytes(), "the tampered copy was made again"


# ---------------------------------------------------------------------------------- SavedModel


def _saved_model(*nodes: tuple[str, str, dict[str, object]]) -> object:
    from tensorboard.compat.proto import types_pb2

    from modhub.format.savedmodel import _saved_model_class

    model = _saved_model_class()()
    graph = model.meta_graphs.add().graph_def
    for name, op, spec in nodes:
        node = graph.node.add(name=name, op=op)
        node.input.extend(spec.get("inputs", []))  # type: ignore[arg-type]
        if "shape" in spec:
            tensor = node.attr["value"].tensor
            tensor.dtype = spec.get("dtype", types_pb2.DT_FLOAT)  # type: ignore[assignment]
            for d in spec["shape"]:  # type: ignore[attr-defined]
                tensor.tensor_shape.dim.add(size=d)
            for field, values in spec.get("values", {}).items():  # type: ignore[attr-defined]
                getattr(tensor, field).extend(values)
            if "content" in spec:
                tensor.tensor_content = spec["content"]  # type: ignore[assignment]
    return model


def test_saved_model_constants_and_fills_are_bounded() -> None:
    from tensorboard.compat.proto import types_pb2

    int32 = types_pb2.DT_INT32
    fine = _saved_model(
        ("w", "Const", {"shape": [4, 4], "content": np.ones((4, 4), np.float32).tobytes()}),
        ("zeros", "Const", {"shape": [1000], "values": {"float_val": [0.0]}}),  # a 4 KB splat
        ("dims", "Const", {"shape": [2], "dtype": int32, "values": {"int_val": [64, 64]}}),
        ("fill", "Fill", {"inputs": ["dims", "zeros"]}),
    )
    check_saved_model_bounds(fine)
    hostile = {
        "splat": _saved_model(("z", "Const", {"shape": [40000, 40000], "values": {"float_val": [0.0]}})),
        "fill": _saved_model(
            ("d", "Const", {"shape": [2], "dtype": int32, "values": {"int_val": [40000, 40000]}}),
            ("v", "Const", {"shape": [], "values": {"float_val": [1.0]}}),
            ("f", "Fill", {"inputs": ["d:0", "v"]}),
        ),
        "fill splat shape": _saved_model(
            ("d", "Const", {"shape": [3], "dtype": int32, "values": {"int_val": [4000]}}),
            ("f", "Fill", {"inputs": ["d", "v"]}),
        ),
        "content lies": _saved_model(("w", "Const", {"shape": [1000, 1000], "content": b"\0" * 16})),
        "negative shape": _saved_model(("w", "Const", {"shape": [-1, 4], "values": {"float_val": [1.0]}})),
        "range": _saved_model(
            ("a", "Const", {"shape": [], "values": {"float_val": [0.0]}}),
            ("b", "Const", {"shape": [], "values": {"float_val": [1e12]}}),
            ("c", "Const", {"shape": [], "values": {"float_val": [1.0]}}),
            ("r", "Range", {"inputs": ["a", "b", "c"]}),
        ),
    }
    for name, model in hostile.items():
        with pytest.raises(hub.UnsafeModuleError):
            check_saved_model_bounds(model)
            pytest.fail(f"{name} passed")
