"""Time a from-scratch build of the starter modules, and check it is reproducible.

Builds the default starters twice into fresh temporary directories (no cache),
reports wall time per module and in total, module sizes, and whether every
file's sha256 is equal across the two builds.

    python bench/bench_zoo_build.py [--only NAME ...] [--once] [--json bench/results/zoo_build.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path

from modhub.zoo import build_zoo
from modhub.zoo.build import select


def digests(module_dir: Path) -> dict[str, str]:
    return {
        p.relative_to(module_dir).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(module_dir.rglob("*"))
        if p.is_file() and not p.name.startswith(".")
    }


def build_once(root: Path, names: list[str]) -> dict[str, dict[str, object]]:
    rows: dict[str, dict[str, object]] = {}
    for name in names:
        start = time.perf_counter()
        (path,) = build_zoo(root, only=[name], progress=False)
        files = digests(path)
        rows[name] = {
            "seconds": round(time.perf_counter() - start, 1),
            "megabytes": round(sum((path / f).stat().st_size for f in files) / 1e6, 1),
            "sha256": files,
        }
        print(f"{name:36} {rows[name]['seconds']:6.1f} s {rows[name]['megabytes']:7.1f} MB", file=sys.stderr)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", action="append", help="starter to build (repeatable); default: all")
    parser.add_argument("--once", action="store_true", help="build once (skip the reproducibility build)")
    parser.add_argument("--json", type=Path, help="write the measurements here")
    args = parser.parse_args()
    names = [s.name for s in select(args.only)]
    runs: list[dict[str, object]] = []
    shas: list[dict[str, dict[str, str]]] = []
    for _ in range(1 if args.once else 2):
        with tempfile.TemporaryDirectory(prefix="modhub-zoo-bench-") as tmp:
            start = time.perf_counter()
            rows = build_once(Path(tmp), names)
            total = round(time.perf_counter() - start, 1)
            print(f"{'total':36} {total:6.1f} s", file=sys.stderr)
            runs.append({"total_seconds": total, "modules": rows})
            shas.append({name: row["sha256"] for name, row in rows.items()})  # type: ignore[misc]
    result: dict[str, object] = {"runs": runs}
    if len(shas) == 2:
        first, second = shas
        differ = {n: sorted(f for f, h in first[n].items() if second[n].get(f) != h) for n in names}
        result["reproducible"] = not any(differ.values())
        result["differing_files"] = {n: fs for n, fs in differ.items() if fs}
        print(f"reproducible: {result['reproducible']}", file=sys.stderr)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
