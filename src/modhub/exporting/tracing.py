"""A PyTorch model's call as named tensors: what ``hub.export`` traces and writes as a signature.

``tensor_inputs`` names the example inputs (a tensor, a tuple of tensors, or a
dict by name; names default to the parameters of ``forward``) and says which of
their dimensions are dynamic (the batch by default, more by ``dynamic=``).
``NamedOutputs`` wraps the model so the traced graph returns one tensor or a
flat tuple, whatever the model returns (a tensor, a tuple, a dict by name), and
``output_layout`` refuses what cannot be named. ``graph_specs`` reads the
shapes of the exported program back as named dimensions.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from modhub.errors import ExportError
from modhub.format.manifest import TensorSpec

__all__ = [
    "MAX_BATCH",
    "NamedOutputs",
    "OutputLayout",
    "TracedInputs",
    "dtype_name",
    "graph_specs",
    "output_layout",
    "tensor_inputs",
]

# Largest batch the exported graph accepts; the bound only keeps shape guards finite.
MAX_BATCH = 1 << 16

# The dtypes a signature can carry (modhub.format.manifest), by torch dtype.
DTYPES: dict[torch.dtype, str] = {
    torch.float16: "float16",
    torch.float32: "float32",
    torch.float64: "float64",
    torch.bfloat16: "bfloat16",
    torch.int8: "int8",
    torch.int16: "int16",
    torch.int32: "int32",
    torch.int64: "int64",
    torch.uint8: "uint8",
    torch.bool: "bool",
}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DIM = re.compile(r"^[a-z_][a-z0-9_]*$")
_RETURN_THIS = (
    "return a tensor, a tuple of tensors, or a dict of name -> tensor (a fixed set of names); "
    "pad results of varying count to a fixed size and return the count or a mask beside them"
)


def dtype_name(dtype: torch.dtype, what: str) -> str:
    """The signature's name for ``dtype``; ExportError naming ``what`` if a signature cannot carry it."""
    if dtype not in DTYPES:
        raise ExportError(
            f"{what} is {dtype}, which a module signature cannot carry; use one of "
            f"{', '.join(sorted(set(DTYPES.values())))} (cast it inside the model)"
        )
    return DTYPES[dtype]


