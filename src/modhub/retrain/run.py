"""``retrain_images`` / ``retrain_text``.

data → features of the module (cached) → head chosen by k-fold cross-validation and
refitted on every example → one exported module + report. Text ``--fine-tune`` first
fine-tunes the encoder on contrastive pairs (SetFit); image ``--fine-tune`` and
``--augment`` train by epochs on a hold-out split instead.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

import modhub.retrain.report as rep
from modhub.errors import ExportError, InputError
from modhub.format.manifest import GRAPH_NAME, Manifest
from modhub.format.tasks import get_contract
from modhub.loading.layer import Layer
from modhub.loading.loader import RuntimeChoice
from modhub.loading.opener import open_module
from modhub.retrain.data import (
    LabelledData,
    drop_untokenisable,
    read_image_folder,
    read_text_csv,
    stratified_split,
)
from modhub.retrain.features import FeatureCache, extract_features, module_key
from modhub.retrain.heads import fit_head_cv
from modhub.retrain.inputs import ImageInputs, Inputs, TextInputs
from modhub.retrain.model import ImageClassifier, TextClassifier
from modhub.retrain.output import write_module
from modhub.retrain.train import BACKBONE_LR_FACTOR, Head, TrainConfig, fine_tune, predict, train_head
from modhub.runtimes import check_precision
from modhub.settings import Settings

__all__ = ["RetrainResult", "retrain_images", "retrain_text"]

Handle = str | os.PathLike[str]

# What each command needs from the base module, and what it makes.
_KINDS = {
    "image": ("image-feature-vector", "image-classification", "modhub retrain images"),
    "text": ("text-embedding", "text-classification", "modhub retrain text"),
    "audio": ("audio-embedding", "audio-command-detection", "modhub retrain audio"),  # retrain/audio.py
}


@dataclass
class RetrainResult:
    """What a run produced: the module directory and the report (also in ``assets/report/``)."""

    module_dir: Path
    report: dict[str, Any]

    @property
    def accuracy(self) -> float:
        return float(self.report["validation"]["accuracy"])

    @property
    def extracted(self) -> int:
        """Examples the base module was run on to make features (0: all came from the cache)."""
        return int(self.report["features"]["extracted"])


def retrain_images(
    data_dir: Handle,
    module: Handle,
    out_dir: Handle,
    *,
    config: TrainConfig | None = None,
    settings: Settings | None = None,
    progress: bool | None = None,
    overwrite: bool = False,
    license: str | None = None,
    precision: str | None = None,
) -> RetrainResult:
    """Train an image classifier on a folder of class sub-folders, on an image-feature-vector module.

    ``precision`` ("int8"; or ``config.precision``): frozen features from the module's variant of
    that precision; the new module holds the exact base graph with the head trained on them.
    """
    config = _with_precision(config or TrainConfig(), precision)
    _check_out(out_dir, overwrite)
    data = read_image_folder(data_dir)
    settings = settings or Settings.from_env()  # read once, here at the entry point
    return _run("image", data, module, Path(out_dir), config, settings, progress, overwrite, license)


def retrain_text(
    csv_path: Handle,
    module: Handle,
    out_dir: Handle,
    *,
    text_column: str = "text",
    label_column: str = "label",
    config: TrainConfig | None = None,
    settings: Settings | None = None,
    progress: bool | None = None,
    overwrite: bool = False,
    license: str | None = None,
    precision: str | None = None,
) -> RetrainResult:
    """Train a text classifier on a CSV of labelled texts, on top of a text-embedding module.

    ``precision``: as in :func:`retrain_images`.
    """
    config = _with_precision(config or TrainConfig(), precision)
    if config.augment:
        raise InputError("augmentation (flips and crops) is for images; drop --augment for text")
    _check_out(out_dir, overwrite)
    data = read_text_csv(csv_path, text_column=text_column, label_column=label_column)
    settings = settings or Settings.from_env()  # read once, here at the entry point
    return _run("text", data, module, Path(out_dir), config, settings, progress, overwrite, license)


def _with_precision(config: TrainConfig, precision: str | None) -> TrainConfig:
    """``config`` with the ``precision=`` keyword, if given (checked like ``hub.load``'s)."""
    if precision is not None:
        config = replace(config, precision=precision)
    check_precision(None, config.precision)
    return config


def _check_out(out_dir: Handle, overwrite: bool) -> None:
    # Checked before training, so a long run does not end in "directory exists".
    target = Path(out_dir)
    if target.exists() and not target.is_dir():
        raise ExportError(
            f"{target} exists and is a file; choose a directory for the new module", path=target
        )
    if target.is_dir() and any(target.iterdir()) and not overwrite:
        raise ExportError(
            f"{target} already exists and is not empty; choose a new --out directory or pass --overwrite",
            path=target,
        )


def _load_backbone(
    kind: str, module: Handle, settings: Settings, fine_tune: bool, precision: str | None = None
) -> tuple[Layer, Any]:
    """The base module as a ``Layer``, and what makes its frozen features (None: the Layer's graph).

    Frozen features come from ``hub.load``'s default runtime with numpy output: onnxruntime
    when the module has model.onnx (3-4x faster on CPU for the CNNs). The module is opened
    once for both (one read of modhub.json, one verification); fine-tuning, augmentation and
    export use the torch graph, and a torch choice reuses the Layer's graph (no second copy).
    ``precision``: frozen features from the module's variant of that precision ("int8"); the
    Layer (and so the new module) keeps the exact graph.
    """
    if precision is not None and fine_tune:
        raise InputError(
            f"--precision {precision} takes frozen features from the module's {precision} variant, "
            "which cannot be fine-tuned: drop --fine-tune, or drop --precision"
        )
    frozen = None if fine_tune else RuntimeChoice(output="numpy", precision=precision)

    def needed(manifest: Manifest) -> set[str]:
        _check_task(kind, module, manifest.task)  # before any file is read or torch loads the graph
        return {GRAPH_NAME} | (frozen(manifest) if frozen is not None else set())

    opened = open_module(module, settings=settings, needed=needed)
    backbone = Layer(opened, trainable=fine_tune)
    if frozen is None or frozen.runtime.name == "torch":
        return backbone, None
    return backbone, frozen.build(opened)


def _check_task(kind: str, module: Handle, task: str) -> None:
    wanted, _, command = _KINDS[kind]
    if task != wanted:
        other = next((k for k, (need, _, _) in _KINDS.items() if need == task), None)
        modality = get_contract(task).modality
        hint = (
            f"; for a {task} module use `{_KINDS[other][2]}`"
            if other
            else f" (its output is {'class scores' if 'classification' in task else 'not a feature vector'}: "
            f"use the {wanted} version of the module, e.g. ...-feature-vector)"
            if modality == kind
            else f"; a {modality} module cannot read {kind}s"
        )
        raise InputError(
            f"`{command}` needs a module of task {wanted}, but {module} is a {task} module{hint}",
            handle=str(module),
        )


def _open_backbone(
    kind: str, module: Handle, settings: Settings, config: TrainConfig, timings: dict[str, Any]
) -> tuple[Layer, Any]:
    """:func:`_load_backbone` after seeding torch, in eval mode, timed as ``load_module_s``."""
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    backbone, frozen = _load_backbone(
        kind, module, settings, fine_tune=config.fine_tune, precision=config.precision
    )
    backbone.eval()
    timings["load_module_s"] = time.perf_counter() - started
    return backbone, frozen


def _fit_head_cv(
    feats: np.ndarray,
    labels: np.ndarray,
    classes: list[str],
    config: TrainConfig,
    show: bool,
    timings: dict[str, Any],
    augmented: np.ndarray | None = None,
) -> tuple[torch.nn.Module, Any, dict[str, Any]]:
    """The head by k-fold cross-validation (timed as ``head_s``), its CV result, and the
    metrics of its out-of-fold predictions."""
    started = time.perf_counter()
    k = max(2, min(config.folds, int(np.bincount(labels).min())))
    with _bar(show, desc=f"{k}-fold CV", unit="fold", total=k + 1) as bar:
        head, cv = fit_head_cv(
            feats,
            labels,
            len(classes),
            folds=config.folds,
            seed=config.seed,
            augmented=augmented,
            progress=bar,
        )
    timings["head_s"] = time.perf_counter() - started
    metrics = rep.classification_metrics(labels, cv.oof_probs.argmax(1), classes)
    metrics["method"] = (
        f"{cv.folds}-fold stratified cross-validation: each example predicted by a head fitted without it"
    )
    return head, cv, metrics


@contextlib.contextmanager
def _bar(enabled: bool, **kwargs: Any) -> Iterator[Any]:
    from tqdm.auto import tqdm

    bar = tqdm(disable=not enabled, file=sys.stderr, dynamic_ncols=True, **kwargs)
    try:
        yield bar
    finally:
        bar.close()


def _run(
    kind: str,
    data: LabelledData,
    module: Handle,
    out_dir: Path,
    config: TrainConfig,
    settings: Settings,
    progress: bool | None,
    overwrite: bool,
    license: str | None,
) -> RetrainResult:
    from modhub.runtimes.images import RESIZE_POLICIES

    if config.resize not in RESIZE_POLICIES:
        raise InputError(f"unknown resize policy {config.resize!r}; use one of {', '.join(RESIZE_POLICIES)}")
    if kind == "text" and config.flip:
        raise InputError("flipping is for images; drop --flip for text")
    if config.precision is not None and config.augment:
        raise InputError(
            f"--augment computes features of changed photos with the exact torch graph, not the "
            f"{config.precision} variant: drop --augment, or drop --precision"
        )
    show = settings.show_progress(progress)
    timings: dict[str, Any] = {}
    backbone, frozen_runtime = _open_backbone(kind, module, settings, config, timings)
    if kind == "text":  # texts the module's tokenizer cannot take are skipped and named, not fatal
        data = drop_untokenisable(data, backbone._graph_args)
    inputs: Inputs = (
        ImageInputs(backbone, config.seed, config.resize) if kind == "image" else TextInputs(backbone)
    )
    examples = data.examples
    labels = np.array([ex.label for ex in examples], dtype=np.int64)

    def features_of(indices: list[int], augment: bool = False) -> np.ndarray:
        batch = [examples[i] for i in indices]
        if frozen_runtime is not None and not augment:
            if kind == "text":
                return np.asarray(frozen_runtime([ex.text or "" for ex in batch]), dtype=np.float32)
            return np.asarray(frozen_runtime(inputs(batch)[0].numpy()), dtype=np.float32)
        with torch.inference_mode():
            return backbone.graph(*inputs(batch, augment)).float().numpy()

    runtime = "onnx" if frozen_runtime is not None else "torch"
    if config.precision is not None:
        runtime = f"onnx-{config.precision}"  # other features: never the exact graph's cached ones
    cache_params = {**inputs.cache_params, "runtime": runtime}
    timings["runtime"] = cache_params["runtime"]
    cache = FeatureCache(settings.cache / "features", module_key(backbone.manifest, cache_params))
    holdout = config.augment or (kind == "image" and config.fine_tune)
    run = _Run(kind, data, backbone, inputs, cache, config, show, timings, labels, features_of)
    if holdout:
        classifier, report_part = run.holdout()
    else:
        classifier, report_part = run.cross_validated()

    report: dict[str, Any] = {
        "task": _KINDS[kind][1],
        "base_module": str(module),
        "classes": data.classes,
        "config": {**asdict(config), "backbone_lr_factor": BACKBONE_LR_FACTOR},
        **report_part,
        "features": {"extracted": run.extracted, "cache_hits": cache.hits, "cache_misses": cache.misses},
        "timings": timings,
    }
    report["data"] = {
        "source": data.source,
        "examples": len(examples),
        "skipped": data.skipped,
        **report["data"],
    }
    started = time.perf_counter()
    sample = examples[:2]
    example = inputs(sample)[0] if kind == "image" else [ex.text or "" for ex in sample]
    write_module(
        classifier,
        backbone,
        example,
        out_dir,
        report,
        license=license,
        overwrite=overwrite,
        photos={i: ex.path for i, ex in enumerate(examples) if ex.path is not None},
    )
    timings["export_s"] = time.perf_counter() - started
    return RetrainResult(out_dir, report)


@dataclass
class _Run:
    """The two ways of fitting the head, sharing the run's module, inputs and feature cache."""

    kind: str
    data: LabelledData
    backbone: Layer
    inputs: Inputs
    cache: FeatureCache
    config: TrainConfig
    show: bool
    timings: dict[str, Any]
    labels: np.ndarray
    features_of: Any
    extracted: int = 0

    def _features(self, flipped: bool = False) -> np.ndarray:
        config, examples = self.config, self.data.examples

        def compute(indices: list[int]) -> np.ndarray:
            if not flipped:
                return np.asarray(self.features_of(indices))
            with torch.inference_mode():
                images = self.inputs([examples[i] for i in indices])[0].flip(-1)
                return self.backbone.graph(images).float().numpy()

        started = time.perf_counter()
        suffix = ":hflip" if flipped else ""
        feats, extracted = extract_features(
            [ex.key + suffix for ex in examples],
            compute,
            self.cache,
            batch_size=config.batch_size,
            progress=lambda total: _bar(
                self.show, desc="features (flipped)" if flipped else "features", unit="ex", total=total
            ),
        )
        self.extracted += extracted
        self.timings["features_s"] = self.timings.get("features_s", 0.0) + time.perf_counter() - started
        return feats

    def cross_validated(self) -> tuple[torch.nn.Module, dict[str, Any]]:
        """Head by L-BFGS logistic regression, L2 strength by stratified k-fold CV, refitted on all."""
        config, examples, labels = self.config, self.data.examples, self.labels
        fine_tuned = None
        if config.fine_tune:  # text: SetFit-style contrastive fine-tuning of the encoder first
            from modhub.retrain.setfit import contrastive_fine_tune

            started = time.perf_counter()
            with _bar(self.show, desc="contrastive pairs", unit="pair") as bar:
                fine_tuned = contrastive_fine_tune(
                    self.backbone,
                    self.inputs,
                    examples,
                    labels,
                    config,
                    progress=bar,
                )
            self.timings["fine_tune_s"] = time.perf_counter() - started
            started = time.perf_counter()
            self.backbone.eval()
            with _bar(self.show, desc="features (fine-tuned)", unit="ex", total=len(examples)) as bar:
                chunks = []
                for start in range(0, len(examples), config.batch_size):
                    chunk = list(range(start, min(len(examples), start + config.batch_size)))
                    chunks.append(np.asarray(self.features_of(chunk)))
                    bar.update(len(chunk))
            feats = np.concatenate(chunks)
            self.extracted += len(examples)
            self.timings["features_s"] = time.perf_counter() - started
        else:
            feats = self._features()
        extra = self._features(flipped=True) if config.flip else None
        head, cv, metrics = _fit_head_cv(
            feats, labels, self.data.classes, config, self.show, self.timings, augmented=extra
        )
        if fine_tuned is not None:
            metrics["method"] += (
                "; the encoder was fine-tuned on all examples first, so these numbers are optimistic"
            )
        metrics["misclassified"] = rep.misclassified(
            labels,
            cv.oof_probs,
            self.data.classes,
            [ex.name for ex in examples],
            [ex.text for ex in examples],
        )
        model_cls = ImageClassifier if self.kind == "image" else TextClassifier
        part = {
            "validation": metrics,
            "cross_validation": cv.to_json(),
            "fine_tune": fine_tuned,
            "history": None,
            "data": {
                "train": len(examples),
                "validation": len(examples),
                "counts": {"train": _count(labels, self.data.classes)},
                "validation_examples": [ex.name for ex in examples],
            },
        }
        return model_cls(self.backbone, head), part

    def holdout(self) -> tuple[torch.nn.Module, dict[str, Any]]:
        """Mini-batch head (and fine-tuning) with a held-out validation split, best epoch kept."""
        config, examples, labels = self.config, self.data.examples, self.labels
        train_idx, val_idx = stratified_split(labels.tolist(), config.validation, config.seed)
        feats = self._features()
        train_x, val_x = feats[train_idx], feats[val_idx]
        train_y, val_y = labels[train_idx], labels[val_idx]
        head = Head.for_features(train_x, len(self.data.classes))
        augment_frozen = config.augment and not config.fine_tune
        inputs, features_of = self.inputs, self.features_of

        def augmented_features(epoch: int) -> np.ndarray:
            # Augmented images differ every epoch, so the frozen module runs on each (no cache).
            out = [
                features_of([train_idx[i] for i in chunk], augment=True)
                for chunk in np.array_split(
                    np.arange(len(train_idx)), max(1, len(train_idx) // config.batch_size)
                )
            ]
            return np.concatenate(out)

        tune_epochs = config.fine_tune_epochs if config.fine_tune_epochs is not None else config.epochs
        total_epochs = config.epochs + (tune_epochs if config.fine_tune else 0)
        with _bar(self.show, desc="epochs", unit="epoch", total=total_epochs) as bar:
            history = train_head(
                head,
                augmented_features if augment_frozen else train_x,
                train_y,
                val_x,
                val_y,
                config,
                progress=bar,
            )
            classifier = (ImageClassifier if self.kind == "image" else TextClassifier)(self.backbone, head)
            if config.fine_tune:

                def train_batch(batch: list[int], augment: bool) -> tuple[torch.Tensor, ...]:
                    return inputs([examples[train_idx[i]] for i in batch], augment)

                def val_batch(batch: list[int]) -> tuple[torch.Tensor, ...]:
                    return inputs([examples[val_idx[i]] for i in batch])

                history = fine_tune(
                    classifier,
                    self.backbone,
                    head,
                    train_batch,
                    train_y,
                    val_batch,
                    val_y,
                    config,
                    progress=bar,
                    history=history,
                )
        classifier.eval()
        if config.fine_tune:
            val_logits = predict(
                classifier,
                lambda b: inputs([examples[val_idx[i]] for i in b]),
                len(val_idx),
                config.batch_size,
            )
        else:
            with torch.no_grad():
                val_logits = head(torch.from_numpy(val_x))
        probs = val_logits.softmax(1).numpy()
        metrics = rep.classification_metrics(val_y, probs.argmax(1), self.data.classes)
        metrics["method"] = f"hold-out split: {config.validation:.0%} of each class, never trained on"
        metrics["misclassified"] = rep.misclassified(
            val_y,
            probs,
            self.data.classes,
            [examples[i].name for i in val_idx],
            [examples[i].text for i in val_idx],
            [int(i) for i in val_idx],
        )
        part = {
            "validation": metrics,
            "cross_validation": None,
            "fine_tune": None,
            "history": history.to_json(),
            "data": {
                "train": len(train_idx),
                "validation": len(val_idx),
                "counts": {
                    "train": _count(labels[train_idx], self.data.classes),
                    "validation": _count(labels[val_idx], self.data.classes),
                },
                "validation_examples": [examples[i].name for i in val_idx],
            },
        }
        return classifier, part


def _count(labels: np.ndarray, classes: list[str]) -> dict[str, int]:
    counts = np.bincount(labels, minlength=len(classes))
    return {name: int(counts[i]) for i, name in enumerate(classes)}
