"""Tiny models that tests export as modules. Loading must never need this file."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn


class TinyCNN(nn.Module):
    """Conv + BatchNorm + dropout + linear: exercises every mode-dependent op."""

    def __init__(self, classes: int = 5) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.drop = nn.Dropout(0.3)
        self.head = nn.Linear(8, classes)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn(self.conv(images - self.mean)))
        return self.head(self.drop(x.mean((2, 3))))


class TinyTextEncoder(nn.Module):
    """Embedding + one transformer layer + masked mean pooling, dynamic sequence length."""

    def __init__(self, vocab: int, dim: int = 16) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.pos = nn.Embedding(64, dim)
        self.attn = nn.MultiheadAttention(dim, 2, batch_first=True, dropout=0.1)
        self.norm = nn.LayerNorm(dim)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        x = self.embed(input_ids) + self.pos(positions)
        attended, _ = self.attn(x, x, x, key_padding_mask=attention_mask == 0, need_weights=False)
        x = self.norm(x + attended)
        mask = attention_mask.unsqueeze(-1).to(x.dtype)
        pooled = (x * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return nn.functional.normalize(pooled, dim=-1)


WORDS = [
    "the",
    "a",
    "cat",
    "dog",
    "sat",
    "on",
    "mat",
    "ran",
    "fast",
    "slow",
    "red",
    "blue",
    "house",
    "tree",
    "car",
]


def make_tokenizer(path: Path):  # type: ignore[no-untyped-def]
    """A word-level ``tokenizers`` tokenizer over WORDS, written to ``path``."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

    vocab = {"[PAD]": 0, "[UNK]": 1, **{w: i + 2 for i, w in enumerate(WORDS)}}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(path))
    return tok


LABELS = ["ant", "bee", "cat", "dog", "eel"]
TEXTS = ["the cat sat on the mat", "a dog ran fast", "red car"]
IMAGE_TASKS = ("image-classification", "image-feature-vector")


def make_module(
    task: str,
    out: Path,
    *,
    model: nn.Module | None = None,
    seed: int = 0,
    classes: int = 5,
    license: str = "Apache-2.0",
    **options: Any,
) -> Path:
    """A tiny module for ``task`` made by ``modhub.export`` into ``out``: a TinyCNN (``classes``
    outputs, seeded with ``seed``, 32x32 inputs; an image classifier gets LABELS) or a
    TinyTextEncoder with its word-level tokenizer. ``options`` go to ``export`` as they are."""
    import modhub as hub

    example: Any
    torch.manual_seed(seed)
    if task in IMAGE_TASKS:
        model = model if model is not None else TinyCNN(classes=classes).eval()
        if task == "image-classification":
            options.setdefault("labels", LABELS[:classes])
        example = torch.rand(2, 3, 32, 32)
    elif task == "text-embedding":
        model = model if model is not None else TinyTextEncoder(vocab=len(WORDS) + 2).eval()
        # The tokenizer lives beside the module, not in it: export copies it in.
        src = out.parent / f"{out.name}-src"
        src.mkdir(parents=True, exist_ok=True)
        make_tokenizer(src / "tokenizer.json")
        options = {"tokenizer": src / "tokenizer.json", "max_length": 32, **options}
        example = TEXTS
    else:
        raise ValueError(f"no tiny model for task {task!r}: use one of {[*IMAGE_TASKS, 'text-embedding']}")
    return hub.export(model, example, out, task=task, license=license, **options)


# --- Tiny models of any signature (issue 29): several inputs and outputs, other dtypes -----------
# Each ARCHITECTURES entry makes (model, example_inputs, export options); tests export it with
# hub.export, publish it, load it on each runtime and compare with the eager model.


class TinyStyleTransfer(nn.Module):
    """Magenta's shape: ``(content, style)`` images in [0, 1] -> the stylised content image."""

    def __init__(self) -> None:
        super().__init__()
        self.style_net = TinyStyleNet()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        scale = self.style_net(style)[:, :3, None, None]
        return torch.sigmoid(self.conv(content) * (1 + scale))


class TinyStyleNet(nn.Module):
    """The style image -> its style vector (the style-transfer model's second signature)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=2)

    def forward(self, style: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.conv(style).mean((2, 3)))


class TinyDetector(nn.Module):
    """SSD's outputs, by name: 6 boxes per image (yxyx in [0, 1]), their scores and class ids."""

    def __init__(self, classes: int = 4, boxes: int = 6) -> None:
        super().__init__()
        self.boxes, self.classes = boxes, classes
        self.conv = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.head = nn.Linear(8, boxes * (4 + classes))

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.head(torch.relu(self.conv(images)).mean((2, 3))).view(-1, self.boxes, 4 + self.classes)
        probs = torch.softmax(x[..., 4:], dim=-1)
        return {
            "detection_boxes": torch.sigmoid(x[..., :4]),
            "detection_scores": probs.max(-1).values,
            "detection_classes": probs.argmax(-1),
        }


