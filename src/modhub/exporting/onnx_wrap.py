"""Wrap a plain ONNX file into a modhub module (framework "onnx", format "onnx" only).

``wrap_onnx(path, out_dir, task=..., license=...)`` reads the graph's inputs
and outputs as the module's default signature (names, dtypes, shapes: a
``dim_param`` becomes a named dimension, a dynamic dimension without a name
gets one), moves its weights (inline or as external data beside the file) into
the module's ``model.onnx.data``, adds a model card and lists every file. The
result is checked like any module (the ONNX operator allow-list, where external
data may point, the task contract) before it is returned, so ``modhub
publish`` refuses locally what the hub would refuse. Nothing runs the graph.

Needs the ``onnx`` package (``pip install 'modhub[onnx]'``); no torch.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from modhub.errors import ExportError, HubError, require
from modhub.exporting.labels import attach_labels, write_label_file
from modhub.exporting.onnx import required_onnxruntime
from modhub.format.atomic import atomic_directory
from modhub.format.manifest import (
    ASSETS_DIR,
    CARD_NAME,
    DIM_NAME_PATTERN,
    ONNX_NAME,
    SIGNATURE_NAME_PATTERN,
    TENSOR_NAME_PATTERN,
    Manifest,
    Metadata,
    Requires,
    Signature,
    TensorSpec,
    detect_formats,
    list_files,
    write_manifest,
)
from modhub.format.modelcard import render_card

__all__ = ["is_onnx_file", "wrap_onnx"]

# ONNX TensorProto.DataType -> the signature's dtype; any other type cannot be a module's input/output.
_DTYPES = {
    1: "float32",
    2: "uint8",
    3: "int8",
    5: "int16",
    6: "int32",
    7: "int64",
    8: "string",
    9: "bool",
    10: "float16",
    11: "float64",
    16: "bfloat16",
}
_TYPE_NAMES = {
    4: "uint16",
    12: "uint32",
    13: "uint64",
    14: "complex64",
    15: "complex128",
    17: "float8e4m3fn",
    18: "float8e4m3fnuz",
    19: "float8e5m2",
    20: "float8e5m2fnuz",
    21: "uint4",
    22: "int4",
}
# A dim_param that is an expression of other dimensions ("2*height", "s0 + 1").
_EXPRESSION = re.compile(r"[^A-Za-z0-9_]")


def is_onnx_file(path: Path) -> bool:
    """Whether ``path`` is an ONNX file to wrap (``*.onnx``)."""
    return path.suffix == ".onnx" and path.is_file()


# An extra signature of wrap_onnx: its ONNX file, or (file, name_meaning of its tensors).
ExtraOnnx = str | os.PathLike[str] | tuple[str | os.PathLike[str], Mapping[str, Mapping[str, Any]]]
# Where extra signatures keep their graph files (Signature.path), as hub.export writes them.
SIGNATURES_DIR = "signatures"


def wrap_onnx(
    path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    task: str,
    license: str,
    name_meaning: Mapping[str, Mapping[str, Any]] | None = None,
    labels: Sequence[str] | str | os.PathLike[str] | None = None,
    signatures: Mapping[str, ExtraOnnx] | None = None,
    title: str = "",
    metadata: Metadata | Mapping[str, Any] | None = None,
    card: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a module directory at ``out_dir`` holding the ONNX model at ``path``; return it (checked).

    ``name_meaning`` says what a tensor holds, by its (ONNX or module) name, e.g.
    ``{"image": {"kind": "image", "layout": "NHWC", "value_range": (0, 255)}}``;
    an output's ``labels`` may be a list of class names. ``labels``: the module's
    labels file (classification tasks; the class outputs, or a lone output, name
    it). ``signatures``: more named signatures, each an ONNX file of its own
    (``{"style_vector": "style.onnx"}``, or ``(file, name_meaning)``), written to
    ``signatures/<name>/``. Tensor names that are not identifiers (``input.1``)
    are renamed (``input_1``) in the module's graph.
    """
    from modhub.format.tasks import get_contract
    from modhub.format.verify import check_module

    require("onnx", "wrapping an ONNX file")
    source = Path(path)
    get_contract(task)
    target = Path(out_dir)
    if target.exists() and any(target.iterdir()) and not overwrite:
        raise ExportError(
            f"{target} already exists and is not empty; choose a new directory or pass overwrite=True",
            path=target,
        )
    meta = metadata if isinstance(metadata, Metadata) else Metadata(**dict(metadata or {}))
    if not meta.title:
        meta = meta.model_copy(update={"title": title or source.stem})
    if "onnx" not in meta.tags:
        meta = meta.model_copy(update={"tags": (*meta.tags, "onnx")})
    # Every file is read and its signature checked before anything is written.
    graphs = {"default": _Graph.read(source, name_meaning or {})}
    for sig_name, given in (signatures or {}).items():
        if sig_name == "default" or not re.match(SIGNATURE_NAME_PATTERN, sig_name):
            raise ExportError(
                f"signature name {sig_name!r} must be an identifier other than 'default' "
                "(the main ONNX file is the default signature)"
            )
        file, meaning = given if isinstance(given, tuple) else (given, {})
        graphs[sig_name] = _Graph.read(Path(file), meaning)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_directory(target) as staging:
            labels_path = None
            if labels is not None:
                labels_path = write_label_file(labels, staging, f"{ASSETS_DIR}/labels.txt")
            made: dict[str, Signature] = {}
            for sig_name, graph in graphs.items():
                folder = None if sig_name == "default" else f"{SIGNATURES_DIR}/{sig_name}"
                outputs = graph.write(staging / folder if folder else staging, staging)
                if sig_name == "default" and labels_path is not None:
                    outputs = attach_labels(outputs, labels_path)
                made[sig_name] = Signature(inputs=graph.inputs, outputs=outputs, path=folder)
            default = made["default"]
            manifest = Manifest.model_construct(
                task=task,
                framework="onnx",
                torch_version="",
                signatures=made,
                graph_inputs=default.inputs,
                graph_outputs=default.outputs,
                labels=labels_path,
                license=license,
                fine_tunable=False,
                metadata=meta,
                files=(),
                formats=(),
                requires=Requires(onnxruntime=required_onnxruntime(staging)),
            )
            (staging / CARD_NAME).write_text(render_card(manifest, card, meta.title), encoding="utf-8")
            files = list_files(staging)
            manifest = Manifest.model_validate(
                {
                    **manifest.model_dump(exclude_none=True),
                    "files": files,
                    "formats": detect_formats(f.path for f in files),
                }
            )
            write_manifest(staging, manifest)
            # Every check the hub runs at publish: the operator allow-list, where external data
            # points, the task contract. The graph is never run here.
            check_module(staging)
    except HubError:
        raise
    except Exception as exc:
        raise ExportError(f"wrapping {source} failed: {type(exc).__name__}: {exc}", path=source) from exc
    return target


