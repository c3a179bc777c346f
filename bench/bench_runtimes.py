"""modhub's runtimes side by side with what a user would pick instead, measured in one run.

Contenders, on EfficientNet-Lite0 and MobileNetV2 feature vectors (images) and MiniLM-L6 (text):

* ``modhub-onnx``  ``hub.load(dir, runtime="onnx")`` (onnxruntime, no torch imported)
* ``modhub``       ``hub.load(dir)``, the default runtime (onnx when the module has model.onnx)
* ``modhub-torch`` ``hub.load(dir, runtime="torch")`` (the exported torch graph)
* ``eager``        the source model built from its package's weights, plain PyTorch
* ``sentence-transformers``  ``SentenceTransformer(dir).encode`` (MiniLM only)

Measured:

* cold start: a fresh Python process, from its first line to the first output
  (imports, load, verification of a local directory's files, one call);
  median of ``--repeats`` processes;
* throughput at batch 1 and 32, all contenders in this one process, in
  interleaved rounds (median of the rounds), so a busy machine slows all alike;
* peak memory of a load: in a fresh process, the growth of peak RSS from
  after the imports to after load + first call, over the bytes of the
  weights file the runtime reads.

Goals (issue 13): cold start with onnx <= 0.5x eager; frozen image features
>= 5x eager torch at batch 32; MiniLM >= 1.5x sentence-transformers; peak RSS
of a load <= 1.3x the weights.

    python bench/bench_runtimes.py [--zoo DIR] [--repeats 3] [--seconds 1.5] [--rounds 3] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
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
import resource, sys
import numpy as np
import modhub as hub
runtime = sys.argv[2]
if runtime == "torch":
    import torch
else:
    import onnxruntime
import modhub.loading, modhub.runtimes, tokenizers
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
module = hub.load(sys.argv[1], runtime=runtime)
x = ["A first sentence to embed."] if module.modality == "text" else np.zeros((1, 3, 224, 224), np.float32)
module(x)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
name = "model.onnx" if runtime == "onnx" else "graph.pt2"
print(after - before, module.manifest.file(name).size)
"""

# (label, module, modality, eager family or sentence-transformers dir)
CASES = (
    ("EfficientNet-Lite0 features", "efficientnet-lite0-feature-vector", "image", "EFFICIENTNET_LITE0"),
    ("MobileNetV2 features", "mobilenet-v2-feature-vector", "image", "MOBILENET_V2"),
    ("MiniLM-L6 embeddings", "minilm-l6", "text", None),
)


def _env() -> dict[str, str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT / "src"), env.get("PYTHONPATH")) if p)
    return env


def _run(script: str, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=_env(),
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"benchmark subprocess failed:\n{proc.stderr[-3000:]}")
    return proc.stdout.strip().splitlines()[-1]


def cold_start(contender: str, module_dir: Path, modality: str, extra: str, repeats: int) -> float:
    return statistics.median(
        float(_run(COLD[contender], str(module_dir), modality, extra)) for _ in range(repeats)
    )


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


