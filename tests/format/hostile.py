"""Build hostile variants of a real ``graph.pt2``.

:class:`Archive` holds the entries of a valid archive (written by
``torch.export.save``) and writes them back as a new zip after a mutation.
:data:`MUTATIONS` is the table of attacks: each takes the archive and the
path of a marker file and plants a payload that would create that marker if
torch loaded (or ran) the archive. The validator must refuse every one.
"""

from __future__ import annotations

import copy
import io
import json
import pickle
import stat
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MODEL = "models/model.json"
WEIGHTS = "data/weights/model_weights_config.json"
CONSTANTS = "data/constants/model_constants_config.json"
SAMPLES = "data/sample_inputs/model.pt"


class _OpenMarker:
    """Unpickling this calls ``open(marker, "w")``: a real code-execution payload."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.marker, "w"))


def pickle_payload(marker: Path) -> bytes:
    return pickle.dumps(_OpenMarker(str(marker)), protocol=2)


def sympy_payload(marker: Path) -> str:
    """A shape string that sympy.sympify would evaluate into a file write."""
    return f"__import__('builtins').open('{marker}', 'w')"


@dataclass
class Archive:
    root: str
    entries: dict[str, bytes]
    # Raw zip entries added verbatim (name, ZipInfo tweaks) for zip-level attacks.
    raw: list[tuple[zipfile.ZipInfo, bytes]] = field(default_factory=list)
    prefix: bytes = b""
    comment: bytes = b""
    # Names whose general-purpose flag gets the "encrypted" bit after writing
    # (zipfile clears flag_bits when it writes an entry).
    encrypted: list[str] = field(default_factory=list)
    _json: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def read(cls, path: Path) -> Archive:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            root = names[0].split("/", 1)[0]
            entries = {n[len(root) + 1 :]: zf.read(n) for n in names}
        return cls(root, entries)

    def json(self, rel: str) -> Any:
        """The parsed JSON of an entry; edits are written back on :meth:`write`."""
        if rel not in self._json:
            self._json[rel] = json.loads(self.entries[rel])
        return self._json[rel]

    @property
    def program(self) -> dict[str, Any]:
        return self.json(MODEL)

    @property
    def graph(self) -> dict[str, Any]:
        return self.program["graph_module"]["graph"]

    def add_raw(self, name: str, data: bytes, **attrs: Any) -> None:
        info = zipfile.ZipInfo(name)
        info.filename = name  # keep NUL bytes that ZipInfo would cut off
        info.external_attr = (stat.S_IFREG | 0o644) << 16
        for key, value in attrs.items():
            setattr(info, key, value)
        self.raw.append((info, data))

    def write(self, path: Path) -> Path:
        for rel, doc in self._json.items():
            self.entries[rel] = json.dumps(doc).encode()
        buf = io.BytesIO()
        with warnings.catch_warnings(), zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
            warnings.simplefilter("ignore")  # "Duplicate name" is one of the attacks
            for rel, data in self.entries.items():
                info = zipfile.ZipInfo(f"{self.root}/{rel}")
                info.external_attr = (stat.S_IFREG | 0o644) << 16
                zf.writestr(info, data)
            for info, data in self.raw:
                zf.writestr(info, data)
            zf.comment = self.comment
        data = bytearray(buf.getvalue())
        for name in self.encrypted:
            _set_encrypted_flag(data, f"{self.root}/{name}".encode())
        path.write_bytes(self.prefix + bytes(data))
        return path

    def copy(self) -> Archive:
        return Archive(self.root, dict(self.entries), _json=copy.deepcopy(self._json))


def _set_encrypted_flag(data: bytearray, name: bytes) -> None:
    """Set bit 0 of the general-purpose flags in the local and central headers of ``name``."""
    # (signature, offset of the flags, offset of the name length, offset of the name)
    for sig, flags_at, len_at, name_at in ((b"PK\x03\x04", 6, 26, 30), (b"PK\x01\x02", 8, 28, 46)):
        pos = data.find(sig)
        while pos >= 0:
            name_len = int.from_bytes(data[pos + len_at : pos + len_at + 2], "little")
            if bytes(data[pos + name_at : pos + name_at + name_len]) == name:
                data[pos + flags_at] |= 0x1
                break
            pos = data.find(sig, pos + 4)


Mutation = Callable[[Archive, Path], None]
MUTATIONS: dict[str, Mutation] = {}


def mutation(name: str) -> Callable[[Mutation], Mutation]:
    def register(fn: Mutation) -> Mutation:
        if name in MUTATIONS:
            raise ValueError(f"duplicate mutation {name}")
        MUTATIONS[name] = fn
        return fn

    return register


# -- helpers used by the mutations ------------------------------------------------


def first_payload(arc: Archive, config: str) -> tuple[str, dict[str, Any]]:
    fqn, meta = next(iter(arc.json(config)["config"].items()))
    return fqn, meta


def first_node(arc: Archive, target_prefix: str = "torch.ops.aten.") -> dict[str, Any]:
    return next(n for n in arc.graph["nodes"] if n["target"].startswith(target_prefix))


def first_symbolic_tensor(arc: Archive) -> dict[str, Any]:
    return next(tv for tv in arc.graph["tensor_values"].values() if any("as_expr" in s for s in tv["sizes"]))


def add_node(
    arc: Archive, target: str, inputs: list[dict[str, Any]], outputs: list[dict[str, Any]] | None = None
) -> None:
    arc.graph["nodes"].insert(
        0, {"target": target, "inputs": inputs, "outputs": outputs or [], "metadata": {}, "name": "evil"}
    )


def string_arg(name: str, value: str) -> dict[str, Any]:
    return {"name": name, "arg": {"as_string": value}, "kind": 1}


def set_in_spec(arc: Archive, spec: Any) -> None:
    arc.program["graph_module"]["module_call_graph"][0]["signature"]["in_spec"] = json.dumps(spec)


# -- pickle payloads -----------------------------------------------------------------


@mutation("weight-use-pickle")
def _(arc: Archive, m: Path) -> None:
    _, meta = first_payload(arc, WEIGHTS)
    meta["use_pickle"] = True
    arc.entries[f"data/weights/{meta['path_name']}"] = pickle_payload(m)


@mutation("constant-use-pickle")
def _(arc: Archive, m: Path) -> None:
    _, meta = first_payload(arc, CONSTANTS)
    meta["use_pickle"] = True
    arc.entries[f"data/constants/{meta['path_name']}"] = pickle_payload(m)


@mutation("pickled-sample-inputs")
def _(arc: Archive, m: Path) -> None:
    arc.entries[SAMPLES] = pickle_payload(m)


@mutation("opaque-object-constant")
def _(arc: Archive, m: Path) -> None:
    arc.json(CONSTANTS)["config"]["evil"] = {
        "path_name": "opaque_obj_0", "is_param": False, "use_pickle": True, "tensor_meta": None,
    }  # fmt: skip
    arc.entries["data/constants/opaque_obj_0"] = pickle_payload(m)


@mutation("custom-object-constant")
def _(arc: Archive, m: Path) -> None:
    arc.json(CONSTANTS)["config"]["evil"] = {
        "path_name": "custom_obj_0", "is_param": False, "use_pickle": True, "tensor_meta": None,
    }  # fmt: skip
    arc.entries["data/constants/custom_obj_0"] = pickle_payload(m)


@mutation("legacy-pickled-weights")
def _(arc: Archive, m: Path) -> None:
    arc.entries["data/weights/model.pt"] = pickle_payload(m)


@mutation("legacy-pickled-constants")
def _(arc: Archive, m: Path) -> None:
    arc.entries["data/constants/model.pt"] = pickle_payload(m)


@mutation("pickled-weight-file-renamed")
def _(arc: Archive, m: Path) -> None:
    # A payload file that no config entry references.
    arc.entries["data/weights/weight_999"] = pickle_payload(m)


@mutation("weight-path-traversal")
def _(arc: Archive, m: Path) -> None:
    _, meta = first_payload(arc, WEIGHTS)
    meta["path_name"] = "../../models/model.json"


# -- eval through sympy: every site torch hands to sympy.sympify x every payload ------------------

# Payloads sympy.sympify evaluates into a file write (proven in test_safety for tensor sizes).
SYMPY_PAYLOADS: dict[str, Callable[[Path], str]] = {
    "dunder-import": sympy_payload,
    "builtin-open": lambda m: f"open('{m}', 'w')",
    "symbol-kwarg": lambda m: f"Symbol('s0', positive=open('{m}', 'w'))",
}


def _expr(text: str) -> dict[str, Any]:
    return {"as_expr": {"expr_str": text, "hint": None}}


def _symbolic_size(arc: Archive) -> dict[str, Any]:
    return next(s for s in first_symbolic_tensor(arc)["sizes"] if "as_expr" in s)


def _set_weight_size(arc: Archive, text: str) -> None:
    first_payload(arc, WEIGHTS)[1]["tensor_meta"]["sizes"][0] = _expr(text)


# Where torch 2.13 reads a shape string (sympify), or a string next to one.
SYMPY_SITES: dict[str, Callable[[Archive, str], None]] = {
    "tensor-size": lambda arc, t: _symbolic_size(arc)["as_expr"].__setitem__("expr_str", t),
    "tensor-stride": lambda arc, t: first_symbolic_tensor(arc)["strides"].__setitem__(0, _expr(t)),
    "storage-offset": lambda arc, t: first_symbolic_tensor(arc).__setitem__("storage_offset", _expr(t)),
    "sym-int-value": lambda arc, t: arc.graph["sym_int_values"].__setitem__(
        next(iter(arc.graph["sym_int_values"])), _expr(t)
    ),
    "sym-bool-value": lambda arc, t: arc.graph["sym_bool_values"].__setitem__("evil", _expr(t)),
    "sym-float-value": lambda arc, t: arc.graph["sym_float_values"].__setitem__("evil", _expr(t)),
    "range-constraint-key": lambda arc, t: arc.program["range_constraints"].__setitem__(
        t, {"min_val": 1, "max_val": 2}
    ),
    "weight-size": _set_weight_size,
}


def _sympy_mutation(site: Callable[[Archive, str], None], payload: Callable[[Path], str]) -> Mutation:
    return lambda arc, m: site(arc, payload(m))


@mutation("sympy-attribute-access")
def _(arc: Archive, m: Path) -> None:
    tv = first_symbolic_tensor(arc)
    expr = "Symbol('s0', positive=True, integer=True).func.eval"
    next(s for s in tv["sizes"] if "as_expr" in s)["as_expr"]["expr_str"] = expr


@mutation("range-constraint-key-payload")
def _(arc: Archive, m: Path) -> None:
    arc.program["range_constraints"][sympy_payload(m)] = {"min_val": 1, "max_val": 2}


@mutation("sympy-power-tower")
def _(arc: Archive, m: Path) -> None:
    # Not code execution but a hang: the integer has 9 * 64**3 digits.
    tower = "Pow(Pow(Pow(Integer(999999999), Integer(64)), Integer(64)), Integer(64))"
    _symbolic_size(arc)["as_expr"]["expr_str"] = tower


@mutation("range-constraint-huge-int")
def _(arc: Archive, m: Path) -> None:
    key = next(iter(arc.program["range_constraints"]))
    arc.program["range_constraints"][key]["max_val"] = 10**40


# -- exec of guard code ------------------------------------------------------------------


@mutation("guard-code-open")
def _(arc: Archive, m: Path) -> None:
    arc.program["guards_code"].append(f"open('{m}', 'w') is None")


@mutation("guard-code-import")
def _(arc: Archive, m: Path) -> None:
    arc.program["guards_code"].append(f"__import__('os').system('touch {m}') == 0")


@mutation("guard-code-statement-injection")
def _(arc: Archive, m: Path) -> None:
    arc.program["guards_code"].append(f"L['input_ids'].size()[0] >= 1, '')\n  open('{m}', 'w'\n")


@mutation("guard-code-attribute")
def _(arc: Archive, m: Path) -> None:
    arc.program["guards_code"].append("L['input_ids'].tolist()[0] == 1")


# -- call targets and arguments --------------------------------------------------------------


# Call targets torch would resolve by name (getattr on torch/_operator/math, custom op namespaces,
# extension registries) or aten operators that reach files: each gets a node whose argument is a command.
HOSTILE_TARGETS = [
    "torch.os.system",
    "torch.load",
    "torch.hub.load",
    "torch.utils.cpp_extension.load_inline",
    "torch._C._jit_pass_lower_all_tuples",
    "builtins.exec",
    "builtins.eval",
    "_operator.attrgetter",
    "_operator.methodcaller",
    "math.floor",
    "#evil:op",
    "os.system",
    "subprocess.run",
    "torch.ops.evil.system.default",
    "torch.ops.higher_order.cond",
    "torch.ops.aten.from_file.default",
    "torch.ops.aten.save.default",
    "torch.ops.aten.no_such_op_anywhere.default",
    "torch.ops.aten.add.Tensor._op",
    "torch.ops.aten.__class__.default",
    "torch.ops.aten.add",
    "torch.sym_max.__globals__",
]


def _target_mutation(target: str) -> Mutation:
    return lambda arc, m: add_node(arc, target, [string_arg("command", f"touch {m}")])


@mutation("target-replaces-aten-op")
def _(arc: Archive, m: Path) -> None:
    first_node(arc)["target"] = "torch.os.system"
    first_node(arc, "torch.os")["inputs"][0]["arg"] = {"as_string": f"touch {m}"}


@mutation("arg-as-operator")
def _(arc: Archive, m: Path) -> None:
    first_node(arc)["inputs"].append({"name": "fn", "arg": {"as_operator": "torch.os.system"}, "kind": 2})


@mutation("arg-as-custom-obj")
def _(arc: Archive, m: Path) -> None:
    arg = {"as_custom_obj": {"name": "evil", "class_fqn": "__torch__.torch.classes.evil.Evil"}}
    first_node(arc)["inputs"].append({"name": "obj", "arg": arg, "kind": 2})


@mutation("arg-as-graph")
def _(arc: Archive, m: Path) -> None:
    graph = {
        "inputs": [],
        "outputs": [],
        "nodes": [],
        "tensor_values": {},
        "sym_int_values": {},
        "sym_bool_values": {},
    }
    first_node(arc)["inputs"].append(
        {"name": "g", "arg": {"as_graph": {"name": "g", "graph": graph}}, "kind": 2}
    )


@mutation("arg-device-cuda")
def _(arc: Archive, m: Path) -> None:
    first_node(arc)["inputs"].append(
        {"name": "device", "arg": {"as_device": {"type": "cuda", "index": 0}}, "kind": 2}
    )


@mutation("custom-obj-values")
def _(arc: Archive, m: Path) -> None:
    arc.graph["custom_obj_values"]["evil"] = {
        "name": "evil",
        "class_fqn": "__torch__.torch.classes.evil.Evil",
    }


@mutation("metadata-source-fn-stack")
def _(arc: Archive, m: Path) -> None:
    first_node(arc)["metadata"]["source_fn_stack"] = "evil,torch.os.system"


@mutation("metadata-from-node")
def _(arc: Archive, m: Path) -> None:
    first_node(arc)["metadata"]["from_node"] = json.dumps([{"name": "x", "target": "torch.os.system"}])


@mutation("graph-module-custom-metadata")
def _(arc: Archive, m: Path) -> None:
    arc.program["graph_module"]["metadata"]["custom"] = json.dumps({"evil": str(m)})


@mutation("input-spec-custom-obj")
def _(arc: Archive, m: Path) -> None:
    spec = {"custom_obj": {"arg": {"name": "evil", "class_fqn": "x.Evil"}, "custom_obj_name": "evil"}}
    arc.program["graph_module"]["signature"]["input_specs"].append(spec)


@mutation("input-spec-unknown-parameter")
def _(arc: Archive, m: Path) -> None:
    spec = arc.program["graph_module"]["signature"]["input_specs"][0]
    spec["parameter"]["parameter_name"] = "not.in.the.archive"


@mutation("verifier-unknown")
def _(arc: Archive, m: Path) -> None:
    arc.program["verifiers"] = ["os.system"]


@mutation("schema-version-major")
def _(arc: Archive, m: Path) -> None:
    arc.program["schema_version"]["major"] = 0


@mutation("unknown-program-field")
def _(arc: Archive, m: Path) -> None:
    arc.program["exec_on_load"] = f"open('{m}', 'w')"


# -- names and text that end up in the Python code torch.fx generates ---------------------------


@mutation("node-name-code-injection")
def _(arc: Archive, m: Path) -> None:
    first_node(arc)["name"] = f"x = open('{m}', 'w')"


@mutation("input-name-dunder")
def _(arc: Archive, m: Path) -> None:
    arc.graph["inputs"][0]["as_tensor"]["name"] = "__builtins__"


@mutation("forward-arg-names-injection")
def _(arc: Archive, m: Path) -> None:
    sig = arc.program["graph_module"]["module_call_graph"][0]["signature"]
    sig["forward_arg_names"] = [f"input_ids=open('{m}', 'w')", "attention_mask"]


@mutation("stack-trace-carriage-return")
def _(arc: Archive, m: Path) -> None:
    trace = f'File "model.py", line 1, in forward\n    x\r    open("{m}", "w")'
    first_node(arc)["metadata"]["stack_trace"] = trace


@mutation("weight-fqn-dunder")
def _(arc: Archive, m: Path) -> None:
    config = arc.json(WEIGHTS)["config"]
    fqn = next(iter(config))
    config["__class__." + fqn] = config.pop(fqn)


# -- pytree specs (type names are imported/looked up by name) ----------------------------------


@mutation("pytree-namedtuple-type")
def _(arc: Archive, m: Path) -> None:
    set_in_spec(arc, [1, {"type": "collections.namedtuple", "context": '"os.system"', "children_spec": []}])


@mutation("pytree-arbitrary-class")
def _(arc: Archive, m: Path) -> None:
    set_in_spec(arc, [1, {"type": "subprocess.Popen", "context": "null", "children_spec": []}])


@mutation("pytree-enum-import-in-context")
def _(arc: Archive, m: Path) -> None:
    context = json.dumps([{"__enum__": True, "fqn": "antigravity:webbrowser", "name": "x"}])
    leaf = {"type": None, "context": None, "children_spec": []}
    set_in_spec(arc, [1, {"type": "builtins.dict", "context": context, "children_spec": [leaf]}])


@mutation("namedtuple-fields")
def _(arc: Archive, m: Path) -> None:
    arc.program["graph_module"]["treespec_namedtuple_fields"]["os.system"] = {"field_names": ["a"]}


# -- native code and other runtimes ---------------------------------------------------------------


@mutation("aoti-shared-library")
def _(arc: Archive, m: Path) -> None:
    arc.entries["data/aotinductor/model/model.so"] = b"\x7fELF" + b"\0" * 60
    arc.entries["data/aotinductor/model/model.wrapper.cpp"] = f'system("touch {m}");'.encode()


@mutation("shared-library-anywhere")
def _(arc: Archive, m: Path) -> None:
    arc.entries["data/weights/libevil.so"] = b"\x7fELF" + b"\0" * 60


@mutation("extra-files")
def _(arc: Archive, m: Path) -> None:
    arc.entries["extra/module_info.json"] = b"{}"


@mutation("executorch-payload")
def _(arc: Archive, m: Path) -> None:
    arc.entries["data/executorch/model.pte"] = b"\0" * 16


@mutation("second-model")
def _(arc: Archive, m: Path) -> None:
    arc.entries["models/evil.json"] = arc.entries[MODEL]


# -- zip structure ------------------------------------------------------------------------------


@mutation("zip-path-traversal")
def _(arc: Archive, m: Path) -> None:
    arc.add_raw(f"{arc.root}/../../{m.name}", b"x")


@mutation("zip-absolute-path")
def _(arc: Archive, m: Path) -> None:
    arc.add_raw(str(m), b"x")


@mutation("zip-backslash-path")
def _(arc: Archive, m: Path) -> None:
    arc.add_raw(f"{arc.root}\\..\\{m.name}", b"x")


@mutation("zip-nul-in-name")
def _(arc: Archive, m: Path) -> None:
    arc.add_raw(f"{arc.root}/models/model.json\0.txt", b"{}")


@mutation("zip-second-root")
def _(arc: Archive, m: Path) -> None:
    arc.add_raw("other/archive_format", b"pt2")


@mutation("zip-duplicate-name")
def _(arc: Archive, m: Path) -> None:
    doc = json.loads(arc.entries[MODEL])
    doc["guards_code"] = [f"open('{m}', 'w')"]
    arc.add_raw(f"{arc.root}/{MODEL}", json.dumps(doc).encode())


@mutation("zip-symlink")
def _(arc: Archive, m: Path) -> None:
    arc.add_raw(
        f"{arc.root}/data/weights/weight_998", b"/etc/passwd", external_attr=(stat.S_IFLNK | 0o777) << 16
    )


@mutation("zip-encrypted-flag")
def _(arc: Archive, m: Path) -> None:
    arc.encrypted.append(".data/serialization_id")


@mutation("zip-deflate-bomb")
def _(arc: Archive, m: Path) -> None:
    del arc.entries[SAMPLES]
    arc.add_raw(f"{arc.root}/{SAMPLES}", b"\0" * (8 << 20), compress_type=zipfile.ZIP_DEFLATED)


@mutation("zip-prepended-data")
def _(arc: Archive, m: Path) -> None:
    arc.prefix = pickle_payload(m)


@mutation("zip-comment")
def _(arc: Archive, m: Path) -> None:
    arc.comment = pickle_payload(m)


@mutation("archive-format-not-pt2")
def _(arc: Archive, m: Path) -> None:
    arc.entries["archive_format"] = b"pt2 "


@mutation("missing-model-json")
def _(arc: Archive, m: Path) -> None:
    del arc.entries[MODEL]


# -- payload configs and tensor metadata ----------------------------------------------------------


@mutation("weight-allocation-bomb")
def _(arc: Archive, m: Path) -> None:
    _, meta = first_payload(arc, WEIGHTS)
    meta["tensor_meta"]["sizes"] = [{"as_int": 1 << 20}, {"as_int": 1 << 20}]
    meta["tensor_meta"]["strides"] = [{"as_int": 1 << 20}, {"as_int": 1}]


@mutation("weight-missing-file")
def _(arc: Archive, m: Path) -> None:
    _, meta = first_payload(arc, WEIGHTS)
    del arc.entries[f"data/weights/{meta['path_name']}"]


@mutation("weight-shared-file-other-dtype")
def _(arc: Archive, m: Path) -> None:
    config = arc.json(WEIGHTS)["config"]
    first, second = list(config.values())[:2]
    second["path_name"] = first["path_name"]
    second["tensor_meta"]["dtype"] = 8 if first["tensor_meta"]["dtype"] != 8 else 7


@mutation("weight-negative-stride")
def _(arc: Archive, m: Path) -> None:
    first_payload(arc, WEIGHTS)[1]["tensor_meta"]["strides"][0] = {"as_int": -1}


@mutation("weight-unknown-dtype")
def _(arc: Archive, m: Path) -> None:
    _, meta = first_payload(arc, WEIGHTS)
    meta["tensor_meta"]["dtype"] = 0


@mutation("weight-sparse-layout")
def _(arc: Archive, m: Path) -> None:
    _, meta = first_payload(arc, WEIGHTS)
    meta["tensor_meta"]["layout"] = 1


@mutation("tensor-value-meta-device")
def _(arc: Archive, m: Path) -> None:
    first_symbolic_tensor(arc)["device"] = {"type": "meta", "index": None}


@mutation("tensor-value-rank-bomb")
def _(arc: Archive, m: Path) -> None:
    tv = first_symbolic_tensor(arc)
    tv["sizes"] = [{"as_int": 2}] * 64
    tv["strides"] = [{"as_int": 1}] * 64


@mutation("weights-config-extra-field")
def _(arc: Archive, m: Path) -> None:
    _, meta = first_payload(arc, WEIGHTS)
    meta["loader"] = "pickle"


@mutation("json-duplicate-key")
def _(arc: Archive, m: Path) -> None:
    text = arc.entries[MODEL].decode()
    evil = json.dumps([f"open('{m}', 'w')"])
    arc.entries[MODEL] = ('{"guards_code": ' + evil + ", " + text[1:]).encode()


@mutation("json-deep-nesting")
def _(arc: Archive, m: Path) -> None:
    arc.entries[MODEL] = b"[" * 100_000 + b"]" * 100_000


@mutation("json-not-utf8")
def _(arc: Archive, m: Path) -> None:
    arc.entries[MODEL] = b"\xff\xfe" + arc.entries[MODEL]


for _site_name, _site in SYMPY_SITES.items():
    for _payload_name, _payload in SYMPY_PAYLOADS.items():
        mutation(f"sympy-{_site_name}-{_payload_name}")(_sympy_mutation(_site, _payload))
for _target in HOSTILE_TARGETS:
    mutation(f"target-{_target}")(_target_mutation(_target))
