"""Reduced-precision variants: ``quantize_module`` adds an int8 copy of a module's ONNX graph.

The variant is made from the module's exact ``model.onnx`` with onnxruntime's quantization
tools (``onnxruntime.quantization``, the field's library), measured against that graph, and
written beside it in a folder of its own (``int8/model.onnx`` + ``int8/model.onnx.data``),
listed in the manifest (``variants``, see :class:`modhub.format.manifest.Variant`). The exact
graph stays the default; ``hub.load(h, precision="int8")`` runs the variant.

- **Methods.** ``dynamic``: MatMul/Gemm weights (per output channel) and embedding tables
  (Gather) stored as int8, activations quantized at run time (no calibration needed; the
  recipe for transformers). ``static``: activations calibrated on real inputs too (QDQ
  format: QuantizeLinear/DequantizeLinear pairs that onnxruntime fuses into QLinearConv and
  friends; the recipe for CNNs). ``method`` None chooses by the graph: convolutions → static,
  else dynamic.
- **Calibration data** are the module's own inputs (photos, texts, sound), prepared exactly as
  the module's call prepares them (``SignatureCall.prepare``: the module's resize policy, its
  tokenizer). A folder or CSV is read by the caller (``modhub quantize --calibration`` reads it
  with ``modhub.predict``'s readers) and passed as items.
- **Agreement** with the exact graph is measured on a probe set: the held-out part of the
  calibration data (static; dynamic quantization fits nothing to the data, so all of it), or the
  module's probe inputs when no data is given. Metric: ``top1`` for classifiers, else ``cosine``
  (per sample). Below the floor (cosine mean 0.99, top-1 0.98 by default) a HubError gives the
  numbers and nothing is written.
- **Writing.** The new module (its files hard-linked, the variant, the manifest and a line in
  the card) is built beside the directory and replaces it in one rename
  (:func:`modhub.format.atomic.replace_directory`): readers see the module before or after,
  never half of it. Every written graph passes :func:`modhub.format.verify.verify_module`
  (the ONNX allow-list and bounds) before it is measured. A signature (``modhub.sig``) would no
  longer cover the files: it is dropped, and the result says so (sign the module again).
"""

from __future__ import annotations

import fnmatch
import importlib.metadata
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from modhub.errors import ExportError, HubError, ManifestError, missing_extra
from modhub.format.atomic import replace_directory
from modhub.format.manifest import (
    CARD_NAME,
    MANIFEST_NAME,
    ONNX_DATA_NAME,
    ONNX_NAME,
    SIGNATURE_NAME,
    Agreement,
    Manifest,
    Variant,
    list_files,
    read_manifest,
    write_manifest,
)
from modhub.format.probes import probe_arrays
from modhub.format.tasks import module_modality
from modhub.format.verify import verify_module

__all__ = [
    "DEFAULT_FLOORS",
    "Calibration",
    "QuantizeResult",
    "Recipe",
    "agreement_metric",
    "graph_inputs",
    "quantize_module",
]

Method = Literal["dynamic", "static"]
# The floor a variant's mean agreement must reach to be written, by metric.
DEFAULT_FLOORS = {"cosine": 0.99, "top1": 0.98}
# Share of the calibration data held out as the probe set (static).
HOLD_OUT = 0.25
# What dynamic quantization stores as int8 by default: the weights of matrix products and the
# tables that Gather reads (word embeddings: most of a text encoder's bytes; measured on MiniLM,
# mean cosine 0.9922 with them int8 vs 0.9922 without, 0.25x instead of 0.65x the bytes).
DYNAMIC_OPS = ("MatMul", "Gemm", "Gather")
# Items per batch when the graphs run (calibration and probe).
BATCH = 16
# Texts that probe a text module when no data is given (plain sentences, of several lengths).
PROBE_TEXTS = (
    "The cat sat on the mat.",
    "A man is playing a guitar on stage.",
    "Stock markets fell sharply after the central bank raised interest rates.",
    "I loved this film: the acting was wonderful and the story kept me guessing.",
    "Where is the nearest train station?",
    "The new phone's battery lasts two days, but the camera is disappointing.",
    "hello world",
    "Researchers found that regular exercise improves sleep quality in older adults.",
)
# Marks the card's variants section, so quantizing again replaces it instead of adding another.
CARD_SECTION = "## Reduced-precision variants"
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Calibration:
    """The module's own inputs, for calibrating and probing: texts, or photos (paths, PIL images,
    uint8 arrays), or sound, as the module's call takes them."""

    items: Sequence[Any]
    # What they are, for the manifest's agreement.probe: "reviews.csv (500 texts)".
    description: str


