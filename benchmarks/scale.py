"""Benchmark: what a Monte Carlo path costs as deals grow, against the generator's floor.

Figures (printed beside the baseline in ``benchmarks/scale_baseline.json``, measured before
the work on per-path cost; nothing here fails on a slow or busy machine):

1. fixed per-path cost: a 125-obligor, one-period deal with six tranches, seconds per 200,000
   paths on 2 threads;
2. the 1,000-loan, 60-month benchmark deal of ``benchmarks/montecarlo.py``, seconds per
   100,000 paths on 2 threads;
3. a granular pool: 20,000 obligors (one loan each, from a loan tape), seconds per 100,000
   paths on 2 threads;
4. a 100,000-loan tape: paths per second on 2 threads;
5. for each deal, a whole path against the generator's floor: the time to draw one uniform per
   obligor with the same generator, per path; and the obligors defaulting owing something per
   path (a pool of one PD draws its defaulters, not its obligors: see docs/montecarlo.md).

Usage::

    python benchmarks/scale.py             # full sizes (a few minutes)
    python benchmarks/scale.py --short     # fewer paths
    python benchmarks/scale.py --json      # the figures as one JSON document
    python benchmarks/scale.py --save      # write these figures as the new baseline
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

ROOT = Path(__file__).resolve().parents[1]
BASELINE = Path(__file__).resolve().parent / "scale_baseline.json"

SMALL_DEAL = """\
deal: {name: "fixed cost (125 obligors)", closing_date: 2025-01-15, first_payment_date: 2026-01-15,
       payment_frequency: annual, legal_final_date: 2026-01-15, day_count: 30/360}
pools:
  - name: p
    loans:
LOANS
tranches:
  - {name: t1, balance: 60m, coupon: 2%}
  - {name: t2, balance: 10m, coupon: 3%}
  - {name: t3, balance: 10m, coupon: 4%}
  - {name: t4, balance: 8m, coupon: 5%}
  - {name: t5, balance: 7m, coupon: 6%}
  - {name: t6, balance: 5m}
risk:
  correlation: 0.25
  default_pd: 2%
  recovery: {model: constant, rate: 40%, lag_months: 0}
waterfalls:
  normal:
    - pay_interest: t1
    - pay_interest: t2
    - pay_interest: t3
    - pay_interest: t4
    - pay_interest: t5
    - pay_principal: {tranches: [t1, t2, t3, t4, t5, t6]}
    - pay_residual: t6
"""

TAPE_DEAL = """\
deal: {name: "granular pool (ROWS loans)", closing_date: 2025-01-15, first_payment_date: 2025-02-15,
       payment_frequency: monthly, legal_final_date: 2030-01-15, day_count: 30/360}
pools:
  - name: micro
    tape:
      path: tape.csv
      defaults: {payment_frequency: monthly, amortisation: annuity, day_count: 30/360}
tranches:
  - {name: senior, balance: SENIOR, coupon: 3%}
  - {name: junior, balance: JUNIOR}
risk:
  correlation: 0.15
  default_pd: 2%
  recovery: {model: constant, rate: 30%, lag_months: 6}
waterfalls:
  normal:
    - pay_interest: senior
    - pay_principal: {tranches: [senior, junior]}
    - pay_residual: junior
