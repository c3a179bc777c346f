"""Any signature through the real path (issue 29): each tiny architecture of ``tests/tiny_models.py``
exported with ``hub.export``, published to a live hub, loaded back on every runtime it has and
compared with the eager model; a plain ONNX file and SavedModel signatures wrapped; and what
export and wrapping refuse, leaving nothing behind."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

import modhub as hub
from modhub.client.publish import publish
from modhub.format.manifest import read_manifest
from modhub.settings import Settings
from tests.harness import LiveHub, running_hub
from tests.tiny_models import ARCHITECTURES, TinyArch, make_tokenizer

ATOL = 1e-5
RUNTIMES = {"pt2": "torch", "onnx": "onnx"}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveHub]:
    """One hub (SQLite) for this file: what is tested here does not depend on the database."""
    with running_hub(tmp_path_factory.mktemp("any-signature") / "data", token_for="zoo") as running:
        yield running


@pytest.fixture
def on_hub(live: LiveHub, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Settings:
    """hub.load resolves handles on the live hub, into a cache of this test's own."""
    monkeypatch.setenv("MODHUB_ENDPOINT", live.url)
    monkeypatch.setenv("MODHUB_CACHE", str(tmp_path / "cache"))
    return Settings(endpoint=live.url, token=live.token, progress=False, cache=tmp_path / "cache")


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], tuple[TinyArch, Path]]:
    """``exported(name)``: the architecture and its module (with model.onnx), exported once per file."""
    done: dict[str, tuple[TinyArch, Path]] = {}

    def export(name: str) -> tuple[TinyArch, Path]:
        if name not in done:
            torch.manual_seed(0)
            arch = ARCHITECTURES[name]()
            options = dict(arch.options)
            where = tmp_path_factory.mktemp(name)
            if name == "text":
                make_tokenizer(where / "tokenizer.json")
                options["tokenizer"] = where / "tokenizer.json"
            out = hub.export(
                arch.model, arch.example_inputs, where / name, license="MIT", onnx=True, **options
            )
            done[name] = arch, out
        return done[name]

    return export


def _eager(arch: TinyArch, module_dir: Path) -> dict[str, np.ndarray]:
    """The eager model's outputs on the probe inputs, by the module's output names."""
    manifest = read_manifest(module_dir)
    names = manifest.default_signature.output_names
    probe = arch.probe
    with torch.no_grad():
        if manifest.preprocessing.tokenizer is not None:
            from modhub.runtimes.preprocessing import TextEncoder

            tokenizer = manifest.preprocessing.tokenizer
            args = TextEncoder(tokenizer, module_dir / tokenizer.file)(list(probe[0]))
            out = arch.model(*args)
        elif isinstance(probe, Mapping):
            out = arch.model(**probe)
        else:
            out = arch.model(*probe)
    if isinstance(out, torch.Tensor):
        out = (out,)
    values = list(out.values()) if isinstance(out, Mapping) else list(out)
    return {n: v.numpy() for n, v in zip(names, values, strict=True)}


def _as_numpy(value: Any) -> np.ndarray:
    return value.numpy() if isinstance(value, torch.Tensor) else np.asarray(value)


