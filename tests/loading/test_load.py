"""hub.load and hub.Layer: outputs, running without the defining code, modes, freezing."""

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

import modhub as hub
from tests.tiny_models import TinyCNN, TinyTextEncoder

BATCHES = (1, 7, 32)


@pytest.mark.parametrize(("runtime", "tolerance"), [("torch", 1e-5), ("onnx", 1e-4), (None, 1e-4)])
@pytest.mark.parametrize("batch", BATCHES)
def test_load_matches_source_model(
    image_module: Path, tiny_cnn: TinyCNN, batch: int, runtime: str | None, tolerance: float
) -> None:
    module = hub.load(image_module, runtime=runtime)
    images = torch.rand(batch, 3, 32, 32)
    with torch.no_grad():
        expected = tiny_cnn(images)
    got = module(images)
    assert isinstance(got, torch.Tensor) if runtime != "onnx" else isinstance(got, np.ndarray)
    assert (torch.as_tensor(got) - expected).abs().max().item() <= tolerance
    assert module.labels == ["ant", "bee", "cat", "dog", "eel"]


LOAD_IN_FRESH_PROCESS = """
import json, sys, torch
import modhub as hub
module = hub.load(sys.argv[1])
inputs = torch.load(sys.argv[2], weights_only=True)
result = {}
for key, value in inputs.items():
    result[key] = module(value).tolist()
for key, texts in json.loads(sys.argv[3]).items():
    result[key] = module(texts).tolist()
leaked = sorted(m for m in sys.modules if m.startswith("tests") or "tiny_models" in m)
print(json.dumps({"result": result, "leaked": leaked}))
"""


def _run_fresh(
    module_dir: Path, tensors: dict[str, torch.Tensor], texts: dict[str, list[str]], tmp_path: Path
) -> dict:
    inputs = tmp_path / "inputs.pt"
    torch.save(tensors, inputs)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [sys.executable, "-c", LOAD_IN_FRESH_PROCESS, str(module_dir), str(inputs), json.dumps(texts)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=False,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.splitlines()[-1])


def test_image_module_runs_without_its_code_in_a_fresh_process(
    image_module: Path, tiny_cnn: TinyCNN, tmp_path: Path
) -> None:
    # Copy the module somewhere the tests package is not, and load it in a process
    # that never imports the file defining TinyCNN.
    moved = shutil.copytree(image_module, tmp_path / "elsewhere")
    tensors = {f"img{b}": torch.rand(b, 3, 32, 32) for b in BATCHES}
    out = _run_fresh(moved, tensors, {}, tmp_path)
    assert out["leaked"] == []
    for key, images in tensors.items():
        with torch.no_grad():
            expected = tiny_cnn(images)
        got = torch.tensor(out["result"][key])
        assert got.shape == expected.shape
        assert (got - expected).abs().max().item() <= 1e-5


SENTENCES = [
    "the cat sat on the mat",
    "a dog",
    "red blue house tree car the a cat dog sat on mat ran fast",
    "unknown words here",
    "zzz",
    "The CAT",
]


def _eager_text(
    model: TinyTextEncoder, tokenizer_path: Path, texts: list[str], max_length: int
) -> torch.Tensor:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_path))
    tok.enable_truncation(max_length=max_length)
    tok.enable_padding(pad_id=0)
    enc = tok.encode_batch(texts)
    ids = torch.tensor([e.ids for e in enc])
    mask = torch.tensor([e.attention_mask for e in enc])
    if ids.shape[1] == 0:
        ids = torch.zeros(len(texts), 1, dtype=torch.long)
        mask = torch.zeros(len(texts), 1, dtype=torch.long)
    with torch.no_grad():
        return model(ids, mask)


def test_text_module_takes_strings_in_a_fresh_process(
    text_module: Path, tiny_text_encoder: TinyTextEncoder, tmp_path: Path
) -> None:
    batches = {f"txt{b}": [SENTENCES[i % len(SENTENCES)] for i in range(b)] for b in BATCHES}
    out = _run_fresh(text_module, {}, batches, tmp_path)
    assert out["leaked"] == []
    for key, texts in batches.items():
        expected = _eager_text(tiny_text_encoder, text_module / "assets/tokenizer.json", texts, 32)
        got = torch.tensor(out["result"][key])
        assert (got - expected).abs().max().item() <= 1e-5