@dataclass(frozen=True)
class Recipe:
    """How the variant is made (onnxruntime.quantization's knobs); recorded in Variant.recipe."""

    # None: by the graph (convolutions -> static, else dynamic).
    method: Method | None = None
    # Weights quantized per output channel (a scale per row/filter) or per tensor.
    per_channel: bool = True
    # 7-bit weights: avoids int16 overflow in the u8s8 kernels of CPUs without VNNI.
    reduce_range: bool = False
    # Operator types quantized; None: DYNAMIC_OPS (dynamic), Conv, MatMul, Gemm and the
    # data-movement ops between them (static: onnxruntime's default list).
    op_types: tuple[str, ...] | None = None
    # Nodes kept in float: fnmatch patterns of node names or of their weights' names
    # ("node_linear_5", "model.layers.5.output.weight").
    exclude: tuple[str, ...] = ()
    # Static only: "QDQ" (standard ops, fused by onnxruntime) or "QOperator" (QLinear* ops).
    quant_format: Literal["QDQ", "QOperator"] = "QDQ"
    # Static only: how activation ranges are chosen from the calibration data.
    calibrate_method: Literal["minmax", "entropy", "percentile"] = "minmax"
    # Static only: activations symmetric (int8) or not (uint8).
    activation_symmetric: bool = False
    # SmoothQuant's migration strength alpha (0-1), or None: before quantizing, each matrix
    # product's activation input channels are divided by s = max|x|^alpha / max|w|^(1-alpha)
    # (one float Mul) and its weight's matching rows multiplied by s: the same function in float,
    # with the activations' outlier channels moved into the weights, which are quantized per
    # channel (Xiao et al., 2023). The ranges max|x| come from the calibration data.
    smooth: float | None = None
    # The weights of the products kept in float (``exclude``), stored as float32 or as float16
    # (half their bytes; cast back to float32 as the graph loads, so they still run in float32).
    float_weights: Literal["float32", "float16"] = "float32"
    # Further onnxruntime.quantization extra_options (e.g. {"CalibMovingAverage": True}).
    extra: Mapping[str, Any] = field(default_factory=dict)
    # Why this recipe (for the card and the manifest), e.g. what was measured.
    note: str = ""

    def record(self, excluded: Sequence[str]) -> dict[str, Any]:
        quantized = self.op_types or (DYNAMIC_OPS if self.method == "dynamic" else None)
        out: dict[str, Any] = {
            "tool": f"onnxruntime.quantization {_version('onnxruntime')}",
            "onnx": _version("onnx"),
            "weights": "int8, per channel" if self.per_channel else "int8, per tensor",
            "reduce_range": self.reduce_range,
            "op_types": list(quantized) if quantized else "onnxruntime default",
            "kept_float": list(excluded),
        }
        if excluded and self.float_weights != "float32":
            out["kept_float_weights"] = f"{self.float_weights}, cast to float32 as the graph loads"
        if self.method == "static":
            out.update(
                format=self.quant_format,
                activations="int8 symmetric" if self.activation_symmetric else "uint8",
                calibrate_method=self.calibrate_method,
            )
        else:
            out["activations"] = "uint8, quantized at run time"
        if self.smooth is not None:
            out["smooth"] = {
                "method": "SmoothQuant (activation outliers moved into the weights)",
                "alpha": self.smooth,
            }
        if self.extra:
            out["extra_options"] = dict(self.extra)
        if self.note:
            out["note"] = self.note
        return out


@dataclass(frozen=True)
class QuantizeResult:
    """What :func:`quantize_module` wrote."""

    variant: Variant
    # Bytes of the variant's files and of the exact graph's (model.onnx + model.onnx.data).
    variant_bytes: int
    exact_bytes: int
    # True when the module carried modhub.sig, which no longer covered its files and was removed.
    signature_removed: bool
    seconds: float

    @property
    def size_ratio(self) -> float:
        return self.variant_bytes / self.exact_bytes if self.exact_bytes else 0.0


