"""Benchmark: Monte Carlo speed and memory against the project's targets.

Figures (each printed with its target; nothing here fails on a slow machine):

1. default-time sampling: obligor-paths per second of the kernel's ``draw_defaults`` on a
   1,000-obligor pool against a plain loop drawing as many uniforms from the same generator,
   both single-threaded (target: ratio >= 0.3);
2. a 1,000-loan pool, 60 monthly periods, 3 tranches, a reserve and a trigger: seconds for
   100,000 paths with a warm JIT cache, best of 5 runs (target: <= 2 s on 2 cores);
3. the same deal as a vectorised NumPy model (``benchmarks/numpy_reference.py``): both
   timings, the speed-up (target: >= 10x) and the agreement of expected tranche losses in
   standard errors;
4. ``ipabs mc`` with 100,000 paths on ``scenarios/caohejing_ip_pledge.yaml``: wall seconds of
   the whole command, best of 3 after a warm-up run (target: <= 2 s);
5. peak memory (max RSS of a child process) for 1,000,000 paths of the 1,000-loan deal
   (target: <= 1.5 GiB).

Usage::

    python benchmarks/montecarlo.py             # full sizes (several minutes)
    python benchmarks/montecarlo.py --short     # CI: small sizes, under a minute once compiled
    python benchmarks/montecarlo.py --json      # the figures as one JSON document
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numba
import numpy as np

import ipabs
from ipabs._jit import njit
from ipabs.engine.compile import compile_deal
from ipabs.montecarlo import simulate
from ipabs.numerics.rng_numba_fns import seed_state, uniform
from ipabs.risk.model import compile_risk
from ipabs.risk.montecarlo_numba_fns import O_LOSS, allocate_scratch, draw_defaults

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy_reference as ref

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "scenarios" / "caohejing_ip_pledge.yaml"

GRADE_PD = {"A": 0.005, "B": 0.01, "C": 0.02, "D": 0.035, "E": 0.06}
GRADE_RATE = {"A": 0.045, "B": 0.05, "C": 0.06, "D": 0.07, "E": 0.085}
GRADE_MIX = (0.15, 0.30, 0.30, 0.15, 0.10)

# A risk section for the shipped scenario, used only while the scenario has none of its own.
FALLBACK_RISK = """
risk:
  factors: {global: 0.4, industry: 0.2, region: 0.3}
  recovery: {model: lognormal, value_mean: 0.1, value_dispersion: 0.6, systematic_loading: 0.5,
             lag_months: 9}
"""

TARGETS = {
    "default_sampling": ("ratio", ">=", 0.3),
    "pool_deal": ("seconds_per_100k_paths", "<=", 2.0),
    "numpy_reference": ("speedup", ">=", 10.0),
    "cli": ("seconds", "<=", 2.0),
    "memory": ("peak_rss_gib", "<=", 1.5),
}


# --------------------------------------------------------------------------- the deal


def make_pool(n_loans: int = 1_000, seed: int = 7) -> ref.PoolDeal:
    """The benchmark deal: ``n_loans`` monthly annuity loans (12 to 54 months) in five grades,
    notes A/B/C of 85/10/5%, two fees, a 2% amortising reserve and a 4% cumulative default
    trigger, over 60 monthly periods."""
    rng = np.random.default_rng(seed)
    grade = rng.choice(list(GRADE_PD), n_loans, p=GRADE_MIX)
    balance = rng.uniform(0.5e6, 3e6, n_loans).round(-3)
    total = float(balance.sum())
    a, b = round(total * 0.85), round(total * 0.10)
    return ref.PoolDeal(
        closing="2025-01-15",
        n_periods=60,
        balance=balance,
        rate=np.array([GRADE_RATE[g] for g in grade]),
        term=rng.integers(12, 55, n_loans),
        grade=grade,
        pd_by_grade=dict(GRADE_PD),
        correlation=0.2,
        recovery_rate=0.4,
        recovery_lag=6,
        tranche_names=("A", "B", "C"),
        tranche_balance=np.array([a, b, round(total) - a - b], dtype=np.float64),
        tranche_coupon=np.array([0.03, 0.05, 0.0]),
        servicing_rate=0.005,
        trustee_annual=150_000.0,
        reserve_initial=float(round(total * 0.01)),
        reserve_share=0.02,
        reserve_floor=float(round(total * 0.005)),
        trigger_threshold=0.04,
    )


def _add_months(iso: str, months: int) -> str:
    return f"{np.datetime64(iso[:7], 'M') + months}-{iso[8:]}"


def deal_yaml(pool: ref.PoolDeal) -> str:
    """The ipabs deal file of ``pool`` (loans inline, one obligor each)."""
    loans = "\n".join(
        f"      - {{obligor: SME-{i:04d}, grade: {pool.grade[i]}, balance: {pool.balance[i]:.0f}, "
        f"rate: {pool.rate[i]}, term_months: {pool.term[i]}, amortisation: annuity, "
        "payment_frequency: monthly, day_count: 30/360}"
        for i in range(pool.n_loans)
    )
    a, b, c = (f"{x:.0f}" for x in pool.tranche_balance)
    ca, cb, _ = pool.tranche_coupon
    grades = ", ".join(f"{g}: {p}" for g, p in pool.pd_by_grade.items())
    return f"""\
