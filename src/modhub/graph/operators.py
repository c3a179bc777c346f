"""The operator allow-list: every call a modhub graph may make.

A graph may call exactly the ATen operator overloads listed here (as
``torch.ops.aten.<name>.<overload>``) and the shape builtins of
:data:`modhub.graph.tables.SYM_OPERATORS`; anything else is refused with
:class:`~modhub.errors.UnsafeModuleError` naming the operator. The list is
what ``torch.export`` (torch 2.13, eval mode, *not* decomposed: the default
"training IR" that ``modhub.export`` writes) emits for the starter modules
and the common architectures (see ``tests/graph/archs.py``), plus the close
siblings of those operators (e.g. ``add.Scalar`` next to ``add.Tensor``) and
the decomposed forms of the normalisation and convolution layers.

Deliberately absent: anything that reads or writes files, raw storage or
other devices (``from_file``, ``set_``, ``as_strided``, ``_values``,
``to_dense``, sparse/quantized/nested internals), uninitialised memory
(``empty``, ``new_empty``), random numbers, ``out=`` overloads, and
collective/distributed calls.

To propose an operator: open an issue (or a pull request editing this file)
naming the operator and the model that needs it; ``python -m
modhub.graph.gen_docs`` regenerates the table in ``docs/security.md``.
"""

from __future__ import annotations

__all__ = ["ALLOWED_OPERATORS", "GROUPS", "is_allowed", "refusal", "render_markdown"]