def agreement_metric(manifest: Manifest) -> Literal["cosine", "top1"]:
    """ "top1" for a classifier (its task, its output's kind, or labels), else "cosine"."""
    out = manifest.default_signature.outputs[0]
    if manifest.task.endswith("classification") or out.kind in ("scores", "classes") or out.labels:
        return "top1"
    return "cosine"


def quantize_module(
    module_dir: str | os.PathLike[str],
    *,
    precision: str = "int8",
    calibration: Calibration | Sequence[Any] | None = None,
    method: Method | None = None,
    floor: float | None = None,
    recipe: Recipe | None = None,
    progress: Progress | None = None,
    exact_graph: str | os.PathLike[str] | None = None,
) -> QuantizeResult:
    """Add an int8 variant of the module at ``module_dir``, made from its exact ``model.onnx``.

    ``calibration``: the module's own inputs (see :class:`Calibration`; a plain sequence is
    described by its size), needed for ``method="static"``. ``method``: "dynamic" or "static";
    None chooses by the graph (or takes ``recipe.method``). ``floor``: the mean agreement the
    variant must reach (default ``DEFAULT_FLOORS`` by metric). ``recipe``: the knobs (default:
    per-channel int8 weights, nothing kept in float). ``progress(stage, done, total)`` is called
    as the work advances. ``exact_graph``: a ``model.onnx`` of the same module to quantize when
    the module does not ship one (the zoo's large text encoders): it is measured against, never
    written.

    Raises ManifestError (no model.onnx, an unknown precision), InputError (calibration data the
    module cannot take), ExportError (the variant misses its floor: nothing is written).
    """
    started = time.perf_counter()
    root = Path(module_dir).resolve()
    manifest = read_manifest(root)
    if precision != "int8":
        raise ManifestError(
            f"precision must be 'int8' (the one reduced precision modhub makes), not {precision!r}"
        )
    report = progress or (lambda stage, done, total: None)
    source = Path(exact_graph) if exact_graph is not None else root / ONNX_NAME
    if exact_graph is None and not manifest.has_file(ONNX_NAME):
        raise ManifestError(
            f"{root} has no {ONNX_NAME}: an int8 variant is made from the module's ONNX graph. Export "
            "the module with hub.export(..., onnx=True) (or wrap an ONNX file with hub.wrap_onnx), "
            "then quantize it.",
            path=root,
        )
    ort, quantization = _import_onnxruntime()
    if exact_graph is None:
        # The exact graph, verified (allow-list, digests) before onnxruntime reads it.
        verify_module(root, needed={ONNX_NAME})
    chosen = recipe or Recipe(method=method)
    resolved: Method = method or chosen.method or _default_method(source)
    chosen = _replace(chosen, method=resolved)
    items, description = _calibration(calibration)
    metric = agreement_metric(manifest)
    floor = DEFAULT_FLOORS[metric] if floor is None else floor
    if not -1.0 <= floor <= 1.0:
        raise ManifestError(f"the floor must be between -1 and 1 (a cosine or a share), not {floor}")

    if chosen.smooth is not None and not 0.0 <= chosen.smooth <= 1.0:
        raise ManifestError(
            f"--smooth (Recipe.smooth) is SmoothQuant's alpha, between 0 and 1, not {chosen.smooth}"
        )
    if chosen.float_weights != "float32" and not chosen.exclude:
        raise ManifestError(
            "--float16-kept (Recipe.float_weights) stores the weights of the nodes kept in float: "
            "name them with --keep-float PATTERN (Recipe.exclude)"
        )
    call = graph_inputs(root, manifest)
    if chosen.method == "static" or chosen.smooth is not None:
        if not items:
            raise ManifestError(
                f"{'smoothing' if chosen.smooth is not None else 'static quantization'} calibrates on "
                "real inputs: pass calibration data (--calibration FOLDER_OR_CSV: photos, or a CSV of "
                f"texts), or {'drop --smooth' if chosen.smooth is not None else 'use --method dynamic'}",
                path=root,
            )
        calib_items, probe_items = _split(items)
        probe_desc = f"{len(probe_items)} held-out items of {description}"
    else:
        calib_items, probe_items = [], list(items)
        probe_desc = f"{len(probe_items)} items of {description}" if items else ""
    report("preparing inputs", 0, 1)
    # One item per calibration batch: every batch has the same shape, which onnxruntime's
    # histogram calibrators (entropy, percentile) need.
    calib_batches = [call([item]) for item in calib_items]
    if probe_items:
        probe_batches = [call(batch) for batch in _batches(probe_items)]
    else:
        probe_batches, probe_desc = _probe_batches(manifest, call)
    samples = sum(len(b[0]) for b in probe_batches)

    with tempfile.TemporaryDirectory(prefix=".quantize-", dir=root.parent) as work_dir:
        work = Path(work_dir)
        made = work / "int8"
        made.mkdir()
        exact = _private_copy(source, work / "exact")
        names = _graph_names(exact)
        excluded = _excluded(exact, chosen.exclude)
        start = exact
        if chosen.smooth is not None:
            start = _smooth(
                ort, exact, work / "smoothed", calib_batches, names[0], chosen.smooth, excluded, report
            )
        report(f"quantizing ({chosen.method})", 0, max(1, len(calib_batches)))
        _quantize(quantization, start, made / ONNX_NAME, chosen, excluded, calib_batches, names, report)
        _externalise(made / ONNX_NAME, half=set(excluded) if chosen.float_weights == "float16" else set())
        report("measuring agreement", 0, len(probe_batches))
        measured = _measure(ort, exact, made / ONNX_NAME, probe_batches, names, metric, report)
        agreement = Agreement(metric=metric, floor=floor, samples=samples, probe=probe_desc, **measured)
        if not agreement.mean >= floor:
            raise ExportError(
                f"the int8 variant misses its floor: {_numbers(agreement)} < floor {floor} on "
                f"{agreement.probe}. Nothing was written. Keep more nodes in float (--keep-float, "
                "Recipe.exclude), smooth outliers (--smooth 0.75), 7-bit weights (--reduce-range), "
                "the other method (--method), more calibration data, or a lower --floor.",
                path=root,
            )
        variant = Variant(path="int8", method=resolved, recipe=chosen.record(excluded), agreement=agreement)
        staged = work / "module"
        signed = _stage(root, staged, made, manifest, variant)
        # The new module as a loader sees it: manifest rules, digests, the ONNX allow-list and bounds.
        verify_module(staged, needed=set(_variant_paths(staged)))
        replace_directory(staged, root)
    exact_bytes = source.stat().st_size + _size(source.with_name(ONNX_DATA_NAME))
    variant_bytes = sum(_size(root / p) for p in _variant_paths(root))
    return QuantizeResult(
        variant=variant,
        variant_bytes=variant_bytes,
        exact_bytes=exact_bytes,
        signature_removed=signed,
        seconds=time.perf_counter() - started,
    )