deal:
  name: Monte Carlo benchmark ({pool.n_loans:,} loans)
  closing_date: {pool.closing}
  first_payment_date: {_add_months(pool.closing, 1)}
  payment_frequency: monthly
  legal_final_date: {_add_months(pool.closing, pool.n_periods)}
  day_count: 30/360
pools:
  - name: smes
    loans:
{loans}
tranches:
  - {{name: {pool.tranche_names[0]}, balance: {a}, coupon: {ca}}}
  - {{name: {pool.tranche_names[1]}, balance: {b}, coupon: {cb}}}
  - {{name: {pool.tranche_names[2]}, balance: {c}}}
fees:
  - {{name: servicing, rate: {pool.servicing_rate}, base: pool_balance_start}}
  - {{name: trustee, annual_amount: {pool.trustee_annual:.0f}}}
accounts:
  - name: reserve
    initial: {pool.reserve_initial:.0f}
    target: {{share: {pool.reserve_share}, of: pool_balance, floor: {pool.reserve_floor:.0f}}}
triggers:
  - name: cumulative_defaults
    kind: cumulative_default_rate
    threshold: {pool.trigger_threshold}
    curable: false
    effect: {{sequential: true}}
risk:
  correlation: {pool.correlation}
  pd_by_grade: {{{grades}}}
  recovery: {{model: constant, rate: {pool.recovery_rate}, lag_months: {pool.recovery_lag}}}
waterfalls:
  normal:
    - pay_fee: [servicing, trustee]
    - pay_interest: A
    - pay_interest: B
    - draw: {{from: reserve, covers: [A.interest, B.interest]}}
    - fund_account: reserve
    - pay_principal: {{tranches: [A, B, C], mode: pro_rata}}
    - pay_residual: C
