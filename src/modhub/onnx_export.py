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

ONNX_ATOL = 1e-4
OPSET = 18


def export_onnx(
    program: Any,
    args: tuple[torch.Tensor, ...],
    expected: torch.Tensor,
    dest: Path,
    input_names: list[str],
    output_name: str,
) -> None:
    """Write ``dest`` from an ExportedProgram and check onnxruntime reproduces ``expected``."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise ExportError("onnx=True needs the onnx extra: pip install 'modhub[onnx]'") from exc
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
                opset_version=OPSET,
                verbose=False,
            )
            if onnx_program is None:
                raise ExportError("torch.onnx.export returned no program")
            onnx_program.save(str(dest))
    except Exception as exc:
        raise ExportError(
            f"ONNX export failed ({type(exc).__name__}: {exc}); export with onnx=False"
        ) from exc
    session = onnxruntime.InferenceSession(str(dest), providers=["CPUExecutionProvider"])
    feeds = {inp.name: arg.numpy() for inp, arg in zip(session.get_inputs(), args, strict=True)}
    got = session.run(None, feeds)[0]
    diff = float(np.abs(got - expected.numpy()).max())
    if diff > ONNX_ATOL:
        dest.unlink()
        raise ExportError(f"model.onnx differs from the torch graph (max abs diff {diff:.3g} > {ONNX_ATOL})")