# ------------------------------------------------------------------------------------- inputs


def _calibration(calibration: Calibration | Sequence[Any] | None) -> tuple[list[Any], str]:
    if calibration is None:
        return [], ""
    if isinstance(calibration, Calibration):
        return list(calibration.items), calibration.description
    if isinstance(calibration, (str, bytes, os.PathLike)):
        raise ManifestError(
            "calibration takes the items themselves (texts, photos); read a folder or CSV with "
            "modhub.predict.open_inputs, or use `modhub quantize DIR --calibration PATH`"
        )
    items = list(calibration)
    return items, f"{len(items)} calibration items"


def _split(items: list[Any]) -> tuple[list[Any], list[Any]]:
    """Calibration and probe sets: every k-th item held out (deterministic, spread over the data)."""
    if len(items) < 2:
        raise ManifestError("static quantization needs at least 2 calibration items (some are held out)")
    step = max(2, round(1 / HOLD_OUT))
    probe = items[::step]
    calib = [item for i, item in enumerate(items) if i % step]
    return calib, probe


def _batches(items: Sequence[Any]) -> Iterator[list[Any]]:
    for start in range(0, len(items), BATCH):
        yield list(items[start : start + BATCH])


def graph_inputs(root: Path, manifest: Manifest) -> Callable[[Any], list[np.ndarray]]:
    """Items of the default signature's one input → the graph's inputs, as the module's call makes them."""
    from modhub.runtimes.calls import SignatureCall
    from modhub.runtimes.preprocessing import TextEncoder

    tok = manifest.preprocessing.tokenizer
    encoder = TextEncoder(tok, root / tok.file) if tok is not None else None
    call = SignatureCall("default", manifest, encoder)

    def prepare(batch: Any) -> list[np.ndarray]:
        if len(call.inputs) != 1:
            raise ManifestError(
                f"calibration data feed a signature of one input; this module's takes {call.input_names}: "
                "quantize it without calibration data (--method dynamic)"
            )
        return [np.ascontiguousarray(a) for a in call.prepare(call.bind([batch], {}))]

    return prepare


