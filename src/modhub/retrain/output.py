"""Writing the retrained classifier: report files, model card and one exported module."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

import modhub.retrain.report as rep
from modhub.errors import InputError
from modhub.loading.layer import Layer

__all__ = ["write_module"]

# Per task made: what the classifier reads (in its title) and the command that makes it.
_KINDS = {
    "image-classification": ("image", "modhub retrain images"),
    "text-classification": ("text", "modhub retrain text"),
    "audio-command-detection": ("sound", "modhub retrain audio"),
}


def write_module(
    classifier: torch.nn.Module,
    backbone: Layer,
    example: Any,
    out_dir: Path,
    report: dict[str, Any],
    *,
    license: str | None,
    overwrite: bool,
    photos: dict[int, Path] | None = None,
) -> Path:
    """Export ``classifier`` (backbone graph + head) as a module whose ``assets/report/``
    holds the metrics JSON and the two plots, with a generated model card.

    ``example``: a few images [B, 3, H, W], texts, or a (waveforms [B, S],) tuple, to trace the graph with.
    ``photos``: example index → photo file, for the grid of misclassified photos.
    """
    from modhub.exporting.pytorch import export

    task = report["task"]
    kind, command = _KINDS[task]
    base = backbone.manifest
    licence = license or base.license
    classes = report["classes"]
    title = (
        f"{out_dir.name} ({kind} classifier retrained from {base.metadata.title or report['base_module']})"
    )
    metadata = {
        "title": title,
        "description": f"{len(classes)}-class {kind} classifier retrained with modhub from "
        f"{report['base_module']}.",
        "architecture": f"{base.metadata.architecture or base.metadata.title or 'base module'}"
        + (" + mean + linear head" if kind == "sound" else " + linear head"),
        "dataset": report["data"]["source"],
        "base_module": report["base_module"],
        "tags": tuple(dict.fromkeys(("transfer-learning", *base.metadata.tags))),
        "source": command,
        "extra": {"validation_accuracy": report["validation"]["accuracy"], "classes": len(classes)},
    }
    precision = report["config"].get("precision")
    if precision is not None:
        # The new module is the exact base graph + a head trained on the variant's features.
        metadata["extra"]["features_precision"] = precision
        metadata["extra"]["features_note"] = (
            f"the head was trained on frozen features of the base module's {precision} variant; "
            "this module holds the exact base graph with that head"
        )
    with tempfile.TemporaryDirectory(prefix="modhub-report-") as tmp:
        report_dir = Path(tmp)
        files = [rep.METRICS_FILE, rep.CONFUSION_FILE]
        rep.plot_confusion(report["validation"]["confusion_matrix"], classes, report_dir / rep.CONFUSION_FILE)
        if report.get("cross_validation"):
            rep.plot_cv(report["cross_validation"], report_dir / rep.CV_FILE)
            files.append(rep.CV_FILE)
        else:
            rep.plot_history(report["history"], report_dir / rep.CURVE_FILE)
            files.append(rep.CURVE_FILE)
        wrong = report["validation"].get("misclassified") or []
        if (
            kind == "image"
            and photos
            and rep.plot_misclassified(wrong, photos, report_dir / rep.MISCLASSIFIED_FILE)
        ):
            report["has_misclassified_grid"] = True
            files.append(rep.MISCLASSIFIED_FILE)
        rep.write_json(report, report_dir / rep.METRICS_FILE)
        body = rep.render_card_body(report, title=title, usage=_usage(kind, out_dir.name), license=licence)
        assets: dict[str, str | os.PathLike[str] | bytes] = {
            f"{rep.REPORT_DIR}/{name}": report_dir / name for name in files
        }
        common: dict[str, Any] = dict(
            task=task,
            license=licence,
            labels=classes,
            metadata=metadata,
            card=body,
            assets=assets,
            overwrite=overwrite,
            fine_tunable=True,
        )
        if kind == "image":
            image = base.preprocessing.image
            return export(
                classifier,
                example,
                out_dir,
                mean=image.mean if image else None,
                std=image.std if image else None,
                resize=report["config"]["resize"],
                **common,
            )
        if kind == "sound":  # waveform [batch, samples] → frame embeddings, their mean, the head
            spec = base.signature().inputs[0].model_dump()
            audio = {
                k: v for k, v in spec.items() if k in ("kind", "sample_rate", "value_range", "description")
            }
            return export(
                classifier,
                example,
                out_dir,
                input_names=("waveform",),
                output_names=("logits",),
                dynamic={"waveform": {0: "batch", 1: "samples"}},
                meaning={
                    "waveform": audio,
                    "logits": {
                        "description": "unnormalised class scores per clip (softmax for probabilities)"
                    },
                },
                onnx=True,
                **common,
            )
        tok = base.preprocessing.tokenizer
        if tok is None:  # text contracts require a tokenizer; guard for hand-made manifests
            raise InputError(f"{backbone.path} has no preprocessing.tokenizer in modhub.json")
        return export(
            classifier,
            example,
            out_dir,
            tokenizer=backbone.path / tok.file,
            max_length=tok.max_length,
            padding=tok.padding,
            pad_id=tok.pad_id,
            graph_inputs=tok.graph_inputs,
            **common,
        )


def _usage(kind: str, name: str) -> str:
    if kind == "sound":
        return (
            "```python\nimport modhub as hub\n\n"
            f'module = hub.load("{name}")  # this directory, or its handle once published\n'
            "# a WAV/FLAC path or bytes, or (waveform, sample_rate): mixed to mono and resampled\n"
            'logits = module("clip.wav")\n'
            "print(module.labels[int(logits.argmax())])\n```"
        )
    call = (
        "# photos: file paths, PIL images, bytes or uint8 arrays; the module resizes them\n"
        'probs = module(["photo1.jpg", "photo2.png"]).softmax(-1)'
        if kind == "image"
        else 'probs = module(["first text", "second text"]).softmax(-1)'
    )
    return (
        "```python\nimport modhub as hub\n\n"
        f'module = hub.load("{name}")  # this directory, or its handle once published\n'
        f"{call}\nprint([module.labels[i] for i in probs.argmax(-1)])\n```"
    )
