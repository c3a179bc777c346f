"""Build a runnable ``torch.fx.GraphModule`` from a checked :class:`GraphProgram`.

Why not ``torch.export.load``: it imports torch's whole export/dynamo stack
(about 1.2 s before any work), rebuilds symbolic shapes through sympy, and
has code paths that unpickle. A modhub graph holds only allow-listed ATen
calls, a few integer operators on sizes, and raw little-endian weights, so it
is rebuilt directly: one FX node per serialized node, one tensor per weight
record. Nothing is evaluated, imported or unpickled; call targets come from
the allow-list, codes from :mod:`modhub.graph.tables`.

The input is the structure :func:`modhub.graph.archive.read_archive` checked;
no file is read here, so what runs is what was checked (and hashed).
"""

from __future__ import annotations

import math
import operator
from typing import Any

import torch
import torch.fx

from modhub.graph.archive import GraphProgram
from modhub.graph.program import aten_operator
from modhub.graph.tables import DTYPES, LAYOUTS, MEMORY_FORMATS, SYM_OPERATORS, sym_operator

__all__ = ["build"]

# JSON has no infinities: torch writes them as these strings.
_SPECIAL_FLOATS = {"Infinity": math.inf, "-Infinity": -math.inf, "NaN": math.nan}


def _float(value: Any) -> float:
    if isinstance(value, str):
        return _SPECIAL_FLOATS[value]
    return float(value)


def _dtype(code: int) -> torch.dtype:
    return getattr(torch, DTYPES[code][0])  # type: ignore[no-any-return]


def _target(target: str) -> Any:
    if target in SYM_OPERATORS:
        return sym_operator(target)
    return aten_operator(target[len("torch.ops.aten.") :])


