"""The TF.js format of a starter module: its SavedModel converted, then checked in Node.js.

``modhub.exporting.tfjs`` converts the SavedModel (``tensorflowjs`` in the TensorFlow venv);
this side runs the result with the real ``@tensorflow/tfjs`` of the checkout's ``node_modules``
(``make web`` installs it from package-lock.json) in Node.js on the module's check inputs, and
compares with the torch module's outputs (``TFJS_ATOL``). Without ``node`` or without
``node_modules/@tensorflow/tfjs`` the format is skipped with a warning (as the SavedModel is
without the TensorFlow venv): a module is never given a TF.js model nobody ran.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from modhub.errors import ExportError, ZooError
from modhub.exporting.tfjs import TFJS_DIR, convert_saved_model
from modhub.format.manifest import SAVED_MODEL_DIR

__all__ = ["TFJS_ATOL", "NodeTfjs", "node_tfjs", "run_tfjs", "tfjs_format", "tfjs_toolchain"]

log = logging.getLogger(__name__)

# Max abs difference to the torch module on the check inputs (measured ~1e-5 on MobileNetV2's logits).
TFJS_ATOL = 1e-4
# The checkout's node_modules (src/modhub/zoo/ -> the repository root).
NODE_MODULES = Path(__file__).resolve().parents[3] / "node_modules"
TFJS_PACKAGE = "@tensorflow/tfjs"
# TF.js on its plain-JS CPU backend: MobileNetV2 on 4 images takes ~10 s.
_NODE_TIMEOUT = 600

# Loads tfjs/model.json and its shards from disk (an IOHandler: @tensorflow/tfjs has no file://
# loader without tfjs-node), runs it on the inputs of inputs.json (raw little-endian float32
# files) and writes each output likewise. argv: node_modules, model folder, work folder.
_RUN_JS = r"""
const fs = require("fs"), path = require("path");
const [nodeModules, modelDir, work] = process.argv.slice(-3);
const tf = require(path.join(nodeModules, "@tensorflow/tfjs"));
const raw = (file) => {
  const b = fs.readFileSync(file);
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength);
};
async function main() {
  await tf.setBackend("cpu");
  const json = JSON.parse(fs.readFileSync(path.join(modelDir, "model.json"), "utf8"));
  const specs = [], parts = [];
  for (const group of json.weightsManifest) {
    specs.push(...group.weights);
    for (const p of group.paths) parts.push(Buffer.from(raw(path.join(modelDir, p))));
  }
  const weights = Buffer.concat(parts);
  const handler = { load: async () => ({
    modelTopology: json.modelTopology, format: json.format, generatedBy: json.generatedBy,
    convertedBy: json.convertedBy, signature: json.signature, userDefinedMetadata: json.userDefinedMetadata,
    modelInitializer: json.modelInitializer, weightSpecs: specs,
    weightData: weights.buffer.slice(weights.byteOffset, weights.byteOffset + weights.byteLength),
  }) };
  const model = await tf.loadGraphModel(handler);
  const request = JSON.parse(fs.readFileSync(path.join(work, "inputs.json"), "utf8"));
  const feeds = {};
  for (const [name, spec] of Object.entries(request.inputs)) {
    const node = json.signature.inputs[name].name.replace(/:0$/, "");
    feeds[node] = tf.tensor(new Float32Array(raw(path.join(work, spec.file))), spec.shape, "float32");
  }
  const names = Object.keys(json.signature.outputs);
  const nodes = names.map((n) => json.signature.outputs[n].name.replace(/:0$/, ""));
  const outs = await model.executeAsync(feeds, nodes);
  const result = {};
  for (const [i, name] of names.entries()) {
    const t = Array.isArray(outs) ? outs[i] : outs;
    fs.writeFileSync(path.join(work, `out-${i}.bin`), Buffer.from((await t.data()).buffer));
    result[name] = { file: `out-${i}.bin`, shape: t.shape };
  }
  fs.writeFileSync(path.join(work, "outputs.json"), JSON.stringify(result));
}
main().catch((e) => { console.error(e && e.stack || e); process.exit(1); });
"""


@dataclass(frozen=True)
class NodeTfjs:
    """Node.js and the node_modules folder holding ``@tensorflow/tfjs``."""

    node: str
    node_modules: Path
    version: str


def node_tfjs(node_modules: Path = NODE_MODULES) -> NodeTfjs | None:
    """Node.js with ``@tensorflow/tfjs`` (``make web``), or None when either is missing."""
    node = shutil.which("node")
    package = node_modules / TFJS_PACKAGE / "package.json"
    if node is None or not package.is_file():
        return None
    version = json.loads(package.read_text(encoding="utf-8")).get("version", "")
    return NodeTfjs(node=node, node_modules=node_modules, version=str(version))


def tfjs_toolchain() -> str:
    """What the TF.js format depends on, for the zoo's build key ("none" when it is skipped)."""
    found = node_tfjs()
    return f"tfjs-{found.version}" if found is not None else "tfjs-none"


