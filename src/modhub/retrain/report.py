"""The run report: validation metrics, a confusion-matrix and a training-curve PNG, JSON, model card.

Plots use matplotlib's object API with the Agg canvas (no pyplot global state,
no display needed).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["classification_metrics", "plot_confusion", "plot_history", "render_card_body", "write_json"]

REPORT_DIR = "report"
METRICS_FILE = "metrics.json"
CONFUSION_FILE = "confusion_matrix.png"
CURVE_FILE = "training_curve.png"


def classification_metrics(labels: np.ndarray, predictions: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """Accuracy, per-class precision/recall/F1/support and the confusion matrix (rows: true class)."""
    n = len(classes)
    matrix = np.zeros((n, n), dtype=np.int64)
    np.add.at(matrix, (labels, predictions), 1)
    per_class = {}
    for i, name in enumerate(classes):
        tp = int(matrix[i, i])
        predicted, actual = int(matrix[:, i].sum()), int(matrix[i, :].sum())
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = {"precision": precision, "recall": recall, "f1": f1, "support": actual}
    accuracy = float(np.trace(matrix) / matrix.sum()) if matrix.sum() else 0.0
    return {
        "accuracy": accuracy,
        "macro_f1": float(np.mean([c["f1"] for c in per_class.values()])),
        "per_class": per_class,
        "confusion_matrix": matrix.tolist(),
    }


def _figure(width: float, height: float):  # type: ignore[no-untyped-def]
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def plot_confusion(matrix: list[list[int]], classes: list[str], path: Path) -> None:
    counts = np.asarray(matrix)
    size = min(4 + 0.45 * len(classes), 16)
    fig = _figure(size, size)
    ax = fig.add_subplot()
    rows = counts.sum(1, keepdims=True)
    share = np.divide(counts, rows, out=np.zeros(counts.shape, dtype=float), where=rows > 0)
    image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    ticks = range(len(classes))
    ax.set_xticks(ticks, classes, rotation=45, ha="right")
    ax.set_yticks(ticks, classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("Validation confusion matrix")
    if len(classes) <= 30:
        for (i, j), value in np.ndenumerate(counts):
            colour = "white" if share[i, j] > 0.5 else "black"
            ax.text(j, i, str(value), ha="center", va="center", color=colour, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, format="png")


def plot_history(history: dict[str, Any], path: Path) -> None:
    """Loss and accuracy per epoch; ``history`` is ``History.to_json()``."""
    fig = _figure(10, 4)
    loss_ax, acc_ax = fig.subplots(1, 2)
    rows = history["epochs"]
    epochs = [e["epoch"] for e in rows]
    for ax, key, title in ((loss_ax, "loss", "Loss"), (acc_ax, "accuracy", "Accuracy")):
        ax.plot(epochs, [e[f"train_{key}"] for e in rows], label="train")
        ax.plot(epochs, [e[f"val_{key}"] for e in rows], label="validation")
        best = history["best_epoch"]
        ax.axvline(best, color="grey", linestyle=":", label=f"kept (epoch {best})")
        tuned = [e["epoch"] for e in rows if e["stage"] == "fine-tune"]
        if tuned:
            ax.axvspan(tuned[0] - 0.5, tuned[-1] + 0.5, color="orange", alpha=0.1, label="fine-tuning")
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    acc_ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, format="png")


def write_json(data: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def render_card_body(report: dict[str, Any], *, title: str, usage: str, license: str) -> str:
    """Markdown of the model card: what it is, the training data, the metrics, how to use it."""
    cfg = report["config"]
    data = report["data"]
    metrics = report["validation"]
    classes = report["classes"]
    kind = "image" if report["task"] == "image-classification" else "text"
    how = (
        f"the head first on the frozen module's features, then the module and the head together "
        f"(module learning rate {cfg['lr'] * cfg['backbone_lr_factor']:g}, head {cfg['lr']:g}; "
        f"BatchNorm statistics {'updated' if cfg['update_batchnorm'] else 'kept from the module'})"
        if cfg["fine_tune"]
        else f"the head only, on the frozen module's features (learning rate {cfg['lr']:g})"
    )
    lines = [
        f"# {title}",
        "",
        f"{'An image' if kind == 'image' else 'A text'} classifier for {len(classes)} classes, "
        f"made with `modhub retrain {'images' if kind == 'image' else 'text'}` "
        f"from {_base_reference(report['base_module'])}: the module's graph with a new "
        "linear head, exported as one graph. The output `logits` follow the order of "
        "`assets/labels.txt`.",
        "",
        "## Training data",
        "",
        f"{data['source']}: {data['examples']} examples, split per class (seed {cfg['seed']}) into "
        f"{data['train']} for training and {data['validation']} for validation "
        f"({cfg['validation']:.0%} held out)."
        + (
            f" {len(data['skipped'])} unreadable file(s) were skipped (listed in "
            f"`assets/{REPORT_DIR}/{METRICS_FILE}`)."
            if data["skipped"]
            else ""
        ),
        "",
        "| class | train | validation |",
        "|---|---|---|",
        *(
            f"| {_cell(name)} | {data['counts']['train'][name]} | {data['counts']['validation'][name]} |"
            for name in classes
        ),
        "",
        "## Training",
        "",
        f"Trained {how}; AdamW, batch size {cfg['batch_size']}, weight decay {cfg['weight_decay']:g}, "
        f"{len(report['history']['epochs'])} epochs"
        + (", random flips and crops" if cfg["augment"] else "")
        + f". The weights of epoch {report['history']['best_epoch']} (lowest validation loss) are kept. "
        "Features are standardised inside the head with the training split's mean and spread.",
        "",
        "## Validation metrics",
        "",
        f"Accuracy **{metrics['accuracy']:.3f}**, macro F1 {metrics['macro_f1']:.3f} on "
        f"{data['validation']} held-out examples.",
        "",
        "| class | precision | recall | F1 | support |",
        "|---|---|---|---|---|",
        *(
            f"| {_cell(name)} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | {m['support']} |"
            for name, m in metrics["per_class"].items()
        ),
        "",
        f"![confusion matrix](assets/{REPORT_DIR}/{CONFUSION_FILE})",
        f"![training curve](assets/{REPORT_DIR}/{CURVE_FILE})",
        "",
        "The validation split is small and was used to pick the epoch: expect lower accuracy on new "
        "data, and measure it on data of your own before relying on it.",
        "",
        "## Usage",
        "",
        usage,
        "",
        "## Licence",
        "",
        f"{license} (inherited from the base module; the new head was trained on the data above).",
    ]
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _base_reference(base: str) -> str:
    """A link for a URL handle; code for a short handle or path (a relative link would 404 on the hub)."""
    return f"[{base}]({base})" if base.startswith(("http://", "https://")) else f"`{base}`"
