"""ONNX graph surgery for the vision starters: TF Hub's signatures around converted graphs.

Each function takes the ONNX graphs as converted (tf2onnx, or shipped by a package) and returns
the graph of one signature, with modhub's input and output names:

- MoveNet and the selfie segmenter: only renamed (``images`` -> ``keypoints`` / ``mask``).
- CenterNet: ``images`` uint8 -> the network (float pixels) -> its top-100 candidates
  ``[x1, y1, x2, y2, score, class]`` in input pixels -> TF Hub's detection outputs: boxes
  ``[ymin, xmin, ymax, xmax]`` as fractions of the image, scores, class indices (into the label
  file) and their count, after per-class non-maximum suppression (IoU 0.5) as the TF.js
  library it comes from applies.
- Magenta's arbitrary stylization: the style predictor and the transformer (fixed at 384 x 384
  as shipped) composed into ``(content_image, style_image) -> stylized_image`` with the
  content at any size (the transformer is fully convolutional; the content is padded to a
  multiple of 4, and to at least 16 pixels, and the result cut back, so the output has the
  content's size), plus the two
  halves as signatures of their own.

Only ``onnx`` (helper, numpy_helper) is used; nothing here runs a model.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "NMS_IOU",
    "centernet_graph",
    "renamed_graph",
    "style_transfer_graph",
    "style_transform_graph",
    "style_vector_graph",
]

NMS_IOU = 0.5
# The style bottleneck of Magenta's arbitrary stylization (TF Hub v1-256).
STYLE_DIMS = 100
# The transformer downsamples twice by 2 and upsamples back: sizes must be multiples of 4.
_MULTIPLE = 4
# Smaller contents are padded to this size first (the first mirror pad is 4 pixels wide).
_MIN_SIZE = 16


def _load(path: Path) -> Any:
    import onnx

    return onnx.load(str(path))


def _rename(model: Any, names: Mapping[str, str]) -> None:
    """Rename graph values in place (inputs, outputs, node inputs/outputs, value_info)."""
    graph = model.graph
    for value in (*graph.input, *graph.output, *graph.value_info):
        value.name = names.get(value.name, value.name)
    for node in graph.node:
        node.input[:] = [names.get(n, n) for n in node.input]
        node.output[:] = [names.get(n, n) for n in node.output]


def _set_dims(value: Any, dims: Iterable[int | str]) -> None:
    shape = value.type.tensor_type.shape
    del shape.dim[:]
    for size in dims:
        dim = shape.dim.add()
        if isinstance(size, str):
            dim.dim_param = size
        else:
            dim.dim_value = size


def _prune(model: Any) -> None:
    """Drop the nodes and initializers that no graph output needs."""
    graph = model.graph
    needed = {out.name for out in graph.output}
    kept = []
    for node in reversed(graph.node):
        if any(o in needed for o in node.output):
            kept.append(node)
            needed.update(i for i in node.input if i)
    kept.reverse()
    del graph.node[:]
    graph.node.extend(kept)
    inits = [t for t in graph.initializer if t.name in needed]
    del graph.initializer[:]
    graph.initializer.extend(inits)
    info = [v for v in graph.value_info if v.name in needed]
    del graph.value_info[:]
    graph.value_info.extend(info)
    inputs = [v for v in graph.input if v.name in needed]
    del graph.input[:]
    graph.input.extend(inputs)


def _checked(model: Any) -> Any:
    import onnx

    # tf2onnx writes the path it converted from (a temporary folder) into the doc strings:
    # dropped, so that a fresh conversion gives the same module bytes.
    model.doc_string = ""
    model.graph.doc_string = ""
    onnx.checker.check_model(model, full_check=True)
    return model


def renamed_graph(path: Path, inputs: Mapping[str, str], outputs: Mapping[str, str]) -> Any:
    """The graph at ``path`` with its inputs and outputs renamed (only the outputs named are kept)."""
    model = _load(path)
    _rename(model, {**inputs, **outputs})
    kept = [v for v in model.graph.output if v.name in outputs.values()]
    del model.graph.output[:]
    model.graph.output.extend(kept)
    _prune(model)
    model.graph.name = "modhub"
    return _checked(model)


def _const(graph: Any, name: str, value: Any) -> str:
    from onnx import numpy_helper

    graph.initializer.append(numpy_helper.from_array(np.asarray(value), name))
    return name


def centernet_graph(path: Path, input_name: str, detections_name: str, size: int) -> Any:
    """CenterNet with TF Hub's detection outputs (see the module docstring)."""
    import onnx
    from onnx import TensorProto, helper

    model = _load(path)
    graph = model.graph
    _rename(model, {input_name: "_pixels", detections_name: "_detections"})
    # The network takes float pixels [0, 255]; TF Hub's detectors take uint8 images.
    old_input = next(v for v in graph.input if v.name == "_pixels")
    graph.input.remove(old_input)
    graph.input.append(helper.make_tensor_value_info("images", TensorProto.UINT8, [1, size, size, 3]))
    graph.node.insert(0, helper.make_node("Cast", ["images"], ["_pixels"], to=TensorProto.FLOAT))
    c = {
        "zero": _const(graph, "_c_zero", np.array([0], np.int64)),
        "four": _const(graph, "_c_four", np.array([4], np.int64)),
        "five": _const(graph, "_c_five", np.array([5], np.int64)),
        "six": _const(graph, "_c_six", np.array([6], np.int64)),
        "axis2": _const(graph, "_c_axis2", np.array([2], np.int64)),
        "yxyx": _const(graph, "_c_yxyx", np.array([1, 0, 3, 2], np.int64)),
        "scale": _const(graph, "_c_scale", np.array(1.0 / size, np.float32)),
        "lo": _const(graph, "_c_lo", np.array(0.0, np.float32)),
        "hi": _const(graph, "_c_hi", np.array(1.0, np.float32)),
        "offset": _const(graph, "_c_offset", np.array(2.0, np.float32)),
        "max_out": _const(graph, "_c_max_out", np.array([100], np.int64)),
        "iou": _const(graph, "_c_iou", np.array([NMS_IOU], np.float32)),
        "squeeze": _const(graph, "_c_squeeze0", np.array([0], np.int64)),
        "col2": _const(graph, "_c_col2", np.array([2], np.int64)),
        "col3": _const(graph, "_c_col3", np.array([3], np.int64)),
        "axis1": _const(graph, "_c_axis1", np.array([1], np.int64)),
    }
    nodes = [
        # columns of [1, 100, 6]: x1 y1 x2 y2 (input pixels), score, class
        helper.make_node("Slice", ["_detections", c["zero"], c["four"], c["axis2"]], ["_xyxy"]),
        helper.make_node("Gather", ["_xyxy", c["yxyx"]], ["_yxyx_px"], axis=2),
        helper.make_node("Mul", ["_yxyx_px", c["scale"]], ["_yxyx_raw"]),
        helper.make_node("Clip", ["_yxyx_raw", c["lo"], c["hi"]], ["_boxes"]),
        helper.make_node("Slice", ["_detections", c["four"], c["five"], c["axis2"]], ["_score_col"]),
        helper.make_node("Squeeze", ["_score_col", c["axis2"]], ["_scores"]),  # [1, 100]
        helper.make_node("Slice", ["_detections", c["five"], c["six"], c["axis2"]], ["_class_col"]),
        # per-class NMS in one call: boxes of different classes moved apart so they never overlap
        helper.make_node("Mul", ["_class_col", c["offset"]], ["_shift"]),
        helper.make_node("Add", ["_boxes", "_shift"], ["_nms_boxes"]),
        helper.make_node("Unsqueeze", ["_scores", c["axis1"]], ["_nms_scores"]),  # [1, 1, 100]
        helper.make_node(
            "NonMaxSuppression",
            ["_nms_boxes", "_nms_scores", c["max_out"], c["iou"]],
            ["_selected"],
            center_point_box=0,
        ),
        helper.make_node("Slice", ["_selected", c["col2"], c["col3"], c["axis1"]], ["_sel_col"]),
        helper.make_node("Squeeze", ["_sel_col", c["axis1"]], ["_keep"]),  # [K], by score
        helper.make_node("Gather", ["_boxes", "_keep"], ["detection_boxes"], axis=1),
        helper.make_node("Gather", ["_scores", "_keep"], ["detection_scores"], axis=1),
        helper.make_node("Squeeze", ["_class_col", c["axis2"]], ["_classes_f"]),
        helper.make_node("Gather", ["_classes_f", "_keep"], ["_det_classes_f"], axis=1),
        helper.make_node("Cast", ["_det_classes_f"], ["detection_classes"], to=TensorProto.INT64),
        helper.make_node("Shape", ["_keep"], ["_count_i"]),
        helper.make_node("Cast", ["_count_i"], ["num_detections"], to=TensorProto.FLOAT),
    ]
    graph.node.extend(nodes)
    del graph.output[:]
    graph.output.extend(
        [
            helper.make_tensor_value_info("detection_boxes", TensorProto.FLOAT, [1, "detections", 4]),
            helper.make_tensor_value_info("detection_scores", TensorProto.FLOAT, [1, "detections"]),
            helper.make_tensor_value_info("detection_classes", TensorProto.INT64, [1, "detections"]),
            helper.make_tensor_value_info("num_detections", TensorProto.FLOAT, [1]),
        ]
    )
    del graph.value_info[:]
    _prune(model)
    graph.name = "modhub"
    # NonMaxSuppression, Slice with tensor inputs, ...: all in opset 17 (the conversion's).
    model = onnx.shape_inference.infer_shapes(model)
    return _checked(model)


