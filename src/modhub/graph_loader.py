"""Build a runnable ``torch.fx.GraphModule`` straight from a validated ``graph.pt2``.

Why not ``torch.export.load``: it imports torch's whole export/dynamo stack
(about 1.2 s before any work), rebuilds symbolic shapes through sympy, and
has code paths that unpickle. A modhub graph holds only ATen calls, a few
integer operators on sizes, and raw little-endian weights, so it can be
rebuilt directly: read the JSON program, create one FX node per serialized
node, and turn each weight record into a tensor. Nothing is evaluated,
imported or unpickled; call targets come from a fixed table or from
``torch.ops.aten`` by name.

The archive must have passed ``modhub.format.safety.validate_graph_archive``
first; the checks here only guard the builder's own assumptions.
"""

from __future__ import annotations

import json
import math
import operator
import zipfile
from pathlib import Path
from typing import Any

import torch
import torch.fx

from modhub.errors import UnsafeModuleError

# Serialized ScalarType (torch/_export/serde/schema.py) -> dtype.
_DTYPES = {
    1: torch.uint8,
    2: torch.int8,
    3: torch.int16,
    4: torch.int32,
    5: torch.int64,
    6: torch.float16,
    7: torch.float32,
    8: torch.float64,
    12: torch.bool,
    13: torch.bfloat16,
}
_LAYOUTS = {7: torch.strided}
_MEMORY_FORMATS = {
    1: torch.contiguous_format,
    2: torch.channels_last,
    3: torch.channels_last_3d,
    4: torch.preserve_format,
}
# Python-level operations an exported graph uses on sizes (SymInt arithmetic).
_SYM_TARGETS = {
    "_operator.add": operator.add,
    "_operator.sub": operator.sub,
    "_operator.mul": operator.mul,
    "_operator.floordiv": operator.floordiv,
    "_operator.truediv": operator.truediv,
    "_operator.mod": operator.mod,
    "_operator.pow": operator.pow,
    "_operator.neg": operator.neg,
    "_operator.pos": operator.pos,
    "_operator.eq": operator.eq,
    "_operator.ne": operator.ne,
    "_operator.lt": operator.lt,
    "_operator.le": operator.le,
    "_operator.gt": operator.gt,
    "_operator.ge": operator.ge,
    "_operator.and_": operator.and_,
    "_operator.or_": operator.or_,
    "_operator.getitem": operator.getitem,
    "math.trunc": math.trunc,
    "torch.sym_int": torch.sym_int,
    "torch.sym_float": torch.sym_float,
    "torch.sym_max": torch.sym_max,
    "torch.sym_min": torch.sym_min,
    "torch.sym_not": torch.sym_not,
    "torch.sym_sqrt": torch.sym_sqrt,
    "torch.sym_ite": torch.sym_ite,
}


# JSON has no infinities: torch writes them as these strings.
_SPECIAL_FLOATS = {"Infinity": math.inf, "-Infinity": -math.inf, "NaN": math.nan}


def _float(value: Any, path: Path) -> float:
    if isinstance(value, str):
        if value not in _SPECIAL_FLOATS:
            raise _refuse(f"float argument {value[:40]!r} is not a number", path)
        return _SPECIAL_FLOATS[value]
    return float(value)


def _refuse(message: str, path: Path) -> UnsafeModuleError:
    return UnsafeModuleError(f"{path}: {message}; the graph cannot be loaded", path=path)


def resolve_target(target: str, path: Path) -> Any:
    """Map a serialized call target to a callable without importing anything."""
    if target in _SYM_TARGETS:
        return _SYM_TARGETS[target]
    parts = target.split(".")
    if len(parts) == 5 and parts[:3] == ["torch", "ops", "aten"]:
        packet = getattr(torch.ops.aten, parts[3], None)
        overload = getattr(packet, parts[4], None) if packet is not None else None
        if isinstance(overload, torch._ops.OpOverload):
            return overload
    raise _refuse(f"call target {target!r} is not an ATen operator", path)