def test_text_module_truncates_to_manifest_max_length(
    text_module: Path, tiny_text_encoder: TinyTextEncoder
) -> None:
    module = hub.load(text_module, runtime="torch")
    assert module.manifest.preprocessing.tokenizer.max_length == 32
    long_text = " ".join(["cat dog"] * 40)  # 80 words, more than max_length
    expected = _eager_text(tiny_text_encoder, text_module / "assets/tokenizer.json", [long_text], 32)
    assert (module([long_text]) - expected).abs().max().item() <= 1e-5


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ("one string", "pass a list of strings"),
        ([1, 2], "item 0 is int"),
        ([], "non-empty list"),
    ],
)
def test_text_module_refuses_bad_inputs(text_module: Path, inputs: object, message: str) -> None:
    module = hub.load(text_module)
    with pytest.raises(hub.InputError, match=message):
        module(inputs)


@pytest.mark.parametrize(
    ("images", "message"),
    [
        (torch.rand(3, 32, 32), "unsqueeze"),
        (torch.rand(2, 32, 32, 3), "channels last"),
        ((torch.rand(2, 3, 32, 32) * 255).to(torch.uint8), "/ 255"),
        (torch.rand(2, 3, 16, 16), "shape"),
        ([[1.0]], "is a list"),
    ],
    ids=["unbatched", "nhwc", "uint8", "wrong-size", "list"],
)
def test_image_module_refuses_bad_inputs(image_module: Path, images: object, message: str) -> None:
    module = hub.load(image_module)
    with pytest.raises(hub.InputError, match=message):
        module(images)


def test_numpy_images_are_accepted(image_module: Path, tiny_cnn: TinyCNN) -> None:
    images = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        expected = tiny_cnn(images)
    got = hub.load(image_module, runtime="torch")(images.numpy())
    assert isinstance(got, torch.Tensor) and (got - expected).abs().max() <= 1e-5


# ---------------------------------------------------------------- integrity


def test_tampered_file_is_refused_before_load(image_module: Path, tmp_path: Path) -> None:
    copy = shutil.copytree(image_module, tmp_path / "m")
    labels = copy / "assets/labels.txt"
    labels.write_text(labels.read_text().replace("cat", "cow"))
    with pytest.raises(hub.IntegrityError, match="sha256") as info:
        hub.load(copy)
    assert info.value.path == labels


def test_tampered_graph_is_refused(image_module: Path, tmp_path: Path) -> None:
    copy = shutil.copytree(image_module, tmp_path / "m")
    graph = copy / "graph.pt2"
    data = bytearray(graph.read_bytes())
    data[len(data) // 2] ^= 0xFF
    graph.write_bytes(bytes(data))
    with pytest.raises(hub.IntegrityError, match=r"graph\.pt2"):
        hub.Layer(copy)


def test_unlisted_file_is_refused(image_module: Path, tmp_path: Path) -> None:
    copy = shutil.copytree(image_module, tmp_path / "m")
    (copy / "assets/extra.py").write_text("print('hi')")
    with pytest.raises(hub.IntegrityError, match="not listed"):
        hub.load(copy)


def test_missing_manifest_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(hub.ManifestError, match=r"modhub.export"):
        hub.load(tmp_path)


def test_future_format_version_is_refused(image_module: Path, tmp_path: Path) -> None:
    copy = shutil.copytree(image_module, tmp_path / "m")
    manifest = json.loads((copy / "modhub.json").read_text())
    manifest["format_version"] = 2
    (copy / "modhub.json").write_text(json.dumps(manifest))
    with pytest.raises(hub.ManifestError, match="Upgrade modhub"):
        hub.load(copy)


# ---------------------------------------------------------------- Layer


def _train_steps(model: torch.nn.Module, steps: int = 3) -> None:
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=0.5)
    for _ in range(steps):
        optimizer.zero_grad()
        loss = model(torch.rand(8, 3, 32, 32)).square().mean()
        loss.backward()
        optimizer.step()