def _probe_batches(
    manifest: Manifest, call: Callable[[Any], list[np.ndarray]]
) -> tuple[list[list[np.ndarray]], str]:
    """The module's probe inputs when no data is given: plain sentences for text, else probe arrays."""
    if module_modality(manifest) == "text":
        return [call(list(PROBE_TEXTS))], f"{len(PROBE_TEXTS)} probe sentences (no calibration data)"
    specs = manifest.graph_inputs_of("default")
    arrays = probe_arrays(specs, np.random.default_rng(0), batch=8)
    return [[arrays[s.name] for s in specs]], "8 random probe inputs (modhub.format.probes; no data given)"


# ----------------------------------------------------------------------------------- quantize


def _import_onnxruntime() -> tuple[Any, Any]:
    try:
        import onnx  # noqa: F401  (onnxruntime.quantization reads and writes graphs with it)
        import onnxruntime
        import onnxruntime.quantization as quantization
    except ImportError as exc:
        raise missing_extra(exc, "modhub quantize") or exc from None
    return onnxruntime, quantization


def _private_copy(source: Path, folder: Path) -> Path:
    """The exact graph (and its data) copied, not linked: onnx refuses to read external data from
    a file with several hard links (a module in the client cache, a ``cp -al`` copy)."""
    folder.mkdir()
    for name in (ONNX_NAME, ONNX_DATA_NAME):
        if source.with_name(name).is_file():
            shutil.copyfile(source.with_name(name), folder / name)
    return folder / ONNX_NAME


def _default_method(source: Path) -> Method:
    import onnx

    model = onnx.load(str(source), load_external_data=False)
    return "static" if any(n.op_type in ("Conv", "ConvTranspose") for n in model.graph.node) else "dynamic"


def _graph_names(source: Path) -> tuple[list[str], list[str]]:
    import onnx

    model = onnx.load(str(source), load_external_data=False)
    inits = {i.name for i in model.graph.initializer}
    return [i.name for i in model.graph.input if i.name not in inits], [o.name for o in model.graph.output]


def _excluded(source: Path, patterns: Sequence[str]) -> list[str]:
    if not patterns:
        return []
    import onnx

    model = onnx.load(str(source), load_external_data=False)
    weights = {i.name for i in model.graph.initializer}

    def matches_one(node: Any, pattern: str) -> bool:
        # A node is named by itself or by its weights ("model.layers.5.output.weight").
        names = [node.name, *(i for i in node.input if i in weights)]
        return any(fnmatch.fnmatchcase(n, pattern) for n in names)

    def matches(node: Any) -> bool:
        return any(matches_one(node, p) for p in patterns)

    # onnxruntime's dynamic quantizer turns a Gemm into a MatMul (+ Add) named "<name>_MatMul"
    # before it quantizes, and excludes by that name.
    found = [n for n in model.graph.node if matches(n)]
    unmatched = [p for p in patterns if not any(matches_one(n, p) for n in found)]
    if unmatched:
        raise ManifestError(
            f"--keep-float (Recipe.exclude) {unmatched} match no node of {source.name} by its name or its "
            "weights' names (e.g. 'node_linear_5', '*layers.5.output.weight'); check the pattern"
        )
    return [n.name for n in found] + [f"{n.name}_MatMul" for n in found if n.op_type == "Gemm"]