def _prefixed(path: Path, prefix: str) -> Any:
    from onnx import compose

    return compose.add_prefix(_load(path), prefix)


def _opsets(*models: Any) -> list[Any]:
    from onnx import helper

    versions: dict[str, int] = {}
    for model in models:
        for opset in model.opset_import:
            versions[opset.domain] = max(versions.get(opset.domain, 0), opset.version)
    return [helper.make_opsetid(domain, version) for domain, version in sorted(versions.items())]


def _make_model(
    nodes: list[Any], inputs: list[Any], outputs: list[Any], inits: list[Any], *parts: Any
) -> Any:
    from onnx import helper

    graph = helper.make_graph(nodes, "modhub", inputs, outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=_opsets(*parts))
    model.ir_version = max(part.ir_version for part in parts)
    _prune(model)
    return _checked(model)


def _style_vector_part(predict: Any) -> tuple[list[Any], list[Any], list[Any]]:
    """Nodes computing ``style_vector`` [1, 100] from ``style_image`` [1, 256, 256, 3]."""
    from onnx import TensorProto, helper, numpy_helper

    graph = predict.graph
    (source_in,) = graph.input
    (source_out,) = graph.output
    nodes = [helper.make_node("Identity", ["style_image"], [source_in.name])]
    nodes += list(graph.node)
    shape = numpy_helper.from_array(np.array([1, STYLE_DIMS], np.int64), "sv/shape")
    nodes.append(helper.make_node("Reshape", [source_out.name, "sv/shape"], ["style_vector"]))
    inputs = [helper.make_tensor_value_info("style_image", TensorProto.FLOAT, [1, 256, 256, 3])]
    return nodes, inputs, [*graph.initializer, shape]


