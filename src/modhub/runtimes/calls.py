"""Calling a signature: arguments bound to inputs, converted and checked, outputs named.

A loaded module is called the way its signature reads::

    module(x)                          # one input
    module(content, style)             # several, in the signature's order
    module(content=a, style=b)         # or by name (a dict by name works too)
    module.signatures["encode"](x)     # another signature of the module

One output comes back as an array (or tensor); several as a dict by output
name, in the signature's order.

Every input is converted from what a caller has (numpy arrays, torch
tensors, lists and numbers; photos for ``kind="image"`` inputs, sound for
``kind="audio"``, Python strings for ``kind="text"``) and checked against its
:class:`~modhub.format.manifest.TensorSpec`: rank, fixed sizes, a dynamic size
named twice equal across the inputs, and the dtype (a lossless cast, such as
int32 to int64, is made; anything else is refused). What is wrong raises an
:class:`~modhub.errors.InputError` naming the input, what it expects and what
was given.

Nothing here imports torch: torch tensors are recognised without it (a tensor
means torch is loaded) and passed on as they are, so a tensor that carries
gradients keeps them (``hub.Layer``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from modhub.errors import InputError
from modhub.format import probes
from modhub.format.describe import describe_spec
from modhub.format.manifest import Manifest, TensorSpec
from modhub.format.tasks import tensor_kind
from modhub.runtimes.preprocessing import TextEncoder, check_images, check_texts, is_torch_tensor
from modhub.runtimes.tokenizer_guard import check_text_lengths

__all__ = ["SignatureCall", "input_kind", "numpy_dtype"]


def numpy_dtype(dtype: str) -> np.dtype[Any]:
    """The numpy dtype of an input's manifest dtype (see :func:`modhub.format.probes.numpy_dtype`)."""
    target = probes.numpy_dtype(dtype)
    if target is None:
        raise InputError(f"{dtype} inputs cannot be given as numpy arrays: pass a torch tensor")
    return target


def input_kind(spec: TensorSpec, manifest: Manifest) -> str | None:
    """What a caller may pass for input ``spec`` beyond arrays: "image", "audio", "text" or None.

    The four original tasks leave ``kind`` unset: their task says it
    (:func:`modhub.format.tasks.tensor_kind`). A string input is text.
    """
    kind = tensor_kind(manifest, spec)
    if kind in ("image", "audio", "text"):
        return kind
    return "text" if spec.dtype == "string" else None


def _given(value: Any) -> str:
    """What a caller passed, for messages: ``a float64 array of shape [2, 3]``."""
    if is_torch_tensor(value):
        return f"a {str(value.dtype).removeprefix('torch.')} tensor of shape {list(value.shape)}"
    if isinstance(value, np.ndarray):
        return f"a {value.dtype} array of shape {list(value.shape)}"
    return f"a {type(value).__name__}"