def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_frozen_layer_does_not_change(image_module: Path) -> None:
    layer = hub.Layer(image_module, trainable=False)
    model = torch.nn.Sequential(layer, torch.nn.Linear(5, 2))
    model.train()
    before = _snapshot(layer)
    _train_steps(model)
    after = _snapshot(layer)
    assert before.keys() == after.keys() and before
    for key in before:
        assert torch.equal(before[key], after[key]), key  # weights and BatchNorm statistics
    assert not any(p.requires_grad for p in layer.parameters())
    # Frozen means inference behaviour even in train mode: deterministic, no dropout.
    x = torch.rand(4, 3, 32, 32)
    assert torch.equal(layer(x), layer(x))


def test_trainable_layer_fine_tunes(image_module: Path) -> None:
    layer = hub.Layer(image_module, trainable=True)
    model = torch.nn.Sequential(layer, torch.nn.Linear(5, 2)).train()
    before = _snapshot(layer)
    model(torch.rand(8, 3, 32, 32)).sum().backward()
    grads = [p.grad for p in layer.parameters()]
    assert grads and all(g is not None and g.abs().sum() > 0 for g in grads)
    _train_steps(model)
    after = _snapshot(layer)
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert any("running_mean" in k for k in changed)  # BatchNorm in training mode updates statistics
    assert sum("weight" in k for k in changed) >= 3


def test_train_mode_matches_eager_train_mode(image_module: Path, tiny_cnn: TinyCNN) -> None:
    import copy

    eager = copy.deepcopy(tiny_cnn).train()
    layer = hub.Layer(image_module, trainable=True).train()
    x = torch.rand(6, 3, 32, 32)
    torch.manual_seed(123)
    expected = eager(x)
    torch.manual_seed(123)
    got = layer(x)
    assert (got - expected).abs().max().item() <= 1e-5
    # Running statistics moved the same way.
    eager_mean = eager.bn.running_mean
    layer_mean = next(v for k, v in layer.state_dict().items() if k.endswith("running_mean"))
    assert torch.allclose(eager_mean, layer_mean, atol=1e-6)
    # And back to inference: identical to the eager model in eval mode.
    eager.eval()
    layer.eval()
    with torch.no_grad():
        assert (layer(x) - eager(x)).abs().max().item() <= 1e-5
        assert torch.equal(layer(x), layer(x))


def test_dropout_is_active_only_in_trainable_train_mode(image_module: Path) -> None:
    x = torch.rand(16, 3, 32, 32)
    layer = hub.Layer(image_module, trainable=True).train()
    torch.manual_seed(1)
    a = layer(x)
    torch.manual_seed(2)
    b = layer(x)
    assert not torch.equal(a, b)


def test_two_layers_do_not_share_weights(image_module: Path) -> None:
    first = hub.Layer(image_module, trainable=True)
    second = hub.Layer(image_module, trainable=True)
    before = _snapshot(second)
    _train_steps(torch.nn.Sequential(first).train())
    for key, value in _snapshot(second).items():
        assert torch.equal(value, before[key]), key
    pointers_a = {p.data_ptr() for p in first.parameters()}
    pointers_b = {p.data_ptr() for p in second.parameters()}
    assert not pointers_a & pointers_b


def test_text_layer_fine_tunes_on_strings(text_module: Path) -> None:
    layer = hub.Layer(text_module, trainable=True)
    head = torch.nn.Linear(16, 2)
    out = head(layer(["the cat sat", "a dog ran fast"]))
    out.sum().backward()
    assert all(p.grad is not None for p in layer.parameters())


def test_layer_state_dict_round_trips(image_module: Path) -> None:
    first = hub.Layer(image_module, trainable=True)
    _train_steps(torch.nn.Sequential(first).train())
    second = hub.Layer(image_module, trainable=True)
    second.load_state_dict(first.state_dict())
    first.eval()
    second.eval()
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(first(x), second(x))


def test_layer_repr_is_one_line(image_module: Path) -> None:
    layer = hub.Layer(image_module, trainable=True)
    text = repr(torch.nn.Sequential(layer, torch.nn.Linear(5, 2)))
    assert "Layer(task='image-classification', trainable=True" in text
    assert len(text.splitlines()) == 4