def _smooth(
    ort: Any,
    exact: Path,
    folder: Path,
    batches: list[list[np.ndarray]],
    input_names: list[str],
    alpha: float,
    excluded: Sequence[str],
    report: Progress,
) -> Path:
    """The exact graph with SmoothQuant's scaling (see Recipe.smooth) in ``folder``: the same
    function in float, easier to quantize. Products that share an input (a transformer's query,
    key and value) share one scale; nodes kept in float are left alone."""
    import onnx
    from onnx import helper, numpy_helper

    graph_only = onnx.load(str(exact), load_external_data=False)
    shapes = {i.name: list(i.dims) for i in graph_only.graph.initializer}
    skip = set(excluded)
    # activation tensor -> [(node name, axis of the weight that runs over the input channels)]
    groups: dict[str, list[tuple[str, int]]] = {}
    for node in graph_only.graph.node:
        if node.op_type not in ("MatMul", "Gemm") or node.name in skip or len(node.input) < 2:
            continue
        x, w = node.input[0], node.input[1]
        if x in shapes or len(shapes.get(w, ())) != 2:
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if attrs.get("transA", 0):
            continue
        # MatMul and Gemm weights are [in, out]; Gemm with transB=1 (torch's Linear) [out, in].
        groups.setdefault(x, []).append((node.name, 1 if attrs.get("transB", 0) else 0))
    if not groups:
        raise ManifestError(
            "Recipe.smooth: the graph has no matrix product of an activation and a weight to smooth"
        )

    # The largest |value| of each input channel over the calibration data, from the exact graph
    # with those tensors as extra outputs (its weights read from the same data file).
    for name in groups:
        graph_only.graph.output.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    stats_path = exact.with_name("stats.onnx")
    onnx.save(graph_only, str(stats_path))
    session = _session(ort, stats_path)
    wanted = list(groups)
    peak = {name: np.zeros(0, dtype=np.float64) for name in wanted}
    for done, batch in enumerate(batches, 1):
        values = session.run(wanted, dict(zip(input_names, batch, strict=True)))
        for name, value in zip(wanted, values, strict=True):
            channel_max = np.abs(value.reshape(-1, value.shape[-1])).max(axis=0).astype(np.float64)
            peak[name] = channel_max if peak[name].size == 0 else np.maximum(peak[name], channel_max)
        report("smoothing", done, len(batches))
    del session
    stats_path.unlink()

    model = onnx.load(str(exact))
    weights = {i.name: i for i in model.graph.initializer}
    nodes = {n.name: n for n in model.graph.node}
    for index, (name, consumers) in enumerate(groups.items()):
        mats = [(nodes[n], numpy_helper.to_array(weights[nodes[n].input[1]]), axis) for n, axis in consumers]
        weight_max = np.max([np.abs(w).max(axis=1 - axis) for _, w, axis in mats], axis=0).astype(np.float64)
        ok = (peak[name] > 0) & (weight_max > 0)
        scale = np.ones_like(weight_max)
        scale[ok] = peak[name][ok] ** alpha / weight_max[ok] ** (1.0 - alpha)
        scale = np.clip(scale, 1e-4, 1e4)
        inverse = numpy_helper.from_array((1.0 / scale).astype(np.float32), f"smooth_{index}.inverse_scale")
        model.graph.initializer.append(inverse)
        smoothed = f"smooth_{index}.output"
        for node, w, axis in mats:
            shaped = scale.reshape((1, -1) if axis == 1 else (-1, 1))
            weights[node.input[1]].CopyFrom(
                numpy_helper.from_array((w * shaped).astype(w.dtype), node.input[1])
            )
            node.input[0] = smoothed
        first = min(list(model.graph.node).index(node) for node, _, _ in mats)
        model.graph.node.insert(
            first, helper.make_node("Mul", [name, inverse.name], [smoothed], name=f"smooth_{index}")
        )
    folder.mkdir()
    dest = folder / ONNX_NAME
    onnx.save(model, str(dest), save_as_external_data=True, location=ONNX_DATA_NAME, size_threshold=1024)
    return dest


class _Reader:
    """onnxruntime's CalibrationDataReader over prepared graph inputs."""

    def __init__(self, batches: list[list[np.ndarray]], names: list[str], report: Progress) -> None:
        self._feeds = iter([dict(zip(names, batch, strict=True)) for batch in batches])
        self._total = len(batches)
        self._done = 0
        self._report = report

    def get_next(self) -> dict[str, np.ndarray] | None:
        feed = next(self._feeds, None)
        if feed is not None:
            self._done += 1
            self._report("calibrating", self._done, self._total)
        return feed

    def rewind(self) -> None:  # pragma: no cover - not used by the calibrators we run
        raise NotImplementedError


