"""What the formats-agree check costs: the hub's publish check on each starter module.

    python bench/bench_agree.py [ZOO_DIR]     (default .modhub/zoo, as `modhub zoo build` leaves it)

For each module directory: the wall time of ``check_formats_agree`` (the child process the hub
starts on publish: imports, verifying and building each format, the probe batch), the seconds
per format inside it, and the largest difference found against what was allowed.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from modhub.loading.agree import AGREE_SECONDS, PROBE_BATCH, check_formats_agree


def main() -> None:
    zoo = Path(sys.argv[1] if len(sys.argv) > 1 else ".modhub/zoo")
    print(f"probe batch {PROBE_BATCH}, time limit {AGREE_SECONDS:.0f} s")
    print(f"{'module':<36} {'wall s':>7}  formats (s)                 max diff / allowed  outcome")
    for module in sorted(p for p in zoo.iterdir() if (p / "modhub.json").is_file()):
        started = time.perf_counter()
        report = check_formats_agree(module)
        wall = time.perf_counter() - started
        sig = report.signatures[0] if report.signatures else None
        formats = ", ".join(f"{k} {v:.1f}" for k, v in (sig.seconds if sig else {}).items()) or "-"
        diff = (
            f"{sig.max_abs_diff:.2g} / {sig.allowed:.2g}"
            if sig and sig.max_abs_diff is not None and sig.allowed is not None
            else "-"
        )
        outcome = (
            "agree"
            if report.agrees and not report.notes()
            else (report.unchecked or "; ".join(report.problems) or "; ".join(report.notes()))
        )
        print(f"{module.name:<36} {wall:>7.1f}  {formats:<27} {diff:>18}  {outcome[:80]}")


if __name__ == "__main__":
    main()
