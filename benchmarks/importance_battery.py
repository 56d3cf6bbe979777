"""Benchmark: the importance-sampling battery in full.

Pools whose senior loss probability and expected loss are known exactly (quadrature over the
factor, exact convolution of the conditional loss distribution; ``tests/is_reference.py``):
1,000 obligors with PDs in (0, 2%] and exposures of 1-25 units, one Gaussian factor with loading
0.3, recovery 0, laid out as a group per obligor, ten groups, a hundred groups, a homogeneous pool
and a pool behind one guarantor, with the senior attaching where its loss probability is about
1e-3, 1e-4, 1e-6 and 1e-8. Each case runs 30 seeds under the default sampling choice (``auto``).

Printed per case: the exact loss probability, the largest |z| of the probability and of the
expected loss over the seeds (target <= 4), the spread of the estimates across seeds over their
mean reported standard error (target 0.7-1.5), the share of seeds whose diagnostics passed, the
samplings used and the seconds taken. Nothing here fails on a slow machine; the exit status is 1
only when an estimate misses its target.

Usage::

    python benchmarks/importance_battery.py             # full: 1,000 obligors, 20,000 paths
    python benchmarks/importance_battery.py --short     # CI sizes (the test suite's battery)
    python benchmarks/importance_battery.py --json
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import is_battery as battery  # noqa: E402


def run(cases: tuple[battery.Case, ...], seeds: int, paths: int, out: Any) -> list[dict[str, Any]]:
    figures = []
    for case in cases:
        start = time.perf_counter()
        outcome = battery.run_case(case, range(seeds), paths, "auto")
        seconds = time.perf_counter() - start
        zp, ze = outcome.z()
        sp, se = outcome.spread_ratio()
        row = {
            "case": str(case),
            "exact_probability": outcome.exact_p,
            "max_abs_z_probability": float(abs(zp).max()),
            "max_abs_z_expected_loss": float(abs(ze).max()),
            "spread_over_se_probability": sp,
            "spread_over_se_expected_loss": se,
            "reliable_share": float(outcome.reliable.mean()),
            "samplings": dict(collections.Counter(outcome.methods)),
            "seconds": seconds,
            "failures": outcome.failures(),
        }
        figures.append(row)
        if out is not None:
            print(
                f"{row['case']:<46} exact {row['exact_probability']:.3g}  max|z| "
                f"{row['max_abs_z_probability']:.2f} / {row['max_abs_z_expected_loss']:.2f}  spread/se "
                f"{sp:.2f} / {se:.2f}  reliable {row['reliable_share']:.0%}  "
                f"{row['samplings']}  {seconds:.0f} s" + ("  MISSED" if row["failures"] else ""),
                file=out,
                flush=True,
            )
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--short", action="store_true", help="CI sizes: 200 obligors, 4,000 paths")
    parser.add_argument("--seeds", type=int, default=30)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    cases, paths = (battery.SMALL, 4_000) if args.short else (battery.FULL, 20_000)
    figures = run(cases, args.seeds, paths, None if args.json else sys.stdout)
    if args.json:
        print(json.dumps({"paths": paths, "seeds": args.seeds, "cases": figures}, indent=2))
    missed = [f for row in figures for f in row["failures"]]
    for line in missed:
        print(line, file=sys.stderr)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