class _Graph:
    """One ONNX file read (without its external data) and the signature read from it."""

    def __init__(self, source: Path, model: Any, meaning: Mapping[str, Mapping[str, Any]]) -> None:
        self.source = source
        self.model = model
        self.meaning = dict(meaning)
        self.inputs, self.outputs, self.renames = read_signature(model, meaning, path=source)

    @classmethod
    def read(cls, source: Path, meaning: Mapping[str, Mapping[str, Any]]) -> _Graph:
        import onnx

        if not source.is_file():
            raise ExportError(f"{source} is not a file; give the path of a .onnx model", path=source)
        try:
            model = onnx.load(str(source), load_external_data=False)
        except Exception as exc:  # protobuf's DecodeError and onnx's own
            raise ExportError(f"{source} is not an ONNX model: {exc}", path=source) from None
        _check_external_locations(model, source)
        return cls(source, model, meaning)

    def write(self, folder: Path, staging: Path) -> tuple[TensorSpec, ...]:
        """``folder/model.onnx`` (+ ``model.onnx.data``); the outputs, with label files written."""
        import onnx

        from modhub.exporting.onnx import write_external_weights

        # Weights kept as external data are read from beside the file, then written to the
        # module's own model.onnx.data (the one external file a module's graph may name).
        onnx.load_external_data_for_model(self.model, str(self.source.parent))
        _rename(self.model, self.renames)
        folder.mkdir(parents=True, exist_ok=True)
        dest = folder / ONNX_NAME
        dest.write_bytes(self.model.SerializeToString())
        write_external_weights(dest, (self.inputs, self.outputs))
        prefix = "" if folder == staging else f"{folder.name}_"
        return tuple(_output_labels(s, self.meaning, self.renames, staging, prefix) for s in self.outputs)


