"""The module page's copy-paste code, written for THIS module's signatures.

Each input becomes a variable named after it, holding an example of its dtype and shape
(fixed sizes as declared; ``batch`` 2; image height/width from the module's preprocessing;
a second of audio at its sample rate; strings for text), and the call passes them the way the
signature takes them: ``module(images)`` for one input, ``module(content=..., style=...)`` for
several, ``module(["text", ...])`` for strings, ``module.signatures["name"](...)`` for the others.
The snippets run as pasted (tests/web/test_snippets.py executes them against a live hub).
"""

from __future__ import annotations

import keyword
from dataclasses import dataclass
from typing import Any

from modhub.format.manifest import TensorSpec
from modhub.server.services.schemas import CallSignature

TEXTS = '["The quick brown fox.", "A lazy dog sleeps."]'
BATCH = 2
# Sizes given to dynamic dimensions the manifest does not size.
_IMAGE_SIDE = 224
_OTHER_DIM = 8
_AUDIO_RATE = 16000
# Names the snippet itself uses; an input called so gets a trailing underscore.
_TAKEN = frozenset({"hub", "np", "tf", "torch", "module", "out", "rng", "model", "name", "value"})
# Other signatures shown in the snippet (a module may have many).
MAX_OTHER_SIGNATURES = 3
_NUMPY = {
    "float16": "np.float16",
    "float32": "np.float32",
    "float64": "np.float64",
    "bfloat16": "np.float32",
    "int8": "np.int8",
    "int16": "np.int16",
    "int32": "np.int32",
    "int64": "np.int64",
    "uint8": "np.uint8",
}


@dataclass(frozen=True)
class Snippet:
    # Stable id for the copy button's target.
    id: str
    title: str
    code: str


def _variable(name: str) -> str:
    return f"{name}_" if keyword.iskeyword(name) or name in _TAKEN else name


def _image_axes(spec: TensorSpec) -> tuple[int, int] | None:
    """Positions of height and width in an image tensor's shape, from its layout."""
    rank = len(spec.shape)
    layout = spec.layout or ("NCHW" if rank == 4 else "CHW" if rank == 3 else None)
    if layout is None or len(layout) != rank:
        return None
    return layout.index("H"), layout.index("W")


def _sizes(spec: TensorSpec, image_hw: tuple[int, int], named: dict[str, int]) -> tuple[int, ...]:
    """A concrete shape for ``spec``; a dimension name keeps one size across the signature."""
    axes = _image_axes(spec) if spec.kind == "image" else None
    sizes = []
    for i, dim in enumerate(spec.shape):
        if isinstance(dim, int):
            sizes.append(dim)
            continue
        if dim not in named:
            if dim == "batch" or (i == 0 and dim in ("n", "b", "batch_size")):
                named[dim] = BATCH
            elif axes is not None and i in axes:
                named[dim] = image_hw[axes.index(i)]
            elif dim in ("height", "width"):
                named[dim] = image_hw[0 if dim == "height" else 1]
            elif spec.kind == "audio":
                named[dim] = spec.sample_rate or _AUDIO_RATE
            else:
                named[dim] = _OTHER_DIM
        sizes.append(named[dim])
    return tuple(sizes)


def _tuple(sizes: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(s) for s in sizes) + ("," if len(sizes) == 1 else "") + ")"


def _comment(spec: TensorSpec) -> str:
    if spec.kind == "image":
        low, high = spec.value_range or ((0, 255) if spec.dtype == "uint8" else (0.0, 1.0))
        return f"  # {spec.color or 'RGB'} images, {spec.layout or 'NCHW'}, values in [{low:g}, {high:g}]"
    if spec.kind == "audio":
        return f"  # waveforms at {spec.sample_rate or _AUDIO_RATE} Hz"
    return ""


