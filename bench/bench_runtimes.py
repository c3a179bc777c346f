"""modhub's runtimes side by side with what a user would pick instead, measured in one run.

Contenders, on EfficientNet-Lite0 and MobileNetV2 feature vectors (images) and MiniLM-L6 (text):

* ``modhub-onnx``  ``hub.load(dir, runtime="onnx")`` (onnxruntime, no torch imported)
* ``modhub-onnx-int8``  ``hub.load(dir, precision="int8")``: the module's int8 variant
  (``modhub quantize``; only when the module has one)
* ``modhub-onnx (cached handle)``  ``hub.load("bench/NAME/1", runtime="onnx")`` from the cache
  of a real hub (``modhub serve`` on loopback, the module published and resolved once before):
  cold start only; the cache's records vouch for files hashed while they downloaded
* ``modhub``       ``hub.load(dir)``, the default runtime (onnx when the module has model.onnx)
* ``modhub-torch`` ``hub.load(dir, runtime="torch")`` (the exported torch graph)
* ``eager``        the source model built from its package's weights, plain PyTorch
* ``sentence-transformers``  ``SentenceTransformer(dir).encode`` (MiniLM only)

Measured:

* cold start: a fresh Python process, from its first line to the first output
  (imports, load, verification of a local directory's files, one call; the
  cached-handle row verifies by the cache's records instead);
  median of ``--repeats`` processes;
* throughput at batch 1 and 32, each contender in a process of its own (one
  engine's idle threads never disturb another's), in interleaved rounds
  (median of the rounds), so a busy machine slows all alike; ``--threads N``
  gives every engine N intra-op threads (on an oversubscribed machine PyTorch's
  OpenMP threads degrade far more than onnxruntime's: compare with 1);
* peak memory of a load: in a fresh process, the growth of peak RSS (VmHWM,
  reset after the imports) during ``hub.load``, over the bytes of the weights
  files the module has for the runtime (graph.pt2; model.onnx + model.onnx.data).
  Three numbers: the load after the process's first (a module with ~1 KiB of
  weights loaded before, so what a process pays once, lazy imports and the
  engine's set-up, is not counted: the goal's number); the process's first
  load (also without that fixed cost, measured on the ~1 KiB module); and the
  machine's first load ever, with an empty cache, which for the onnx runtime
  on CNNs includes making the optimised copy in a child process
  (``--memory-only`` measures just these).

* int8 (modules with an int8 variant): the bytes of the variant's graph files against the
  exact graph's (``model.onnx`` + ``model.onnx.data``: what ``hub.load(h, precision="int8")``
  downloads instead); and, for text, this CPU's int8 peak next to what the variant's matrix
  products reach: a large ``MatMulInteger`` (uint8 x int8, as dynamic quantization runs) and a
  float ``MatMul`` of the same shape, interleaved, then the variant at batch 32 profiled by
  onnxruntime (time in its ``MatMulInteger`` nodes, their operations from the graph's weight
  shapes and the batch's tokens).

Goals (issue 13): cold start with onnx <= 0.5x eager; frozen image features
>= 5x eager torch at batch 32; MiniLM >= 1.5x sentence-transformers; peak RSS
of a load <= 1.3x the weights. Issue 26 (int8 variants): MiniLM int8 >= 3x
sentence-transformers at batch 32; CNN int8 >= 1.7x fp32 onnx at batch 32; int8
cold start no worse than fp32; variant graph <= 0.35x the exact graph's bytes.

    python bench/bench_runtimes.py [--zoo DIR] [--repeats 3] [--seconds 1.5] [--rounds 3] [--threads N]
                                   [--json OUT] [--memory-only] [--int8-only] [--no-build]
                                   [--cases minilm-l6 ...]

``--int8-only``: only the issue-26 rows (modhub-onnx, modhub-onnx-int8 and, for MiniLM,
sentence-transformers; cold start, throughput, bytes, the int8 peak), without the memory
rows and the hub: a few minutes instead of about half an hour.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

# One fresh-process script per contender; argv[1] is the module dir, argv[2] the modality.
# Each prints the seconds from its first line to the first output.
COLD = {
    "modhub-onnx": """