def read_signature(
    model: Any, name_meaning: Mapping[str, Mapping[str, Any]], *, path: Path | None = None
) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...], dict[str, str]]:
    """(inputs, outputs, renames) of an ONNX model's main graph, as a modhub signature.

    Graph inputs that are initializers (old exporters list weights as inputs) are not
    inputs. ``renames`` maps ONNX names that are not identifiers to the module's names.
    Raises ExportError for what a signature cannot express: a type other than a tensor
    of a listed dtype, an unknown rank, an input dimension that is an expression.
    """
    import onnx

    graph = model.graph
    if any(_unknown_rank(v) for v in graph.output):
        try:
            inferred = onnx.shape_inference.infer_shapes(model)
            graph = inferred.graph
        except Exception:  # shape inference is a best effort; the checks below say what is missing
            pass
    weights = {t.name for t in model.graph.initializer}
    dims: dict[str, str] = {}
    renames: dict[str, str] = {}
    taken: set[str] = set()
    specs = []
    for role, values in (
        ("input", [v for v in graph.input if v.name not in weights]),
        ("output", graph.output),
    ):
        made = []
        if not values:
            raise ExportError(f"the ONNX graph has no {role}s", path=path)
        for value in values:
            name = _module_name(value.name, taken)
            if name != value.name:
                renames[value.name] = name
            meaning = dict(name_meaning.get(value.name, name_meaning.get(name, {})))
            made.append(_tensor_spec(value, name, role, dims, meaning, path))
        specs.append(tuple(made))
    known = {*renames, *renames.values(), *(s.name for group in specs for s in group)}
    unknown = sorted(set(name_meaning) - known)
    if unknown:
        raise ExportError(
            f"name_meaning names {unknown}, which the graph does not have; it has {sorted(known)}"
        )
    return specs[0], specs[1], renames


def _unknown_rank(value: Any) -> bool:
    return not (value.type.HasField("tensor_type") and value.type.tensor_type.HasField("shape"))


def _module_name(name: str, taken: set[str]) -> str:
    """An identifier for an ONNX tensor name ("input.1" -> "input_1"), unique in the signature."""
    made = name if re.match(TENSOR_NAME_PATTERN, name) else re.sub(r"[^A-Za-z0-9_]", "_", name) or "tensor"
    if not re.match(r"^[A-Za-z_]", made):
        made = f"t_{made}"
    base, n = made, 1
    while made in taken:
        n += 1
        made = f"{base}_{n}"
    taken.add(made)
    return made


def _tensor_spec(
    value: Any, name: str, role: str, dims: dict[str, str], meaning: dict[str, Any], path: Path | None
) -> TensorSpec:
    from pydantic import ValidationError

    what = f"the ONNX {role} {value.name!r}"
    kind = value.type.WhichOneof("value")
    if kind != "tensor_type":
        raise ExportError(
            f"{what} is a {kind or 'value of unknown type'}, not a tensor; a module signature holds tensors "
            "only (re-export the model so that it takes and returns plain tensors)",
            path=path,
        )
    tensor = value.type.tensor_type
    dtype = _DTYPES.get(tensor.elem_type)
    if dtype is None:
        shown = _TYPE_NAMES.get(tensor.elem_type, f"element type {tensor.elem_type}")
        raise ExportError(
            f"{what} is {shown}, which a module signature cannot carry; use one of "
            f"{', '.join(sorted(set(_DTYPES.values())))} (add a Cast to the graph)",
            path=path,
        )
    if not tensor.HasField("shape"):
        raise ExportError(
            f"{what} has no shape (unknown rank), which a module signature cannot express; give it a "
            "shape when exporting (e.g. torch.onnx.export(..., dynamic_axes=...) or "
            "onnx.shape_inference.infer_shapes)",
            path=path,
        )
    shape: list[int | str] = []
    for axis, dim in enumerate(tensor.shape.dim):
        if dim.HasField("dim_value") and dim.dim_value > 0:
            shape.append(int(dim.dim_value))
        elif dim.HasField("dim_value") and dim.dim_value == 0 and not dim.dim_param:
            shape.append(0)
        elif dim.dim_param and not _EXPRESSION.search(dim.dim_param):
            shape.append(_dim_name(dim.dim_param, dims))
        elif dim.dim_param and role == "input":
            raise ExportError(
                f"{what} has dimension {axis} = {dim.dim_param!r}, an expression a module signature cannot "
                "express (its dimensions are fixed sizes or names); export the model with a plain name for "
                "that dimension",
                path=path,
            )
        else:
            # Dynamic without a name (or an output's size computed from others): a name of its own.
            shape.append(_dim_name(f"{name.lower()}_dim{axis}", dims))
    fields = {"description": f"ONNX {role} {value.name}", **meaning}
    if isinstance(fields.get("labels"), (list, tuple)):
        fields.pop("labels")  # written as a file once the module directory exists
    try:
        return TensorSpec(name=name, dtype=dtype, shape=tuple(shape), **fields)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ExportError(f"name_meaning for {value.name!r} is not valid: {problems}", path=path) from None