"""


# --------------------------------------------------------------------------- helpers


def _best(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    best, value = math.inf, None
    for _ in range(repeat):
        t = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - t)
    return best, value


@njit
def _draw_loop(cd, ra, seed, paths):  # type: ignore[no-untyped-def]
    """``draw_defaults`` for ``paths`` paths; returns the sum of the default periods (T for an
    obligor that survives), read from the defaulters it lists."""
    return _draw_paths(ra, allocate_scratch(cd, ra), seed, paths)


@njit(leaf=True)
def _draw_paths(ra, sc, seed, paths):  # type: ignore[no-untyped-def]
    # a leaf loop, as the simulation's: draw_defaults is inlined into it
    n_ob = sc.ob_period.shape[0]
    total = 0
    for p in range(paths):
        seed_state(sc.state, seed, p, 0)
        n_d = draw_defaults(ra, sc)
        total += (n_ob - n_d) * ra.n_periods
        for i in range(n_d):
            total += sc.ob_period[sc.d_obligor[i]]
    return total


@njit
def _default_periods(cd, ra, seed, paths):  # type: ignore[no-untyped-def]
    """(paths, obligors) default periods of paths 0 .. paths - 1, as the simulation draws them."""
    sc = allocate_scratch(cd, ra)
    out = np.empty((paths, ra.ob_group.shape[0]), dtype=np.int64)
    for p in range(paths):
        seed_state(sc.state, seed, p, 0)
        draw_defaults(ra, sc)
        out[p] = sc.ob_period
    return out


@njit
def _uniform_loop(seed, paths, n):  # type: ignore[no-untyped-def]
    """``n`` uniforms for each of ``paths`` paths from the same generator; returns their sum."""
    state = np.empty(4, dtype=np.uint64)
    total = 0.0
    for p in range(paths):
        seed_state(state, seed, p, 0)
        for _ in range(n):
            total += uniform(state)
    return total


# --------------------------------------------------------------------------- figures


def default_sampling(deal_path: Path, paths: int, repeat: int) -> dict[str, Any]:
    """Figure 1: obligor-paths per second of ``draw_defaults`` against plain uniforms (best of
    ``repeat`` each)."""
    model = compile_deal(ipabs.load_deal(deal_path))
    ra = compile_risk(model)
    n = int(ra.ob_group.shape[0])
    _draw_loop(model.cd, ra, 1, 2)
    _uniform_loop(1, 2, n)
    t_draw = t_unif = math.inf
    for _ in range(repeat):  # interleaved, so that both see the same machine
        t_draw = min(t_draw, _best(lambda: _draw_loop(model.cd, ra, 1, paths), 1)[0])
        t_unif = min(t_unif, _best(lambda: _uniform_loop(1, paths, n), 1)[0])
    draws, unifs = paths * n / t_draw, paths * n / t_unif
    return {
        "paths": paths,
        "obligors": n,
        "draw_defaults_per_s": draws,
        "uniforms_per_s": unifs,
        "ratio": draws / unifs,
    }


def pool_deal(
    deal_path: Path, paths: int, threads: int | None, repeat: int
) -> tuple[dict[str, Any], Any, Any]:
    """Figure 2: seconds for ``paths`` paths of the 1,000-loan deal (warm JIT cache), best of
    ``repeat`` runs (all of them are reported: on a shared machine they spread widely); also
    returns the compiled model and the simulation result (seed 1)."""
    t_load, deal = _best(lambda: ipabs.load_deal(deal_path), 1)
    t_compile, model = _best(lambda: compile_deal(deal), 1)
    t_first, _ = _best(lambda: simulate(model, paths=100, seed=1, threads=threads), 1)
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = simulate(model, paths=paths, seed=1, threads=threads)
        runs.append(time.perf_counter() - start)
    seconds = min(runs)
    return (
        {
            "loans": len(model.assets),
            "periods": model.n_periods,
            "tranches": len(model.tranche_names),
            "paths": paths,
            "threads": threads or os.cpu_count(),
            "seconds": seconds,
            "paths_per_s": paths / seconds,
            "seconds_per_100k_paths": seconds * 100_000 / paths,
            "runs": runs,
            "load_seconds": t_load,
            "compile_seconds": t_compile,
            "first_call_seconds": t_first,
        },
        model,
        result,
    )


def same_draws(pool: ref.PoolDeal, model: Any, ipabs_result: Any, paths: int) -> float:
    """Largest difference (currency units) between the tranche losses of ipabs and of the
    NumPy collections and waterfall fed with ipabs's own default periods, over the first
    ``paths`` paths of seed 1: the two models are the same up to rounding."""
    ra = compile_risk(model)
    tau = _default_periods(model.cd, ra, 1, paths)[:, ra.a_obligor]  # per loan, in tape order
    loss = ref.waterfall(pool, ref.collections(pool, tau, ref.loan_flows(pool)))
    return float(np.abs(loss - ipabs_result.tranche_outcomes[:paths, :, O_LOSS]).max())


def numpy_reference(
    pool: ref.PoolDeal, paths: int, ipabs_seconds: float, model: Any, ipabs_result: Any
) -> dict[str, Any]:
    """Figure 3: the NumPy model of the same deal: time, speed-up and agreement."""
    seconds, result = _best(lambda: ref.simulate(pool, paths=paths, seed=2), 1)
    tranches = {}
    for k, name in enumerate(pool.tranche_names):
        row = ipabs_result.tranches.loc[name]
        a, sa = float(row["expected_loss"]), float(row["expected_loss_se"])
        b, sb = float(result.expected_loss[k]), float(result.expected_loss_se[k])
        se = math.hypot(sa, sb)
        tranches[name] = {
            "ipabs": a,
            "ipabs_se": sa,
            "numpy": b,
            "numpy_se": sb,
            "z": (a - b) / se if se > 0 else 0.0,
        }
    pool_row = ipabs_result.pool.iloc[0]
    a, sa = float(pool_row["expected_loss"]), float(pool_row["expected_loss_se"])
    b = float(result.pool_loss_rate.mean())
    sb = float(result.pool_loss_rate.std(ddof=1) / math.sqrt(paths))
    tranches["pool"] = {
        "ipabs": a,
        "ipabs_se": sa,
        "numpy": b,
        "numpy_se": sb,
        "z": (a - b) / math.hypot(sa, sb),
    }
    return {
        "paths": paths,
        "numpy_seconds": seconds,
        "ipabs_seconds": ipabs_seconds,
        "speedup": seconds / ipabs_seconds,
        "expected_loss": tranches,
        "max_abs_z": max(abs(x["z"]) for x in tranches.values()),
        "same_draws_paths": min(paths, 2_000),
        "same_draws_max_abs_diff": same_draws(pool, model, ipabs_result, min(paths, 2_000)),
    }


def _scenario_with_risk(folder: Path) -> tuple[Path, str]:
    if ipabs.load_deal(SCENARIO).spec.risk is not None:
        return SCENARIO, "the scenario's own"
    copy = folder / SCENARIO.name
    copy.write_text(SCENARIO.read_text(encoding="utf-8") + FALLBACK_RISK, encoding="utf-8")
    return copy, "added by the benchmark (the scenario has none yet)"


def cli(folder: Path, paths: int, repeat: int) -> dict[str, Any]:
    """Figure 4: wall seconds of ``ipabs mc`` on the shipped scenario, best of ``repeat``."""
    path, risk = _scenario_with_risk(folder)
    cmd = [sys.executable, "-m", "ipabs", "mc", str(path), "--paths", str(paths), "--seed", "1"]

    def once() -> float:
        t = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT)
        return time.perf_counter() - t

    warm_up = once()
    runs = [once() for _ in range(repeat)]
    return {
        "scenario": SCENARIO.relative_to(ROOT).as_posix(),
        "risk_section": risk,
        "paths": paths,
        "seconds": min(runs),
        "runs": runs,
        "warm_up_seconds": warm_up,
    }


_MEMORY_CHILD = """\
import sys, time
from ipabs.montecarlo import simulate
t = time.perf_counter()
simulate(sys.argv[1], paths=int(sys.argv[2]), seed=1)
print(time.perf_counter() - t)
"""

# A wrapper process whose only child is the simulation, so that RUSAGE_CHILDREN is that child's.
_MEMORY_WRAPPER = """\
import resource, subprocess, sys
out = subprocess.run([sys.executable, "-c", sys.argv[1], *sys.argv[2:]], check=True,
                     capture_output=True, text=True).stdout