# group title -> "name.overload" entries of torch.ops.aten.
GROUPS: dict[str, tuple[str, ...]] = {
    "convolution": (
        "conv1d.default", "conv2d.default", "conv3d.default", "convolution.default",
        "conv_transpose1d.default", "conv_transpose2d.input", "conv_transpose3d.input",
    ),
    "normalisation": (
        "batch_norm.default", "_native_batch_norm_legit_no_training.default",
        "layer_norm.default", "native_layer_norm.default", "group_norm.default",
        "instance_norm.default", "rms_norm.default",
    ),
    "pooling and resizing": (
        "max_pool1d.default", "max_pool2d.default", "max_pool3d.default",
        "avg_pool1d.default", "avg_pool2d.default", "avg_pool3d.default",
        "adaptive_avg_pool1d.default", "adaptive_avg_pool2d.default", "adaptive_avg_pool3d.default",
        "adaptive_max_pool1d.default", "adaptive_max_pool2d.default",
        "upsample_nearest1d.vec", "upsample_nearest2d.vec", "upsample_linear1d.vec",
        "upsample_bilinear2d.vec", "upsample_bicubic2d.vec",
        "pixel_shuffle.default", "pixel_unshuffle.default",
        "pad.default", "constant_pad_nd.default",
    ),
    "attention, linear algebra, recurrent layers": (
        "linear.default", "matmul.default", "mm.default", "bmm.default", "addmm.default",
        "baddbmm.default", "einsum.default", "scaled_dot_product_attention.default",
        "lstm.input", "gru.input", "rnn_tanh.input", "rnn_relu.input",
    ),
    "embeddings and dropout (identity in eval mode)": (
        "embedding.default", "embedding_bag.padding_idx",
        "dropout.default", "feature_dropout.default", "alpha_dropout.default",
        "feature_alpha_dropout.default",
    ),
    "activations": (
        "relu.default", "relu_.default", "relu6.default", "hardtanh.default", "hardtanh_.default",
        "gelu.default", "silu.default", "silu_.default", "hardswish.default", "hardswish_.default",
        "hardsigmoid.default", "hardsigmoid_.default", "leaky_relu.default", "leaky_relu_.default",
        "elu.default", "selu.default", "celu.default", "prelu.default", "mish.default",
        "softplus.default", "sigmoid.default", "tanh.default", "glu.default",
        "softmax.int", "log_softmax.int", "_softmax.default", "_log_softmax.default",
    ),
    "pointwise arithmetic": (
        "add.Tensor", "add.Scalar", "sub.Tensor", "sub.Scalar", "rsub.Tensor", "rsub.Scalar",
        "mul.Tensor", "mul.Scalar", "div.Tensor", "div.Scalar", "div.Tensor_mode", "div.Scalar_mode",
        "remainder.Tensor", "remainder.Scalar", "floor_divide.default", "floor_divide.Scalar",
        "pow.Tensor_Scalar", "pow.Tensor_Tensor", "pow.Scalar", "neg.default", "abs.default",
        "exp.default", "log.default", "log1p.default", "log2.default", "sqrt.default", "rsqrt.default",
        "reciprocal.default", "sin.default", "cos.default", "erf.default", "sign.default",
        "floor.default", "ceil.default", "round.default", "trunc.default",
        "clamp.default", "clamp.Tensor", "clamp_min.default", "clamp_max.default",
        "minimum.default", "maximum.default", "where.self", "where.ScalarSelf", "where.ScalarOther",
        "where.Scalar", "masked_fill.Scalar", "masked_fill.Tensor", "masked_fill_.Scalar",
        "masked_fill_.Tensor", "lerp.Scalar", "addcmul.default",
        "add_.Tensor", "add_.Scalar", "sub_.Tensor", "mul_.Tensor", "mul_.Scalar", "div_.Tensor",
        "div_.Scalar", "clamp_.default", "clamp_min_.default", "sigmoid_.default", "tanh_.default",
    ),
    "comparison and logic": (
        "eq.Tensor", "eq.Scalar", "ne.Tensor", "ne.Scalar", "lt.Tensor", "lt.Scalar",
        "le.Tensor", "le.Scalar", "gt.Tensor", "gt.Scalar", "ge.Tensor", "ge.Scalar",
        "logical_and.default", "logical_or.default", "logical_not.default", "logical_xor.default",
        "bitwise_and.Tensor", "bitwise_or.Tensor", "bitwise_not.default",
        "__and__.Tensor", "__or__.Tensor", "isnan.default", "isinf.default",
    ),
    "reductions": (
        "sum.default", "sum.dim_IntList", "mean.default", "mean.dim", "amax.default", "amin.default",
        "max.default", "max.dim", "min.default", "min.dim", "argmax.default", "argmin.default",
        "std.dim", "std.correction", "var.dim", "var.correction", "prod.default", "prod.dim_int",
        "linalg_vector_norm.default", "logsumexp.default", "cumsum.default", "any.dim", "all.dim",
        "topk.default", "sort.default",
    ),
    "shapes, views and copies": (
        "view.default", "reshape.default", "permute.default", "transpose.int", "t.default",
        "unsqueeze.default", "squeeze.default", "squeeze.dim", "squeeze.dims",
        "flatten.using_ints", "unflatten.int", "expand.default", "expand_as.default",
        "contiguous.default", "clone.default", "alias.default", "detach.default",
        "select.int", "slice.Tensor", "narrow.default", "chunk.default", "split.Tensor",
        "split_with_sizes.default", "unbind.int", "cat.default", "stack.default",
        "index_select.default", "gather.default", "index.Tensor", "repeat.default", "tile.default",
        "flip.default", "roll.default", "tril.default", "triu.default",
        "to.dtype", "to.dtype_layout", "to.device", "_to_copy.default", "type_as.default",
        "lift_fresh_copy.default", "_assert_tensor_metadata.default",
        "sym_size.int", "sym_numel.default",
    ),
    "tensor creation (initialised)": (
        "arange.default", "arange.start", "arange.start_step", "zeros.default", "ones.default",
        "full.default", "zeros_like.default", "ones_like.default", "full_like.default",
        "new_zeros.default", "new_ones.default", "new_full.default", "scalar_tensor.default",
    ),
}  # fmt: skip

ALLOWED_OPERATORS: frozenset[str] = frozenset(op for ops in GROUPS.values() for op in ops)

_PROPOSE = (
    "modhub loads only the operators on its allow-list (docs/security.md, 'Operators'). "
    "If your model needs this operator, propose adding it: open an issue naming the operator "
    "and the model (or edit src/modhub/graph/operators.py in a pull request)"
)


def is_allowed(op: str) -> bool:
    """``op`` is ``name.overload`` of ``torch.ops.aten``."""
    return op in ALLOWED_OPERATORS


def refusal(target: str) -> str:
    return f"calls {target[:160]!r}, which is not on the operator allow-list. {_PROPOSE}"


def render_markdown() -> str:
    """The allow-list as the Markdown that docs/security.md carries between its markers."""
    lines = [f"{len(ALLOWED_OPERATORS)} ATen operator overloads (`torch.ops.aten.<name>.<overload>`):", ""]
    for title, ops in GROUPS.items():
        lines.append(f"- **{title}**: " + ", ".join(f"`{op}`" for op in sorted(ops)))
    return "\n".join(lines) + "\n"