def _call(module: Any, probe: Any, as_torch: bool) -> Any:
    def convert(value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            return value if as_torch else value.numpy()
        return value

    if isinstance(probe, Mapping):
        return module(**{k: convert(v) for k, v in probe.items()})
    return module(*(convert(v) for v in probe))


def _same(got: Any, want: Mapping[str, np.ndarray], where: str) -> None:
    got = got if isinstance(got, Mapping) else {next(iter(want)): got}
    assert list(got) == list(want), where
    for name, expected in want.items():
        value = _as_numpy(got[name])
        assert value.dtype == expected.dtype and value.shape == expected.shape, (where, name, value.dtype)
        if expected.dtype.kind in "biu":
            np.testing.assert_array_equal(value, expected, err_msg=f"{where}: {name}")
        else:
            np.testing.assert_allclose(value, expected, atol=ATOL, rtol=0, err_msg=f"{where}: {name}")


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_exported_published_and_loaded_on_each_runtime_equals_eager(
    name: str, exported: Callable[[str], tuple[TinyArch, Path]], on_hub: Settings
) -> None:
    arch, module_dir = exported(name)
    manifest = read_manifest(module_dir)
    assert set(manifest.formats) == {"pt2", "onnx"}
    handle = publish(module_dir, f"zoo/{name}", settings=on_hub)
    expected = _eager(arch, module_dir)
    for fmt in manifest.formats:
        runtime = RUNTIMES[fmt]
        module = hub.load(handle, runtime=runtime)
        _same(_call(module, arch.probe, as_torch=runtime == "torch"), expected, f"{name} on {runtime}")
        if name == "style-transfer":
            style = arch.probe[1]
            with torch.no_grad():
                vector = arch.model.style_net(style).numpy()
            got = module.signatures["style_vector"](style if runtime == "torch" else style.numpy())
            _same(got, {"output_0": vector}, f"style_vector on {runtime}")


def test_signature_read_from_the_model(exported: Callable[[str], tuple[TinyArch, Path]]) -> None:
    _, module_dir = exported("style-transfer")
    manifest = read_manifest(module_dir)
    default = manifest.default_signature
    # Input names are forward's parameters; named dynamic dimensions; the contract's output name.
    assert [(s.name, s.shape) for s in default.inputs] == [
        ("content", ("batch", 3, "height", "width")),
        ("style", ("batch", 3, 8, 8)),
    ]
    assert [(s.name, s.shape, s.kind) for s in default.outputs] == [
        ("stylized_image", ("batch", 3, "height", "width"), "image")
    ]
    style = manifest.signatures["style_vector"]
    assert style.path == "signatures/style_vector"
    listed = {entry.path for entry in manifest.files}
    assert {"signatures/style_vector/graph.pt2", "signatures/style_vector/model.onnx"} <= listed
    # The ONNX graph carries the module's names, dimensions included.
    graph = onnx.load(str(module_dir / "model.onnx"), load_external_data=False).graph
    assert [v.name for v in graph.input] == ["content", "style"]
    assert [d.dim_param or d.dim_value for d in graph.input[0].type.tensor_type.shape.dim] == [
        "batch",
        3,
        "height",
        "width",
    ]

    _, detector = exported("detector")
    outputs = read_manifest(detector).default_signature.outputs
    assert [(s.name, s.dtype) for s in outputs] == [
        ("detection_boxes", "float32"),
        ("detection_scores", "float32"),
        ("detection_classes", "int64"),
    ]
    assert outputs[2].labels == "assets/detection_classes_labels.txt"
    assert (detector / outputs[2].labels).read_text().split() == ["cat", "dog", "car", "tree"]


# --- what export refuses ---------------------------------------------------------------------------


class _Returns(nn.Module):
    def __init__(self, what: str) -> None:
        super().__init__()
        self.what = what

    def forward(self, x: torch.Tensor) -> Any:
        return {
            "nested": (x, (x, x)),
            "none": (x, None),
            "list": [x, x],
            "dict-in-tuple": (x, {"a": x}),
            "number": 3,
        }[self.what]


@pytest.mark.parametrize("what", ["nested", "none", "list", "dict-in-tuple", "number"])
def test_outputs_that_cannot_be_named_are_refused_and_nothing_is_left(what: str, tmp_path: Path) -> None:
    with pytest.raises(hub.ExportError, match=r"(?i)return a tensor, a tuple of tensors, or a dict"):
        hub.export(_Returns(what), torch.rand(2, 3), tmp_path / "m", task="other", license="MIT")
    assert list(tmp_path.iterdir()) == []


class _Add(nn.Module):
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a + b


@pytest.mark.parametrize(
    ("example", "options", "message"),
    [
        ((torch.rand(2, 3), "text"), {}, "tokenizer="),
        ((torch.rand(2, 3), torch.rand(2, 3, dtype=torch.complex64)), {}, "cannot carry"),
        (
            (torch.rand(2, 3), torch.rand(2, 3)),
            {"meaning": {"c": {"kind": "image"}}},
            "not inputs or outputs",
        ),
        ((torch.rand(2, 3), torch.rand(2, 3)), {"meaning": {"a": {"kind": "picture"}}}, "meaning of 'a'"),
        ((torch.rand(2, 3), torch.rand(2, 3)), {"dynamic": {"c": {1: "width"}}}, "not inputs"),
        ((torch.rand(2, 3), torch.rand(2, 3)), {"dynamic": {"a": {1: "Width"}}}, "lowercase"),
        ((torch.rand(2, 3), torch.rand(2, 3)), {"input_names": ["a"]}, "1 names for 2"),
        ((torch.rand(2, 3), torch.rand(2, 3)), {"output_names": ["x", "y"]}, "returns one tensor"),
    ],
    ids=[
        "string",
        "complex",
        "meaning-name",
        "meaning-value",
        "dynamic-name",
        "dim-name",
        "inputs",
        "outputs",
    ],
)
def test_export_refuses_what_a_signature_cannot_say(
    example: Any, options: dict[str, Any], message: str, tmp_path: Path
) -> None:
    with pytest.raises(hub.ExportError) as info:
        hub.export(_Add(), example, tmp_path / "m", task="other", license="MIT", **options)
    assert message in str(info.value)
    assert list(tmp_path.iterdir()) == []


# --- a plain ONNX file -------------------------------------------------------------------------------


def _plain_onnx(folder: Path, *, input_dim: str = "N", input_type: int = TensorProto.FLOAT) -> Path:
    """model.onnx written by hand: inputs "input.1" [N, 64] and "scale" [N, 1]; outputs "logits:0"
    [N, 10] and "best" (int64, a dynamic dimension without a name); weights in weights.bin beside it."""
    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.standard_normal((64, 10)).astype(np.float32), "weight")
    nodes = [
        helper.make_node("MatMul", ["input.1", "weight"], ["hidden"]),
        helper.make_node("Mul", ["hidden", "scale"], ["logits:0"]),
        helper.make_node("ArgMax", ["hidden"], ["best"], axis=1, keepdims=0),
    ]
    best = helper.make_tensor_value_info("best", TensorProto.INT64, [None])
    graph = helper.make_graph(
        nodes,
        "plain",
        [
            helper.make_tensor_value_info("input.1", input_type, [input_dim, 64]),
            helper.make_tensor_value_info("scale", TensorProto.FLOAT, ["N", 1]),
        ],
        [helper.make_tensor_value_info("logits:0", TensorProto.FLOAT, ["N", 10]), best],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.onnx"
    onnx.save(model, str(path), save_as_external_data=True, location="weights.bin", size_threshold=0)
    return path


def test_a_plain_onnx_file_is_wrapped_published_and_loaded_back(
    live: LiveHub, on_hub: Settings, tmp_path: Path
) -> None:
    source = _plain_onnx(tmp_path / "plain")
    module_dir = hub.wrap_onnx(
        source,
        tmp_path / "module",
        task="other",
        license="MIT",
        name_meaning={"logits:0": {"description": "class scores"}},
    )
    manifest = read_manifest(module_dir)
    assert (manifest.framework, manifest.formats, manifest.torch_version) == ("onnx", ("onnx",), "")
    assert sorted(e.path for e in manifest.files) == ["README.md", "model.onnx", "model.onnx.data"]
    sig = manifest.default_signature
    assert [(s.name, s.dtype, s.shape) for s in sig.inputs] == [
        ("input_1", "float32", ("n", 64)),
        ("scale", "float32", ("n", 1)),
    ]
    assert [(s.name, s.dtype, s.shape) for s in sig.outputs] == [
        ("logits_0", "float32", ("n", 10)),
        ("best", "int64", ("best_dim0",)),
    ]
    assert sig.outputs[0].description == "class scores"
    handle = publish(module_dir, "zoo/plain-onnx", settings=on_hub)

    x = np.random.default_rng(1).standard_normal((3, 64)).astype(np.float32)
    scale = np.array([[1.0], [0.5], [-2.0]], dtype=np.float32)
    session = onnxruntime.InferenceSession(str(source), providers=["CPUExecutionProvider"])
    logits, best = session.run(None, {"input.1": x, "scale": scale})
    module = hub.load(handle, runtime="onnx")
    _same(module(x, scale), {"logits_0": logits, "best": best}, "plain onnx")
    _same(module(input_1=x, scale=scale), {"logits_0": logits, "best": best}, "plain onnx, keywords")
    with pytest.raises(hub.HubError, match="runtime='onnx'"):
        hub.load(handle, runtime="torch")


def test_onnx_files_wrapped_with_extra_signatures(
    exported: Callable[[str], tuple[TinyArch, Path]], tmp_path: Path
) -> None:
    """The style-transfer module made from ONNX files alone: one file per signature."""
    arch, module_dir = exported("style-transfer")
    image = {"kind": "image", "layout": "NCHW", "value_range": (0, 1)}
    wrapped = hub.wrap_onnx(
        module_dir / "model.onnx",
        tmp_path / "from-onnx",
        task="image-style-transfer",
        license="MIT",
        name_meaning={"content": image, "style": image, "stylized_image": image},
        signatures={"style_vector": module_dir / "signatures" / "style_vector" / "model.onnx"},
    )
    manifest = read_manifest(wrapped)
    assert manifest.signatures["style_vector"].path == "signatures/style_vector"
    module = hub.load(wrapped)
    content, style = arch.probe
    with torch.no_grad():
        want, vector = arch.model(content, style).numpy(), arch.model.style_net(style).numpy()
    _same(module(content.numpy(), style.numpy()), {"stylized_image": want}, "wrapped default")
    _same(module.signatures["style_vector"](style.numpy()), {"output_0": vector}, "wrapped style_vector")


def test_cli_publishes_an_onnx_file(live: LiveHub, on_hub: Settings, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from modhub.cli import app

    source = _plain_onnx(tmp_path / "plain")
    env = {"MODHUB_ENDPOINT": live.url, "MODHUB_TOKEN": live.token}
    refused = CliRunner().invoke(app, ["publish", str(source), "zoo/cli-onnx"], env=env)
    assert refused.exit_code == 2 and "--task" in refused.output
    result = CliRunner().invoke(
        app,
        ["publish", str(source), "zoo/cli-onnx", "--task", "other", "--license", "MIT",
         "--meaning", '{"scale": {"description": "per-row factor"}}'],
        env=env,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines()[-1] == "zoo/cli-onnx/1"
    module = hub.load("zoo/cli-onnx/1")
    assert module.manifest.default_signature.inputs[1].description == "per-row factor"


def _replace_input(path: Path, **fields: Any) -> None:
    model = onnx.load(str(path), load_external_data=False)
    for key, value in fields.items():
        setattr(model.graph.input[0].type.tensor_type, key, value)
    onnx.save(model, str(path))


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        ("expression", hub.ExportError, "an expression a module signature cannot express"),
        ("uint16", hub.ExportError, "uint16, which a module signature cannot carry"),
        ("no-shape", hub.ExportError, "unknown rank"),
        ("outside", hub.ExportError, "external data must be a file beside the model"),
        ("operator", hub.UnsafeModuleError, "not on the allow-list"),
    ],
)
def test_wrapping_refuses_what_a_module_cannot_hold_and_leaves_nothing(
    change: str, error: type[Exception], message: str, tmp_path: Path
) -> None:
    if change == "expression":
        source = _plain_onnx(tmp_path / "src", input_dim="2*N")
    elif change == "uint16":
        source = _plain_onnx(tmp_path / "src", input_type=TensorProto.UINT16)
    else:
        source = _plain_onnx(tmp_path / "src")
    model = onnx.load(str(source), load_external_data=False)
    if change == "no-shape":
        model.graph.input[0].type.tensor_type.ClearField("shape")
    elif change == "outside":
        for entry in model.graph.initializer[0].external_data:
            if entry.key == "location":
                entry.value = "../weights.bin"
    elif change == "operator":
        model.graph.node.append(helper.make_node("Exec", ["best"], ["ran"], domain="evil.ops"))
        model.opset_import.append(helper.make_opsetid("evil.ops", 1))
    onnx.save(model, str(source))
    with pytest.raises(error) as info:
        hub.wrap_onnx(source, tmp_path / "out" / "module", task="other", license="MIT")
    assert message in str(info.value)
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


# --- SavedModel signatures -----------------------------------------------------------------------------


def _saved_model(folder: Path, extra_dtype: str) -> Path:
    """The checker tests' SavedModel with a second SignatureDef, "style_vector" (input dtype given)."""
    from tensorboard.compat.proto import types_pb2

    from modhub.format.savedmodel import _saved_model_class
    from tests.format.saved_models import saved_model_bytes, write_saved_model

    write_saved_model(folder)
    model = _saved_model_class().FromString(saved_model_bytes())
    sig = model.meta_graphs[0].signature_def["style_vector"]
    sig.method_name = "tensorflow/serving/predict"
    style = sig.inputs["style image"]
    style.name, style.dtype = "style_vector_style:0", getattr(types_pb2, extra_dtype)
    for dim in (-1, 8, 8, 3):
        style.tensor_shape.dim.add(size=dim)
    out = sig.outputs["output_0"]
    out.name, out.dtype = "StatefulPartitionedCall_3:0", types_pb2.DT_FLOAT
    for dim in (-1, 16):
        out.tensor_shape.dim.add(size=dim)
    (folder / "saved_model.pb").write_bytes(model.SerializeToString())
    return folder


def test_every_savedmodel_signature_is_kept(tmp_path: Path) -> None:
    from modhub.exporting.savedmodel import wrap_saved_model

    source = _saved_model(tmp_path / "sm", "DT_UINT8")
    module_dir = wrap_saved_model(source, tmp_path / "module", task="other", license="MIT")
    manifest = read_manifest(module_dir)
    assert list(manifest.signatures) == ["default", "style_vector"]
    (style,) = manifest.signatures["style_vector"].inputs
    assert (style.name, style.dtype, style.shape) == ("style_image", "uint8", ("batch", 8, 8, 3))
    assert manifest.signatures["style_vector"].outputs[0].shape == ("batch", 16)


def test_a_savedmodel_signature_of_an_unsupported_dtype_is_refused(tmp_path: Path) -> None:
    from modhub.exporting.savedmodel import wrap_saved_model

    source = _saved_model(tmp_path / "sm", "DT_COMPLEX64")
    with pytest.raises(hub.ExportError, match="DT_COMPLEX64, which a module signature cannot carry"):
        wrap_saved_model(source, tmp_path / "out" / "module", task="other", license="MIT")
    assert not (tmp_path / "out").exists()