def check_name(name: str, what: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ExportError(
            f"{what} {name!r} is not a valid tensor name; use letters, digits and _ (not first a digit)"
        )
    return name


@dataclass
class TracedInputs:
    """The example inputs in graph order, their names, and their dynamic dimensions."""

    args: tuple[torch.Tensor, ...]
    names: tuple[str, ...]
    # Per input: axis -> dimension name (the same name on two axes: sizes that must be equal).
    dims: tuple[dict[int, str], ...]
    # Call the model with keywords (the example was a dict) rather than positionally.
    keywords: bool = False
    # Bounds per dimension name, (min, max or None); default (1, None).
    bounds: dict[str, tuple[int, int | None]] = field(default_factory=dict)

    def dynamic_shapes(self) -> tuple[dict[int, Any], ...]:
        """torch.export's dynamic_shapes for ``forward(*args)``.

        A name on several axes (``batch``), or with bounds, is one ``torch.export.Dim``: torch
        checks that the sizes are equal. A name on one axis is ``Dim.DYNAMIC``: torch works out
        the sizes the model takes (a convolution's kernel size at least, ...) instead of
        refusing a range the caller did not state.
        """
        uses: dict[str, int] = {}
        for dims in self.dims:
            for name in dims.values():
                uses[name] = uses.get(name, 0) + 1
        made: dict[str, Any] = {}
        for name in sorted(uses):
            low, high = self.bounds.get(name, (1, None))
            if uses[name] == 1 and name not in self.bounds:
                made[name] = torch.export.Dim.DYNAMIC
            elif high is None:
                made[name] = torch.export.Dim(name, min=low)
            else:
                made[name] = torch.export.Dim(name, min=low, max=high)
        return tuple({axis: made[n] for axis, n in dims.items()} for dims in self.dims)


def tensor_inputs(
    model: torch.nn.Module,
    example: Any,
    *,
    input_names: Sequence[str] | None = None,
    dynamic: Mapping[str, Mapping[int, str]] | None = None,
    batch: bool | None = None,
) -> TracedInputs:
    """Name the example inputs and choose their dynamic dimensions.

    ``batch`` None: the first dimension is a dynamic ``batch`` when every input has one
    of the same size and ``dynamic`` names no input's first dimension; True: always
    (ExportError if the inputs disagree); False: never.
    """
    keywords = isinstance(example, Mapping)
    if keywords:
        names = [check_name(str(k), "input") for k in example]
        values = list(example.values())
        if input_names is not None and list(input_names) != names:
            raise ExportError("input_names= is for tuple examples; a dict example names its inputs itself")
    else:
        values = list(example) if isinstance(example, (tuple, list)) else [example]
        names = list(input_names) if input_names is not None else _parameter_names(model, len(values))
        if len(names) != len(values):
            raise ExportError(f"input_names= has {len(names)} names for {len(values)} example inputs")
        names = [check_name(n, "input") for n in names]
    if not values:
        raise ExportError("example_inputs is empty; give one example tensor per input of forward")
    if len(set(names)) != len(names):
        raise ExportError(f"input names must be unique, got {names}")
    for name, value in zip(names, values, strict=True):
        if isinstance(value, str) or (
            isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value)
        ):
            raise ExportError(
                f"input {name!r} is text: a graph takes tensors; pass tokenizer= (and the texts as "
                "example_inputs) so the module tokenises strings itself"
            )
        if not isinstance(value, torch.Tensor):
            raise ExportError(
                f"input {name!r} is a {type(value).__name__}; example_inputs must be tensors "
                "(a tensor, a tuple of tensors, or a dict of name -> tensor)"
            )
        dtype_name(value.dtype, f"input {name!r}")
    dims = _dims(names, values, dynamic or {}, batch)
    args = tuple(_at_least_two(v, d) for v, d in zip(values, dims, strict=True))
    bounds: dict[str, tuple[int, int | None]] = (
        {"batch": (1, MAX_BATCH)} if any(d.get(0) == "batch" for d in dims) else {}
    )
    return TracedInputs(args=args, names=tuple(names), dims=dims, keywords=keywords, bounds=bounds)


def _parameter_names(model: torch.nn.Module, count: int) -> list[str]:
    """The first ``count`` parameter names of ``model.forward`` (input_0, ... if it takes *args)."""
    try:
        params = list(inspect.signature(model.forward).parameters.values())
    except (TypeError, ValueError):
        params = []
    named = []
    for param in params:
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD, param.KEYWORD_ONLY):
            break
        named.append(param.name)
    if len(named) < count:
        return [f"input_{i}" for i in range(count)]
    return named[:count]


