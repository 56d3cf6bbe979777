"""Benchmark: deterministic runs, shipped scenarios and a 100,000-loan tape.

Prints, per case, the best-of-N seconds for each stage (load + validate, compile, run). Usage::

    python3 benchmarks/deterministic_run.py            # full
    python3 benchmarks/deterministic_run.py --short    # CI: 10,000 loans, one repeat

Figures are informational; nothing here fails on a slow machine.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

import ipabs
from ipabs.api import run
from ipabs.engine.compile import compile_deal

ROOT = Path(__file__).resolve().parents[1]


def _best(fn, repeat: int) -> tuple[float, object]:
    best, value = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - t)
    return best, value


def tape_deal(folder: Path, n: int) -> Path:
    """Write an ``n``-loan tape and a deal that uses it; return the deal path."""
    rng = np.random.default_rng(7)
    frame = pd.DataFrame(
        {
            "id": [f"L{i}" for i in range(n)],
            "obligor": [f"SME-{i}" for i in range(n)],
            "balance": rng.uniform(1e5, 1e6, n).round(2),
            "rate": rng.uniform(0.04, 0.08, n).round(4),
            "term_months": rng.integers(6, 36, n),
            "amortisation": rng.choice(["annuity", "equal_principal", "interest_only_then_bullet"], n),
            "payment_frequency": "monthly",
        }
    )
    frame.to_csv(folder / "tape.csv", index=False)
    total = float(frame["balance"].sum())
    deal = folder / "tape_deal.yaml"
    deal.write_text(
        f"""deal: {{name: Tape benchmark, closing_date: 2025-01-15, first_payment_date: 2025-02-15,
       payment_frequency: monthly, legal_final_date: 2028-02-15}}
pools: [{{name: tape, tape: {{path: tape.csv}}}}]
scenarios:
  base: {{defaults: {{cdr: 0.03}}, prepayment: {{cpr: 0.05}}, recovery: {{rate: 0.3, lag_months: 6}}}}
tranches:
  - {{name: a, balance: {total * 0.85:.2f}, coupon: 3%}}
  - {{name: b, balance: {total * 0.15:.2f}}}
waterfalls:
  normal: [{{pay_interest: a}}, {{pay_principal: [a, b]}}, {{pay_residual: b}}]
""",
        encoding="utf-8",
    )
    return deal


def measure(path: Path, repeat: int) -> dict[str, float]:
    t_load, deal = _best(lambda: ipabs.load_deal(path), repeat)
    t_compile, model = _best(lambda: compile_deal(deal), repeat)
    scenario = next(iter(deal.spec.scenarios))
    t_run, _ = _best(lambda: run(model, scenario), repeat)
    return {"load": t_load, "compile": t_compile, "run": t_run, "assets": len(model.assets)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="small tape, one repeat (for CI)")
    args = parser.parse_args(argv)
    repeat = 1 if args.short else 3
    n_loans = 10_000 if args.short else 100_000
    run(ipabs.load_deal(ROOT / "scenarios" / "caohejing_ip_pledge.yaml"))  # JIT warm-up
    print(f"{'case':34s} {'assets':>8s} {'load s':>8s} {'compile s':>10s} {'run s':>8s}")
    cases = sorted((ROOT / "scenarios").glob("*.yaml"))
    with tempfile.TemporaryDirectory() as tmp:
        cases.append(tape_deal(Path(tmp), n_loans))
        for path in cases:
            m = measure(path, repeat)
            name = path.stem if path.parent.name == "scenarios" else f"tape ({n_loans:,} loans)"
            print(f"{name:34s} {m['assets']:8d} {m['load']:8.3f} {m['compile']:10.3f} {m['run']:8.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
