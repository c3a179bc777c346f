"""Load time and inference speed of hub modules against the eager-source path.

For one image module (EfficientNet-Lite0 classifier) and one text module
(MiniLM-L6), measured in this one run:

* cold start: a fresh Python process from its first line to the first output,
  either ``hub.load(dir)`` + call (the default runtime: onnx, as these modules
  have model.onnx), or the eager path (build the architecture from its
  package, load the package's state dict, call);
* what verification costs in-process, per runtime: the first load of a
  directory (its files hashed) against a second one (the process's records
  vouch for unchanged files, nothing is hashed);
* throughput: the loaded module vs the eager model, same inputs, same process.

Compass goal: load <= 0.8x the eager path, inference >= 1.0x. The four-way
comparison with sentence-transformers and batch sizes is bench/bench_runtimes.py.

    python bench/bench_load.py [--zoo DIR] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

HUB_IMAGE = """
import time; t0 = time.perf_counter()
import sys
import numpy as np
import modhub as hub
module = hub.load(sys.argv[1])
out = module(np.random.rand(1, 3, 224, 224).astype(np.float32))
print(time.perf_counter() - t0)
"""

RELOAD = """
import sys, time
import onnxruntime, tokenizers, torch  # imported first: the two loads differ only in hashing
import modhub as hub
import modhub.loading.layer, modhub.loading.loader, modhub.graph.build
for runtime in ("onnx", "torch"):
    t0 = time.perf_counter(); hub.load(sys.argv[1], runtime=runtime); first = time.perf_counter() - t0
    t0 = time.perf_counter(); hub.load(sys.argv[1], runtime=runtime); again = time.perf_counter() - t0
    print(runtime, first, again)
"""

EAGER_IMAGE = """
import time; t0 = time.perf_counter()
import torch
from modhub.zoo.image import EFFICIENTNET_LITE0
from modhub.zoo._vision import build_model
model = build_model(EFFICIENTNET_LITE0, classify=True).eval()
with torch.no_grad():
    out = model(torch.rand(1, 3, 224, 224))
print(time.perf_counter() - t0)
"""

HUB_TEXT = """
import time; t0 = time.perf_counter()
import sys
import modhub as hub
module = hub.load(sys.argv[1])
out = module(["A first sentence to embed."])
print(time.perf_counter() - t0)
"""

EAGER_TEXT = """
import time; t0 = time.perf_counter()
import torch
from tokenizers import Tokenizer
from modhub.zoo._bert import load_sentence_encoder
from modhub.zoo._text import minilm_dir
model = load_sentence_encoder(minilm_dir()).eval()
tok = Tokenizer.from_file(str(minilm_dir() / "tokenizer.json"))
tok.enable_truncation(max_length=256)
tok.enable_padding()
enc = tok.encode_batch(["A first sentence to embed."])
ids = torch.tensor([e.ids for e in enc]); mask = torch.tensor([e.attention_mask for e in enc])
with torch.no_grad():
    out = model(ids, mask)
print(time.perf_counter() - t0)
"""


def cold_start(script: str, arg: str, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        proc = subprocess.run(
            [sys.executable, "-c", script, arg], capture_output=True, text=True, check=True, cwd=ROOT
        )
        times.append(float(proc.stdout.strip().splitlines()[-1]))
    return statistics.median(times)


def throughput(fn, batch_items: int, seconds: float = 3.0) -> float:  # type: ignore[no-untyped-def]
    fn()  # warm-up
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn()
        count += 1
    return count * batch_items / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--zoo", type=Path, default=ROOT / ".modhub" / "zoo")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()

    import torch

    from modhub.zoo import build_zoo

    build_zoo(args.zoo, only=["efficientnet-lite0-classification", "minilm-l6"], progress=False)
    image_dir = args.zoo / "efficientnet-lite0-classification"
    text_dir = args.zoo / "minilm-l6"

    rows = []
    for label, hub_script, eager_script, module_dir in (
        ("image efficientnet-lite0", HUB_IMAGE, EAGER_IMAGE, image_dir),
        ("text  minilm-l6", HUB_TEXT, EAGER_TEXT, text_dir),
    ):
        hub_s = cold_start(hub_script, str(module_dir), args.repeats)
        eager_s = cold_start(eager_script, str(module_dir), args.repeats)
        rows.append(
            {
                "what": f"cold start {label}",
                "hub": hub_s,
                "eager": eager_s,
                "ratio": hub_s / eager_s,
                "unit": "s",
                "goal": "<= 0.8",
            }
        )

    for label, module_dir in (("image efficientnet-lite0", image_dir), ("text  minilm-l6", text_dir)):
        proc = subprocess.run(
            [sys.executable, "-c", RELOAD, str(module_dir)],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        )
        for line in proc.stdout.split("\n"):
            if line.strip():
                runtime, first, again = line.split()
                rows.append(
                    {
                        "what": f"load {runtime:<5} {label}",
                        "hub": float(again),
                        "eager": float(first),
                        "ratio": float(again) / float(first),
                        "unit": "s",
                        "goal": "(2nd load / 1st: no re-hash)",
                    }
                )

    import modhub as hub
    from modhub.zoo._bert import load_sentence_encoder
    from modhub.zoo._text import minilm_dir
    from modhub.zoo._vision import build_model
    from modhub.zoo.image import EFFICIENTNET_LITE0

    torch.set_grad_enabled(False)
    images = torch.rand(32, 3, 224, 224)
    module = hub.load(image_dir, runtime="torch")
    eager = build_model(EFFICIENTNET_LITE0, classify=True).eval()
    hub_ips = throughput(lambda: module(images), 32)
    eager_ips = throughput(lambda: eager(images), 32)
    rows.append(
        {
            "what": "throughput image torch (batch 32)",
            "hub": hub_ips,
            "eager": eager_ips,
            "ratio": hub_ips / eager_ips,
            "unit": "img/s",
            "goal": ">= 1.0",
        }
    )

    sentences = [f"Sentence number {i} about a cat, a dog and the weather today." for i in range(64)]
    text_module = hub.load(text_dir, runtime="torch")
    encoder = load_sentence_encoder(minilm_dir()).eval()
    tokenize = text_module._encoder  # same tokenisation for both sides: only the model differs
    hub_sps = throughput(lambda: text_module(sentences), 64)
    eager_sps = throughput(lambda: encoder(*tokenize(sentences)), 64)
    rows.append(
        {
            "what": "throughput text torch (batch 64)",
            "hub": hub_sps,
            "eager": eager_sps,
            "ratio": hub_sps / eager_sps,
            "unit": "sent/s",
            "goal": ">= 1.0",
        }
    )

    print(f"{'measure':<36}{'modhub':>12}{'eager':>12}{'ratio':>9}  goal")
    print("(for 'load' rows: the columns are the second and the first load in one process)")
    for row in rows:
        print(
            f"{row['what']:<36}{row['hub']:>10.2f}{row['unit'][:2]:>2}{row['eager']:>10.2f}{row['unit'][:2]:>2}"
            f"{row['ratio']:>8.2f}x  {row['goal']}"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