class TinySegmenter(nn.Module):
    """Per-pixel class scores at the input's own (dynamic) size."""

    def __init__(self, classes: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, classes, 3, padding=1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.conv(images)


class TinyGenerator(nn.Module):
    """A latent vector -> an 8x8 RGB image in [0, 1] (a GAN's generator)."""

    def __init__(self, latent: int = 16) -> None:
        super().__init__()
        self.fc = nn.Linear(latent, 3 * 4 * 4)
        self.up = nn.ConvTranspose2d(3, 3, 2, stride=2)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.up(self.fc(latent).view(-1, 3, 4, 4)))


class TinyAudioEmbedder(nn.Module):
    """YAMNet's shape: a mono waveform [samples] (no batch) -> embeddings [frames, 8], 16-sample hop."""

    HOP = 16

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(1, 8, self.HOP, stride=self.HOP)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.conv(waveform[None, None])[0].transpose(0, 1))


class TinyIntegerInputs(nn.Module):
    """uint8 pixels (NHWC) and int32 ids in, float32 out: inputs that are not float."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(10, 4)
        self.fc = nn.Linear(3, 4)

    def forward(self, pixels: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        colour = pixels.to(torch.float32).mean((1, 2)) / 255.0
        return self.fc(colour) + self.embed(ids.to(torch.int64))


class TinyIntegerOutputs(nn.Module):
    """int64 and bool outputs (a tuple, named by output_names=)."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return x.argmax(-1), x > 0.5, (x > 0.5).sum(-1).to(torch.int32)


