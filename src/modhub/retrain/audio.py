"""``retrain_audio``: a sound classifier on top of an audio-embedding module.

data (a folder per class of WAV/FLAC clips) → each clip's frame embeddings, mean-pooled
(cached) → head chosen by k-fold cross-validation, as ``retrain images`` does without
``--fine-tune`` → one exported module that takes a waveform (or a sound file) and returns
``logits`` [batch, classes]: the base module's graph, the mean over frames, the new head.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import modhub.retrain.report as rep
from modhub.errors import InputError
from modhub.loading.layer import Layer
from modhub.retrain.data import Example, LabelledData, log, read_class_folders
from modhub.retrain.features import FeatureCache, extract_features, module_key
from modhub.retrain.output import write_module
from modhub.retrain.run import RetrainResult, _bar, _check_out, _count, _fit_head_cv, _open_backbone
from modhub.retrain.train import TrainConfig
from modhub.runtimes.audio import AUDIO_SUFFIXES, prepare_audio
from modhub.settings import Settings

__all__ = ["AudioClassifier", "read_audio_folder", "retrain_audio"]

# What the exported classifier's task is: TF Hub's id for spoken-command models (no contract).
AUDIO_CLASSIFIER_TASK = "audio-command-detection"


class AudioClassifier(nn.Module):
    """waveform [B, S] → logits [B, C]: frame embeddings, their mean, the head."""

    def __init__(self, backbone: Layer, head: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone.graph(waveform).mean(dim=1))


def read_audio_folder(data_dir: str | os.PathLike[str]) -> LabelledData:
    """One sub-folder per class, sound files inside (WAV, FLAC, ...)."""
    return read_class_folders(
        data_dir, AUDIO_SUFFIXES, noun="sound file", sample="clip.wav", source="sound clips"
    )


def retrain_audio(
    data_dir: str | os.PathLike[str],
    module: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    config: TrainConfig | None = None,
    settings: Settings | None = None,
    progress: bool | None = None,
    overwrite: bool = False,
    license: str | None = None,
) -> RetrainResult:
    """Train a sound classifier on a folder of class sub-folders, on an audio-embedding module."""
    config = config or TrainConfig()
    if config.fine_tune or config.augment or config.flip:
        raise InputError(
            "retrain audio trains a head on frozen pooled embeddings: drop --fine-tune/--augment/--flip"
        )
    _check_out(out_dir, overwrite)
    data = read_audio_folder(data_dir)
    settings = settings or Settings.from_env()  # read once, here at the entry point
    show = settings.show_progress(progress)
    timings: dict[str, Any] = {}
    backbone, frozen = _open_backbone("audio", module, settings, config, timings)
    spec = backbone.manifest.signature().inputs[0]
    if len(spec.shape) != 2:
        raise InputError(
            f"retrain audio needs a module that takes a batch of waveforms [batch, samples]; {module} takes "
            f"{list(spec.shape)}"
        )
    examples = list(data.examples)
    labels = np.array([ex.label for ex in examples], dtype=np.int64)

    skipped: list[str] = []

    def pooled(indices: list[int]) -> np.ndarray:
        rows = []
        for i in indices:
            example = examples[i]
            try:
                waveform = prepare_audio(example.path, spec)
            except InputError as exc:
                # Rare (listed files are decoded once); a zero row would poison the head: stop.
                raise InputError(f"{example.name}: {exc}") from None
            if frozen is not None:
                frames = np.asarray(frozen(waveform), dtype=np.float32)
            else:
                with torch.inference_mode():
                    frames = backbone.graph(torch.from_numpy(waveform)).float().numpy()
            rows.append(frames.mean(axis=1)[0])
        return np.stack(rows)

    cache_params = {
        "inputs": "audio",
        "pooling": "mean",
        "runtime": "onnx" if frozen is not None else "torch",
    }
    timings["runtime"] = cache_params["runtime"]
    cache = FeatureCache(settings.cache / "features", module_key(backbone.manifest, cache_params))
    started = time.perf_counter()
    feats, extracted = extract_features(
        [ex.key for ex in examples],
        pooled,
        cache,
        batch_size=config.batch_size,
        progress=lambda total: _bar(show, desc="features", unit="clip", total=total),
    )
    timings["features_s"] = time.perf_counter() - started
    head, cv, metrics = _fit_head_cv(feats, labels, data.classes, config, show, timings)
    metrics["misclassified"] = rep.misclassified(
        labels, cv.oof_probs, data.classes, [ex.name for ex in examples], [None] * len(examples)
    )
    report: dict[str, Any] = {
        "task": AUDIO_CLASSIFIER_TASK,
        "base_module": str(module),
        "classes": data.classes,
        "config": asdict(config),
        "validation": metrics,
        "cross_validation": cv.to_json(),
        "fine_tune": None,
        "history": None,
        "data": {
            "source": data.source,
            "examples": len(examples),
            "skipped": data.skipped + skipped,
            "train": len(examples),
            "validation": len(examples),
            "counts": {"train": _count(labels, data.classes)},
            "validation_examples": [ex.name for ex in examples],
        },
        "features": {"extracted": extracted, "cache_hits": cache.hits, "cache_misses": cache.misses},
        "timings": timings,
    }
    if skipped:
        log.warning("skipped %d clip(s)", len(skipped))
    started = time.perf_counter()
    classifier = AudioClassifier(backbone, head).eval()
    _write(classifier, backbone, spec, examples, Path(out_dir), report, license=license, overwrite=overwrite)
    timings["export_s"] = time.perf_counter() - started
    return RetrainResult(Path(out_dir), report)


def _write(
    classifier: AudioClassifier,
    backbone: Layer,
    spec: Any,
    examples: list[Example],
    out_dir: Path,
    report: dict[str, Any],
    *,
    license: str | None,
    overwrite: bool,
) -> Path:
    # Two clips of one length trace the graph (batch and samples stay dynamic).
    clips = [prepare_audio(ex.path, spec)[0] for ex in examples[:2]]
    length = max(len(c) for c in clips)
    example = torch.from_numpy(np.stack([np.pad(c, (0, length - len(c))) for c in clips]))
    return write_module(
        classifier, backbone, (example,), out_dir, report, license=license, overwrite=overwrite
    )