print(out.strip(), resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def memory(deal_path: Path, paths: int) -> dict[str, Any]:
    """Figure 5: peak resident memory of a process simulating ``paths`` paths (after a small
    run in another process, so that a stale JIT cache's compilation is not counted)."""
    subprocess.run(
        [sys.executable, "-c", _MEMORY_CHILD, str(deal_path), "100"], check=True, capture_output=True
    )
    out = subprocess.run(
        [sys.executable, "-c", _MEMORY_WRAPPER, _MEMORY_CHILD, str(deal_path), str(paths)],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    ).stdout.split()
    seconds, max_rss = float(out[0]), int(out[1])
    kib = max_rss if sys.platform != "darwin" else max_rss / 1024  # macOS reports bytes
    return {"paths": paths, "peak_rss_gib": kib / 2**20, "seconds": seconds}


# --------------------------------------------------------------------------- report


def _status(name: str, figures: dict[str, Any], short: bool) -> str:
    key, op, target = TARGETS[name]
    value = figures[name][key]
    if short and name in ("cli", "memory"):
        return "(full size only)"
    met = value >= target if op == ">=" else value <= target
    return "met" if met else "MISSED"


def report(doc: dict[str, Any]) -> str:
    f = doc["figures"]
    short = doc["mode"] == "short"
    ds, pd_, nr, cl, mem = (
        f[k] for k in ("default_sampling", "pool_deal", "numpy_reference", "cli", "memory")
    )
    rows = [
        (
            "1 default-time sampling / uniforms",
            f"{ds['ratio']:.3f}  ({ds['draw_defaults_per_s'] / 1e6:,.1f}M vs "
            f"{ds['uniforms_per_s'] / 1e6:,.1f}M obligor-paths/s)",
            ">= 0.3",
            _status("default_sampling", f, short),
        ),
        (
            f"2 pool deal, s per 100,000 paths ({pd_['threads']} threads)",
            f"{pd_['seconds_per_100k_paths']:.2f}  ({pd_['paths']:,} paths; runs "
            f"{', '.join(f'{x:.2f}' for x in pd_['runs'])} s)",
            "<= 2 s",
            _status("pool_deal", f, short),
        ),
        (
            "3 speed-up over NumPy",
            f"{nr['speedup']:.2f}x  (NumPy {nr['numpy_seconds']:.2f} s, ipabs {nr['ipabs_seconds']:.2f} s, "
            f"{nr['paths']:,} paths)",
            ">= 10x",
            _status("numpy_reference", f, short),
        ),
        (
            f"4 ipabs mc, caohejing, {cl['paths']:,} paths",
            f"{cl['seconds']:.2f} s  (runs {', '.join(f'{x:.2f}' for x in cl['runs'])})",
            "<= 2 s",
            _status("cli", f, short),
        ),
        (
            f"5 peak memory, {mem['paths']:,} paths",
            f"{mem['peak_rss_gib']:.3f} GiB  (run {mem['seconds']:.1f} s)",
            "<= 1.5 GiB",
            _status("memory", f, short),
        ),
    ]
    width = max(len(r[0]) for r in rows)
    lines = [
        f"ipabs {ipabs.__version__}, numba {numba.__version__}, {os.cpu_count()} cores, "
        f"{'short' if short else 'full'} sizes",
        "",
        f"{'figure':{width}s}  {'measured':64s}  {'target':10s}  vs target",
    ]
    lines += [f"{a:{width}s}  {b:64s}  {c:10s}  {d}" for a, b, c, d in rows]
    lines += ["", "expected loss, ipabs vs NumPy (share of original balance; z = difference / combined se):"]
    for name, x in nr["expected_loss"].items():
        lines.append(
            f"  {name:5s} ipabs {100 * x['ipabs']:8.4f}% ± {100 * x['ipabs_se']:.4f}%   "
            f"NumPy {100 * x['numpy']:8.4f}% ± {100 * x['numpy_se']:.4f}%   z {x['z']:+.2f}"
        )
    lines.append(
        f"  same default draws fed to both ({nr['same_draws_paths']:,} paths): largest tranche-loss "
        f"difference {nr['same_draws_max_abs_diff']:.2g} (currency units)"
    )
    lines.append(
        f"pool deal: load {pd_['load_seconds']:.2f} s, compile {pd_['compile_seconds']:.2f} s, "
        f"first call {pd_['first_call_seconds']:.2f} s; ipabs mc risk section: {cl['risk_section']}; "
        f"warm-up run {cl['warm_up_seconds']:.2f} s"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="small sizes (for CI)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--threads", type=int, help="threads for the simulations (default: one per core)")
    args = parser.parse_args(argv)
    short = args.short
    sizes = {
        "sampling": 2_000 if short else 20_000,
        "pool": 10_000 if short else 100_000,
        "cli": 10_000 if short else 100_000,
        "memory": 20_000 if short else 1_000_000,
        "repeat": 1 if short else 5,
        "cli_repeat": 2 if short else 3,
    }
    pool = make_pool()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        deal_path = folder / "pool_deal.yaml"
        deal_path.write_text(deal_yaml(pool), encoding="utf-8")
        figures: dict[str, Any] = {}
        figures["default_sampling"] = default_sampling(deal_path, sizes["sampling"], 5)
        figures["pool_deal"], model, result = pool_deal(
            deal_path, sizes["pool"], args.threads, sizes["repeat"]
        )
        ipabs_seconds = figures["pool_deal"]["seconds"]
        figures["numpy_reference"] = numpy_reference(pool, sizes["pool"], ipabs_seconds, model, result)
        figures["cli"] = cli(folder, sizes["cli"], sizes["cli_repeat"])
        figures["memory"] = memory(deal_path, sizes["memory"])
    for name, (key, op, target) in TARGETS.items():
        figures[name]["target"] = {"figure": key, "op": op, "value": target}
    doc = {
        "mode": "short" if short else "full",
        "ipabs": ipabs.__version__,
        "numba": numba.__version__,
        "cores": os.cpu_count(),
        "figures": figures,
    }
    print(json.dumps(doc, indent=2) if args.json else report(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
