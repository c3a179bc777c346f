"""The run report: validation metrics, a confusion-matrix and a training-curve PNG, JSON, model card.

Plots use matplotlib's object API with the Agg canvas (no pyplot global state,
no display needed).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "classification_metrics",
    "misclassified",
    "plot_confusion",
    "plot_cv",
    "plot_history",
    "plot_misclassified",
    "render_card_body",
    "write_json",
]

REPORT_DIR = "report"
METRICS_FILE = "metrics.json"
CONFUSION_FILE = "confusion_matrix.png"
CURVE_FILE = "training_curve.png"
CV_FILE = "cross_validation.png"
MISCLASSIFIED_FILE = "misclassified.png"
# Most confidently wrong validation examples kept in the report (grid and table).
MAX_MISCLASSIFIED = 24
# Longest text shown in the card's table of misclassified texts.
MAX_TEXT_CHARS = 160


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


def misclassified(
    labels: np.ndarray,
    probs: np.ndarray,
    classes: list[str],
    names: list[str],
    texts: list[str | None],
    indices: list[int] | None = None,
) -> list[dict[str, Any]]:
    """The validation examples predicted wrongly, most confident first (at most MAX_MISCLASSIFIED).

    ``indices``: each row's index among the run's examples (default: the row number).
    """
    predicted = probs.argmax(1)
    wrong = np.flatnonzero(predicted != labels)
    wrong = wrong[np.argsort(-probs[wrong, predicted[wrong]], kind="stable")][:MAX_MISCLASSIFIED]
    out = []
    for row in wrong.tolist():
        entry: dict[str, Any] = {
            "example": indices[row] if indices is not None else row,
            "name": names[row],
            "true": classes[int(labels[row])],
            "predicted": classes[int(predicted[row])],
            "confidence": float(probs[row, predicted[row]]),
        }
        if texts[row] is not None:
            entry["text"] = texts[row]
        out.append(entry)
    return out


def plot_misclassified(entries: list[dict[str, Any]], photos: dict[int, Path], path: Path) -> bool:
    """A grid of thumbnails of misclassified photos with true and predicted label; False if none."""
    from PIL import Image

    from modhub.runtimes.images import fit_photo, open_photo

    shown = [e for e in entries if e["example"] in photos]
    if not shown:
        return False
    cols = min(6, len(shown))
    rows = (len(shown) + cols - 1) // cols
    fig = _figure(2.0 * cols, 2.3 * rows + 0.5)
    for i, entry in enumerate(shown):
        ax = fig.add_subplot(rows, cols, i + 1)
        try:
            thumb = fit_photo(
                open_photo(photos[entry["example"]].read_bytes()), 128, 128, "pad", (1.0, 1.0, 1.0)
            )
        except (OSError, ValueError):
            thumb = Image.new("RGB", (128, 128), (200, 200, 200))
        ax.imshow(np.asarray(thumb))
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(
            f"true: {entry['true']}\npred: {entry['predicted']} ({entry['confidence']:.2f})",
            fontsize=8,
            color="darkred",
        )
        ax.set_xlabel(Path(entry["name"]).name[:24], fontsize=7)
    fig.suptitle("Misclassified validation photos (most confident first)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, format="png")
    return True


_POWERED = "power-normalised (each feature's signed square root, then each example scaled to unit length)"
# How the model card names each of heads.TRANSFORMS.
_TRANSFORM_TEXT = {
    "power-centred": f"{_POWERED} and centred",
    "power-standardised": f"{_POWERED} and standardised",
    "centred": "centred (the raw embedding geometry)",
    "standardised": "standardised",
}


def plot_cv(cv: dict[str, Any], path: Path) -> None:
    """Cross-validated accuracy and log loss against the L2 strength C, one line per feature
    transform, the chosen setting marked."""
    fig = _figure(10, 4)
    acc_ax, loss_ax = fig.subplots(1, 2)
    chosen = cv.get("transform", "standardised")
    transforms = list(dict.fromkeys(g.get("transform", "standardised") for g in cv["grid"]))
    for ax, key, title in ((acc_ax, "accuracy", "CV accuracy"), (loss_ax, "log_loss", "CV log loss")):
        for transform in transforms:
            rows = [g for g in cv["grid"] if g.get("transform", "standardised") == transform]
            ax.plot([g["C"] for g in rows], [g[key] for g in rows], marker="o", label=f"{transform} features")
        ax.axvline(cv["C"], color="grey", linestyle=":", label=f"chosen: {chosen}, C = {cv['C']:.3g}")
        ax.set_xscale("log")
        ax.set_xlabel("C (inverse L2 strength, in units of the features before scaling)")
        ax.set_title(f"{title}, {cv['folds']} folds")
        ax.grid(alpha=0.3)
    acc_ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, format="png")


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


# Which retrain command made a task's module, and how the card names it.
_KIND_OF_TASK = {
    "image-classification": "image",
    "text-classification": "text",
    "audio-command-detection": "audio",
}
_ARTICLE = {"image": "An image", "text": "A text", "audio": "A sound"}


def render_card_body(report: dict[str, Any], *, title: str, usage: str, license: str) -> str:
    """Markdown of the model card: what it is, the training data, the metrics, how to use it."""
    cfg = report["config"]
    data = report["data"]
    metrics = report["validation"]
    classes = report["classes"]
    cv = report.get("cross_validation")
    kind = _KIND_OF_TASK.get(report["task"], "text")
    counts = data["counts"]
    if cv:
        split = (
            f"{data['source']}: {data['examples']} examples, all used to fit the final head; "
            f"{cv['folds']}-fold stratified cross-validation (seed {cfg['seed']}) chose its "
            "regularisation and gives the metrics below."
        )
        table = [
            "| class | examples |",
            "|---|---|",
            *(f"| {_cell(name)} | {counts['train'][name]} |" for name in classes),
        ]
    else:
        split = (
            f"{data['source']}: {data['examples']} examples, split per class (seed {cfg['seed']}) into "
            f"{data['train']} for training and {data['validation']} for validation "
            f"({cfg['validation']:.0%} held out)."
        )
        table = [
            "| class | train | validation |",
            "|---|---|---|",
            *(
                f"| {_cell(name)} | {counts['train'][name]} | {counts['validation'][name]} |"
                for name in classes
            ),
        ]
    if data["skipped"]:
        split += (
            f" {len(data['skipped'])} unreadable file(s) were skipped (listed in "
            f"`assets/{REPORT_DIR}/{METRICS_FILE}`)."
        )
    lines = [
        f"# {title}",
        "",
        f"{_ARTICLE[kind]} classifier for {len(classes)} classes, "
        f"made with `modhub retrain {'images' if kind == 'image' else kind}` "
        f"from {_base_reference(report['base_module'])}: the module's graph with a new "
        "linear head, exported as one graph. The output `logits` follow the order of "
        "`assets/labels.txt`.",
        "",
        *_precision_note(report),
        "## Training data",
        "",
        split,
        "",
        *table,
        "",
        "## Training",
        "",
        _training_text(report),
        "",
        "## Validation metrics",
        "",
        f"Accuracy **{metrics['accuracy']:.3f}**, macro F1 {metrics['macro_f1']:.3f}; "
        f"{metrics.get('method', 'hold-out split')}.",
        "",
        "| class | precision | recall | F1 | support |",
        "|---|---|---|---|---|",
        *(
            f"| {_cell(name)} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | {m['support']} |"
            for name, m in metrics["per_class"].items()
        ),
        "",
        f"![confusion matrix](assets/{REPORT_DIR}/{CONFUSION_FILE})",
        f"![{'cross-validation' if cv else 'training curve'}]"
        f"(assets/{REPORT_DIR}/{CV_FILE if cv else CURVE_FILE})",
        "",
        *_misclassified_section(report, kind),
        "Validation numbers on a few examples are noisy and were used to choose the head: expect "
        "lower accuracy on new data, and measure it on data of your own before relying on it.",
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


def _training_text(report: dict[str, Any]) -> str:
    cfg = report["config"]
    cv = report.get("cross_validation")
    kind = "image" if report["task"] == "image-classification" else "text"
    inputs = (
        f"Photos are brought to the module's input size by the resize policy `{cfg['resize']}` "
        "(recorded in `modhub.json`; the module applies it to photo inputs)"
        + (", and the head also saw horizontally flipped copies. " if cfg.get("flip") else ". ")
        if kind == "image"
        else ""
    )
    if cv:
        tuned = report.get("fine_tune")
        first = (
            f"The encoder was first fine-tuned SetFit-style on {tuned['pairs']} contrastive pairs drawn "
            f"from the labels (cosine-similarity loss, learning rate {tuned['lr']:g}, "
            f"{tuned['seconds']:.0f} s{', stopped by the time bound' if tuned['stopped_by_time'] else ''}). "
            if tuned
            else ""
        )
        shown = _TRANSFORM_TEXT.get(cv.get("transform", "standardised"), cv.get("transform"))
        return (
            f"{inputs}{first}The head is L2-regularised logistic regression (L-BFGS) on {shown} "
            f"features of the {'fine-tuned' if tuned else 'frozen'} module. The feature transform and "
            f"the strength C = {cv['C']:.3g} were chosen together among {len(cv['grid'])} settings "
            f"(the features as they are or power-normalised, centred or standardised, each with a "
            f"range of C) by {cv['folds']}-fold "
            "stratified cross-validation (out-of-fold log loss, one-standard-error rule: the first "
            "setting within one standard error of the lowest, power-normalised before the features as "
            "they are, centred before standardised, stronger regularisation first), then the head "
            "was refitted on all examples."
        )
    history = report["history"]
    how = (
        f"the head first on the frozen module's features, then the module and the head together "
        f"(module learning rate {cfg['lr'] * cfg['backbone_lr_factor']:g}, head {cfg['lr']:g}; "
        f"BatchNorm statistics {'updated' if cfg['update_batchnorm'] else 'kept from the module'})"
        if cfg["fine_tune"]
        else f"the head only, on the frozen module's features (learning rate {cfg['lr']:g})"
    )
    return (
        f"{inputs}Trained {how}; AdamW, batch size {cfg['batch_size']}, weight decay "
        f"{cfg['weight_decay']:g}, {len(history['epochs'])} epochs"
        + (", random flips and crops" if cfg["augment"] else "")
        + f". The weights of epoch {history['best_epoch']} (lowest validation loss) are kept. "
        "Features are standardised inside the head with the training split's mean and spread."
    )


def _misclassified_section(report: dict[str, Any], kind: str) -> list[str]:
    wrong = report["validation"].get("misclassified") or []
    if not wrong:
        return []
    lines = ["### What went wrong", ""]
    if kind == "image" and report.get("has_misclassified_grid"):
        lines += [f"![misclassified photos](assets/{REPORT_DIR}/{MISCLASSIFIED_FILE})", ""]
    if kind == "text":
        lines += ["| text | true | predicted | confidence |", "|---|---|---|---|"]
    elif kind == "audio":
        lines += ["| clip | true | predicted | confidence |", "|---|---|---|---|"]
    else:
        lines += ["| photo | true | predicted | confidence |", "|---|---|---|---|"]
    for entry in wrong[:MAX_MISCLASSIFIED]:
        shown = entry.get("text", entry["name"])
        if len(shown) > MAX_TEXT_CHARS:
            shown = shown[: MAX_TEXT_CHARS - 1] + "…"
        lines.append(
            f"| {_cell(shown)} | {_cell(entry['true'])} | {_cell(entry['predicted'])} | "
            f"{entry['confidence']:.2f} |"
        )
    return [*lines, ""]


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _base_reference(base: str) -> str:
    """A link for a URL handle; code for a short handle or path (a relative link would 404 on the hub)."""
    return f"[{base}]({base})" if base.startswith(("http://", "https://")) else f"`{base}`"


def _precision_note(report: dict[str, Any]) -> list[str]:
    """What a head trained on a reduced-precision variant's features means for this module."""
    precision = report["config"].get("precision")
    if precision is None:
        return []
    return [
        f"The head was trained on frozen features of the base module's **{precision} variant** "
        f"(`--precision {precision}`). This module holds the exact base graph with that head: "
        f"its features differ slightly from the {precision} ones the head saw (the base module's "
        "card gives the variant's measured agreement).",
        "",
    ]