import time; t0 = time.perf_counter()
import sys
import numpy as np
import modhub as hub
module = hub.load(sys.argv[1], runtime="onnx")
x = ["A first sentence to embed."] if sys.argv[2] == "text" else np.random.rand(1, 3, 224, 224).astype("f4")
out = module(x)
print(time.perf_counter() - t0)
""",
    "modhub-onnx (cached handle)": """
import time; t0 = time.perf_counter()
import sys
import numpy as np
import modhub as hub
module = hub.load(sys.argv[1], runtime="onnx")
x = ["A first sentence to embed."] if sys.argv[2] == "text" else np.random.rand(1, 3, 224, 224).astype("f4")
out = module(x)
print(time.perf_counter() - t0)
""",
    "modhub-onnx-int8": """
import time; t0 = time.perf_counter()
import sys
import numpy as np
import modhub as hub
module = hub.load(sys.argv[1], runtime="onnx", precision="int8")
x = ["A first sentence to embed."] if sys.argv[2] == "text" else np.random.rand(1, 3, 224, 224).astype("f4")
out = module(x)
print(time.perf_counter() - t0)
""",
    "modhub": """
import time; t0 = time.perf_counter()
import sys
import numpy as np
import modhub as hub
module = hub.load(sys.argv[1])
x = ["A first sentence to embed."] if sys.argv[2] == "text" else np.random.rand(1, 3, 224, 224).astype("f4")
out = module(x)
print(time.perf_counter() - t0)
""",
    "modhub-torch": """
import time; t0 = time.perf_counter()
import sys
import torch
import modhub as hub
module = hub.load(sys.argv[1], runtime="torch")
x = ["A first sentence to embed."] if sys.argv[2] == "text" else torch.rand(1, 3, 224, 224)
out = module(x)
print(time.perf_counter() - t0)
""",
    "eager": """
import time; t0 = time.perf_counter()
import sys
import torch
if sys.argv[2] == "text":
    from tokenizers import Tokenizer
    from modhub.zoo._bert import load_sentence_encoder
    from modhub.zoo._text import minilm_dir
    model = load_sentence_encoder(minilm_dir()).eval()
    tok = Tokenizer.from_file(str(minilm_dir() / "tokenizer.json"))
    tok.enable_truncation(max_length=256)
    tok.enable_padding()
    enc = tok.encode_batch(["A first sentence to embed."])
    args = (torch.tensor([e.ids for e in enc]), torch.tensor([e.attention_mask for e in enc]))
else:
    from modhub.zoo import image
    from modhub.zoo._vision import build_model
    model = build_model(getattr(image, sys.argv[3]), classify=False).eval()
    args = (torch.rand(1, 3, 224, 224),)
with torch.no_grad():
    out = model(*args)
print(time.perf_counter() - t0)
""",
    "sentence-transformers": """
import time; t0 = time.perf_counter()
import sys
from sentence_transformers import SentenceTransformer
model = SentenceTransformer(sys.argv[3], device="cpu")
out = model.encode(["A first sentence to embed."])
print(time.perf_counter() - t0)
""",
}

MEMORY = """
import sys
import numpy as np
import modhub as hub
runtime = sys.argv[2]
if runtime == "torch":
    import torch
else:
    import onnxruntime
import modhub.loading.loader, modhub.runtimes, tokenizers
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024
if sys.argv[3]:  # another module first: what a process pays once (lazy imports, engine set-up) is paid
    hub.load(sys.argv[3], runtime=runtime)
# Reset the peak-RSS counter (VmHWM) to the current RSS: what the imports peaked at does not count.
with open("/proc/self/clear_refs", "w") as fh:
    fh.write("5")