def _quantize(
    quantization: Any,
    source: Path,
    dest: Path,
    recipe: Recipe,
    excluded: list[str],
    calib_batches: list[list[np.ndarray]],
    names: tuple[list[str], list[str]],
    report: Progress,
) -> None:
    q = quantization
    # onnxruntime.quantization logs advice on the root logger ("consider pre-processing"): the
    # recipe is chosen by measurement, so the advice is noise in a user's terminal.
    root_logger = logging.getLogger()
    level = root_logger.level
    root_logger.setLevel(logging.ERROR)
    try:
        if recipe.method == "dynamic":
            q.quantize_dynamic(
                str(source),
                str(dest),
                op_types_to_quantize=list(recipe.op_types or DYNAMIC_OPS),
                per_channel=recipe.per_channel,
                reduce_range=recipe.reduce_range,
                weight_type=q.QuantType.QInt8,
                nodes_to_exclude=excluded,
                use_external_data_format=True,
                extra_options=dict(recipe.extra),
            )
        else:
            methods = {
                "minmax": q.CalibrationMethod.MinMax,
                "entropy": q.CalibrationMethod.Entropy,
                "percentile": q.CalibrationMethod.Percentile,
            }
            extra = {"ActivationSymmetric": recipe.activation_symmetric, **dict(recipe.extra)}
            reader = _Reader(calib_batches, names[0], report)
            q.quantize_static(
                str(source),
                str(dest),
                reader,
                quant_format=q.QuantFormat.QDQ if recipe.quant_format == "QDQ" else q.QuantFormat.QOperator,
                op_types_to_quantize=list(recipe.op_types) if recipe.op_types else None,
                per_channel=recipe.per_channel,
                reduce_range=recipe.reduce_range,
                activation_type=q.QuantType.QInt8 if recipe.activation_symmetric else q.QuantType.QUInt8,
                weight_type=q.QuantType.QInt8,
                nodes_to_exclude=excluded,
                use_external_data_format=True,
                calibrate_method=methods[recipe.calibrate_method],
                extra_options=extra,
            )
    except HubError:
        raise
    except Exception as exc:  # onnxruntime.quantization raises plain exceptions of many types
        raise ExportError(
            f"onnxruntime could not quantize {source.name}: {type(exc).__name__}: {exc}"
        ) from exc
    finally:
        root_logger.setLevel(level)


def _externalise(dest: Path, half: set[str]) -> None:
    """The variant's weights in model.onnx.data, laid out as hub.export lays out the exact graph's
    (aligned, so the loader hands onnxruntime views of one verified buffer); the float32 weights
    of the products in ``half`` (node names) stored as float16 behind a Cast."""
    import onnx

    from modhub.exporting.onnx import write_external_weights

    model = onnx.load(str(dest))  # external data (whatever name onnxruntime chose) read back in
    if half:
        _halve_float_weights(model, half)
    for stray in dest.parent.iterdir():
        stray.unlink()
    onnx.save(model, str(dest))
    write_external_weights(dest)
    data = dest.with_name(ONNX_DATA_NAME)
    if data.stat().st_size == 0:  # every weight was small enough to stay inside model.onnx
        data.unlink()


def _halve_float_weights(model: Any, nodes: set[str]) -> None:
    """Weights read only as the weight operand of the MatMul/Gemm nodes named in ``nodes``:
    float16 initializers, each cast back to its float32 name by a Cast at the graph's start."""
    import onnx
    from onnx import helper, numpy_helper

    graph = model.graph
    readers: dict[str, list[tuple[Any, int]]] = {}
    for node in graph.node:
        for position, name in enumerate(node.input):
            readers.setdefault(name, []).append((node, position))
    casts = []
    for index, init in enumerate(graph.initializer):
        users = readers.get(init.name, [])
        if (
            init.data_type != onnx.TensorProto.FLOAT
            or not users
            or not all(n.name in nodes and n.op_type in ("MatMul", "Gemm") and pos == 1 for n, pos in users)
        ):
            continue
        name, stored = init.name, f"{init.name}.float16"
        half = numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), stored)
        graph.initializer[index].CopyFrom(half)  # ``init`` is that entry: it is renamed too
        casts.append(
            helper.make_node("Cast", [stored], [name], name=f"{stored}.cast", to=onnx.TensorProto.FLOAT)
        )
    for cast in reversed(casts):
        graph.node.insert(0, cast)


# ------------------------------------------------------------------------------------ measure