def _dim_name(param: str, dims: dict[str, str]) -> str:
    """The module's name for an ONNX dim_param: lowercase, [a-z0-9_], the same for the same param."""
    if param in dims:
        return dims[param]
    made = re.sub(r"[^a-z0-9_]", "_", param.lower())
    if not re.match(DIM_NAME_PATTERN, made):
        made = f"d_{made}"
    base, n = made, 1
    while made in dims.values():
        n += 1
        made = f"{base}_{n}"
    dims[param] = made
    return made


def _check_external_locations(model: Any, source: Path) -> None:
    """External data must be plain files beside (or below) the model file, never outside its folder."""
    from onnx.external_data_helper import _get_all_tensors

    folder = source.parent.resolve()
    for tensor in _get_all_tensors(model):
        if tensor.data_location != 1:  # EXTERNAL
            continue
        info = {entry.key: entry.value for entry in tensor.external_data}
        location = info.get("location", "")
        pure = PurePosixPath(location)
        where = (folder / location).resolve() if location else folder
        if (
            not location
            or pure.is_absolute()
            or "\\" in location
            or ".." in pure.parts
            or not where.is_relative_to(folder)
        ):
            raise ExportError(
                f"{source}: tensor {tensor.name!r} keeps its data at {location!r}; external data must be a "
                "file beside the model (a relative name without '..')",
                path=source,
            )
        if not where.is_file():
            raise ExportError(
                f"{source}: tensor {tensor.name!r} keeps its data in {location!r}, which is not beside the "
                f"model in {folder}; copy the model together with its data file(s)",
                path=source,
            )


def _rename(model: Any, renames: Mapping[str, str]) -> None:
    """Give graph inputs/outputs the module's names, through Identity nodes (the graph's own
    names, which subgraphs may refer to, stay as they are)."""
    import onnx

    if not renames:
        return
    graph = model.graph
    nodes = []
    for value in graph.input:
        if value.name in renames:
            old, new = value.name, renames[value.name]
            value.name = new
            nodes.append(onnx.helper.make_node("Identity", [new], [old], name=f"modhub_input_{new}"))
    for value in graph.output:
        if value.name in renames:
            old, new = value.name, renames[value.name]
            value.name = new
            graph.node.append(onnx.helper.make_node("Identity", [old], [new], name=f"modhub_output_{new}"))
    for index, node in enumerate(nodes):
        graph.node.insert(index, node)


def _output_labels(
    spec: TensorSpec,
    wanted: Mapping[str, Mapping[str, Any]],
    renames: Mapping[str, str],
    staging: Path,
    prefix: str = "",
) -> TensorSpec:
    """An output whose meaning gave its class names as a list: written to assets/, the spec names the file."""
    original = next((old for old, new in renames.items() if new == spec.name), spec.name)
    given = dict(wanted.get(original, wanted.get(spec.name, {}))).get("labels")
    if not isinstance(given, (list, tuple)):
        return spec
    rel = write_label_file(given, staging, f"{ASSETS_DIR}/{prefix}{spec.name}_labels.txt")
    return spec.model_copy(update={"labels": rel})