before = status("VmRSS:")
module = hub.load(sys.argv[1], runtime=runtime)
after = status("VmHWM:")  # the load alone: a call's activations and kernel caches are not the load's
names = ("model.onnx", "model.onnx.data") if runtime == "onnx" else ("graph.pt2",)
print(after - before, sum(e.size for e in module.manifest.files if e.path in names))
"""


def tiny_module(out: Path) -> Path:
    """A module with almost no weights (one 3x3 convolution): what a load costs besides its weights."""
    import torch

    import modhub as hub

    class Tiny(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(x).mean(dim=(2, 3))

    return hub.export(
        Tiny().eval(), torch.rand(2, 3, 32, 32), out, task="image-feature-vector", license="MIT",
        onnx=True, overwrite=True,
    )  # fmt: skip


def peak_rss(module_dir: Path, runtime: str, cache: Path, first: Path | None = None) -> tuple[int, int]:
    """(growth of peak RSS during hub.load in a fresh process, bytes of the weights the runtime reads).

    ``cache``: the MODHUB_CACHE (where the onnx runtime keeps this machine's optimised copies of
    graphs); ``first``: a module loaded before, in the same process, outside the measurement.
    """
    out = _run(MEMORY, str(module_dir), runtime, str(first or ""), env={"MODHUB_CACHE": str(cache)})
    grown, weights = map(int, out.split())
    return grown, weights


# (label, module, modality, eager family or sentence-transformers dir)
CASES = (
    ("EfficientNet-Lite0 features", "efficientnet-lite0-feature-vector", "image", "EFFICIENTNET_LITE0"),
    ("MobileNetV2 features", "mobilenet-v2-feature-vector", "image", "MOBILENET_V2"),
    ("MiniLM-L6 embeddings", "minilm-l6", "text", None),
)


# Set by main() while a local hub serves the cached-handle row: MODHUB_ENDPOINT, MODHUB_CACHE.
HUB_ENV: dict[str, str] = {}
CACHED = "modhub-onnx (cached handle)"
INT8 = "modhub-onnx-int8"


def _env() -> dict[str, str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT / "src"), env.get("PYTHONPATH")) if p)
    env.update(HUB_ENV)
    return env


def _run(script: str, *args: str, env: dict[str, str] | None = None) -> str:
    """Run ``script`` in a fresh Python (``env``: variables set over ``_env()``); its last line."""
    proc = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**_env(), **(env or {})},
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"benchmark subprocess failed:\n{proc.stderr[-3000:]}")
    return proc.stdout.strip().splitlines()[-1]


def cold_start(contender: str, module: Path | str, modality: str, extra: str, repeats: int) -> float:
    return statistics.median(
        float(_run(COLD[contender], str(module), modality, extra)) for _ in range(repeats)
    )


def serve_cached(zoo: Path, names: list[str], work: Path) -> tuple[Any, dict[str, str]]:
    """A real hub (``modhub serve`` on loopback), ``names`` published and resolved once into a new cache.

    Returns the running hub (the caller stops it) and each module's handle:
    loading one then reads the cache, whose records say its files were hashed
    while they downloaded (client/records.py).
    """
    sys.path.insert(0, str(ROOT))
    from tests.server.conftest import LiveHub, admin_cli

    live = LiveHub(work / "data")
    live.start()
    try:
        token = admin_cli(live.data_dir, "--publisher", "bench")
        HUB_ENV.update(MODHUB_ENDPOINT=live.url, MODHUB_CACHE=str(work / "cache"))
        handles = {}
        for name in names:
            proc = subprocess.run(
                [sys.executable, "-m", "modhub", "publish", str(zoo / name), f"bench/{name}"],
                capture_output=True, text=True, env={**_env(), "MODHUB_TOKEN": token}, check=False,
            )  # fmt: skip
            if proc.returncode != 0:
                raise SystemExit(f"publishing {name} failed:\n{proc.stderr[-3000:]}")
            handles[name] = proc.stdout.strip().splitlines()[-1]
            _run("import sys, modhub as hub; hub.load(sys.argv[1], runtime='onnx'); print(1)", handles[name])
    except BaseException:
        live.stop()
        raise
    return live, handles


def throughputs(
    fns: dict[str, Callable[[], Any]], items: int, seconds: float, rounds: int
) -> dict[str, float]:
    """Items per second of each function, interleaved over ``rounds`` (median)."""
    for fn in fns.values():
        fn()  # warm-up (first-call allocations, lazy initialisation)
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            count, start = 0, time.perf_counter()
            while time.perf_counter() - start < seconds:
                fn()
                count += 1
            samples[name].append(count * items / (time.perf_counter() - start))
    return {name: statistics.median(values) for name, values in samples.items()}


def contender(name: str, module_dir: Path, modality: str, extra: str, batch: int, threads: int) -> Any:
    """The call to time for one contender at one batch size (built in the measuring process)."""
    import numpy as np
    import torch

    import modhub as hub

    torch.set_grad_enabled(False)
    if threads:
        torch.set_num_threads(threads)
    if name.startswith("modhub"):
        runtime = {"modhub-onnx": "onnx", "modhub-onnx-int8": "onnx", "modhub-torch": "torch"}.get(name)
        precision = {"precision": "int8"} if name == INT8 else {}
        module = hub.load(module_dir, runtime=runtime, **precision)
        if threads and module.runtime == "onnx":
            graph = module_dir / (module.manifest.variant("int8").path if precision else "") / "model.onnx"
            _limit_onnx_threads(module, graph, threads)
        if modality == "text":
            sentences = _sentences(batch)
            return lambda: module(sentences)
        images = torch.rand(batch, 3, 224, 224)
        x = images if name == "modhub-torch" else images.numpy()
        return lambda: module(x)
    if name == "eager" and modality == "image":
        from modhub.zoo import image
        from modhub.zoo._vision import build_model

        eager = build_model(getattr(image, extra), classify=False).eval()
        images = torch.rand(batch, 3, 224, 224)
        return lambda: eager(images)
    sentences = _sentences(batch)
    if name == "eager":
        from modhub.runtimes.preprocessing import TextEncoder
        from modhub.zoo._bert import load_sentence_encoder

        encoder = load_sentence_encoder(Path(extra)).eval()
        spec = hub.load(module_dir, runtime="onnx").manifest.preprocessing.tokenizer
        assert spec is not None
        tokenize = TextEncoder(spec, Path(extra) / "tokenizer.json")  # the same tokenisation as modhub
        return lambda: encoder(*tokenize(sentences))
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(extra, device="cpu")
    np.testing.assert_allclose(st.encode(sentences[:2]), hub.load(module_dir)(sentences[:2]), atol=1e-4)
    return lambda: st.encode(sentences, batch_size=batch)


def _sentences(batch: int) -> list[str]:
    return [f"Sentence number {i} about a cat, a dog and the weather today." for i in range(batch)]


def _limit_onnx_threads(module: Any, graph: Path, threads: int) -> None:
    """Benchmark-only: the same model (``graph``: its model.onnx) with ``threads`` intra-op threads."""
    import onnxruntime

    from modhub.runtimes.onnx_optimised import SLOW_FUSIONS

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(
        str(graph),
        options,
        providers=["CPUExecutionProvider"],
        disabled_optimizers=list(SLOW_FUSIONS),  # as every session modhub builds
    )
    module._session = module._engines["default"].session = session


# Operators that run an int8 matrix product (as written by onnxruntime.quantization, or fused by
# onnxruntime's optimiser from them).
INT8_MATMULS = {"MatMulInteger", "MatMulIntegerToFloat", "DynamicQuantizeMatMul", "QLinearMatMul", "QGemm"}
# The peak's product: [M, K] x [K, N], the shape of MiniLM's feed-forward layers at batch 32.
PEAK_SHAPE = (512, 1536, 1536)


def has_int8(module_dir: Path) -> bool:
    from modhub.format.manifest import read_manifest

    return "int8" in (read_manifest(module_dir).variants or {})


def int8_bytes(module_dir: Path) -> dict[str, int]:
    """Bytes of the int8 variant's files and of the exact graph's (model.onnx + model.onnx.data)."""
    from modhub.format.manifest import read_manifest

    manifest = read_manifest(module_dir)
    sizes = {e.path: e.size for e in manifest.files}
    variant = sum(sizes[path] for path in manifest.variant_files("int8"))
    exact = sum(sizes.get(path, 0) for path in ("model.onnx", "model.onnx.data"))
    return {"variant": variant, "exact": exact}


def _product(kind: str, m: int, k: int, n: int) -> bytes:
    """One matrix product as an ONNX model: uint8 x int8 (MatMulInteger) or float32 (MatMul)."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    if kind == "int8":
        weight = numpy_helper.from_array(rng.integers(-127, 128, (k, n), dtype=np.int8), "W")
        node = helper.make_node("MatMulInteger", ["A", "W"], ["Y"])
        types = TensorProto.UINT8, TensorProto.INT32
    else:
        weight = numpy_helper.from_array(rng.random((k, n), dtype=np.float32), "W")
        node = helper.make_node("MatMul", ["A", "W"], ["Y"])
        types = TensorProto.FLOAT, TensorProto.FLOAT
    graph = helper.make_graph(
        [node], "product", [helper.make_tensor_value_info("A", types[0], [m, k])],
        [helper.make_tensor_value_info("Y", types[1], [m, n])], [weight],
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def int8_peak(module_dir: Path, seconds: float, rounds: int, threads: int) -> dict[str, float]:
    """This CPU's int8 and fp32 matrix-product rates (GOPS, 2 per multiply-add), and what the
    int8 variant's own products reach at batch 32 (onnxruntime's profiler)."""
    import numpy as np
    import onnx
    import onnxruntime

    from modhub.format.manifest import read_manifest
    from modhub.runtimes.preprocessing import TextEncoder

    def options() -> Any:
        opts = onnxruntime.SessionOptions()
        opts.log_severity_level = 3
        if threads:
            opts.intra_op_num_threads = threads
        return opts

    m, k, n = PEAK_SHAPE
    rng = np.random.default_rng(0)
    feeds = {
        "int8": rng.integers(0, 256, (m, k), dtype=np.uint8),
        "fp32": rng.random((m, k), dtype=np.float32),
    }
    sessions = {
        kind: onnxruntime.InferenceSession(
            _product(kind, m, k, n), options(), providers=["CPUExecutionProvider"]
        )
        for kind in feeds
    }
    # A peak is the best rate seen: each kind timed in interleaved rounds, the fastest round kept
    # (on a shared machine, a round that lost the CPU to others is not the CPU's rate).
    best = dict.fromkeys(sessions, 0.0)
    for _ in range(rounds):
        for kind, session in sessions.items():
            session.run(None, {"A": feeds[kind]})
            count, start = 0, time.perf_counter()
            while time.perf_counter() - start < seconds:
                session.run(None, {"A": feeds[kind]})
                count += 1
            best[kind] = max(best[kind], count / (time.perf_counter() - start))
    peak = {kind: rate * 2 * m * k * n / 1e9 for kind, rate in best.items()}

    manifest = read_manifest(module_dir)
    graph = module_dir / manifest.variant("int8").path / "model.onnx"
    model = onnx.load(str(graph), load_external_data=False)
    weights = {i.name: list(i.dims) for i in model.graph.initializer if len(i.dims) == 2}
    dequantized = {
        node.output[0]: node.input[0] for node in model.graph.node if node.op_type == "DequantizeLinear"
    }
    per_token = 0  # multiply-adds of the int8 products per token (the weights' K x N)
    for node in model.graph.node:
        if node.op_type in INT8_MATMULS or node.op_type in ("MatMul", "Gemm"):
            for name in node.input[:4]:
                name = dequantized.get(name, name)
                if name in weights and (node.op_type in INT8_MATMULS or name in dequantized.values()):
                    per_token += int(np.prod(weights[name]))
                    break
    spec = manifest.preprocessing.tokenizer
    assert spec is not None
    args = TextEncoder(spec, module_dir / spec.file).encode(_sentences(32))
    tokens = int(args[0].size)  # batch x padded length: every row goes through the products
    profiled = options()
    profiled.enable_profiling = True
    with tempfile.TemporaryDirectory() as tmp:
        profiled.profile_file_prefix = str(Path(tmp) / "int8")
        session = onnxruntime.InferenceSession(str(graph), profiled, providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]
        feed = {name: array for name, array in zip(spec.graph_inputs, args, strict=True) if name in names}
        runs, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds * rounds:
            session.run(None, feed)
            runs += 1
        events = json.loads(Path(session.end_profiling()).read_text())
    kernel = [e for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
    matmul_s = sum(e["dur"] for e in kernel if e["args"].get("op_name") in INT8_MATMULS) / 1e6 / runs
    call_s = sum(e["dur"] for e in events if e.get("name") == "model_run") / 1e6 / runs
    return {
        "peak_int8_gops": peak["int8"],
        "peak_fp32_gops": peak["fp32"],
        "tokens": tokens,
        "int8_macs_per_token": per_token,
        "call_ms": call_s * 1e3,
        "matmul_share": matmul_s / call_s,
        "matmul_gops": 2 * per_token * tokens / matmul_s / 1e9 if matmul_s else 0.0,
    }


PEAK = """
import json, sys
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from bench_runtimes import int8_peak
print(json.dumps(int8_peak(Path(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))))
"""


THROUGHPUT = """
import json, sys
sys.path.insert(0, sys.argv[1])
from bench_runtimes import contender, throughputs
from pathlib import Path
name, module_dir, modality, extra, seconds, threads = sys.argv[2:8]
out = {}
for batch in (1, 32):
    fn = contender(name, Path(module_dir), modality, extra, batch, int(threads))
    out[f"batch{batch}"] = throughputs({name: fn}, batch, float(seconds), 1)[name]
print(json.dumps(out))
"""


def measure_throughput(
    names: list[str], module_dir: Path, modality: str, extra: str, args: argparse.Namespace
) -> dict[str, dict[str, float]]:
    """Each contender in a process of its own (no engine's threads disturb another's), interleaved rounds."""
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    for _ in range(args.rounds):
        for name in names:
            line = _run(
                THROUGHPUT, str(ROOT / "bench"), name, str(module_dir), modality, extra,
                str(args.seconds), str(args.threads),
            )  # fmt: skip
            samples[name].append(json.loads(line))
    return {
        f"batch{b}": {n: statistics.median(s[f"batch{b}"] for s in samples[n]) for n in names}
        for b in (1, 32)
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--zoo", type=Path, default=ROOT / ".modhub" / "zoo")
    parser.add_argument(
        "--no-build", action="store_true", help="take the modules in --zoo as they are (a frozen copy)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes per cold start")
    parser.add_argument("--seconds", type=float, default=1.5, help="per contender per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--threads", type=int, default=0, help="intra-op threads for every engine (0: each library's default)"
    )
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    parser.add_argument("--memory-only", action="store_true", help="only the peak RSS of loads")
    parser.add_argument(
        "--int8-only", action="store_true", help="only the int8 rows (issue 26): no memory, hub or eager rows"
    )
    parser.add_argument(
        "--cases", nargs="+", choices=[c[1] for c in CASES], help="only these modules (default: all)"
    )
    args = parser.parse_args()
    cases = [c for c in CASES if not args.cases or c[1] in args.cases]

    from modhub.zoo import build_zoo

    if not args.no_build:
        build_zoo(args.zoo, only=[case[1] for case in cases], progress=False)
    print(f"load average before: {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tiny = tiny_module(Path(tmp) / "tiny")
        fixed: dict[str, float] = {}
        if not args.int8_only:
            # What a load costs besides its weights (engine state, graph, kernels), from the median of 3.
            cache = Path(tmp) / "cache"
            fixed = {
                r: statistics.median(peak_rss(tiny, r, cache)[0] for _ in range(3)) for r in ("onnx", "torch")
            }
            print("fixed cost of a load (a module with ~1 KiB of weights): " + ", ".join(
                f"{r} {v / 2**20:.1f} MiB" for r, v in fixed.items()
            ))  # fmt: skip
            results["fixed_cost_bytes"] = fixed
        live, handles = (
            (None, {})
            if args.memory_only or args.int8_only
            else serve_cached(args.zoo, [c[1] for c in cases], Path(tmp))
        )
        try:
            for label, name, modality, family in cases:
                results[label] = _case(args, name, modality, family, fixed, handles, tiny, Path(tmp))
                _print(label, results[label])
        finally:
            if live is not None:
                live.stop()
            HUB_ENV.clear()
    _goals(results)
    print(f"load average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


def _case(
    args: argparse.Namespace,
    name: str,
    modality: str,
    family: str | None,
    fixed: dict[str, float],
    handles: dict[str, str],
    tiny: Path,
    tmp: Path,
) -> dict[str, Any]:
    from modhub.zoo._text import minilm_dir

    module_dir = args.zoo / name
    extra = family or str(minilm_dir())
    int8 = has_int8(module_dir)
    if args.int8_only and not int8:
        raise SystemExit(f"{module_dir} has no int8 variant (modhub quantize, or the zoo's recipes)")
    names = [
        c
        for c in COLD
        if (modality == "text" or c != "sentence-transformers")
        and c != CACHED
        and (c != INT8 or int8)
        and (not args.int8_only or c in ("modhub-onnx", INT8, "sentence-transformers"))
    ]
    row: dict[str, Any] = {}
    if int8 and not args.memory_only:
        row["int8_bytes"] = int8_bytes(module_dir)
        if modality == "text":
            line = _run(
                PEAK,
                str(ROOT / "bench"),
                str(module_dir),
                str(args.seconds),
                str(args.rounds),
                str(args.threads),
            )
            row["int8_peak"] = json.loads(line)
    if not args.memory_only:
        # Interleaved: each round starts every contender's fresh process once, in turn.
        cold: dict[str, list[float]] = {c: [] for c in names}
        for _ in range(args.repeats):
            for c in names:
                cold[c].append(float(_run(COLD[c], str(module_dir), modality, extra)))
        row["cold_s"] = {c: statistics.median(v) for c, v in cold.items()}
        if not args.int8_only:
            # Next to the local directory: the same module loaded by its handle from the cache.
            row["cold_s"][CACHED] = cold_start(CACHED, handles[name], modality, extra, args.repeats)
        row.update(measure_throughput(names, module_dir, modality, extra, args))
    row["peak_rss_over_weights"] = {}
    for runtime in () if args.int8_only else ("onnx", "torch"):
        # A cache of its own: the first load makes this machine's optimised copy (onnx, CNNs).
        cache = tmp / f"cache-{name}-{runtime}"
        first_ever, _ = peak_rss(module_dir, runtime, cache)
        grown, weights = peak_rss(module_dir, runtime, cache)
        after_first, _ = peak_rss(module_dir, runtime, cache, first=tiny)
        row["peak_rss_over_weights"][runtime] = {
            "ratio": grown / weights,
            "net_ratio": (grown - fixed[runtime]) / weights,
            "load_ratio": after_first / weights,
            "first_ever_ratio": first_ever / weights,
            "grown": grown,
            "after_first": after_first,
            "first_ever": first_ever,
            "fixed": fixed[runtime],
            "weights": weights,
        }
    return row


def _print(label: str, row: dict[str, Any]) -> None:
    unit = "sent/s" if "MiniLM" in label else "img/s"
    cold_s = row.get("cold_s", {})
    ref = "eager" if "eager" in cold_s else "modhub-onnx"
    print(f"\n{label}   (ratio: against {'eager torch' if ref == 'eager' else ref})")
    print(f"  {'':<24}{'cold start':>12}{'ratio':>8}{'batch 1':>14}{'ratio':>8}{'batch 32':>14}{'ratio':>8}")
    eager = (cold_s[ref], row["batch1"][ref], row["batch32"][ref]) if cold_s else (1, 1, 1)
    for name, cold in cold_s.items():
        if name not in row["batch1"]:  # cold start only (the cached-handle row)
            print(f"  {name:<24}{cold:>10.2f} s{cold / eager[0]:>7.2f}x")
            continue
        b1, b32 = row["batch1"][name], row["batch32"][name]
        print(
            f"  {name:<24}{cold:>10.2f} s{cold / eager[0]:>7.2f}x{b1:>8.1f} {unit:<5}{b1 / eager[1]:>7.2f}x"
            f"{b32:>8.1f} {unit:<5}{b32 / eager[2]:>7.2f}x"
        )
    if "int8_bytes" in row:
        size = row["int8_bytes"]
        print(
            f"  int8 variant's graph {size['variant'] / 2**20:.1f} MiB, exact graph "
            f"{size['exact'] / 2**20:.1f} MiB = {size['variant'] / size['exact']:.2f}x"
        )
    if "int8_peak" in row:
        peak = row["int8_peak"]
        shape = "x".join(map(str, PEAK_SHAPE))
        share = peak["matmul_gops"] / peak["peak_int8_gops"]
        print(
            f"  this CPU's matrix products ({shape}): int8 {peak['peak_int8_gops']:.0f} GOPS, fp32 "
            f"{peak['peak_fp32_gops']:.0f} GOPS; the int8 variant at batch 32 ({peak['tokens']} tokens): "
            f"{peak['call_ms']:.1f} ms a call, {peak['matmul_share']:.0%} in its int8 products at "
            f"{peak['matmul_gops']:.0f} GOPS = {share:.0%} of the int8 peak"
        )
    for runtime, mem in row["peak_rss_over_weights"].items():
        print(
            f"  peak RSS of a load, {runtime:<6} +{mem['after_first'] / 2**20:6.1f} MiB over "
            f"{mem['weights'] / 2**20:6.1f} MiB of weights = {mem['load_ratio']:.2f}x (after the process's "
            f"first load); as the process's first load +{mem['grown'] / 2**20:.1f} MiB = {mem['ratio']:.2f}x "
            f"({mem['net_ratio']:.2f}x without its fixed {mem['fixed'] / 2**20:.1f} MiB); the machine's "
            f"first load ever +{mem['first_ever'] / 2**20:.1f} MiB = {mem['first_ever_ratio']:.2f}x"
        )


def _goals(results: dict[str, Any]) -> None:
    print("\nGoals (same run):")
    for label, row in results.items():
        if label == "fixed_cost_bytes":
            continue
        for runtime, mem in row["peak_rss_over_weights"].items():
            print(
                f"  {label}: peak RSS of a load, {runtime} = {mem['load_ratio']:.2f}x weights "
                f"(goal <= 1.3); as a process's first load {mem['ratio']:.2f}x, "
                f"{mem['net_ratio']:.2f}x without the fixed cost"
            )
        _int8_goals(label, row)
        if "eager" not in row.get("cold_s", {}):
            continue
        cold = row["cold_s"]["modhub-onnx"] / row["cold_s"]["eager"]
        cached = row["cold_s"][CACHED] / row["cold_s"]["eager"]
        print(
            f"  {label}: cold start modhub-onnx / eager = {cold:.2f}x, "
            f"from a cached handle {cached:.2f}x (goal <= 0.5)"
        )
        if "MiniLM" in label:
            st = row["batch32"]["modhub-onnx"] / row["batch32"]["sentence-transformers"]
            print(f"  {label}: batch 32 modhub-onnx / sentence-transformers = {st:.2f}x (goal >= 1.5)")
        else:
            fx = row["batch32"]["modhub-onnx"] / row["batch32"]["eager"]
            print(f"  {label}: batch 32 modhub-onnx / eager torch = {fx:.2f}x (goal >= 5)")


def _int8_goals(label: str, row: dict[str, Any]) -> None:
    """Issue 26's speed and size goals for the int8 variant, where measured."""
    if "int8_bytes" in row:
        size = row["int8_bytes"]
        ratio = size["variant"] / size["exact"]
        print(f"  {label}: int8 graph bytes / exact graph = {ratio:.2f}x (goal <= 0.35)")
    cold_s = row.get("cold_s", {})
    if INT8 not in cold_s:
        return
    cold = cold_s[INT8] / cold_s["modhub-onnx"]
    print(f"  {label}: cold start int8 / fp32 onnx = {cold:.2f}x (goal <= 1, no worse)")
    fp32 = row["batch32"][INT8] / row["batch32"]["modhub-onnx"]
    if "sentence-transformers" in row["batch32"]:
        st = row["batch32"][INT8] / row["batch32"]["sentence-transformers"]
        print(
            f"  {label}: batch 32 int8 / sentence-transformers = {st:.2f}x (goal >= 3); "
            f"int8 / fp32 onnx = {fp32:.2f}x"
        )
    else:
        print(f"  {label}: batch 32 int8 / fp32 onnx = {fp32:.2f}x (goal >= 1.7)")


if __name__ == "__main__":
    main()
