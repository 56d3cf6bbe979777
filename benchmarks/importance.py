"""Benchmark: the senior tranche's expected loss to a 5% relative standard error with importance
sampling, against plain sampling.

The deal is the shipped ``scenarios/nanshan_guaranteed_ip_pledge.yaml``: twelve guaranteed
IP-pledge loans whose senior notes lose only when the guarantee company fails together with
several borrowers (about one plain path in a thousand).

Figures (printed with their targets; nothing here fails on a slow machine):

1. importance sampling: wall seconds of ``ipabs.simulate(..., importance_sampling=True)``
   (pilot runs included) with enough paths for a relative standard error of at most 5% on the
   senior's expected loss (target: <= 5 s on 2 cores);
2. plain sampling: the paths it needs for the same standard error, from a plain run's own
   variance, divided by the paths importance sampling used (target: >= 20x);
3. agreement: the two estimates differ by how many combined standard errors.

Usage::

    python benchmarks/importance.py            # full sizes
    python benchmarks/importance.py --short    # CI: smaller plain run
    python benchmarks/importance.py --json     # the figures as one JSON document
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import ipabs
from ipabs.engine.compile import compile_deal

ROOT = Path(__file__).resolve().parents[1]
DEAL = ROOT / "scenarios" / "nanshan_guaranteed_ip_pledge.yaml"
TRANCHE = "senior"
TARGET_RSE = 0.05
TARGETS = {"importance_sampling": ("seconds", "<=", 5.0), "plain_paths_ratio": ("ratio", ">=", 20.0)}


def _senior(result: Any) -> tuple[float, float]:
    row = result.tranches.loc[TRANCHE]
    return float(row["expected_loss"]), float(row["expected_loss_se"])


def importance(model: Any, seed: int) -> dict[str, Any]:
    """Figure 1: grow the paths until the relative standard error is at most 5%; the time is
    that of the last, sufficient run (a user who knows the size needed runs it once)."""
    paths = 10_000
    for _ in range(6):
        start = time.perf_counter()
        result = ipabs.simulate(model, paths=paths, seed=seed, importance_sampling=True)
        seconds = time.perf_counter() - start
        el, se = _senior(result)
        rse = se / el if el > 0 else math.inf
        if rse <= TARGET_RSE:
            break
        paths = math.ceil(paths * (rse / TARGET_RSE) ** 2 * 1.1 / 1000.0) * 1000
    assert result.sampling is not None
    return {
        "paths": paths,
        "pilot_paths": result.sampling.pilot_paths,
        "seconds": seconds,
        "expected_loss": el,
        "expected_loss_se": se,
        "relative_se": rse,
        "variance_reduction": float(result.tranches.loc[TRANCHE, "expected_loss_vrf"]),
        "sampling": result.sampling.reason,
    }


def plain(model: Any, seed: int, paths: int, is_figures: dict[str, Any]) -> dict[str, Any]:
    """Figure 2 and 3: a plain run's variance gives the paths it needs for the same error."""
    start = time.perf_counter()
    result = ipabs.simulate(model, paths=paths, seed=seed)
    seconds = time.perf_counter() - start
    el, se = _senior(result)
    target_se = is_figures["expected_loss_se"]
    needed = paths * (se / target_se) ** 2 if target_se > 0 else math.inf
    z = (is_figures["expected_loss"] - el) / math.hypot(se, target_se) if se > 0 else math.nan
    return {
        "paths": paths,
        "seconds": seconds,
        "expected_loss": el,
        "expected_loss_se": se,
        "paths_needed": needed,
        "seconds_needed": seconds * needed / paths,
        "ratio": needed / is_figures["paths"],
        "z": z,
    }


def _status(value: float, op: str, target: float) -> str:
    return "met" if (value <= target if op == "<=" else value >= target) else "MISSED"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="CI sizes")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args(argv)
    model = compile_deal(ipabs.load_deal(DEAL))
    ipabs.simulate(model, paths=2_000, seed=1, importance_sampling=True)  # compile and warm up
    is_figures = importance(model, seed=1)
    plain_figures = plain(model, seed=2, paths=200_000 if args.short else 1_000_000, is_figures=is_figures)
    doc = {
        "mode": "short" if args.short else "full",
        "deal": str(DEAL.relative_to(ROOT)),
        "tranche": TRANCHE,
        "cores": os.cpu_count(),
        "figures": {
            "importance_sampling": {**is_figures, "target": {"figure": "seconds", "op": "<=", "value": 5.0}},
            "plain_paths_ratio": {**plain_figures, "target": {"figure": "ratio", "op": ">=", "value": 20.0}},
        },
    }
    if args.json:
        print(json.dumps(doc, indent=2))
        return 0
    i, p = is_figures, plain_figures
    print(
        f"ipabs {ipabs.__version__}, {os.cpu_count()} cores, {doc['mode']} sizes; {doc['deal']}, {TRANCHE}\n"
    )
    print(
        f"1 importance sampling to {TARGET_RSE:.0%} relative se: {i['seconds']:.2f} s "
        f"for {i['paths']:,} paths "
        f"(+{i['pilot_paths']:,} pilot paths); expected loss {100 * i['expected_loss']:.5f}% "
        f"± {100 * i['expected_loss_se']:.5f}% (relative {i['relative_se']:.1%}); variance reduction "
        f"{i['variance_reduction']:.1f}x   target <= 5 s: {_status(i['seconds'], '<=', 5.0)}"
    )
    print(
        f"2 plain sampling needs {p['paths_needed']:,.0f} paths for the same se ({p['ratio']:.1f}x as many; "
        f"about {p['seconds_needed']:.1f} s), from a plain run of {p['paths']:,} paths "
        f"in {p['seconds']:.2f} s   "
        f"target >= 20x: {_status(p['ratio'], '>=', 20.0)}"
    )
    print(
        f"3 plain estimate {100 * p['expected_loss']:.5f}% ± {100 * p['expected_loss_se']:.5f}%; "
        f"difference {p['z']:+.2f} combined se"
    )
    print(f"\nsampling: {i['sampling']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
