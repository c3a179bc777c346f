"""Fixtures shared by the whole suite: tiny modules made in the test, and a clean environment."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.tiny_models import WORDS, TinyCNN, TinyTextEncoder, make_tokenizer


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No test reads the developer's own cache, token or hub."""
    for var in ("MODHUB_ENDPOINT", "MODHUB_TOKEN", "MODHUB_OFFLINE", "MODHUB_PROGRESS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MODHUB_CACHE", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.setenv("MODHUB_CONFIG_DIR", str(tmp_path_factory.mktemp("config")))


@pytest.fixture(scope="session")
def tiny_cnn() -> TinyCNN:
    torch.manual_seed(0)
    model = TinyCNN()
    # Non-trivial BatchNorm statistics, so train/eval differences show.
    with torch.no_grad():
        model.bn.running_mean.uniform_(-0.5, 0.5)
        model.bn.running_var.uniform_(0.5, 2.0)
    return model.eval()


@pytest.fixture(scope="session")
def image_module(tiny_cnn: TinyCNN, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An image-classification module (5 classes, 32x32) with model.onnx."""
    import modhub as hub

    out = tmp_path_factory.mktemp("modules") / "tiny-cnn"
    return hub.export(
        tiny_cnn,
        torch.rand(2, 3, 32, 32),
        out,
        task="image-classification",
        license="Apache-2.0",
        labels=["ant", "bee", "cat", "dog", "eel"],
        metadata={"title": "Tiny CNN", "tags": ["test"]},
        onnx=True,
    )


@pytest.fixture(scope="session")
def tiny_text_encoder() -> TinyTextEncoder:
    torch.manual_seed(0)
    return TinyTextEncoder(vocab=len(WORDS) + 2).eval()


def export_tiny_text(
    encoder: TinyTextEncoder, tmp_path_factory: pytest.TempPathFactory, name: str, *, onnx: bool = False
) -> Path:
    """The tiny text encoder exported as a text-embedding module (with model.onnx if ``onnx``)."""
    import modhub as hub

    work = tmp_path_factory.mktemp("text-src")
    make_tokenizer(work / "tokenizer.json")
    out = tmp_path_factory.mktemp("modules") / name
    return hub.export(
        encoder,
        ["the cat sat on the mat", "a dog ran fast", "red car"],
        out,
        task="text-embedding",
        license="MIT",
        tokenizer=work / "tokenizer.json",
        max_length=32,
        onnx=onnx,
    )


@pytest.fixture(scope="session")
def text_module(tiny_text_encoder: TinyTextEncoder, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_tiny_text(tiny_text_encoder, tmp_path_factory, "tiny-text")