class _Builder:
    def __init__(self, program: dict[str, Any], path: Path) -> None:
        self.program = program
        self.path = path
        self.graph = torch.fx.Graph()
        self.values: dict[str, torch.fx.Node] = {}

    # -- arguments ---------------------------------------------------------
    def value(self, name: str) -> torch.fx.Node:
        try:
            return self.values[name]
        except KeyError:
            raise _refuse(f"value {name!r} is used before it is defined", self.path) from None

    def sym(self, arg: dict[str, Any]) -> Any:
        if "as_name" in arg:
            return self.value(arg["as_name"])
        for key in ("as_int", "as_float", "as_bool"):
            if key in arg:
                return arg[key]
        raise _refuse(f"unsupported symbolic argument {sorted(arg)}", self.path)

    def argument(self, arg: dict[str, Any]) -> Any:
        if len(arg) != 1:
            raise _refuse("malformed argument", self.path)
        kind, value = next(iter(arg.items()))
        if kind == "as_none":
            return None
        if kind == "as_float":
            return _float(value, self.path)
        if kind == "as_floats":
            return [_float(v, self.path) for v in value]
        if kind in ("as_int", "as_bool", "as_string"):
            return value
        if kind in ("as_ints", "as_bools", "as_strings"):
            return list(value)
        if kind == "as_tensor":
            return self.value(value["name"])
        if kind == "as_tensors":
            return [self.value(v["name"]) for v in value]
        if kind == "as_optional_tensors":
            return [None if "as_none" in v else self.value(v["as_tensor"]["name"]) for v in value]
        if kind == "as_optional_tensor":
            return None if "as_none" in value else self.value(value["as_tensor"]["name"])
        if kind in ("as_sym_int", "as_sym_float", "as_sym_bool"):
            return self.sym(value)
        if kind in ("as_sym_ints", "as_sym_floats", "as_sym_bools"):
            return [self.sym(v) for v in value]
        if kind == "as_scalar_type" and value in _DTYPES:
            return _DTYPES[value]
        if kind == "as_layout" and value in _LAYOUTS:
            return _LAYOUTS[value]
        if kind == "as_memory_format" and value in _MEMORY_FORMATS:
            return _MEMORY_FORMATS[value]
        if kind == "as_device" and value.get("type") == "cpu":
            return torch.device("cpu")
        raise _refuse(f"unsupported argument kind {kind!r}", self.path)

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
        if given:
            raise _refuse(f"{target} has no argument(s) {sorted(given)}", self.path)
        return tuple(args), kwargs

    # -- nodes ---------------------------------------------------------------
    def node(self, node: dict[str, Any]) -> None:
        target = resolve_target(node["target"], self.path)
        args, kwargs = self.call_arguments(target, node.get("inputs", []))
        outputs = node.get("outputs", [])
        fx_node = self.graph.call_function(target, args, kwargs)
        single = outputs[0] if len(outputs) == 1 else None
        if single is not None and "as_tensor" in single:
            self.bind(single["as_tensor"]["name"], fx_node)
        elif single is not None and any(k in single for k in ("as_sym_int", "as_sym_float", "as_sym_bool")):
            self.bind(next(iter(single.values()))["as_name"], fx_node)
        elif single is not None and "as_none" in single:
            pass
        else:
            items = single["as_tensors"] if single is not None and "as_tensors" in single else outputs
            for index, item in enumerate(items):
                name = item.get("name") or item.get("as_tensor", {}).get("name")
                if name is None and "as_none" in item:
                    continue
                if name is None:
                    raise _refuse(f"unsupported output of {node['target']}", self.path)
                self.bind(name, self.graph.call_function(operator.getitem, (fx_node, index)))

    def bind(self, name: str, fx_node: torch.fx.Node) -> None:
        if name in self.values:
            raise _refuse(f"value {name!r} is defined twice", self.path)
        self.values[name] = fx_node

    def build(self, state: dict[str, torch.Tensor]) -> torch.fx.GraphModule:
        module = self.program["graph_module"]
        graph = module["graph"]
        signature = module["signature"]
        attrs: dict[str, Any] = {}
        names = [spec["as_tensor"]["name"] for spec in graph["inputs"]]
        for spec, name in zip(signature["input_specs"], names, strict=True):
            kind, detail = next(iter(spec.items()))
            if kind == "user_input":
                self.bind(name, self.graph.placeholder(name))
            elif kind in ("parameter", "buffer", "tensor_constant"):
                fqn = (
                    detail.get("parameter_name")
                    or detail.get("buffer_name")
                    or detail.get("tensor_constant_name")
                )
                if fqn not in state:
                    raise _refuse(f"weight {fqn!r} is missing from the archive", self.path)
                attrs[fqn] = state[fqn]
                self.bind(name, self.graph.get_attr(fqn))
            else:
                raise _refuse(f"unsupported graph input kind {kind!r}", self.path)
        for node in graph["nodes"]:
            self.node(node)
        results = []
        for spec, out in zip(signature["output_specs"], graph["outputs"], strict=True):
            kind = next(iter(spec))
            if kind != "user_output":
                raise _refuse(f"unsupported graph output kind {kind!r}", self.path)
            results.append(self.argument(out))
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
        if child is None:
            child = torch.nn.Module()
            module.add_module(part, child)
        module = child
    if isinstance(tensor, torch.nn.Parameter):
        module.register_parameter(leaf, tensor)
    else:
        module.register_buffer(leaf, tensor)