def example_value(spec: TensorSpec, image_hw: tuple[int, int], named: dict[str, int]) -> str:
    """A Python expression (numpy, ``rng`` a Generator) giving a valid value for ``spec``."""
    sizes = _sizes(spec, image_hw, named)
    shape = _tuple(sizes)
    if spec.dtype == "string":
        if len(sizes) == 1 and sizes[0] == BATCH:
            return TEXTS
        return f'np.full({shape}, "The quick brown fox.", dtype=object)'
    if spec.dtype == "bool":
        return f"rng.random({shape}) < 0.5"
    dtype = _NUMPY[spec.dtype]
    if spec.dtype.startswith("float") or spec.dtype == "bfloat16":
        low, high = spec.value_range or (0.0, 1.0)
        if (low, high) == (0.0, 1.0):
            value = f"rng.random({shape}, dtype=np.float32)"
            return value if dtype == "np.float32" else f"{value}.astype({dtype})"
        return f"rng.uniform({low:g}, {high:g}, {shape}).astype({dtype})"
    default = (0, 255) if spec.kind == "image" or spec.dtype == "uint8" else (0, 9)
    low, high = spec.value_range or default
    return f"rng.integers({int(low)}, {int(high) + 1}, {shape}, dtype={dtype})"


@dataclass
class _Writer:
    """Defines input variables once (reused across signatures when they are the same tensor)."""

    image_hw: tuple[int, int]
    lines: list[str]
    defined: dict[str, TensorSpec]

    def values(self, sig: CallSignature) -> list[tuple[str, str]]:
        """(input name, the expression passed for it): a variable, or a list of strings inline."""
        named: dict[str, int] = {}
        out = []
        for spec in sig.inputs:
            if spec.dtype == "string" and len(spec.shape) == 1 and len(sig.inputs) == 1:
                out.append((spec.name, TEXTS))
                continue
            var = base = _variable(spec.name)
            suffix = 2
            while var in self.defined and self.defined[var] != spec:
                var, suffix = f"{base}_{suffix}", suffix + 1
            if var not in self.defined:
                self.lines.append(f"{var} = {example_value(spec, self.image_hw, named)}{_comment(spec)}")
                self.defined[var] = spec
            out.append((spec.name, var))
        return out

    def arguments(self, sig: CallSignature, wrap: str = "", keywords: bool = False) -> str:
        """The call's argument list: one positional value, or keywords by input name.

        ``wrap``: a function each value is passed through (``tf.constant``); ``keywords``: always
        by name (TensorFlow's signature functions take keyword arguments only)."""
        args = [(name, f"{wrap}({value})" if wrap else value) for name, value in self.values(sig)]
        if len(args) == 1 and not keywords:
            return args[0][1]
        if any(keyword.iskeyword(name) for name, _ in args):
            return "**{" + ", ".join(f'"{name}": {value}' for name, value in args) + "}"
        return ", ".join(f"{name}={value}" for name, value in args)

    @property
    def uses_rng(self) -> bool:
        return any("rng." in line for line in self.lines)


def _print_result(target: str, sig: CallSignature) -> list[str]:
    if len(sig.outputs) == 1:
        return [f"print({target}.shape)"]
    return [f"for name, value in {target}.items():  # one entry per output", "    print(name, value.shape)"]


def _image_hw(manifest: dict[str, Any]) -> tuple[int, int]:
    pre = manifest.get("preprocessing")
    image = pre.get("image") if isinstance(pre, dict) else None
    if isinstance(image, dict):
        height, width = image.get("height"), image.get("width")
        if isinstance(height, int) and isinstance(width, int) and height > 0 and width > 0:
            return height, width
    return _IMAGE_SIDE, _IMAGE_SIDE


def _header(imports: list[str], writer: _Writer, body: list[str]) -> str:
    setup = ["rng = np.random.default_rng(0)"] if writer.uses_rng else []
    needs_numpy = writer.uses_rng or any("np." in line for line in writer.lines)
    head = [*(["import numpy as np"] if needs_numpy else []), *imports]
    return "\n".join([*head, "", *body[:1], *setup, *writer.lines, *body[1:]]) + "\n"