def run_tfjs(
    runtime: NodeTfjs, model_dir: Path, inputs: Mapping[str, np.ndarray], work: Path
) -> dict[str, np.ndarray]:
    """The outputs of the TF.js graph model in ``model_dir`` on float32 ``inputs``, run in Node.js."""
    work.mkdir(parents=True, exist_ok=True)
    request = {}
    for i, (name, array) in enumerate(inputs.items()):
        file = f"in-{i}.bin"
        (work / file).write_bytes(np.ascontiguousarray(array, dtype="<f4").tobytes())
        request[name] = {"file": file, "shape": list(array.shape)}
    (work / "inputs.json").write_text(json.dumps({"inputs": request}), encoding="utf-8")
    try:
        done = subprocess.run(
            [runtime.node, "-e", _RUN_JS, str(runtime.node_modules), str(model_dir), str(work)],
            capture_output=True,
            text=True,
            timeout=_NODE_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ZooError(f"Node.js did not run the TF.js model: {exc}") from exc
    if done.returncode != 0:
        raise ZooError("Node.js could not run the TF.js model:\n" + "\n".join(done.stderr.splitlines()[-15:]))
    outputs = json.loads((work / "outputs.json").read_text(encoding="utf-8"))
    return {
        name: np.fromfile(work / spec["file"], dtype="<f4").reshape(spec["shape"])
        for name, spec in outputs.items()
    }


def tfjs_format(
    out: Path,
    inputs: Mapping[str, np.ndarray],
    expected: Mapping[str, np.ndarray],
    tf_python: str,
    *,
    node_modules: Path = NODE_MODULES,
) -> float | None:
    """Convert ``out/saved_model`` to ``out/tfjs`` and check it against the torch module's
    ``expected`` outputs (by signature output name); return the max abs difference, or None
    (nothing written) when Node.js or ``@tensorflow/tfjs`` is missing."""
    runtime = node_tfjs(node_modules)
    if runtime is None:
        log.warning(
            "no TF.js format: Node.js or %s missing (run make web to install %s); "
            "the module is built without tfjs/",
            node_modules / TFJS_PACKAGE,
            TFJS_PACKAGE,
        )
        return None
    target = out / TFJS_DIR
    try:
        convert_saved_model(out / SAVED_MODEL_DIR, target, tf_python)
    except ExportError as exc:
        raise ZooError(f"the TF.js conversion of the starter failed: {exc}") from exc
    got = run_tfjs(runtime, target, inputs, out.parent / "tfjs-check")
    worst = 0.0
    for name, want in expected.items():
        if name not in got:
            raise ZooError(f"the TF.js model has no output {name!r} (it has {sorted(got)})")
        if got[name].shape != want.shape:
            raise ZooError(
                f"the TF.js model gives {name} shape {got[name].shape}, the torch module {want.shape}"
            )
        diff = float(np.abs(got[name] - want).max()) if want.size else 0.0
        if not diff <= TFJS_ATOL:
            raise ZooError(
                f"the TF.js model differs from the torch module: max abs diff {diff:.3g} > {TFJS_ATOL}"
            )
        worst = max(worst, diff)
    return worst