def _transform_part(transform: Any, vector: str) -> tuple[list[Any], list[Any], list[Any]]:
    """Nodes computing ``stylized_image`` [1, H, W, 3] from ``content_image`` and the [1, 100] ``vector``."""
    from onnx import TensorProto, helper, numpy_helper

    graph = transform.graph
    content_in, vector_in = graph.input
    (source_out,) = graph.output
    consts = {
        "tf/one": np.array([1], np.int64),
        "tf/two": np.array([2], np.int64),
        "tf/m": np.array([_MULTIPLE], np.int64),
        "tf/min": np.array([_MIN_SIZE], np.int64),
        "tf/zeros": np.array([0, 0, 0, 0], np.int64),
        "tf/zero1": np.array([0], np.int64),
        "tf/starts": np.array([0, 0], np.int64),
        "tf/axes": np.array([1, 2], np.int64),
        "tf/vshape": np.array([1, 1, 1, STYLE_DIMS], np.int64),
    }
    inits = [numpy_helper.from_array(v, k) for k, v in consts.items()]
    nodes = [
        helper.make_node("Reshape", [vector, "tf/vshape"], [vector_in.name]),
        helper.make_node("Shape", ["content_image"], ["tf/shape"]),
        helper.make_node("Gather", ["tf/shape", "tf/axes"], ["tf/hw"]),  # [H, W]
        # grown at the bottom and right (edge pixels repeated) to a multiple of 4 and at least
        # _MIN_SIZE (the network's own mirror padding needs that much); cut back below
        helper.make_node("Max", ["tf/hw", "tf/min"], ["tf/at_least"]),
        helper.make_node("Mod", ["tf/at_least", "tf/m"], ["tf/rem"]),
        helper.make_node("Sub", ["tf/m", "tf/rem"], ["tf/fill"]),
        helper.make_node("Mod", ["tf/fill", "tf/m"], ["tf/round_up"]),
        helper.make_node("Add", ["tf/at_least", "tf/round_up"], ["tf/padded_hw"]),
        helper.make_node("Sub", ["tf/padded_hw", "tf/hw"], ["tf/pad_hw"]),
        helper.make_node("Concat", ["tf/zeros", "tf/zero1", "tf/pad_hw", "tf/zero1"], ["tf/pads"], axis=0),
        helper.make_node("Pad", ["content_image", "tf/pads"], [content_in.name], mode="edge"),
    ]
    nodes += list(graph.node)
    nodes.append(
        helper.make_node("Slice", [source_out.name, "tf/starts", "tf/hw", "tf/axes"], ["stylized_image"])
    )
    inputs = [helper.make_tensor_value_info("content_image", TensorProto.FLOAT, [1, "height", "width", 3])]
    return nodes, inputs, [*graph.initializer, *inits]


