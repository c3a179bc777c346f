"""Modules of any signature, loaded: call forms, dict outputs, other signatures, input checks, Layer.

Tiny models exported by ``hub.export`` (several inputs and outputs, a second
signature, int64/bool tensors, an image input of any size), then loaded on
each runtime they have and compared with the eager model.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import modhub as hub

TOL = 1e-5


class Mix(nn.Module):
    """Two inputs, two outputs (a dict): the shape of a style-transfer module's call."""

    def __init__(self) -> None:
        super().__init__()
        self.content = nn.Linear(4, 3)
        self.style = nn.Linear(4, 3)

    def forward(self, content: torch.Tensor, style: torch.Tensor) -> dict[str, torch.Tensor]:
        mixed = torch.tanh(self.content(content) + self.style(style))
        return {"mixed": mixed, "total": mixed.sum(-1)}


class Encode(nn.Module):
    """A second signature sharing a layer of Mix."""

    def __init__(self, style: nn.Linear) -> None:
        super().__init__()
        self.style = style

    def forward(self, style: torch.Tensor) -> torch.Tensor:
        return self.style(style)


class Count(nn.Module):
    """int64 and bool in, int64 and bool out."""

    def forward(self, tokens: torch.Tensor, flags: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"count": (tokens * flags).sum(-1), "any": flags.any(-1)}


class ColourStats(nn.Module):
    """A uint8 image input of any size (NHWC, pixels in [0, 255]) -> its mean colour, and if it is bright."""

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        mean = image.float().mean((1, 2))
        return {"mean": mean, "bright": mean.mean(-1) > 127}


@pytest.fixture(scope="module")
def mix() -> Mix:
    torch.manual_seed(0)
    return Mix().eval()


@pytest.fixture(scope="module")
def mix_module(tmp_path_factory: pytest.TempPathFactory, mix: Mix) -> Path:
    out = tmp_path_factory.mktemp("mix") / "mix"
    example = (torch.rand(2, 4), torch.rand(2, 4))
    signatures = {"encode": (Encode(mix.style).eval(), (torch.rand(2, 4),))}
    return hub.export(mix, example, out, task="other", license="MIT", onnx=True, signatures=signatures)