def _session(ort: Any, path: Path) -> Any:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _measure(
    ort: Any,
    exact: Path,
    variant: Path,
    batches: list[list[np.ndarray]],
    names: tuple[list[str], list[str]],
    metric: str,
    report: Progress,
) -> dict[str, Any]:
    """Agreement of the variant's first output with the exact graph's, over the probe batches."""
    exact_s, variant_s = _session(ort, exact), _session(ort, variant)
    sims: list[np.ndarray] = []
    max_diff = 0.0
    for done, batch in enumerate(batches, start=1):
        feeds = dict(zip(names[0], batch, strict=True))
        want = exact_s.run(None, feeds)
        got = variant_s.run(None, feeds)
        for a, b in zip(want, got, strict=True):
            if a.dtype.kind == "f" and a.size:
                max_diff = max(max_diff, float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max()))
        a = want[0].reshape(len(want[0]), -1).astype(np.float64)
        b = got[0].reshape(len(got[0]), -1).astype(np.float64)
        if metric == "top1":
            sims.append((a.argmax(1) == b.argmax(1)).astype(np.float64))
        else:
            norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
            sims.append((a * b).sum(1) / np.maximum(norms, 1e-12))
        report("measuring agreement", done, len(batches))
    values = np.concatenate(sims)
    return {
        "mean": float(np.clip(values.mean(), -1.0, 1.0)),
        "minimum": float(np.clip(values.min(), -1.0, 1.0)) if metric == "cosine" else None,
        "max_abs_diff": max_diff,
    }


def _numbers(agreement: Agreement) -> str:
    if agreement.metric == "top1":
        return f"top-1 agreement {agreement.mean:.4f} (max abs diff {agreement.max_abs_diff:.3g})"
    return (
        f"mean cosine {agreement.mean:.5f} (minimum {agreement.minimum:.5f}, "
        f"max abs diff {agreement.max_abs_diff:.3g})"
    )


# -------------------------------------------------------------------------------------- write


def _stage(root: Path, staged: Path, made: Path, manifest: Manifest, variant: Variant) -> bool:
    """The new module in ``staged``: the old files hard-linked (copied where links fail), the
    variant in its folder, the card's variants section, the manifest. True if a signature was dropped."""
    signed = (root / SIGNATURE_NAME).exists()
    old_variant = {p for p in _listed(manifest) if p.startswith(variant.path + "/")}
    staged.mkdir()
    os.chmod(staged, root.stat().st_mode & 0o7777)
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        posix = rel.as_posix()
        if posix in (MANIFEST_NAME, SIGNATURE_NAME) or posix in old_variant or posix == variant.path:
            continue
        target = staged / rel
        if path.is_dir() and not path.is_symlink():
            target.mkdir(parents=True, exist_ok=True)
        elif path.is_file() and not path.is_symlink():
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(path, target)
            except OSError:
                shutil.copy2(path, target)
    shutil.move(str(made), str(staged / variant.path))
    card = staged / CARD_NAME
    if card.is_file():
        # A new file, not the hard-linked one: the old module's card stays as it was.
        text = _card_with_variant(card.read_text(encoding="utf-8"), variant)
        card.unlink()
        card.write_text(text, encoding="utf-8")
    variants = {**(manifest.variants or {}), "int8": variant}
    files = list_files(staged)
    updated = Manifest.model_validate(
        {
            **manifest.model_dump(),
            "files": [f.model_dump() for f in files],
            "variants": {k: v.model_dump() for k, v in variants.items()},
        }
    )
    write_manifest(staged, updated)
    return signed


def _card_with_variant(text: str, variant: Variant) -> str:
    a = variant.agreement
    measured = (
        f"top-1 agreement {a.mean:.1%}"
        if a.metric == "top1"
        else f"mean cosine {a.mean:.4f} (minimum {a.minimum:.4f})"
    )
    section = (
        f"{CARD_SECTION}\n\n"
        f'- **int8** (`hub.load(handle, precision="int8")`, files in `{variant.path}/`): '
        f"{variant.method} quantization with onnxruntime; {measured} with the exact graph on "
        f"{a.probe} (floor {a.floor}). The exact graph stays the default.\n"
    )
    start = text.find(CARD_SECTION)
    if start >= 0:
        end = text.find("\n## ", start + len(CARD_SECTION))
        return text[:start] + section + (text[end + 1 :] if end >= 0 else "")
    return text.rstrip("\n") + "\n\n" + section


def _listed(manifest: Manifest) -> list[str]:
    return [entry.path for entry in manifest.files]


def _variant_paths(root: Path) -> list[str]:
    return list(read_manifest(root).variant_files("int8"))


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def _replace(recipe: Recipe, **changes: Any) -> Recipe:
    from dataclasses import replace

    return replace(recipe, **changes)