def _image_output() -> Any:
    from onnx import TensorProto, helper

    return helper.make_tensor_value_info("stylized_image", TensorProto.FLOAT, [1, "height", "width", 3])


def _vector_value() -> Any:
    from onnx import TensorProto, helper

    return helper.make_tensor_value_info("style_vector", TensorProto.FLOAT, [1, STYLE_DIMS])


def style_transfer_graph(predict_path: Path, transform_path: Path) -> Any:
    """``(content_image [1, H, W, 3], style_image [1, 256, 256, 3]) -> stylized_image [1, H, W, 3]``."""
    predict = _prefixed(predict_path, "sp/")
    transform = _prefixed(transform_path, "st/")
    v_nodes, v_inputs, v_inits = _style_vector_part(predict)
    t_nodes, t_inputs, t_inits = _transform_part(transform, "style_vector")
    return _make_model(
        v_nodes + t_nodes, t_inputs + v_inputs, [_image_output()], v_inits + t_inits, predict, transform
    )


def style_vector_graph(predict_path: Path) -> Any:
    """``style_image [1, 256, 256, 3] -> style_vector [1, 100]`` (Magenta's style predictor)."""
    predict = _prefixed(predict_path, "sp/")
    nodes, inputs, inits = _style_vector_part(predict)
    return _make_model(nodes, inputs, [_vector_value()], inits, predict)


def style_transform_graph(transform_path: Path) -> Any:
    """``(content_image [1, H, W, 3], style_vector [1, 100]) -> stylized_image [1, H, W, 3]``."""
    transform = _prefixed(transform_path, "st/")
    nodes, inputs, inits = _transform_part(transform, "style_vector")
    return _make_model(nodes, [*inputs, _vector_value()], [_image_output()], inits, transform)
