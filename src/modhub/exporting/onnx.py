"""Optional ``model.onnx``: a portable inference graph generated from the same program.

The helpers that only rewrite an ONNX file (``write_external_weights``, ``set_names``,
``name_dims``, ``required_onnxruntime``) need no torch: ``hub.wrap_onnx`` uses them too, so
torch is imported only where a program is exported.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from modhub.errors import ExportError
from modhub.format.manifest import ONNX_DATA_NAME, TensorSpec, version_tuple

if TYPE_CHECKING:
    import torch

ONNX_ATOL = 1e-4
# Tried in this order; the first that onnxruntime runs and that reproduces the torch graph
# is kept. 23: attention exports as ONNX's Attention operator (one onnxruntime kernel) and
# GELU as Gelu, where 18 spells both out in elementwise operators (MiniLM about 10% faster).
# onnxruntime 1.32 (what loading needs anyway) runs both, but its Attention refuses a mask
# that broadcasts over the query positions (nn.MultiheadAttention's key_padding_mask), so
# such a model is exported at 18.
OPSETS = (23, 18)
# The oldest onnxruntime that runs a model.onnx of each opset modhub writes (with the IR version
# torch.onnx writes, 10): what hub.export records as requires.onnxruntime, so an older
# onnxruntime says what to upgrade instead of failing inside the session. Measured with
# onnxruntime 1.20.1, 1.22.1, 1.23.2 and 1.32.0: opset 18 runs on 1.20.1; opset 23 (MiniLM with
# Attention and Gelu, a CNN, an LSTM) runs on 1.23.2 (max diff 2e-7 to 1.32) and 1.22.1 refuses it.
ONNXRUNTIME_FOR_OPSET = {18: "1.20", 23: "1.23"}
# Initializers of at least this many bytes go to model.onnx.data; smaller ones (shapes,
# axes: onnxruntime reads them while it loads the graph) stay inside model.onnx.
EXTERNAL_MIN_BYTES = 256
# Offsets in model.onnx.data: every tensor on a 64-byte boundary, tensors of 64 KiB and
# more on a page, so each is an aligned view of the buffer the file is read into.
_ALIGN, _PAGE, _PAGE_MIN_BYTES = 64, 4096, 64 << 10


def export_onnx(
    program: Any,
    args: tuple[torch.Tensor, ...],
    expected: torch.Tensor | tuple[torch.Tensor, ...],
    dest: Path,
    input_names: list[str],
    output_name: str | Sequence[str],
    *,
    specs: tuple[Sequence[TensorSpec], Sequence[TensorSpec]] | None = None,
) -> None:
    """Write ``dest`` from an ExportedProgram at the first of OPSETS that onnxruntime runs and
    that reproduces ``expected`` (one tensor, or one per output) within ONNX_ATOL; ExportError
    (and no file left) if none does. ``specs`` (the graph's input and output TensorSpecs) name
    the ONNX graph's dynamic dimensions as the manifest does ("batch", "height", ...)."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise ExportError("onnx=True needs the onnx extra: pip install 'modhub[onnx]'") from exc
    output_names = [output_name] if isinstance(output_name, str) else list(output_name)
    import torch

    wanted = (expected,) if isinstance(expected, torch.Tensor) else tuple(expected)
    problems = []
    for opset in OPSETS:
        try:
            _export_at(program, args, dest, input_names, output_names, opset, specs)
            diff = _max_diff(onnxruntime, dest, args, wanted)
        except ExportError as exc:
            problems.append(f"opset {opset}: {exc}")
            continue
        if diff <= ONNX_ATOL:
            return
        problems.append(
            f"opset {opset}: model.onnx differs from the torch graph (max abs diff {diff:.3g} > {ONNX_ATOL})"
        )
    dest.unlink(missing_ok=True)
    dest.with_name(ONNX_DATA_NAME).unlink(missing_ok=True)
    raise ExportError("ONNX export failed; export with onnx=False. " + "; ".join(problems))


def _export_at(
    program: Any,
    args: tuple[torch.Tensor, ...],
    dest: Path,
    input_names: list[str],
    output_names: list[str],
    opset: int,
    specs: tuple[Sequence[TensorSpec], Sequence[TensorSpec]] | None = None,
) -> None:
    try:
        # The exporter prints progress and emits deprecation warnings from its dependencies.
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            logging.getLogger("torch.onnx").setLevel(logging.ERROR)
            import torch
            from torch.nn.attention import SDPBackend, sdpa_kernel

            # Names are given afterwards (set_names): the exporter's own output_names= can clash with
            # the name of a value inside the graph ("Duplicate definition of name").
            # The math attention kernel while the exporter decomposes the program: the CPU flash
            # kernel's output strides (which the program's shapes were traced with) make a later
            # reshape a view the decomposed math attention cannot take (all-mpnet-base-v2's
            # per-head position bias). scaled_dot_product_attention itself still becomes
            # ONNX's Attention; the kernel choice changes no value.
            with sdpa_kernel(SDPBackend.MATH):
                onnx_program = torch.onnx.export(
                    program, args, dynamo=True, opset_version=opset, verbose=False
                )
            if onnx_program is None:
                raise ExportError("torch.onnx.export returned no program")
            onnx_program.save(str(dest))
        write_external_weights(dest, specs, (input_names, output_names))
    except ExportError:
        raise
    except Exception as exc:
        raise ExportError(f"{type(exc).__name__}: {exc}") from exc


def _max_diff(
    onnxruntime: Any, dest: Path, args: tuple[torch.Tensor, ...], expected: tuple[torch.Tensor, ...]
) -> float:
    """How far onnxruntime's outputs on ``args`` are from ``expected`` (ExportError if it cannot run it)."""
    try:
        session = onnxruntime.InferenceSession(str(dest), providers=["CPUExecutionProvider"])
        feeds = {inp.name: arg.numpy() for inp, arg in zip(session.get_inputs(), args, strict=True)}
        got = session.run(None, feeds)
    except Exception as exc:  # onnxruntime raises its own exception types for every failure
        raise ExportError(f"onnxruntime cannot run it: {str(exc)[:300]}") from exc
    worst = 0.0
    for value, want in zip(got, expected, strict=True):
        reference = want.numpy()
        if value.shape != reference.shape or value.dtype != reference.dtype:
            raise ExportError(
                f"onnxruntime returns {value.dtype}{list(value.shape)} where the torch graph returns "
                f"{reference.dtype}{list(reference.shape)}"
            )
        if value.size:
            worst = max(worst, float(np.abs(value.astype(np.float64) - reference.astype(np.float64)).max()))
    return worst


def write_external_weights(
    dest: Path,
    specs: tuple[Sequence[TensorSpec], Sequence[TensorSpec]] | None = None,
    names: tuple[Sequence[str], Sequence[str]] | None = None,
) -> None:
    """Move the weights of the ONNX model at ``dest`` into ``model.onnx.data`` beside it.

    The main graph's initializers of at least EXTERNAL_MIN_BYTES bytes are
    written to the data file at aligned offsets and referred to from the graph
    as ONNX external data (location ``model.onnx.data``); the loader reads and
    hashes that file once and hands onnxruntime views of it (no copy).
    """
    import onnx

    model = onnx.load(str(dest))
    data = bytearray()
    for tensor in model.graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL or not tensor.HasField("raw_data"):
            continue
        raw = tensor.raw_data
        if len(raw) < EXTERNAL_MIN_BYTES:
            continue
        align = _PAGE if len(raw) >= _PAGE_MIN_BYTES else _ALIGN
        data += bytes(-len(data) % align)
        offset = len(data)
        data += raw
        tensor.ClearField("raw_data")
        tensor.data_location = onnx.TensorProto.EXTERNAL
        del tensor.external_data[:]
        for key, value in (("location", ONNX_DATA_NAME), ("offset", str(offset)), ("length", str(len(raw)))):
            tensor.external_data.add(key=key, value=value)
    if names is not None:
        set_names(model.graph, *names)
    if specs is not None:
        name_dims(model, *specs)
    dest.with_name(ONNX_DATA_NAME).write_bytes(bytes(data))
    dest.write_bytes(model.SerializeToString())


def set_names(graph: Any, inputs: Sequence[str], outputs: Sequence[str]) -> None:
    """Rename the graph's inputs and outputs, in order, to ``inputs`` and ``outputs``; a value
    inside the graph that already has one of those names is renamed out of the way."""
    if len(graph.input) != len(inputs) or len(graph.output) != len(outputs):
        raise ExportError(
            f"the ONNX graph has {len(graph.input)} inputs and {len(graph.output)} outputs, "
            f"the module {len(inputs)} and {len(outputs)}"
        )
    mapping = {v.name: new for v, new in zip((*graph.input, *graph.output), (*inputs, *outputs), strict=True)}
    used = _value_names(graph)
    taken = used | set(mapping.values())
    for new in list(mapping.values()):
        if new in used and new not in mapping:
            fresh, n = f"{new}_inner", 1
            while fresh in taken:
                n += 1
                fresh = f"{new}_inner{n}"
            taken.add(fresh)
            mapping[new] = fresh
    _rename_values(graph, {old: new for old, new in mapping.items() if old != new})


def _value_names(graph: Any) -> set[str]:
    names = {v.name for v in (*graph.input, *graph.output, *graph.value_info, *graph.initializer)}
    for node in graph.node:
        names.update(node.input)
        names.update(node.output)
        for attr in node.attribute:
            for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                names |= _value_names(sub)
    return names


def _rename_values(graph: Any, mapping: dict[str, str]) -> None:
    """Rename values everywhere in ``graph`` and its subgraphs (which may use the outer names)."""
    if not mapping:
        return
    for value in (*graph.input, *graph.output, *graph.value_info, *graph.initializer):
        value.name = mapping.get(value.name, value.name)
    for sparse in graph.sparse_initializer:
        sparse.values.name = mapping.get(sparse.values.name, sparse.values.name)
    for node in graph.node:
        node.input[:] = [mapping.get(n, n) for n in node.input]
        node.output[:] = [mapping.get(n, n) for n in node.output]
        for attr in node.attribute:
            for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                _rename_values(sub, mapping)


def name_dims(model: Any, inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec]) -> None:
    """Give the graph's inputs and outputs the manifest's dimension names (the exporter writes
    its own symbols, "s0", "2*s1"): what tools such as Netron or onnxruntime's errors show."""
    by_name = {spec.name: spec for spec in (*inputs, *outputs)}
    for value in (*model.graph.input, *model.graph.output):
        spec = by_name.get(value.name)
        if spec is None or not value.type.HasField("tensor_type"):
            continue
        dims = value.type.tensor_type.shape.dim
        if len(dims) != len(spec.shape):
            continue
        for dim, size in zip(dims, spec.shape, strict=True):
            if isinstance(size, str):
                dim.dim_param = size


def required_onnxruntime(module_dir: Path) -> str | None:
    """The oldest onnxruntime that runs every ``model.onnx`` under ``module_dir`` (ONNXRUNTIME_FOR_OPSET
    of its opset; an opset not in the table needs what the newest one does), or None without one."""
    needs: list[str] = []
    for path in sorted(module_dir.rglob("model.onnx")):
        import onnx

        model = onnx.load(str(path), load_external_data=False)
        opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
        known = [v for k, v in sorted(ONNXRUNTIME_FOR_OPSET.items()) if k >= opset]
        needs.append(known[0] if known else max(ONNXRUNTIME_FOR_OPSET.values(), key=version_tuple))
    return max(needs, key=version_tuple) if needs else None