def _inputs(batch: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(batch)
    return rng.random((batch, 4), dtype=np.float32), rng.random((batch, 4), dtype=np.float32)


def _eager(mix: Mix, content: np.ndarray, style: np.ndarray) -> dict[str, np.ndarray]:
    with torch.no_grad():
        out = mix(torch.from_numpy(content), torch.from_numpy(style))
    return {name: value.numpy() for name, value in out.items()}


@pytest.mark.parametrize("runtime", ["torch", "onnx"])
def test_every_call_form_gives_the_outputs_by_name(mix_module: Path, mix: Mix, runtime: str) -> None:
    module = hub.load(mix_module, runtime=runtime, output="numpy")
    content, style = _inputs()
    expected = _eager(mix, content, style)
    calls = [
        module(content, style),
        module(content=content, style=style),
        module(content, style=style),
        module({"content": content, "style": style}),
        module(content.tolist(), style),  # lists are converted to the input's dtype
    ]
    for got in calls:
        assert list(got) == ["mixed", "total"]
        for name, value in expected.items():
            assert isinstance(got[name], np.ndarray)
            assert np.abs(got[name] - value).max() <= TOL


def test_default_output_follows_the_inputs(mix_module: Path) -> None:
    module = hub.load(mix_module)
    assert module.runtime == "onnx"
    content, style = _inputs()
    assert isinstance(module(content, style)["mixed"], np.ndarray)
    got = module(torch.from_numpy(content), style)
    assert isinstance(got["mixed"], torch.Tensor) and isinstance(got["total"], torch.Tensor)


@pytest.mark.parametrize("runtime", ["torch", "onnx"])
def test_other_signatures_are_called_by_name(mix_module: Path, mix: Mix, runtime: str) -> None:
    module = hub.load(mix_module, runtime=runtime, output="numpy")
    assert list(module.signatures) == ["default", "encode"]
    assert "encode" in module.signatures and "decode" not in module.signatures
    encode = module.signatures["encode"]
    assert [spec.name for spec in encode.inputs] == ["style"]
    _, style = _inputs()
    with torch.no_grad():
        expected = mix.style(torch.from_numpy(style)).numpy()
    got = encode(style)
    assert isinstance(got, np.ndarray) and np.abs(got - expected).max() <= TOL
    assert np.abs(encode(style=style) - expected).max() <= TOL
    with pytest.raises(KeyError, match="no signature 'decode'; it has default, encode"):
        module.signatures["decode"]


def test_another_signature_is_verified_when_first_called(mix_module: Path, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(mix_module, tmp_path / "m"))
    for name in ("graph.pt2", "model.onnx"):
        path = copy / "signatures" / "encode" / name
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
    content, style = _inputs()
    for runtime in ("torch", "onnx"):
        module = hub.load(copy, runtime=runtime)  # the default signature's files are intact
        module(content, style)
        with pytest.raises(hub.IntegrityError, match=r"signatures/encode/(graph\.pt2|model\.onnx)"):
            module.signatures["encode"](style)


_BAD_CALLS = {
    "missing": (lambda c, s: ((c,), {}), r"missing input\(s\) style: float32 \[batch, 4\]"),
    "extra": (lambda c, s: ((c, s), {"colour": s}), r"no input 'colour'; its inputs are content, style"),
    "twice": (lambda c, s: ((c, s), {"style": s}), "'style' .* given twice"),
    "too-many": (lambda c, s: ((c, s, s), {}), r"takes 2 input\(s\) \(content, style\), got 3"),
    "dtype": (
        lambda c, s: ((c, s.astype(np.float64)), {}),
        r"input 'style' expects float32 \[batch, 4\], got a float64 array of shape \[3, 4\]",
    ),
    "rank": (
        lambda c, s: ((c[0], s), {}),
        r"'content' expects float32 \[batch, 4\].*shape \[4\].*batch",
    ),
    "size": (lambda c, s: ((c[:, :3], s), {}), r"input 'content' .* dimension 1 must be 4, got .*\[3, 3\]"),
    "named-dims": (
        lambda c, s: ((c, s[:2]), {}),
        r"dimension 'batch' is 3 for input 'content' but 2 for input 'style'",
    ),
    "text": (lambda c, s: ((c, "style"), {}), r"input 'style' expects float32 \[batch, 4\], got a str"),
}


@pytest.mark.parametrize("case", list(_BAD_CALLS))
@pytest.mark.parametrize("runtime", ["torch", "onnx"])
def test_bad_calls_name_the_input_what_it_expects_and_what_was_given(
    mix_module: Path, runtime: str, case: str
) -> None:
    module = hub.load(mix_module, runtime=runtime)
    make, message = _BAD_CALLS[case]
    args, kwargs = make(*_inputs())
    with pytest.raises(hub.InputError, match=message):
        module(*args, **kwargs)


@pytest.fixture(scope="module")
def count_module(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("count") / "count"
    example = (torch.randint(0, 9, (2, 3)), torch.rand(2, 3) > 0.5)
    return hub.export(Count(), example, out, task="other", license="MIT", onnx=True)


@pytest.mark.parametrize("runtime", ["torch", "onnx"])
def test_integer_and_bool_tensors_in_and_out(count_module: Path, runtime: str) -> None:
    module = hub.load(count_module, runtime=runtime, output="numpy")
    got = module([[1, 2, 3], [4, 5, 6]], [[True, False, True], [False, False, False]])
    assert got["count"].dtype == np.int64 and got["count"].tolist() == [4, 0]
    assert got["any"].dtype == np.bool_ and got["any"].tolist() == [True, False]
    # A lossless cast is made (int32 -> int64); a lossy one is refused with the fix.
    assert module(np.ones((1, 3), np.int32), np.ones((1, 3), bool))["count"].tolist() == [3]
    with pytest.raises(hub.InputError, match=r"input 'tokens' expects int64 \[batch, 3\].*float"):
        module([[1.5, 2.0, 3.0]], [[True, True, True]])


@pytest.fixture(scope="module")
def colour_module(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("colour") / "colour"
    example = torch.randint(0, 256, (2, 12, 10, 3), dtype=torch.uint8)
    return hub.export(
        ColourStats(),
        example,
        out,
        task="other",
        license="MIT",
        onnx=True,
        dynamic={"image": {1: "height", 2: "width"}},
        meaning={"image": {"kind": "image", "layout": "NHWC", "value_range": (0, 255)}},
    )


@pytest.mark.parametrize("runtime", ["torch", "onnx"])
def test_an_image_input_takes_photos_at_their_own_size(
    colour_module: Path, runtime: str, tmp_path: Path
) -> None:
    from PIL import Image

    module = hub.load(colour_module, runtime=runtime, output="numpy")
    assert module.modality == "image"
    pixels = np.random.default_rng(0).integers(0, 256, (7, 9, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "p.png")
    expected = pixels.reshape(-1, 3).mean(0)
    for photo in (Image.fromarray(pixels), tmp_path / "p.png", (tmp_path / "p.png").read_bytes(), pixels):
        got = module(photo)["mean"]
        assert got.shape == (1, 3) and np.abs(got[0] - expected).max() <= 1e-3
    assert module(pixels[None])["mean"].shape == (1, 3)  # a ready uint8 batch
    with pytest.raises(hub.InputError, match=r"2 sizes .*7x9.*8x8.* one call each"):
        module([pixels, np.zeros((8, 8, 3), np.uint8)])


@pytest.fixture(scope="module")
def onnx_only_module(tmp_path_factory: pytest.TempPathFactory, mix_module: Path) -> Path:
    from modhub.exporting.onnx_wrap import wrap_onnx

    src = tmp_path_factory.mktemp("plain")
    for name in ("model.onnx", "model.onnx.data"):
        shutil.copy(mix_module / name, src / name)
    return wrap_onnx(src / "model.onnx", src.parent / "onnx-only", task="other", license="MIT")


def test_an_onnx_only_module_runs_on_onnx_and_says_it_has_no_torch_graph(
    onnx_only_module: Path, mix: Mix
) -> None:
    module = hub.load(onnx_only_module)
    assert module.runtime == "onnx"
    content, style = _inputs()
    expected = _eager(mix, content, style)
    got = module(content=content, style=style)
    assert all(np.abs(got[name] - value).max() <= TOL for name, value in expected.items())
    message = r"no torch graph \(graph\.pt2\).*runtime='onnx'"
    with pytest.raises(hub.ManifestError, match=message):
        hub.load(onnx_only_module, runtime="torch")
    with pytest.raises(hub.ManifestError, match=r"hub\.Layer cannot run it.*runtime='onnx'"):
        hub.Layer(onnx_only_module)
    with pytest.raises(hub.ManifestError, match=r"hub\.KerasLayer cannot run it"):
        hub.KerasLayer(onnx_only_module)


def test_a_layer_with_two_inputs_trains(mix_module: Path, mix: Mix) -> None:
    layer = hub.Layer(mix_module, trainable=True)
    content, style = (torch.from_numpy(a).requires_grad_() for a in _inputs())
    out = layer(content, style=style)
    assert set(out) == {"mixed", "total"}
    expected = _eager(mix, content.detach().numpy(), style.detach().numpy())
    assert all((out[k].detach().numpy() - v).__abs__().max() <= TOL for k, v in expected.items())
    loss = out["mixed"].pow(2).sum() + out["total"].sum()
    loss.backward()
    assert content.grad is not None and content.grad.abs().sum() > 0
    assert style.grad is not None and style.grad.abs().sum() > 0
    params = [p for p in layer.parameters() if p.requires_grad]
    assert params and all(p.grad is not None for p in params)
    before = loss.item()
    optimiser = torch.optim.SGD(params, lr=0.1)
    for _ in range(5):
        optimiser.zero_grad()
        out = layer(content.detach(), style.detach())
        loss = out["mixed"].pow(2).sum() + out["total"].sum()
        loss.backward()
        optimiser.step()
    assert loss.item() < before


def test_a_layer_runs_another_signature(mix_module: Path, mix: Mix) -> None:
    layer = hub.Layer(mix_module, signature="encode")
    _, style = _inputs()
    with torch.no_grad():
        expected = mix.style(torch.from_numpy(style))
        assert (layer(torch.from_numpy(style)) - expected).abs().max() <= TOL
    frozen = [p for p in layer.parameters() if p.requires_grad]
    assert frozen == []


# Keras' predict() converts torch tensors with np.array(tensor), which NumPy 2 warns about (torch 2.13).
@pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)
def test_a_keras_layer_takes_several_inputs_and_gives_a_dict(mix_module: Path, mix: Mix) -> None:
    from modhub.loading.keras_layer import keras

    content, style = _inputs()
    expected = _eager(mix, content, style)
    layer = hub.KerasLayer(mix_module)
    got = layer([content, style])
    assert set(got) == {"mixed", "total"}
    assert np.abs(got["mixed"].detach().numpy() - expected["mixed"]).max() <= TOL
    by_name = hub.KerasLayer(mix_module, output_key="total")({"content": content, "style": style})
    assert np.abs(by_name.detach().numpy() - expected["total"]).max() <= TOL
    # In a functional model, with one Keras input per module input.
    inputs = [keras.Input((4,), name="content"), keras.Input((4,), name="style")]
    outputs = hub.KerasLayer(mix_module, output_key="mixed")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(1)(outputs))
    assert model.predict([content, style], verbose=0).shape == (3, 1)


def test_predict_writes_one_column_per_output(colour_module: Path, tmp_path: Path) -> None:
    import pyarrow.parquet as pq
    from PIL import Image

    from modhub.predict import predict

    photos = tmp_path / "photos"
    photos.mkdir()
    Image.new("RGB", (9, 7), (250, 250, 250)).save(photos / "a.png")
    Image.new("RGB", (5, 6), (10, 20, 30)).save(photos / "b.png")  # another size: another batch
    Image.new("RGB", (9, 7), (0, 0, 0)).save(photos / "c.png")
    (photos / "d.png").write_bytes(b"not a photo")
    result = predict(colour_module, photos, tmp_path / "out.parquet", batch_size=8, progress=False)
    assert result.rows == 3 and result.skipped == 1 and "d.png" in result.skipped_examples[0]
    table = pq.read_table(tmp_path / "out.parquet")
    assert table.column_names == ["key", "mean", "bright"]
    assert table.column("key").to_pylist() == ["a.png", "b.png", "c.png"]  # in input order
    rows = {row["key"]: row for row in table.to_pylist()}
    assert rows["a.png"]["bright"] is True and rows["c.png"]["bright"] is False
    assert np.allclose(rows["b.png"]["mean"], [10, 20, 30])


def test_predict_refuses_a_module_with_two_inputs(mix_module: Path, tmp_path: Path) -> None:
    from modhub.predict import predict

    (tmp_path / "in.txt").write_text("a\n")
    with pytest.raises(hub.InputError, match=r"this module takes 2 \(content, style\)"):
        predict(mix_module, tmp_path / "in.txt", tmp_path / "out.parquet", progress=False)


def test_show_prints_every_signature(mix_module: Path, colour_module: Path) -> None:
    from typer.testing import CliRunner

    from modhub.cli import app

    out = CliRunner().invoke(app, ["show", str(mix_module)]).output
    for line in (
        "signature_def['default']:",
        "    content: float32 [batch, 4]",
        "    total: float32 [batch]",
        "  call: m(content, style) -> {mixed, total}",
        "signature_def['encode']:",
        "  graph files: signatures/encode/graph.pt2, signatures/encode/model.onnx",
    ):
        assert line in out, out
    out = CliRunner().invoke(app, ["show", str(colour_module)]).output
    assert "    image: uint8 [batch, height, width, 3]  (image, RGB, NHWC, values in [0, 255])" in out, out


class Loudness(nn.Module):
    """A waveform of any length (an audio input at 16 kHz) -> its RMS and peak."""

    def forward(self, waveform: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"rms": waveform.pow(2).mean(-1).sqrt(), "peak": waveform.abs().amax(-1)}


@pytest.fixture(scope="module")
def loud_module(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("loud") / "loud"
    return hub.export(
        Loudness(),
        torch.rand(2, 1600),
        out,
        task="other",
        license="MIT",
        onnx=True,
        dynamic={"waveform": {1: "samples"}},
        meaning={"waveform": {"kind": "audio", "sample_rate": 16000}},
    )


def _wav(path: Path, samples: np.ndarray, rate: int = 16000) -> Path:
    import wave

    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((samples * 32767).astype("<i2").tobytes())
    return path


@pytest.mark.parametrize("runtime", ["torch", "onnx"])
def test_an_audio_input_takes_sound_files_and_waveforms(
    loud_module: Path, runtime: str, tmp_path: Path
) -> None:
    module = hub.load(loud_module, runtime=runtime, output="numpy")
    assert module.modality == "audio"
    half = np.full(1600, 0.5, np.float32)
    assert np.allclose(module(_wav(tmp_path / "a.wav", half))["rms"], [0.5], atol=1e-3)
    assert np.allclose(module((half, 8000))["rms"], [0.5], atol=0.05)  # resampled to 16 kHz
    batch = np.stack([half, half / 2])  # a ready batch [2, samples] is two waveforms
    assert np.allclose(module(batch)["rms"], [0.5, 0.25], atol=1e-6)


def test_a_string_input_is_fed_as_strings(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    from modhub.exporting.onnx_wrap import wrap_onnx

    graph = helper.make_graph(
        [helper.make_node("Identity", ["texts"], ["same"]), helper.make_node("Shape", ["texts"], ["count"])],
        "strings",
        [helper.make_tensor_value_info("texts", TensorProto.STRING, ["batch"])],
        [
            helper.make_tensor_value_info("same", TensorProto.STRING, ["batch"]),
            helper.make_tensor_value_info("count", TensorProto.INT64, [1]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.save(model, tmp_path / "model.onnx")
    module = hub.load(wrap_onnx(tmp_path / "model.onnx", tmp_path / "m", task="other", license="MIT"))
    assert module.modality == "text"
    got = module(["a cat", "b"])
    assert got["same"].tolist() == ["a cat", "b"] and got["count"].tolist() == [2]
    with pytest.raises(hub.InputError, match="pass a list of strings"):
        module("one string")
    with pytest.raises(hub.InputError, match="item 1 is int"):
        module(["a", 2])