def _dims(
    names: list[str], values: list[torch.Tensor], dynamic: Mapping[str, Mapping[int, str]], batch: bool | None
) -> tuple[dict[int, str], ...]:
    unknown = sorted(set(dynamic) - set(names))
    if unknown:
        raise ExportError(f"dynamic= names {unknown}, which are not inputs; the inputs are {names}")
    dims: list[dict[int, str]] = []
    for name, value in zip(names, values, strict=True):
        given: dict[int, str] = {}
        for axis, dim in dict(dynamic.get(name, {})).items():
            if not isinstance(axis, int) or not -value.dim() <= axis < value.dim():
                raise ExportError(f"dynamic= for {name!r} names axis {axis!r}; it has {value.dim()} axes")
            if not isinstance(dim, str) or not _DIM.match(dim):
                raise ExportError(
                    f"dynamic= for {name!r}: dimension name {dim!r} must be lowercase letters, digits and _ "
                    "(e.g. 'height')"
                )
            given[axis % value.dim()] = dim
        dims.append(given)
    leading = {int(v.shape[0]) if v.dim() else None for v in values}
    same_leading = None not in leading and len(leading) == 1
    if batch is None:
        batch = same_leading and not any(0 in d for d in dims)
    elif batch and not same_leading:
        raise ExportError(
            "batch=True needs every input to have the same first dimension, got shapes "
            f"{[list(v.shape) for v in values]}"
        )
    if batch:
        for d in dims:
            d.setdefault(0, "batch")
    for name, value, d in zip(names, values, dims, strict=True):
        for axis, dim in d.items():
            if dim != "batch" and value.shape[axis] < 2:
                raise ExportError(
                    f"input {name!r}: the example has size {value.shape[axis]} on dynamic axis {axis} "
                    f"({dim!r}); give an example of size 2 or more there, or torch.export fixes it"
                )
    return tuple(dims)


def _at_least_two(value: torch.Tensor, dims: dict[int, str]) -> torch.Tensor:
    # A batch of one would let torch.export specialise the batch dimension to 1.
    if dims.get(0) == "batch" and value.shape[0] < 2:
        return torch.cat([value, value])
    return value


@dataclass(frozen=True)
class OutputLayout:
    """What the model returns: "tensor", "tuple" or "dict", and the output names in graph order."""

    kind: str
    names: tuple[str, ...]
    # Keys of a dict output, in graph order (names are the keys, checked).
    keys: tuple[str, ...] = ()


def output_layout(out: Any, output_names: Sequence[str] | None, single_name: str) -> OutputLayout:
    """Name the outputs of one eager call; ExportError saying what to return if they cannot be named."""
    if isinstance(out, torch.Tensor):
        names = list(output_names) if output_names is not None else [single_name]
        if len(names) != 1:
            raise ExportError(f"output_names= has {len(names)} names but the model returns one tensor")
        return OutputLayout("tensor", (check_name(names[0], "output"),))
    if isinstance(out, Mapping):
        keys = list(out)
        for key in keys:
            if not isinstance(key, str):
                raise ExportError(
                    f"the model returns a dict with key {key!r}; keys must be str ({_RETURN_THIS})"
                )
            _check_leaf(out[key], f"output {key!r}")
        if not keys:
            raise ExportError(f"the model returns an empty dict; {_RETURN_THIS}")
        if output_names is not None and list(output_names) != keys:
            raise ExportError("output_names= is for tuple outputs; a dict output names its outputs itself")
        return OutputLayout("dict", tuple(check_name(k, "output") for k in keys), tuple(keys))
    if isinstance(out, tuple):
        if not out:
            raise ExportError(f"the model returns an empty tuple; {_RETURN_THIS}")
        for i, item in enumerate(out):
            _check_leaf(item, f"output {i}")
        names = list(output_names) if output_names is not None else [f"output_{i}" for i in range(len(out))]
        if len(names) != len(out):
            raise ExportError(
                f"output_names= has {len(names)} names but the model returns {len(out)} tensors"
            )
        names = [check_name(n, "output") for n in names]
        if len(set(names)) != len(names):
            raise ExportError(f"output names must be unique, got {names}")
        return OutputLayout("tuple", tuple(names))
    if isinstance(out, list):
        raise ExportError(
            f"the model returns a list; a list can change length from call to call, so its items "
            f"cannot be named. {_RETURN_THIS[0].upper()}{_RETURN_THIS[1:]}"
        )
    raise ExportError(f"the model returns {type(out).__name__}; {_RETURN_THIS}")


def _check_leaf(value: Any, what: str) -> None:
    if isinstance(value, torch.Tensor):
        return
    kind = "None" if value is None else type(value).__name__
    raise ExportError(f"{what} of the model is {kind}, which cannot be named as one output; {_RETURN_THIS}")


