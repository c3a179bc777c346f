"""The operator allow-list covers what torch.export emits for the common architectures.

Each tiny architecture of ``archs.py`` is exported as ``modhub.export`` does
(eval mode, dynamic batch), checked and built by ``modhub.graph`` from the
bytes of the archive, and must match eager output at two batch sizes.
"""

from __future__ import annotations

import io
import json
import warnings
import zipfile
from pathlib import Path

import pytest
import torch

from modhub.errors import UnsafeModuleError
from modhub.graph import build_graph_module, check_graph
from modhub.graph.operators import ALLOWED_OPERATORS, GROUPS, render_markdown
from modhub.graph.program import aten_operator
from tests.graph.archs import ARCHITECTURES

DOCS = Path(__file__).resolve().parents[2] / "docs" / "security.md"


def export_bytes(model: torch.nn.Module, args: tuple, dynamic: tuple) -> bytes:
    with warnings.catch_warnings():
        # nn.LSTM/GRU keep _flat_weights as plain attributes; export warns and handles them.
        warnings.filterwarnings("ignore", message="The tensor attributes", category=UserWarning)
        program = torch.export.export(model.eval(), args, dynamic_shapes=dynamic, strict=False)
    program._example_inputs = None
    buf = io.BytesIO()
    torch.export.save(program, buf)
    return buf.getvalue()


@pytest.fixture(scope="module")
def exported() -> dict[str, tuple[torch.nn.Module, bytes]]:
    out = {}
    for name, (factory, make_args, dynamic) in ARCHITECTURES.items():
        torch.manual_seed(0)
        model = factory().eval()
        out[name] = (model, export_bytes(model, make_args(), dynamic))
    return out


def test_at_least_fifteen_architectures() -> None:
    assert len(ARCHITECTURES) >= 15


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_architecture_loads_and_matches_eager(
    exported: dict[str, tuple[torch.nn.Module, bytes]], name: str
) -> None:
    model, data = exported[name]
    graph = build_graph_module(data)
    make_args = ARCHITECTURES[name][1]
    torch.manual_seed(1)
    for batch in (1, 3):
        args = tuple(a.repeat(batch, *([1] * (a.dim() - 1)))[:batch] if a.dim() else a for a in make_args())
        with torch.no_grad():
            expected = model(*args)
            got = graph(*args)
        assert got.shape == expected.shape
        assert torch.allclose(got, expected, atol=1e-5, rtol=0), (got - expected).abs().max()


def _swap_first_op(data: bytes, new_target: str) -> bytes:
    """Rewrite one operator node of an archive, keeping everything else byte-for-byte."""
    src = zipfile.ZipFile(io.BytesIO(data))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as dst:
        for info in src.infolist():
            payload = src.read(info)
            if info.filename.endswith("models/model.json"):
                doc = json.loads(payload)
                node = next(n for n in doc["graph_module"]["graph"]["nodes"] if "relu" in n["target"])
                node["target"] = new_target
                payload = json.dumps(doc).encode()
            dst.writestr(info, payload)
    return buf.getvalue()


@pytest.mark.parametrize(
    "op", ["to_dense.default", "_values.default", "as_strided.default", "empty.memory_format"]
)
def test_an_operator_outside_the_list_is_refused_with_a_way_forward(
    exported: dict[str, tuple[torch.nn.Module, bytes]], op: str
) -> None:
    _, data = exported["vgg"]
    hostile = _swap_first_op(data, f"torch.ops.aten.{op}")
    with pytest.raises(UnsafeModuleError) as info:
        build_graph_module(hostile)
    message = str(info.value)
    assert f"torch.ops.aten.{op}" in message
    assert "allow-list" in message
    assert "propose adding it" in message
    check_graph(data)  # the unswapped archive passes


def test_every_allowed_operator_exists_and_no_out_variant() -> None:
    for name in ALLOWED_OPERATORS:
        overload = aten_operator(name)
        assert isinstance(overload, torch._ops.OpOverload), name
        overload_name = name.split(".")[1]
        assert overload_name != "out" and not overload_name.endswith("_out"), name
    assert sum(len(ops) for ops in GROUPS.values()) == len(ALLOWED_OPERATORS), "an operator is listed twice"


def test_the_list_in_docs_is_the_generated_one() -> None:
    text = DOCS.read_text(encoding="utf-8")
    assert render_markdown() in text, "run: python -m modhub.graph.gen_docs docs/security.md"