class _Builder:
    def __init__(self, program: dict[str, Any]) -> None:
        self.program = program
        self.graph = torch.fx.Graph()
        self.values: dict[str, torch.fx.Node] = {}

    def sym(self, arg: dict[str, Any]) -> Any:
        if "as_name" in arg:
            return self.values[arg["as_name"]]
        ((_, value),) = arg.items()
        return _float(value) if isinstance(value, str) else value

    def argument(self, arg: dict[str, Any]) -> Any:
        ((kind, value),) = arg.items()
        if kind == "as_none":
            return None
        if kind == "as_float":
            return _float(value)
        if kind == "as_floats":
            return [_float(v) for v in value]
        if kind in ("as_int", "as_bool", "as_string"):
            return value
        if kind in ("as_ints", "as_bools", "as_strings"):
            return list(value)
        if kind == "as_tensor":
            return self.values[value["name"]]
        if kind == "as_tensors":
            return [self.values[v["name"]] for v in value]
        if kind == "as_optional_tensors":
            return [None if "as_none" in v else self.values[v["as_tensor"]["name"]] for v in value]
        if kind == "as_optional_tensor":
            return None if "as_none" in value else self.values[value["as_tensor"]["name"]]
        if kind in ("as_sym_int", "as_sym_float", "as_sym_bool"):
            return self.sym(value)
        if kind in ("as_sym_ints", "as_sym_floats", "as_sym_bools"):
            return [self.sym(v) for v in value]
        if kind == "as_scalar_type":
            return _dtype(value)
        if kind == "as_layout":
            return getattr(torch, LAYOUTS[value])
        if kind == "as_memory_format":
            return getattr(torch, MEMORY_FORMATS[value])
        if kind == "as_device":
            return torch.device("cpu")
        raise AssertionError(f"unchecked argument kind {kind}")  # the checker refuses every other kind

    def call_arguments(
        self, target: Any, inputs: list[dict[str, Any]]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        if not isinstance(target, torch._ops.OpOverload):
            return tuple(self.argument(i["arg"]) for i in inputs), {}
        given = {i["name"]: i for i in inputs}
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        for schema_arg in target._schema.arguments:
            item = given.pop(schema_arg.name, None)
            if item is None:
                continue
            value = self.argument(item["arg"])
            positional = item.get("kind") == 1 or (
                item.get("kind") is None and not schema_arg.kwarg_only and not kwargs
            )
            if positional and not kwargs:
                args.append(value)
            else:
                kwargs[schema_arg.name] = value
        return tuple(args), kwargs

    def node(self, node: dict[str, Any]) -> None:
        target = _target(node["target"])
        args, kwargs = self.call_arguments(target, node["inputs"])
        outputs = node["outputs"]
        fx_node = self.graph.call_function(target, args, kwargs)
        if len(outputs) == 1:
            ((kind, value),) = outputs[0].items()
            if kind == "as_tensor":
                self.values[value["name"]] = fx_node
            elif kind in ("as_sym_int", "as_sym_float", "as_sym_bool"):
                self.values[value["as_name"]] = fx_node
            elif kind == "as_tensors":
                for index, item in enumerate(value):
                    self.values[item["name"]] = self.graph.call_function(operator.getitem, (fx_node, index))
            return
        for index, out in enumerate(outputs):
            if "as_tensor" in out:
                name = out["as_tensor"]["name"]
                self.values[name] = self.graph.call_function(operator.getitem, (fx_node, index))

    def build(self, state: dict[str, torch.Tensor]) -> torch.fx.GraphModule:
        module = self.program["graph_module"]
        graph = module["graph"]
        signature = module["signature"]
        attrs: dict[str, Any] = {}
        for spec, arg in zip(signature["input_specs"], graph["inputs"], strict=True):
            name = arg["as_tensor"]["name"]
            ((kind, detail),) = spec.items()
            if kind == "user_input":
                self.values[name] = self.graph.placeholder(name)
                continue
            fqn = (
                detail.get("parameter_name")
                or detail.get("buffer_name")
                or detail.get("tensor_constant_name")
            )
            attrs[fqn] = state[fqn]
            self.values[name] = self.graph.get_attr(fqn)
        for node in graph["nodes"]:
            self.node(node)
        results = [self.argument(out) for out in graph["outputs"]]
        self.graph.output(results[0] if len(results) == 1 else tuple(results))
        root = torch.nn.Module()
        for fqn, tensor in attrs.items():
            _assign(root, fqn, tensor)
        return torch.fx.GraphModule(root, self.graph)


def _assign(root: torch.nn.Module, fqn: str, tensor: torch.Tensor) -> None:
    *parents, leaf = fqn.split(".")
    module = root
    for part in parents:
        child = getattr(module, part, None)
        if not isinstance(child, torch.nn.Module):
            child = torch.nn.Module()
            module.add_module(part, child)
        module = child
    if isinstance(tensor, torch.nn.Parameter):
        module.register_parameter(leaf, tensor)
    else:
        module.register_buffer(leaf, tensor)


def _tensors(
    config: dict[str, Any], folder: str, payloads: dict[str, memoryview], *, take_buffer: bool
) -> dict[str, torch.Tensor]:
    storages: dict[str, torch.Tensor] = {}
    tensors: dict[str, torch.Tensor] = {}
    for fqn, meta in config.items():
        tensor_meta = meta["tensor_meta"]
        dtype = _dtype(tensor_meta["dtype"])
        record = meta["path_name"]
        if record not in storages:
            view = payloads[f"{folder}/{record}"]
            if not view.nbytes:
                storages[record] = torch.zeros(0, dtype=dtype)
            elif take_buffer and not view.readonly:
                # The buffer this load read (and hashed) is the weights: no second copy.
                storages[record] = torch.frombuffer(view, dtype=dtype)
            else:
                # A copy of its own: every loaded instance owns its weights (and may train them).
                storages[record] = torch.frombuffer(bytearray(view), dtype=dtype)
        sizes = [s["as_int"] for s in tensor_meta["sizes"]]
        strides = [s["as_int"] for s in tensor_meta["strides"]]
        offset = tensor_meta["storage_offset"]["as_int"]
        if math.prod(sizes) == 0:
            tensor = torch.zeros(sizes, dtype=dtype)
        else:
            tensor = torch.as_strided(storages[record], sizes, strides, offset)
        if meta["is_param"]:
            tensor = torch.nn.Parameter(tensor, requires_grad=tensor_meta["requires_grad"])
        tensors[fqn] = tensor
    return tensors


def build(program: GraphProgram, *, take_buffer: bool = False) -> torch.fx.GraphModule:
    """The GraphModule of a checked program, with weights of its own (see ``build_graph_module``)."""
    state = _tensors(program.weights, "weights", program.payloads, take_buffer=take_buffer)
    state.update(_tensors(program.constants, "constants", program.payloads, take_buffer=take_buffer))
    return _Builder(program.program).build(state)