def load_snippet(signatures: dict[str, CallSignature], manifest: dict[str, Any], url: str) -> str:
    """``hub.load`` and a call of every signature (the default first, then a few others)."""
    writer = _Writer(_image_hw(manifest), [], {})
    default = signatures["default"]
    calls = [f"out = module({writer.arguments(default)})", *_print_result("out", default)]
    others = [name for name in signatures if name != "default"][:MAX_OTHER_SIGNATURES]
    for name in others:
        sig = signatures[name]
        target = _variable(name) if name.isidentifier() else "result"
        calls += ["", f'{target} = module.signatures["{name}"]({writer.arguments(sig)})']
        calls += _print_result(target, sig)
    body = [f'module = hub.load("{url}")', *calls]
    return _header(["import modhub as hub"], writer, body)


def layer_snippet(sig: CallSignature, manifest: dict[str, Any], url: str) -> str | None:
    """``hub.Layer`` under a new head, for a module of one input and one [batch, D] output."""
    if len(sig.inputs) != 1 or len(sig.outputs) != 1 or len(sig.outputs[0].shape) != 2:
        return None
    width = sig.outputs[0].shape[-1]
    head = (
        f"torch.nn.Linear({width}, 10)" if isinstance(width, int) and width > 0 else "torch.nn.LazyLinear(10)"
    )
    hint = (
        "    # trainable=True fine-tunes the module's weights as well\n"
        if manifest.get("fine_tunable", True)
        else "    # this module is not meant to be fine-tuned: keep trainable=False\n"
    )
    return (
        "import torch\nimport modhub as hub\n\n"
        "model = torch.nn.Sequential(\n"
        f"{hint}"
        f'    hub.Layer("{url}", trainable=False),\n'
        f"    {head},  # your own head\n"
        ")\n"
    )


def tensorflow_snippet(signatures: dict[str, CallSignature], manifest: dict[str, Any], url: str) -> str:
    """tensorflow_hub code: the module's own URL is a TF Hub handle (?tf-hub-format=compressed)."""
    default = signatures.get("default")
    single = default is not None and len(default.inputs) == 1 and len(default.outputs) == 1
    text = single and default is not None and default.inputs[0].dtype == "string"
    if (
        manifest.get("framework") == "tensorflow"
        and default is not None
        and not (single and len(default.outputs[0].shape) == 2)
    ):
        # A published SavedModel of any signature: its SignatureDefs, by key.
        writer = _Writer(_image_hw(manifest), [], {})
        args = writer.arguments(default, wrap="tf.constant", keywords=True)
        body = [
            f'module = hub.load("{url}")',
            f'outputs = module.signatures["serving_default"]({args})',
            "for name, value in outputs.items():",
            "    print(name, value.shape)",
        ]
        return _header(["import tensorflow as tf", "import tensorflow_hub as hub"], writer, body)
    layer = (
        f'hub.KerasLayer("{url}", input_shape=[], dtype=tf.string)'
        if text or str(manifest.get("task", "")).startswith("text")
        else f'hub.KerasLayer("{url}", trainable=False)'
    )
    return (
        "import tensorflow as tf\nimport tensorflow_hub as hub\nimport tf_keras\n\n"
        "model = tf_keras.Sequential([\n"
        f"    {layer},\n"
        '    tf_keras.layers.Dense(10, activation="softmax"),  # your own head\n'
        "])\n"
    )


def usage_snippets(signatures: dict[str, CallSignature], manifest: dict[str, Any], url: str) -> list[Snippet]:
    """The page's snippets: load and call (modhub), use as a layer (torch), tensorflow_hub."""
    formats = [str(f) for f in manifest.get("formats") or () if isinstance(f, str)]
    framework = manifest.get("framework", "pytorch")
    runnable = bool({"pt2", "onnx"} & set(formats)) or (not formats and framework != "tensorflow")
    snippets = []
    if runnable and "default" in signatures:
        snippets.append(
            Snippet(id="snippet-load", title="Load and call", code=load_snippet(signatures, manifest, url))
        )
        has_torch = "pt2" in formats or (not formats and framework == "pytorch")
        layer = layer_snippet(signatures["default"], manifest, url) if has_torch else None
        if layer is not None:
            snippets.append(Snippet(id="snippet-layer", title="Use as a layer", code=layer))
    if "savedmodel" in formats:
        code = tensorflow_snippet(signatures, manifest, url)
        snippets.append(Snippet(id="snippet-tensorflow", title="TensorFlow (tensorflow_hub)", code=code))
    return snippets
