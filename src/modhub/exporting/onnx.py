"""Optional ``model.onnx``: a portable inference graph generated from the same program."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from modhub.errors import ExportError
from modhub.format.manifest import ONNX_DATA_NAME

ONNX_ATOL = 1e-4
# Tried in this order; the first that onnxruntime runs and that reproduces the torch graph
# is kept. 23: attention exports as ONNX's Attention operator (one onnxruntime kernel) and
# GELU as Gelu, where 18 spells both out in elementwise operators (MiniLM about 10% faster).
# onnxruntime 1.32 (what loading needs anyway) runs both, but its Attention refuses a mask
# that broadcasts over the query positions (nn.MultiheadAttention's key_padding_mask), so
# such a model is exported at 18.
OPSETS = (23, 18)
# Initializers of at least this many bytes go to model.onnx.data; smaller ones (shapes,
# axes: onnxruntime reads them while it loads the graph) stay inside model.onnx.
EXTERNAL_MIN_BYTES = 256
# Offsets in model.onnx.data: every tensor on a 64-byte boundary, tensors of 64 KiB and
# more on a page, so each is an aligned view of the buffer the file is read into.
_ALIGN, _PAGE, _PAGE_MIN_BYTES = 64, 4096, 64 << 10


def export_onnx(
    program: Any,
    args: tuple[torch.Tensor, ...],
    expected: torch.Tensor,
    dest: Path,
    input_names: list[str],
    output_name: str,
) -> None:
    """Write ``dest`` from an ExportedProgram at the first of OPSETS that onnxruntime runs and
    that reproduces ``expected`` within ONNX_ATOL; ExportError (and no file left) if none does."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise ExportError("onnx=True needs the onnx extra: pip install 'modhub[onnx]'") from exc
    problems = []
    for opset in OPSETS:
        try:
            _export_at(program, args, dest, input_names, output_name, opset)
            diff = _max_diff(onnxruntime, dest, args, expected)
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
    output_name: str,
    opset: int,
) -> None:
    try:
        # The exporter prints progress and emits deprecation warnings from its dependencies.
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            logging.getLogger("torch.onnx").setLevel(logging.ERROR)
            onnx_program = torch.onnx.export(
                program,
                args,
                input_names=input_names,
                output_names=[output_name],
                dynamo=True,
                opset_version=opset,
                verbose=False,
            )
            if onnx_program is None:
                raise ExportError("torch.onnx.export returned no program")
            onnx_program.save(str(dest))
        write_external_weights(dest)
    except ExportError:
        raise
    except Exception as exc:
        raise ExportError(f"{type(exc).__name__}: {exc}") from exc


def _max_diff(onnxruntime: Any, dest: Path, args: tuple[torch.Tensor, ...], expected: torch.Tensor) -> float:
    """How far onnxruntime's output on ``args`` is from ``expected`` (ExportError if it cannot run it)."""
    try:
        session = onnxruntime.InferenceSession(str(dest), providers=["CPUExecutionProvider"])
        feeds = {inp.name: arg.numpy() for inp, arg in zip(session.get_inputs(), args, strict=True)}
        got = session.run(None, feeds)[0]
    except Exception as exc:  # onnxruntime raises its own exception types for every failure
        raise ExportError(f"onnxruntime cannot run it: {str(exc)[:300]}") from exc
    return float(np.abs(got - expected.numpy()).max())


def write_external_weights(dest: Path) -> None:
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
    dest.with_name(ONNX_DATA_NAME).write_bytes(bytes(data))
    dest.write_bytes(model.SerializeToString())