class SignatureCall:
    """How one signature of a loaded module is called; shared by every runtime and ``Layer``.

    ``graph_inputs``/``graph_outputs``: what the graph itself takes and gives
    (token ids for text inputs); ``encoder``: the tokenizer of the module's text input.
    """

    def __init__(self, name: str, manifest: Manifest, encoder: TextEncoder | None) -> None:
        sig = manifest.signature(name)
        self.name = name
        self.signature = sig
        self.inputs: tuple[TensorSpec, ...] = sig.inputs
        self.outputs: tuple[TensorSpec, ...] = sig.outputs
        self.graph_inputs: tuple[TensorSpec, ...] = manifest.graph_inputs_of(name)
        self.graph_outputs: tuple[TensorSpec, ...] = manifest.graph_outputs_of(name)
        self.input_names = [spec.name for spec in sig.inputs]
        self._manifest = manifest
        self._kinds = {spec.name: input_kind(spec, manifest) for spec in sig.inputs}
        graph_names = {spec.name for spec in self.graph_inputs}
        # A text input the graph does not take itself is tokenised into the graph's inputs.
        self._tokenised = {
            spec.name
            for spec in sig.inputs
            if self._kinds[spec.name] == "text" and spec.name not in graph_names and encoder is not None
        }
        self._encoder = encoder
        # The image input of the original image tasks keeps its own checks and messages.
        image = manifest.preprocessing.image
        self._legacy_image = (
            name == "default"
            and len(sig.inputs) == 1
            and self._kinds[sig.inputs[0].name] == "image"
            and image is not None
            and sig.inputs[0].dtype == "float32"
            and sig.inputs[0].layout == "NCHW"
            and tuple(sig.inputs[0].shape[1:]) == (3, image.height, image.width)
            and sig.inputs[0].kind is None
        )
        self._segmenter = _segmenter(self)

    # ---------------------------------------------------------------- arguments

    def bind(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """The call's arguments by input name; InputError for a missing, extra or doubled input."""
        names = self.input_names
        if len(args) == 1 and not kwargs and len(names) > 1 and isinstance(args[0], Mapping):
            kwargs, args = dict(args[0]), ()
        if len(args) > len(names):
            raise InputError(
                f"{self._what()} takes {len(names)} input(s) ({', '.join(names)}), got {len(args)} "
                "positional arguments"
            )
        bound = dict(zip(names, args, strict=False))
        for key, value in kwargs.items():
            if key not in names:
                raise InputError(
                    f"{self._what()} has no input {key!r}; its inputs are {', '.join(names)}"
                    f" (module.signatures[...] lists what each signature takes)"
                )
            if key in bound:
                raise InputError(f"input {key!r} of {self._what()} is given twice (by position and by name)")
            bound[key] = value
        missing = [spec for spec in self.inputs if spec.name not in bound]
        if missing:
            wanted = ", ".join(f"{spec.name}: {describe_spec(spec)}" for spec in missing)
            call = ", ".join(f"{n}=..." for n in names)
            raise InputError(f"{self._what()} is missing input(s) {wanted}; call it as module({call})")
        return bound

    def _what(self) -> str:
        return "the module" if self.name == "default" else f"signature {self.name!r}"

    def wants_torch(self, bound: Mapping[str, Any]) -> bool:
        """Whether any input is a torch tensor (the default output follows the input)."""
        return any(is_torch_tensor(value) for value in bound.values())

    # ------------------------------------------------------------------- inputs

    def prepare(self, bound: Mapping[str, Any]) -> list[Any]:
        """The graph's inputs, in graph order: numpy arrays, or torch tensors as they were given.

        Raises InputError naming the first input that does not fit its spec.
        """
        values: dict[str, Any] = {}
        dims: dict[str, tuple[int, str]] = {}
        for spec in self.inputs:
            value = bound[spec.name]
            if spec.name in self._tokenised and self._encoder is not None:
                arrays = self._encoder.encode(value)
                values.update(zip(self._encoder.spec.graph_inputs, arrays, strict=True))
                self._record_dims(spec, (len(arrays[0]),), dims, value)
                continue
            values[spec.name] = self._convert(spec, value, dims)
        missing = [spec.name for spec in self.graph_inputs if spec.name not in values]
        if missing:
            from modhub.errors import ManifestError

            raise ManifestError(
                f"the graph of {self._what()} takes {missing}, which no input of the signature gives; "
                "re-export the module"
            )
        return [values[spec.name] for spec in self.graph_inputs]

    def _convert(self, spec: TensorSpec, value: Any, dims: dict[str, tuple[int, str]]) -> Any:
        kind = self._kinds[spec.name]
        if kind == "image" and self._legacy_image:
            value = check_images(value, self._manifest)
        elif kind == "image":
            from modhub.runtimes.images import prepare_image_input

            value = prepare_image_input(value, spec, self._manifest.preprocessing.image)
        elif kind == "audio" and not _is_batch(value, spec):
            # Sound files, (waveform, rate), one waveform for a batched input; a ready batch of
            # the input's rank is checked as it is (prepare_audio would read it as channels).
            from modhub.runtimes.audio import prepare_audio

            value = prepare_audio(value, spec)
        elif spec.dtype == "string":
            value = _strings(spec, value)
        value = self._cast(spec, value)
        self._check_shape(spec, value, dims)
        return value

    def _cast(self, spec: TensorSpec, value: Any) -> Any:
        """``value`` as an array or tensor of the spec's dtype (lossless casts only)."""
        if is_torch_tensor(value):
            given = str(value.dtype).removeprefix("torch.")
            if given == spec.dtype:
                return value
            if spec.dtype not in ("string", "bfloat16") and _safe(given, spec.dtype):
                import torch

                return value.to(getattr(torch, spec.dtype))
            raise self._dtype_error(spec, value)
        if not isinstance(value, np.ndarray):
            if isinstance(value, (str, bytes)) or value is None or isinstance(value, Mapping):
                raise InputError(f"input {spec.name!r} expects {describe_spec(spec)}, got {_given(value)}")
            try:
                array = np.asarray(value)
            except (ValueError, TypeError) as exc:
                raise InputError(
                    f"input {spec.name!r} expects {describe_spec(spec)}; {_given(value)} cannot be "
                    f"made an array ({exc})"
                ) from None
            if array.dtype == object:
                raise InputError(
                    f"input {spec.name!r} expects {describe_spec(spec)}; {_given(value)} holds items "
                    "of different lengths or types"
                )
            # Python numbers have no dtype of their own: they take the input's when they fit.
            return self._fit_numbers(spec, array, value)
        if spec.dtype == "string":
            return value
        target = numpy_dtype(spec.dtype)
        if value.dtype == target:
            return value
        if _safe(str(value.dtype), spec.dtype):
            return value.astype(target)
        raise self._dtype_error(spec, value)

    def _fit_numbers(self, spec: TensorSpec, array: np.ndarray, value: Any) -> np.ndarray:
        target = numpy_dtype(spec.dtype)
        if array.dtype == target:
            return array
        kinds = {"b": "bool", "i": "int", "u": "int", "f": "float"}
        given, wanted = kinds.get(array.dtype.kind), kinds.get(target.kind)
        widening = (given, wanted) in (("int", "float"), ("bool", "int"))
        if given != wanted and not widening:
            raise InputError(
                f"input {spec.name!r} expects {describe_spec(spec)}, got {_given(value)} of "
                f"{array.dtype} values"
            )
        converted = array.astype(target)
        if wanted == "int" and given == "int" and not np.array_equal(converted, array):
            raise InputError(
                f"input {spec.name!r} expects {describe_spec(spec)}; some values do not fit {spec.dtype}"
            )
        return converted

    def _dtype_error(self, spec: TensorSpec, value: Any) -> InputError:
        hint = ""
        if spec.dtype.startswith("float") and is_torch_tensor(value):
            hint = f" (convert it: tensor.to(torch.{spec.dtype}))"
        elif spec.dtype != "string":
            hint = f" (convert it: array.astype(np.{spec.dtype}))"
        return InputError(f"input {spec.name!r} expects {describe_spec(spec)}, got {_given(value)}{hint}")

    def _check_shape(self, spec: TensorSpec, value: Any, dims: dict[str, tuple[int, str]]) -> None:
        shape = tuple(int(d) for d in value.shape)
        if len(shape) != len(spec.shape):
            hint = ""
            if len(shape) + 1 == len(spec.shape) and isinstance(spec.shape[0], str):
                hint = " (one example? add a batch dimension: array[None] or tensor.unsqueeze(0))"
            raise InputError(
                f"input {spec.name!r} expects {describe_spec(spec)} ({len(spec.shape)} dimensions), "
                f"got {_given(value)}{hint}"
            )
        for axis, (want, got) in enumerate(zip(spec.shape, shape, strict=True)):
            if isinstance(want, int) and want != got:
                raise InputError(
                    f"input {spec.name!r} expects {describe_spec(spec)}: dimension {axis} must be "
                    f"{want}, got {_given(value)}"
                )
        self._record_dims(spec, shape, dims, value)

    def _record_dims(
        self, spec: TensorSpec, shape: tuple[int, ...], dims: dict[str, tuple[int, str]], value: Any
    ) -> None:
        for want, got in zip(spec.shape, shape, strict=False):
            if not isinstance(want, str):
                continue
            seen = dims.setdefault(want, (got, spec.name))
            if seen[0] != got:
                where = "in" if seen[1] == spec.name else f"for input {seen[1]!r} but"
                raise InputError(
                    f"dimension {want!r} is {seen[0]} {where} {got} for input {spec.name!r} "
                    f"({describe_spec(spec)}, got {_given(value)}); inputs that share a dimension "
                    "name must agree on its size"
                )

    # ----------------------------------------------------------------- running

    def run(self, run_graph: Callable[[list[Any]], Any], args: list[Any]) -> dict[str, Any]:
        """The graph's outputs by name for the prepared ``args`` (:meth:`prepare`).

        Sound longer than its input's ``segment`` seconds is cut into segments run one after
        another (each with the frames' context either side), and the per-frame outputs are
        concatenated: memory stays that of one segment, and each frame equals that of one call.
        """
        if self._segmenter is None:
            return self.name_outputs(run_graph(args))
        return self._segmenter.run(self, run_graph, args)

    # ------------------------------------------------------------------ outputs

    def name_outputs(self, results: Any) -> dict[str, Any]:
        """The graph's results (one value, a tuple or a dict) by the signature's output names."""
        if isinstance(results, Mapping):
            results = [results[spec.name] for spec in self.graph_outputs]
        elif not isinstance(results, (tuple, list)):
            results = [results]
        if len(results) != len(self.graph_outputs):
            from modhub.errors import ManifestError

            raise ManifestError(
                f"the graph of {self._what()} gave {len(results)} outputs, its manifest names "
                f"{len(self.graph_outputs)}; re-export the module"
            )
        by_graph = {spec.name: value for spec, value in zip(self.graph_outputs, results, strict=True)}
        if all(spec.name in by_graph for spec in self.outputs):
            return {spec.name: by_graph[spec.name] for spec in self.outputs}
        return {spec.name: value for spec, value in zip(self.outputs, results, strict=False)}

    def result(self, named: dict[str, Any]) -> Any:
        """One output as it is; several as a dict by name."""
        if len(self.outputs) == 1:
            return next(iter(named.values()))
        return named


def _is_batch(value: Any, spec: TensorSpec) -> bool:
    """An array or tensor of the input's rank: the tensor itself, not something to convert."""
    return is_torch_tensor(value) or (isinstance(value, np.ndarray) and value.ndim == len(spec.shape))


def _safe(given: str, wanted: str) -> bool:
    try:
        return bool(np.can_cast(np.dtype(given), np.dtype(wanted), casting="safe"))
    except TypeError:
        return False


def _strings(spec: TensorSpec, value: Any) -> np.ndarray:
    """A string input (fed to the graph as strings, no tokenizer) as a numpy object array of str."""
    if isinstance(value, str) and len(spec.shape) == 1:
        check_texts(value)  # says: pass a list
    if isinstance(value, np.ndarray):
        items = value.tolist()
    elif isinstance(value, (list, tuple)) and len(spec.shape) == 1:
        items = check_texts(list(value))
    else:
        items = value
    try:
        array = np.array(items, dtype=object)
    except ValueError as exc:
        raise InputError(f"input {spec.name!r} expects {describe_spec(spec)}: {exc}") from None
    flat = array.reshape(-1)
    for i, item in enumerate(flat):
        if isinstance(item, bytes):
            flat[i] = item.decode("utf-8")
        elif not isinstance(item, str):
            what = f"strings ({describe_spec(spec)})"
            raise InputError(f"input {spec.name!r} expects {what}; item {i} is {type(item).__name__}")
    check_text_lengths(flat.tolist())  # however they came (lists are checked by check_texts)
    return array


@dataclass(frozen=True)
class _Segmenter:
    """How the long sound of one audio input is cut (all sizes in samples, ``hop`` per frame).

    A frame is ``context`` samples long at most: segment k gives frames [k * core, (k + 1) *
    core) and is fed those frames' samples plus ``context`` either side (a multiple of the
    hop, so its frames line up with the whole clip's), at most ``segment`` samples in all.
    """

    position: int  # of the input among the graph's inputs
    axis: int  # the samples axis of that input
    segment: int
    hop: int
    context: int
    core: int  # frames per segment
    frame_axes: dict[str, int]  # per output: its frame axis

    def run(
        self, call: SignatureCall, run_graph: Callable[[list[Any]], Any], args: list[Any]
    ) -> dict[str, Any]:
        sound = args[self.position]
        samples = int(sound.shape[self.axis])
        if samples <= self.segment:
            return call.name_outputs(run_graph(args))
        pieces: dict[str, list[Any]] = {name: [] for name in self.frame_axes}
        first = 0
        while True:
            start = max(0, first * self.hop - self.context)
            end = min(samples, (first + self.core) * self.hop + self.context)
            last = end >= samples
            index: list[Any] = [slice(None)] * sound.ndim
            index[self.axis] = slice(start, end)
            feed = list(args)
            feed[self.position] = sound[tuple(index)]
            named = call.name_outputs(run_graph(feed))
            skip = (first * self.hop - start) // self.hop
            for name, axis in self.frame_axes.items():
                value = named[name]
                cut: list[Any] = [slice(None)] * value.ndim
                cut[axis] = slice(skip, None) if last else slice(skip, skip + self.core)
                pieces[name].append(value[tuple(cut)])
            if last:
                break
            first += self.core
        return {name: _concatenate(values, self.frame_axes[name]) for name, values in pieces.items()}


def _concatenate(values: list[Any], axis: int) -> Any:
    if is_torch_tensor(values[0]):
        import torch

        return torch.cat(values, dim=axis)
    return np.concatenate(values, axis=axis)


def _segmenter(call: SignatureCall) -> _Segmenter | None:
    """How ``call`` cuts long sound, or None when no audio input has a ``segment``.

    Raises ManifestError for a ``segment`` the signature cannot honour.
    """
    from modhub.errors import ManifestError

    specs = [spec for spec in call.inputs if spec.segment is not None]
    if not specs:
        return None
    what = call._what()
    if len(specs) > 1:
        raise ManifestError(f"{what} sets segment on {len(specs)} inputs; modhub cuts one input's sound")
    spec = specs[0]
    graph_names = [g.name for g in call.graph_inputs]
    if call._kinds[spec.name] != "audio" or spec.sample_rate is None or spec.name not in graph_names:
        raise ManifestError(
            f"input {spec.name!r} of {what} sets segment, which is for audio inputs with a sample_rate"
        )
    rate = spec.sample_rate
    hops = {out.frame_hop for out in call.outputs}
    if None in hops or len(hops) != 1:
        raise ManifestError(
            f"input {spec.name!r} of {what} sets segment, but not every output is per-frame with one "
            "frame_hop: outputs that are not per frame cannot be joined from segments; remove segment"
        )
    frame_hop = float(next(iter(hops)))  # type: ignore[arg-type]
    hop = round(frame_hop * rate)
    if hop < 1 or abs(hop - frame_hop * rate) > 1e-6 * rate:
        raise ManifestError(
            f"frame_hop {frame_hop} s of {what} is not a whole number of samples at {rate} Hz; "
            "segment needs one"
        )
    length = max((out.frame_length or frame_hop) for out in call.outputs)
    context = math.ceil(round(length * rate, 6) / hop) * hop if length > frame_hop else 0
    segment = int(spec.segment * rate)  # type: ignore[operator]
    core = (segment - 2 * context) // hop
    if core < 1:
        raise ManifestError(
            f"segment {spec.segment} s of input {spec.name!r} ({what}) is too short for frames of "
            f"{length} s every {frame_hop} s; make it at least {(2 * context + hop) / rate} s"
        )
    batch = len(spec.shape) > 1
    frame_axes: dict[str, int] = {}
    for out in call.outputs:
        dynamic = [i for i, d in enumerate(out.shape) if isinstance(d, str) and (not batch or i > 0)]
        if not dynamic:
            raise ManifestError(
                f"output {out.name!r} of {what} has no dynamic frames dimension; segment needs one"
            )
        frame_axes[out.name] = dynamic[0]
    return _Segmenter(
        position=graph_names.index(spec.name),
        axis=len(spec.shape) - 1,
        segment=segment,
        hop=hop,
        context=context,
        core=core,
        frame_axes=frame_axes,
    )