class TinyTextTwoOutputs(nn.Module):
    """Token ids in (through a tokenizer), an embedding and per-text token counts out."""

    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, 8)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        mask = attention_mask.unsqueeze(-1).to(torch.float32)
        pooled = (self.embed(input_ids) * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return {"embedding": pooled, "tokens": attention_mask.sum(1)}


class TinyPose(nn.Module):
    """MoveNet's shape: an NHWC image -> 17 keypoints (y, x, score) in [0, 1]."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 17 * 3)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.fc(image.mean((1, 2)))).view(-1, 1, 17, 3)


class TinySuperResolution(nn.Module):
    """An image at any size -> twice its size (output dimensions computed from the input's)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 12, 3, padding=1)
        self.shuffle = nn.PixelShuffle(2)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.shuffle(self.conv(image)))


class TinyKeywordInputs(nn.Module):
    """Called by keyword (a dict example), float64 and int16 inputs, float64 out."""

    def forward(self, values: torch.Tensor, offsets: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        return values * scale.to(torch.float64) + offsets.to(torch.float64)


class TinyAudioClassifier(nn.Module):
    """YAMNet's scores: a batch of waveforms -> per-frame class scores [batch, frames, 5]."""

    HOP = 32

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(1, 5, self.HOP, stride=self.HOP)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.conv(waveform.unsqueeze(1))).transpose(1, 2)


class TinyArch(NamedTuple):
    """A tiny model of some signature: what hub.export takes, and other inputs to call it with."""

    model: nn.Module
    example_inputs: Any
    # Options for hub.export (task, dynamic, meaning, ...).
    options: dict[str, Any]
    # Inputs of other sizes to call the module with: a tuple (positional) or a dict (keywords).
    probe: tuple[Any, ...] | dict[str, Any]


def _image_meaning(layout: str = "NCHW", value_range: tuple[float, float] = (0.0, 1.0)) -> dict[str, Any]:
    return {"kind": "image", "layout": layout, "value_range": value_range}


def _style_transfer() -> TinyArch:
    model = TinyStyleTransfer().eval()
    style = torch.rand(2, 3, 8, 8)
    options = {
        "task": "image-style-transfer",
        "dynamic": {"content": {2: "height", 3: "width"}},
        "meaning": {
            "content": _image_meaning(),
            "style": _image_meaning(),
            "stylized_image": _image_meaning(),
        },
        "signatures": {"style_vector": (model.style_net, (style,))},
    }
    return TinyArch(
        model, (torch.rand(2, 3, 12, 10), style), options, (torch.rand(3, 3, 9, 14), torch.rand(3, 3, 8, 8))
    )


def _detector() -> TinyArch:
    options = {
        "task": "image-object-detection",
        "meaning": {
            "images": _image_meaning(),
            "detection_boxes": {"kind": "boxes", "box_format": "yxyx", "normalized": True},
            "detection_scores": {"kind": "scores"},
            "detection_classes": {"kind": "classes", "labels": ["cat", "dog", "car", "tree"]},
        },
    }
    return TinyArch(TinyDetector().eval(), torch.rand(2, 3, 16, 16), options, (torch.rand(3, 3, 16, 16),))


def _segmenter() -> TinyArch:
    options = {
        "task": "image-segmentation",
        "dynamic": {"images": {2: "height", 3: "width"}},
        "output_names": ["masks"],
        "meaning": {"images": _image_meaning(), "masks": {"kind": "mask", "layout": "NCHW"}},
    }
    return TinyArch(TinySegmenter().eval(), torch.rand(2, 3, 10, 12), options, (torch.rand(1, 3, 7, 5),))


def _generator() -> TinyArch:
    options = {
        "task": "image-generator",
        "output_names": ["image"],
        "meaning": {"image": _image_meaning()},
    }
    return TinyArch(TinyGenerator().eval(), torch.randn(2, 16), options, (torch.randn(5, 16),))


def _audio_embedder() -> TinyArch:
    hop = TinyAudioEmbedder.HOP / 16000
    options = {
        "task": "audio-embedding",
        "batch": False,
        "dynamic": {"waveform": {0: "samples"}},
        "output_names": ["embeddings"],
        "meaning": {
            "waveform": {"kind": "audio", "sample_rate": 16000},
            "embeddings": {"kind": "embedding", "frame_hop": hop, "frame_length": hop},
        },
    }
    return TinyArch(TinyAudioEmbedder().eval(), torch.rand(160) * 2 - 1, options, (torch.rand(200) * 2 - 1,))


def _integer_inputs() -> TinyArch:
    pixels = torch.randint(0, 256, (2, 4, 4, 3), dtype=torch.uint8)
    ids = torch.tensor([1, 7], dtype=torch.int32)
    options = {"task": "other", "meaning": {"pixels": _image_meaning("NHWC", (0, 255))}}
    probe = (
        torch.randint(0, 256, (3, 4, 4, 3), dtype=torch.uint8),
        torch.tensor([0, 9, 3], dtype=torch.int32),
    )
    return TinyArch(TinyIntegerInputs().eval(), (pixels, ids), options, probe)


def _integer_outputs() -> TinyArch:
    options = {"task": "other", "output_names": ["best", "positive", "count"]}
    return TinyArch(TinyIntegerOutputs().eval(), torch.rand(3, 6), options, (torch.rand(4, 6),))


def _text() -> TinyArch:
    # tokenizer= is added by the test (a file beside the module).
    options = {"task": "other", "max_length": 16}
    probe = (["a red house", "the dog sat on the mat fast", "unknown words"],)
    return TinyArch(TinyTextTwoOutputs(vocab=len(WORDS) + 2).eval(), TEXTS, options, probe)


def _pose() -> TinyArch:
    from modhub.format.tasks import COCO_KEYPOINTS

    options = {
        "task": "image-pose-detection",
        "output_names": ["keypoints"],
        "meaning": {
            "image": _image_meaning("NHWC"),
            "keypoints": {"kind": "keypoints", "keypoints": COCO_KEYPOINTS},
        },
    }
    return TinyArch(TinyPose().eval(), torch.rand(2, 8, 8, 3), options, (torch.rand(3, 8, 8, 3),))


def _super_resolution() -> TinyArch:
    options = {
        "task": "image-super-resolution",
        "dynamic": {"image": {2: "height", 3: "width"}},
        "meaning": {"image": _image_meaning()},
    }
    return TinyArch(TinySuperResolution().eval(), torch.rand(2, 3, 6, 5), options, (torch.rand(1, 3, 4, 7),))


def _keyword_inputs() -> TinyArch:
    example = {
        "values": torch.rand(2, 5, dtype=torch.float64),
        "offsets": torch.tensor([[1], [-2]], dtype=torch.int16),
        "scale": torch.tensor([[0.5], [2.0]], dtype=torch.float16),
    }
    probe = {
        "values": torch.rand(3, 5, dtype=torch.float64),
        "offsets": torch.tensor([[4], [0], [-1]], dtype=torch.int16),
        "scale": torch.tensor([[1.5], [0.25], [-1.0]], dtype=torch.float16),
    }
    return TinyArch(TinyKeywordInputs().eval(), example, {"task": "other", "output_names": ["scaled"]}, probe)


AUDIO_LABELS = ["speech", "music", "dog", "car", "rain"]


def _audio_classifier() -> TinyArch:
    hop = TinyAudioClassifier.HOP / 16000
    options = {
        "task": "audio-event-classification",
        "dynamic": {"waveform": {1: "samples"}},
        "output_names": ["scores"],
        "meaning": {
            "waveform": {"kind": "audio", "sample_rate": 16000},
            "scores": {"kind": "scores", "frame_hop": hop, "labels": AUDIO_LABELS},
        },
    }
    return TinyArch(
        TinyAudioClassifier().eval(), torch.rand(2, 128) * 2 - 1, options, (torch.rand(3, 256) * 2 - 1,)
    )


ARCHITECTURES = {
    "style-transfer": _style_transfer,
    "detector": _detector,
    "segmenter": _segmenter,
    "generator": _generator,
    "audio-embedder": _audio_embedder,
    "integer-inputs": _integer_inputs,
    "integer-outputs": _integer_outputs,
    "text": _text,
    "pose": _pose,
    "super-resolution": _super_resolution,
    "keyword-inputs": _keyword_inputs,
    "audio-classifier": _audio_classifier,
}