def contenders(name: str, module_dir: Path, modality: str, family: str | None, batch: int) -> dict[str, Any]:
    import numpy as np
    import torch

    import modhub as hub

    torch.set_grad_enabled(False)
    onnx = hub.load(module_dir, runtime="onnx")
    default = hub.load(module_dir)
    graph = hub.load(module_dir, runtime="torch")
    if modality == "image":
        from modhub.zoo import image
        from modhub.zoo._vision import build_model

        eager = build_model(getattr(image, str(family)), classify=False).eval()
        tensor = torch.rand(batch, 3, 224, 224)
        array = tensor.numpy()
        return {
            "modhub-onnx": lambda: onnx(array),
            "modhub": lambda: default(array),
            "modhub-torch": lambda: graph(tensor),
            "eager": lambda: eager(tensor),
        }
    from sentence_transformers import SentenceTransformer

    from modhub.zoo._bert import load_sentence_encoder
    from modhub.zoo._text import minilm_dir

    sentences = [f"Sentence number {i} about a cat, a dog and the weather today." for i in range(batch)]
    encoder = load_sentence_encoder(minilm_dir()).eval()
    tokenize = graph._encoder  # the same tokenisation for eager: only the model differs
    assert tokenize is not None
    st = SentenceTransformer(str(minilm_dir()), device="cpu")
    np.testing.assert_allclose(st.encode(sentences[:2]), onnx(sentences[:2]), atol=1e-4)
    return {
        "modhub-onnx": lambda: onnx(sentences),
        "modhub": lambda: default(sentences),
        "modhub-torch": lambda: graph(sentences),
        "eager": lambda: encoder(*tokenize(sentences)),
        "sentence-transformers": lambda: st.encode(sentences, batch_size=batch),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--zoo", type=Path, default=ROOT / ".modhub" / "zoo")
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes per cold start")
    parser.add_argument("--seconds", type=float, default=1.5, help="per contender per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()

    from modhub.zoo import build_zoo
    from modhub.zoo._text import minilm_dir

    build_zoo(args.zoo, only=[case[1] for case in CASES], progress=False)
    results: dict[str, Any] = {}
    for label, name, modality, family in CASES:
        module_dir = args.zoo / name
        extra = family or str(minilm_dir())
        names = [c for c in COLD if modality == "text" or c != "sentence-transformers"]
        row: dict[str, Any] = {
            "cold_s": {c: cold_start(c, module_dir, modality, extra, args.repeats) for c in names}
        }
        for batch in (1, 32):
            fns = contenders(name, module_dir, modality, family, batch)
            row[f"batch{batch}"] = throughputs(fns, batch, args.seconds, args.rounds)
        row["peak_rss_over_weights"] = {}
        for runtime in ("onnx", "torch"):
            grown, weights = map(int, _run(MEMORY, str(module_dir), runtime).split())
            row["peak_rss_over_weights"][runtime] = {
                "ratio": grown / weights,
                "grown": grown,
                "weights": weights,
            }
        results[label] = row
        _print(label, row)
    _goals(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


def _print(label: str, row: dict[str, Any]) -> None:
    unit = "sent/s" if "MiniLM" in label else "img/s"
    print(f"\n{label}   (ratio: against eager torch)")
    print(f"  {'':<24}{'cold start':>12}{'ratio':>8}{'batch 1':>14}{'ratio':>8}{'batch 32':>14}{'ratio':>8}")
    eager = row["cold_s"]["eager"], row["batch1"]["eager"], row["batch32"]["eager"]
    for name, cold in row["cold_s"].items():
        b1, b32 = row["batch1"][name], row["batch32"][name]
        print(
            f"  {name:<24}{cold:>10.2f} s{cold / eager[0]:>7.2f}x{b1:>8.1f} {unit:<5}{b1 / eager[1]:>7.2f}x"
            f"{b32:>8.1f} {unit:<5}{b32 / eager[2]:>7.2f}x"
        )
    for runtime, mem in row["peak_rss_over_weights"].items():
        print(
            f"  peak RSS of a load, {runtime:<6} +{mem['grown'] / 2**20:6.1f} MiB over "
            f"{mem['weights'] / 2**20:6.1f} MiB of weights = {mem['ratio']:.2f}x"
        )


def _goals(results: dict[str, Any]) -> None:
    print("\nGoals (same run):")
    for label, row in results.items():
        cold = row["cold_s"]["modhub-onnx"] / row["cold_s"]["eager"]
        print(f"  {label}: cold start modhub-onnx / eager = {cold:.2f}x (goal <= 0.5)")
        if "MiniLM" in label:
            st = row["batch32"]["modhub-onnx"] / row["batch32"]["sentence-transformers"]
            print(f"  {label}: batch 32 modhub-onnx / sentence-transformers = {st:.2f}x (goal >= 1.5)")
        else:
            fx = row["batch32"]["modhub-onnx"] / row["batch32"]["eager"]
            print(f"  {label}: batch 32 modhub-onnx / eager torch = {fx:.2f}x (goal >= 5)")
        for runtime, mem in row["peak_rss_over_weights"].items():
            print(f"  {label}: peak RSS of a load, {runtime} = {mem['ratio']:.2f}x weights (goal <= 1.3)")


if __name__ == "__main__":
    main()
