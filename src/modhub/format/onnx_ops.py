"""The ONNX operator allow-list: every (domain, op type, opset range) a ``model.onnx`` may use.

One table, data only, plus its lookup. A node of any other operator (another
domain, an op not listed, an opset outside the range) is refused by
:mod:`modhub.format.onnx_graph` before onnxruntime sees the graph, on the
client at every load and on the hub at publish. Where the entries come from:

* ``exporter``: what modhub's exporter (``torch.onnx.export``, dynamo, opsets
  23 and 18) writes for the starter modules and the architectures of
  ``tests/graph/archs.py``;
* ``converted``: what the zoo's conversions of TensorFlow models (tf2onnx:
  detection, pose, segmentation, style transfer, audio) need beyond that;
* ``standard``: standard ops of the same families those architectures use;
* ``optimiser``: what onnxruntime's optimiser writes into this machine's
  optimised copies (``modhub.runtimes.onnx_optimised``), allowed only there:
  a module that ships ``com.microsoft`` ops is refused.

The opset range applies to the version the model imports for the op's domain
(``opset_import``). ``python -m modhub.format.onnx_ops`` prints the table as
docs/security.md shows it; to propose an op, see that page's "ONNX operators".
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ALLOWED_ONNX_OPS", "OnnxOp", "allowed_op", "render_markdown"]

# The default domain: "" and "ai.onnx" name the same opset.
ONNX_DOMAIN = "ai.onnx"
# Opsets of the default domain that modhub accepts (tf2onnx writes 13-18, modhub's exporter 18 and 23).
ONNX_OPSETS = (13, 25)
# onnxruntime's contrib domains (version 1), for optimised copies only.
MS_DOMAIN, NCHWC_DOMAIN = "com.microsoft", "com.microsoft.nchwc"


@dataclass(frozen=True)
class OnnxOp:
    """One allowed operator."""

    domain: str
    op_type: str
    # Inclusive range of the domain's imported opset version.
    opsets: tuple[int, int]
    # Where it is needed: exporter | converted | standard | optimiser (see the module docstring).
    source: str
    # A group heading for the docs.
    group: str

    @property
    def optimised_only(self) -> bool:
        return self.source == "optimiser"


# (group, source, domain, opsets, op types); ai.onnx ops whose first version is newer than the
# range's start simply do not exist below it (onnxruntime refuses such a model itself).
_TABLE: tuple[tuple[str, str, str, tuple[int, int], str], ...] = (
    ("convolution and pooling", "exporter", ONNX_DOMAIN, ONNX_OPSETS,
     "Conv ConvTranspose AveragePool MaxPool GlobalAveragePool GlobalMaxPool"),
    ("normalisation", "exporter", ONNX_DOMAIN, ONNX_OPSETS,
     "BatchNormalization InstanceNormalization LayerNormalization GroupNormalization RMSNormalization "
     "LpNormalization"),
    ("normalisation", "standard", ONNX_DOMAIN, ONNX_OPSETS, "LRN MeanVarianceNormalization"),
    ("linear algebra and attention", "exporter", ONNX_DOMAIN, ONNX_OPSETS,
     "MatMul Gemm Einsum Attention"),
    ("recurrent layers", "exporter", ONNX_DOMAIN, ONNX_OPSETS, "LSTM GRU RNN"),
    ("activations", "exporter", ONNX_DOMAIN, ONNX_OPSETS,
     "Relu LeakyRelu PRelu Elu Selu Celu Gelu Sigmoid HardSigmoid HardSwish Mish Softplus Softsign "
     "Tanh Softmax LogSoftmax Clip"),
    ("activations", "standard", ONNX_DOMAIN, ONNX_OPSETS, "ThresholdedRelu Shrink Hardmax"),
    ("pointwise arithmetic", "exporter", ONNX_DOMAIN, ONNX_OPSETS,
     "Add Sub Mul Div Pow Mod Neg Abs Sign Reciprocal Sqrt Exp Log Erf Floor Ceil Round Min Max Sum "
     "Mean Sin Cos Tan Asin Acos Atan Sinh Cosh Asinh Acosh Atanh IsNaN IsInf Where Identity Dropout "
     "Cast CastLike"),
    ("comparison and logic", "exporter", ONNX_DOMAIN, ONNX_OPSETS,
     "Equal Greater GreaterOrEqual Less LessOrEqual And Or Xor Not BitwiseAnd BitwiseOr BitwiseXor "
     "BitwiseNot BitShift"),
    ("reductions, sorting, selection", "exporter", ONNX_DOMAIN, ONNX_OPSETS,
     "ReduceSum ReduceMean ReduceMax ReduceMin ReduceProd ReduceL1 ReduceL2 ReduceLogSum "
     "ReduceLogSumExp ReduceSumSquare ArgMax ArgMin TopK CumSum NonZero"),
    ("shapes, views and copies", "exporter", ONNX_DOMAIN, ONNX_OPSETS,
     "Shape Size Reshape Flatten Squeeze Unsqueeze Transpose Concat Split Slice Gather GatherElements "
     "GatherND ScatterElements ScatterND Expand Tile Pad Resize DepthToSpace SpaceToDepth Trilu "
     "Constant ConstantOfShape Range OneHot EyeLike Compress ReverseSequence"),
    ("detection and control flow (bodies checked, nesting bounded)", "converted", ONNX_DOMAIN, ONNX_OPSETS,
     "NonMaxSuppression If Loop Scan"),
    ("audio", "converted", ONNX_DOMAIN, ONNX_OPSETS,
     "DFT STFT MelWeightMatrix HannWindow HammingWindow BlackmanWindow"),
    ("quantised variants (int8)", "exporter", ONNX_DOMAIN, ONNX_OPSETS,
     "QuantizeLinear DequantizeLinear DynamicQuantizeLinear MatMulInteger ConvInteger QLinearConv "
     "QLinearMatMul"),
    ("onnxruntime's optimised copies", "optimiser", MS_DOMAIN, (1, 1),
     "FusedConv FusedGemm FusedMatMul Gelu FastGelu QuickGelu BiasGelu SkipLayerNormalization "
     "SkipSimplifiedLayerNormalization EmbedLayerNormalization Attention MultiHeadAttention "
     "NhwcMaxPool MatMulIntegerToFloat DynamicQuantizeMatMul QLinearAdd QLinearMul QLinearSigmoid "
     "QLinearLeakyRelu QLinearConcat QLinearGlobalAveragePool QLinearAveragePool QLinearConv QGemm "
     "QLinearSoftmax QLinearReduceMean QLinearWhere"),
    ("onnxruntime's optimised copies", "optimiser", NCHWC_DOMAIN, (1, 1),
     "Conv MaxPool AveragePool GlobalMaxPool GlobalAveragePool ReorderInput ReorderOutput Upsample"),
    # onnxruntime registers this contrib op in the default domain.
    ("onnxruntime's optimised copies", "optimiser", ONNX_DOMAIN, ONNX_OPSETS,
     "SimplifiedLayerNormalization"),
)  # fmt: skip


def _build() -> dict[tuple[str, str], tuple[OnnxOp, ...]]:
    table: dict[tuple[str, str], list[OnnxOp]] = {}
    for group, source, domain, opsets, names in _TABLE:
        for name in names.split():
            table.setdefault((domain, name), []).append(OnnxOp(domain, name, opsets, source, group))
    return {key: tuple(ops) for key, ops in table.items()}


# (domain, op type) -> its entries (one per opset range).
ALLOWED_ONNX_OPS: dict[tuple[str, str], tuple[OnnxOp, ...]] = _build()


def canonical_domain(domain: str) -> str:
    return ONNX_DOMAIN if domain in ("", ONNX_DOMAIN) else domain


def allowed_op(domain: str, op_type: str, opset: int | None, *, optimised: bool = False) -> OnnxOp | None:
    """The entry that allows ``op_type`` of ``domain`` at the model's ``opset`` for that domain, or None.

    ``optimised``: the graph is one of this machine's optimised copies (onnxruntime's own ops allowed).
    """
    for op in ALLOWED_ONNX_OPS.get((canonical_domain(domain), op_type), ()):
        if opset is None or not op.opsets[0] <= opset <= op.opsets[1]:
            continue
        if op.optimised_only and not optimised:
            continue
        return op
    return None


def render_markdown() -> str:
    """The table as docs/security.md lists it (between its onnx-operators markers)."""
    lines = []
    groups: dict[tuple[str, str, tuple[int, int]], list[str]] = {}
    for group, _source, domain, opsets, text in _TABLE:
        groups.setdefault((group, domain, opsets), []).extend(text.split())
    total = sum(len(v) for v in ALLOWED_ONNX_OPS.values())
    lines.append(f"{total} (domain, operator) entries:")
    lines.append("")
    for (group, domain, opsets), names in groups.items():
        versions = f"opset {opsets[0]}" if opsets[0] == opsets[1] else f"opsets {opsets[0]}-{opsets[1]}"
        shown = ", ".join(f"`{n}`" for n in sorted(set(names)))
        lines.append(f"- **{group}** (`{domain}`, {versions}): {shown}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(render_markdown())