class NamedOutputs(torch.nn.Module):
    """The model called with the inputs in graph order, returning one tensor or a flat tuple."""

    def __init__(self, model: torch.nn.Module, names: tuple[str, ...], keywords: bool) -> None:
        super().__init__()
        self.model = model
        self.input_names = names
        self.keywords = keywords
        self.layout: OutputLayout | None = None

    def call(self, *args: torch.Tensor) -> Any:
        if self.keywords:
            return self.model(**dict(zip(self.input_names, args, strict=True)))
        return self.model(*args)

    def forward(self, *args: torch.Tensor) -> Any:
        out = self.call(*args)
        layout = self.layout
        if layout is None or layout.kind == "tensor":
            return out
        if layout.kind == "dict":
            if list(out) != list(layout.keys):
                raise ExportError(
                    f"the model returned keys {list(out)} on one call and {list(layout.keys)} on another; "
                    "return the same keys on every call"
                )
            values = tuple(out[k] for k in layout.keys)
        else:
            values = tuple(out)
        return values[0] if len(values) == 1 else values


def graph_specs(
    program: Any, inputs: TracedInputs, outputs: OutputLayout
) -> tuple[tuple[tuple[Any, ...], ...], tuple[tuple[Any, ...], ...], tuple[str, ...]]:
    """(input shapes, output shapes, output dtypes) of the exported program, dynamic sizes by name.

    An output size that is a dynamic input size is named as that input's dimension; one that is
    an expression of them (``2 * height``) gets a name of its own (``<output>_dim<axis>``).
    """
    symbols: dict[str, str] = {}
    placeholders = [
        n for n in program.graph.nodes if n.op == "placeholder" and n.name not in _non_user_inputs(program)
    ]
    in_shapes = []
    for node, dims in zip(placeholders, inputs.dims, strict=True):
        shape: list[int | str] = []
        for axis, size in enumerate(node.meta["val"].shape):
            if axis in dims:
                symbols[str(size)] = dims[axis]
                shape.append(dims[axis])
            else:
                shape.append(int(size))
        in_shapes.append(tuple(shape))
    (result,) = (n for n in program.graph.nodes if n.op == "output")
    values = result.args[0]
    values = values if isinstance(values, (tuple, list)) else (values,)
    out_shapes, out_dtypes = [], []
    for name, value in zip(outputs.names, values, strict=True):
        meta = value.meta["val"]
        shape = []  # int sizes and dimension names, as above
        for axis, size in enumerate(meta.shape):
            if isinstance(size, int):
                shape.append(size)
            elif str(size) in symbols:
                shape.append(symbols[str(size)])
            else:
                # Named once: outputs of the same size (pitch and confidence per frame) share it.
                symbols[str(size)] = f"{name.lower()}_dim{axis}"
                shape.append(symbols[str(size)])
        out_shapes.append(tuple(shape))
        out_dtypes.append(dtype_name(meta.dtype, f"output {name!r}"))
    return tuple(in_shapes), tuple(out_shapes), tuple(out_dtypes)


def _non_user_inputs(program: Any) -> set[str]:
    from torch.export.graph_signature import InputKind

    return {
        spec.arg.name for spec in program.graph_signature.input_specs if spec.kind != InputKind.USER_INPUT
    }


def spec(
    name: str, dtype: str, shape: tuple[Any, ...], description: str, meaning: Mapping[str, Any]
) -> TensorSpec:
    """A TensorSpec with its meaning (kind, layout, value_range, ...); ExportError if the meaning is wrong."""
    from pydantic import ValidationError

    fields = {"description": description, **dict(meaning)}
    try:
        return TensorSpec(name=name, dtype=dtype, shape=shape, **fields)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ExportError(f"meaning of {name!r} is not valid: {problems}") from None
    except TypeError as exc:
        raise ExportError(f"meaning of {name!r} is not valid: {exc}") from None
