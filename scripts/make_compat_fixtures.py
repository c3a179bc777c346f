"""Make the cross-release fixtures of tests/fixtures/compat/: three tiny modules (a CNN, a text
encoder, an LSTM) exported by the torch this runs under, each with what the exporter computed
on fixed inputs, so that tests/packaging/test_compat_fixtures.py can check that another torch
(the one this repository pins) loads, runs and trains them to the same numbers.

    python scripts/make_compat_fixtures.py OUT      # writes OUT/torch-<release>/{cnn,text,lstm}

Run it in a throwaway venv holding the torch release to test and modhub's client packages
(numpy, onnx, onnxscript, onnxruntime, tokenizers, pydantic, ...); modhub itself is imported from
this checkout. docs/install.md says how the committed fixtures were made.

Beside each module directory, ``<name>.npz`` holds: ``inputs`` (the images, or the texts),
``outputs`` (the eager model's outputs in eval mode) and ``stepped`` (its outputs after one SGD
step, lr=STEP_LR, on the loss ``mean(outputs**2)``, in eval mode).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# modhub from this checkout, and the tests' tiny vocabulary and tokenizer (tests.tiny_models).
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

import numpy as np  # noqa: E402
import torch  # noqa: E402
from tests.tiny_models import TEXTS, WORDS, make_tokenizer  # noqa: E402
from torch import nn  # noqa: E402

import modhub as hub  # noqa: E402
from modhub.format.manifest import read_manifest  # noqa: E402
from modhub.runtimes.preprocessing import TextEncoder as Tokenise  # noqa: E402

STEP_LR = 0.1


class CNN(nn.Module):
    """Conv + BatchNorm + dropout + linear: every mode-dependent op of an image model."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.drop = nn.Dropout(0.3)
        self.head = nn.Linear(8, 4)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn(self.conv(images)))
        return self.head(self.drop(x.mean((2, 3))))


class TextEncoder(nn.Module):
    """Embedding + a linear layer + masked mean pooling, dynamic sequence length."""

    def __init__(self, vocab: int, dim: int = 8) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.proj = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        x = self.norm(torch.tanh(self.proj(self.embed(input_ids))))
        mask = attention_mask.unsqueeze(-1).to(x.dtype)
        return (x * mask).sum(1) / mask.sum(1).clamp(min=1.0)


class LSTMEncoder(nn.Module):
    """A one-layer LSTM over an image's rows (a fixed-length sequence: torch.export specialises an
    LSTM's sequence length); its output at the last row is the feature vector."""

    def __init__(self, dim: int = 8) -> None:
        super().__init__()
        self.lstm = nn.LSTM(3 * 8, dim, batch_first=True)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        rows = images.permute(0, 2, 1, 3).reshape(images.shape[0], 8, 3 * 8)
        sequence, _ = self.lstm(rows)
        return sequence[:, -1]


def _stepped(model: nn.Module, args: tuple[torch.Tensor, ...]) -> np.ndarray:
    """The model's outputs after one SGD step on mean(outputs**2), in eval mode."""
    optimizer = torch.optim.SGD(model.parameters(), lr=STEP_LR)
    loss = model(*args).pow(2).mean()
    loss.backward()
    optimizer.step()
    with torch.no_grad():
        return model(*args).numpy()


def make(out: Path) -> Path:
    """Export the three fixture modules into ``out/torch-<release>``; return that directory."""
    release = torch.__version__.split("+")[0]
    target = out / f"torch-{release}"
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    torch.manual_seed(0)
    images = torch.from_numpy(np.random.default_rng(0).random((2, 3, 16, 16), dtype=np.float32))
    cnn = CNN().eval()
    with torch.no_grad():
        # BatchNorm statistics that are not the identity, as a trained model has.
        cnn.bn.running_mean.uniform_(-0.1, 0.1)
        cnn.bn.running_var.uniform_(0.5, 1.5)
    hub.export(cnn, images, target / "cnn", task="image-feature-vector", license="Apache-2.0", onnx=True)
    with torch.no_grad():
        outputs = cnn(images).numpy()
    np.savez(target / "cnn.npz", inputs=images.numpy(), outputs=outputs, stepped=_stepped(cnn, (images,)))

    rows = torch.from_numpy(np.random.default_rng(1).random((2, 3, 8, 8), dtype=np.float32))
    lstm = LSTMEncoder().eval()
    hub.export(lstm, rows, target / "lstm", task="image-feature-vector", license="Apache-2.0", onnx=True)
    with torch.no_grad():
        outputs = lstm(rows).numpy()
    np.savez(target / "lstm.npz", inputs=rows.numpy(), outputs=outputs, stepped=_stepped(lstm, (rows,)))

    with tempfile.TemporaryDirectory() as scratch:
        tokenizer = Path(scratch) / "tokenizer.json"
        make_tokenizer(tokenizer)
        model = TextEncoder(len(WORDS) + 2).eval()
        for name in ("text",):
            module = hub.export(
                model,
                TEXTS,
                target / name,
                task="text-embedding",
                license="Apache-2.0",
                tokenizer=tokenizer,
                max_length=16,
                onnx=True,
            )
            spec = read_manifest(module).preprocessing.tokenizer
            assert spec is not None
            args = Tokenise(spec, module / spec.file)(TEXTS)
            with torch.no_grad():
                outputs = model(*args).numpy()
            np.savez(
                target / f"{name}.npz", inputs=np.array(TEXTS), outputs=outputs, stepped=_stepped(model, args)
            )
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="directory that receives torch-<release>/")
    target = make(parser.parse_args().out)
    print(target)


if __name__ == "__main__":
    main()