def _read_tensors(
    archive: zipfile.ZipFile, prefix: str, config_name: str, path: Path
) -> dict[str, torch.Tensor]:
    config = json.loads(archive.read(f"{prefix}{config_name}"))["config"]
    storages: dict[str, torch.Tensor] = {}
    tensors: dict[str, torch.Tensor] = {}
    folder = config_name.rsplit("/", 1)[0]
    for fqn, meta in config.items():
        if meta.get("use_pickle"):
            raise _refuse(f"{fqn} is pickled", path)
        tensor_meta = meta["tensor_meta"]
        dtype = _DTYPES.get(tensor_meta["dtype"])
        if dtype is None:
            raise _refuse(f"{fqn} has an unsupported dtype", path)
        record = meta["path_name"]
        if record not in storages:
            data = bytearray(archive.read(f"{prefix}{folder}/{record}"))
            storages[record] = torch.frombuffer(data, dtype=dtype) if data else torch.zeros(0, dtype=dtype)
        sizes = [s["as_int"] for s in tensor_meta["sizes"]]
        strides = [s["as_int"] for s in tensor_meta["strides"]]
        offset = tensor_meta["storage_offset"]["as_int"]
        flat = storages[record]
        if math.prod(sizes) == 0:
            tensor = torch.zeros(sizes, dtype=dtype)
        else:
            tensor = torch.as_strided(flat, sizes, strides, offset)
        if meta.get("is_param"):
            tensor = torch.nn.Parameter(tensor, requires_grad=tensor_meta.get("requires_grad", True))
        tensors[fqn] = tensor
    return tensors


def load_graph_module(source: Any, path: Path) -> torch.fx.GraphModule:
    """Rebuild the exported program in ``source`` as a GraphModule with its own weights."""
    with zipfile.ZipFile(source) as archive:
        models = [n for n in archive.namelist() if n.endswith(".json") and "/models/" in n]
        if len(models) != 1:
            raise _refuse("expected exactly one program in the archive", path)
        prefix = models[0].split("models/")[0]
        program = json.loads(archive.read(models[0]))
        state = _read_tensors(archive, prefix, "data/weights/model_weights_config.json", path)
        state.update(_read_tensors(archive, prefix, "data/constants/model_constants_config.json", path))
    return _Builder(program, path).build(state)
