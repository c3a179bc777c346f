"""A long schemathesis run against a real hub on loopback (the test suite runs a bounded one).

Starts ``modhub serve`` on a fresh data directory, publishes a tiny module, and runs
``schemathesis run --checks all`` with a valid token and every phase (examples, coverage,
fuzzing, stateful with the spec's OpenAPI links). Prints the summary: operations, generated
cases, failures.

    python bench/bench_contract.py [--max-examples 500] [--seed 1]
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-examples", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    import torch
    from tests.server.contract import contract_run
    from tests.tiny_models import TinyCNN

    import modhub as hub

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        torch.manual_seed(0)
        module = hub.export(
            TinyCNN(classes=6).eval(),
            torch.rand(2, 3, 32, 32),
            work / "tiny",
            task="image-feature-vector",
            license="Apache-2.0",
            metadata={"title": "Tiny", "description": "contract run", "tags": ["test"]},
        )
        start = time.monotonic()
        result = contract_run(work, module, max_examples=args.max_examples, seed=args.seed, timeout=3 * 3600)
        took = time.monotonic() - start
    start_at = result.output.find("FAILURES")
    if start_at < 0:
        start_at = result.output.rfind("SUMMARY")
    summary = result.output[max(start_at, 0) :]
    print(summary.strip())
    found = re.search(r"(\d+) generated, (\d+) (?:passed|found)", summary)
    print(
        f"\nschemathesis --checks all, max-examples {args.max_examples}, seed {args.seed}: "
        f"{found.group(1) if found else '?'} cases in {took:.0f} s, exit code {result.returncode}"
    )
    sys.exit(result.returncode)


if __name__ == "__main__":
    main()
