"""model.onnx is exported at the newest opset onnxruntime runs the model at, else an older one."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from modhub.errors import ExportError
from modhub.exporting import onnx as onnx_export
from modhub.format.manifest import ONNX_DATA_NAME, ONNX_NAME
from tests.conftest import export_tiny_text
from tests.tiny_models import TinyTextEncoder


class _Attention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.proj = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s, _ = x.shape
        q = self.proj(x).view(b, s, 2, 4).transpose(1, 2)
        mask = torch.zeros(b, 1, s, s)
        return F.scaled_dot_product_attention(q, q, q, attn_mask=mask).mean(dim=(1, 2))


def _export(tmp_path: Path) -> Path:
    model = _Attention().eval()
    x = torch.rand(2, 5, 8)
    program = torch.export.export(model, (x,))
    dest = tmp_path / ONNX_NAME
    onnx_export.export_onnx(program, (x,), model(x).detach(), dest, ["x"], "y")
    return dest


def _graph(path: Path) -> onnx.ModelProto:
    return onnx.load(str(path), load_external_data=False)


def _opset(model: onnx.ModelProto) -> int:
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def test_attention_is_one_operator_at_the_newest_opset(tmp_path: Path) -> None:
    model = _graph(_export(tmp_path))
    assert _opset(model) == onnx_export.OPSETS[0]
    assert [n.op_type for n in model.graph.node].count("Attention") == 1
    assert "Softmax" not in {n.op_type for n in model.graph.node}


def test_a_model_onnxruntime_refuses_at_the_newest_opset_is_exported_at_an_older_one(
    tiny_text_encoder: TinyTextEncoder, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # nn.MultiheadAttention with a key padding mask: onnxruntime's Attention (opset 23)
    # refuses a mask that broadcasts over the query positions.
    root = export_tiny_text(tiny_text_encoder, tmp_path_factory, "tiny-text-opset", onnx=True)
    assert _opset(_graph(root / ONNX_NAME)) == onnx_export.OPSETS[-1] < onnx_export.OPSETS[0]


def test_no_opset_that_reproduces_the_model_is_an_error_that_leaves_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(onnx_export, "_max_diff", lambda *args: 0.5)
    with pytest.raises(ExportError) as info:
        _export(tmp_path)
    message = str(info.value)
    assert all(f"opset {opset}: " in message for opset in onnx_export.OPSETS)
    assert "max abs diff 0.5" in message and "onnx=False" in message
    assert not (tmp_path / ONNX_NAME).exists() and not (tmp_path / ONNX_DATA_NAME).exists()


class _PerHeadBiasAttention(nn.Module):
    """MPNet's attention block: a bias per head, the heads merged back with reshape."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.proj = nn.Linear(8, 8)
        self.relative = nn.Embedding(33, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s, h = x.shape
        q = self.proj(x.reshape(b * s, h)).view(b, s, 2, 4).transpose(1, 2)
        steps = torch.arange(s)
        distance = (steps[None, :] - steps[:, None]).clamp(-16, 16) + 16
        bias = self.relative(distance).permute(2, 0, 1).unsqueeze(0).expand(b, 2, s, s)
        context = F.scaled_dot_product_attention(q, q, q, attn_mask=bias)
        return self.proj(context.transpose(1, 2).reshape(b * s, h)).view(b, s, h)


def test_attention_with_a_bias_per_head_and_dynamic_shapes_exports(tmp_path: Path) -> None:
    # The exporter decomposes with the math attention kernel; with the CPU flash kernel's strides
    # the reshape after it was a view the decomposition refused (all-mpnet-base-v2 had no ONNX graph).
    model = _PerHeadBiasAttention().eval()
    x = torch.rand(2, 5, 8)
    dims = {"x": {0: torch.export.Dim("batch", max=64), 1: torch.export.Dim("sequence", max=64)}}
    program = torch.export.export(model, (x,), dynamic_shapes=dims)
    dest = tmp_path / ONNX_NAME
    onnx_export.export_onnx(program, (x,), model(x).detach(), dest, ["x"], "y")
    graph = _graph(dest)
    assert "Attention" in {n.op_type for n in graph.graph.node}