"""


def small_deal() -> str:
    loans = "\n".join(
        f"      - {{obligor: O{i:03d}, balance: 800000, rate: 5%, term_months: 12, amortisation: bullet}}"
        for i in range(125)
    )
    return SMALL_DEAL.replace("LOANS", loans)


def tape_deal(folder: Path, rows: int, seed: int = 3) -> Path:
    rng = np.random.default_rng(seed)
    balance = rng.integers(50_000, 500_000, rows)
    lines = ["id,obligor,balance,rate,term_months"]
    rate = rng.uniform(0.04, 0.09, rows).round(4)
    term = rng.integers(12, 60, rows)
    lines += [f"L{i},B{i},{balance[i]},{rate[i]},{term[i]}" for i in range(rows)]
    (folder / "tape.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    total = int(balance.sum())
    senior = int(total * 0.9)
    text = TAPE_DEAL.replace("ROWS", f"{rows:,}").replace("SENIOR", str(senior))
    path = folder / "deal.yaml"
    path.write_text(text.replace("JUNIOR", str(total - senior)), encoding="utf-8")
    return path


def _seconds(model: Any, paths: int, repeat: int) -> tuple[float, float]:
    """Best seconds of at least ``repeat`` runs (more, up to ten, while they have taken under
    two seconds: a run of a tenth of a second is at the mercy of one stray interrupt), and the
    mean number of obligors defaulting owing something per path (what a granular pool's path
    costs in proportion to)."""
    from ipabs.montecarlo import POOL_OUTCOMES, simulate

    simulate(model, paths=min(paths, 2_000), seed=1, threads=2)  # compile, warm the caches
    best = math.inf
    defaults = 0.0
    runs = 0
    spent = 0.0
    while runs < repeat or (spent < 2.0 and runs < 10):
        start = time.perf_counter()
        result = simulate(model, paths=paths, seed=1, threads=2)
        took = time.perf_counter() - start
        best = min(best, took)
        spent += took
        runs += 1
        defaults = float(result.pool_outcomes[:, POOL_OUTCOMES.index("defaults")].mean())
        del result  # the next run allocates its own outcomes
    return best, defaults


def _uniform_floor(n_obligors: int) -> float:
    """Seconds per path to draw one uniform per obligor with the kernel's generator, on one
    thread (the floor of a path that draws every obligor)."""
    from montecarlo import _uniform_loop  # the generator loop of figure 1

    draws = 20_000_000
    _uniform_loop(7, 1_000, 1)
    start = time.perf_counter()
    _uniform_loop(7, draws // 1_000, 1_000)
    per_draw = (time.perf_counter() - start) / draws
    return per_draw * n_obligors


def measure(short: bool) -> dict[str, Any]:
    import gc

    import montecarlo as mc_bench

    from ipabs.api import _model
    from ipabs.deal.load import load_deal, parse_deal

    out: dict[str, Any] = {}
    scale = 10 if short else 1
    with tempfile.TemporaryDirectory() as tmp:

        def tape(rows: int) -> Any:
            folder = Path(tmp) / str(rows)
            folder.mkdir()
            return _model(load_deal(tape_deal(folder, rows)))

        # each deal is built just before it runs and dropped after: a process holding the
        # 100,000-loan tape's frames makes every later run pay for the garbage collector's
        # walks over them, which is not the cost of a path
        deals = [
            (
                "fixed_cost",
                lambda: _model(parse_deal(small_deal(), "fixed_cost.yaml")),
                200_000 // scale,
                125,
            ),
            (
                "pool_1000",
                lambda: _model(parse_deal(mc_bench.deal_yaml(mc_bench.make_pool(1_000)), "pool.yaml")),
                100_000 // scale,
                1_000,
            ),
            ("tape_20000", lambda: tape(20_000), 100_000 // scale, 20_000),
            ("tape_100000", lambda: tape(100_000), 10_000 // scale, 100_000),
        ]
        for name, build, paths, obligors in deals:
            model = build()
            seconds, defaults = _seconds(model, paths, 1 if short else 3)
            del model
            gc.collect()
            floor = _uniform_floor(obligors) / 2  # two threads
            out[name] = {
                "paths": paths,
                "seconds": round(seconds, 4),
                "us_per_path": round(seconds / paths * 1e6, 3),
                "paths_per_second": round(paths / seconds),
                "generator_floor_us_per_path": round(floor * 1e6, 4),
                "over_floor": round(seconds / paths / floor, 1),
                "defaults_per_path": round(defaults, 1),
            }
    return out


TARGETS = {
    "fixed_cost": "<= 0.11 s per 200,000 paths",
    "pool_1000": "<= 0.4 s per 100,000 paths",
    "tape_20000": "cost in proportion to defaulters",
    "tape_100000": ">= 10x the baseline's paths per second",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="a tenth of the paths")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--save", action="store_true", help=f"write the figures to {BASELINE.name}")
    args = parser.parse_args()
    figures = measure(args.short)
    if args.save:
        BASELINE.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    baseline = json.loads(BASELINE.read_text(encoding="utf-8")) if BASELINE.exists() else {}
    if args.json:
        print(json.dumps({"figures": figures, "baseline": baseline}, indent=2))
        return 0
    print("whole paths on 2 threads, best of runs; baseline: benchmarks/scale_baseline.json")
    head = f"{'deal':<12} {'paths':>9} {'us/path':>9} {'baseline':>9} {'paths/s':>11} {'x floor':>8}"
    print(f"{head} {'defaults':>9}  target")
    for name, f in figures.items():
        base = baseline.get(name, {}).get("us_per_path")
        shown = f"{base:9.3f}" if base is not None else f"{'-':>9}"
        print(
            f"{name:<12} {f['paths']:>9,} {f['us_per_path']:>9.3f} {shown} {f['paths_per_second']:>11,}"
            f" {f['over_floor']:>8.1f} {f['defaults_per_path']:>9,.1f}  {TARGETS[name]}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
