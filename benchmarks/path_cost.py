"""Benchmark: where the time of one Monte Carlo path goes, on one thread.

The deal is one of ``benchmarks/scale.py``'s: ``fixed_cost`` (125 obligors, one annual period,
six tranches; the default) or ``pool_1000`` (1,000 loans, 60 monthly periods, three notes).
The script times ``simulate_chunk`` on one thread, then compiled loops that run the same
paths stopping after each stage, so that the differences split a path's cost:

1. ``draws``: the generator keyed by the path, the factor and one uniform per obligor
   (``draw_defaults``);
2. ``collections``: the asset cash of the path per pool (``path_collections``);
3. ``pool sum``: the per-period sum over pools and the support stops (rest of
   ``simulate_path`` before the waterfall);
4. ``waterfall``: the waterfall, inlined as ``simulate_rows`` inlines it;
5. ``outcomes``: ``path_outcomes`` (loss, present value, WAL, yield, duration per tranche).

Then the parts of the outcomes alone, on the tranche tables of the same paths stored
beforehand: the yield solve (``yield_on_grid``) of every tranche, the WAL of every tranche, and
the whole ``path_outcomes``. Also the floor: 125 uniforms of the same generator per path.

Usage::

    python benchmarks/path_cost.py             # 200,000 paths per timing
    python benchmarks/path_cost.py --paths 50000
    python benchmarks/path_cost.py --deal pool_1000 --paths 50000
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ipabs._jit import njit
from ipabs.engine.layout import TR_INTEREST_PAID, TR_PRINCIPAL_PAID, TR_RESIDUAL_PAID, allocate_tables
from ipabs.engine.metrics_numba_fns import weighted_average_life, yield_on_grid
from ipabs.engine.waterfall_numba_fns import waterfall_path_inline
from ipabs.numerics.rng_numba_fns import seed_state, uniform
from ipabs.risk.montecarlo_numba_fns import (
    POOL_OUTCOMES,
    TRANCHE_OUTCOMES,
    allocate_scratch,
    draw_defaults,
    path_cash,
    path_collections,
    path_outcomes,
    simulate_chunk,
    simulate_path,
)

SEED = 1


# The loops are leaf kernels on scratch allocated by their callers, as simulate_rows is: a
# loop with reference counting pays atomic updates for every array it hands a kernel.


@njit
def _stages(cd, ra, n_paths, stage):  # type: ignore[no-untyped-def]
    """Run paths 0 .. n_paths - 1 up to ``stage`` (1 draws, 2 collections, 3 pool sum,
    4 waterfall, 5 outcomes); returns a checksum so that nothing is optimised away."""
    sc = allocate_scratch(cd, ra)
    tables = allocate_tables(cd)
    n_tr = cd.tr_balance.shape[0]
    tranche_row = np.zeros((n_tr, len(TRANCHE_OUTCOMES)))
    pool_row = np.zeros(len(POOL_OUTCOMES))
    return _stage_loop(cd, ra, sc, tables, tranche_row, pool_row, n_paths, stage)


@njit(leaf=True)
def _stage_loop(cd, ra, sc, tables, tranche_row, pool_row, n_paths, stage):  # type: ignore[no-untyped-def]
    n_tr = cd.tr_balance.shape[0]
    check = 0.0
    for path in range(n_paths):
        if stage >= 4:  # as simulate_rows runs a path
            path_cash(cd, ra, SEED, 0, path, sc)
            waterfall_path_inline(cd, sc.coll, sc.support_stop, tables, sc.work, sc.flags, False, sc.rv)
            if stage >= 5:
                path_outcomes(cd, ra, sc, tables, tranche_row, pool_row)
                check += tranche_row[n_tr - 1, 6]
            else:
                check += tables.tranche[0, n_tr - 1, 0]
            continue
        seed_state(sc.state, SEED, path, 0)
        n_d = draw_defaults(ra, sc)
        check += n_d
        if stage >= 2:
            path_collections(ra, sc, n_d)
            check += sc.coll_pool[0, 0, 0]
        if stage >= 3:
            coll = sc.coll
            coll_pool = sc.coll_pool
            if coll_pool.shape[0] != 1:  # as path_cash: one pool's rows are the deal's (a view)
                for t in range(coll.shape[0]):
                    for c in range(coll.shape[1]):
                        x = 0.0
                        for p in range(coll_pool.shape[0]):
                            x += coll_pool[p, t, c]
                        coll[t, c] = x
            for s in range(sc.support_stop.shape[0]):
                sc.support_stop[s] = sc.ob_period[ra.support_obligor[s]]
            check += coll[0, 0]
    return check


@njit
def _store_tables(cd, ra, n_paths):  # type: ignore[no-untyped-def]
    """The tranche table of each path (for timing the outcomes alone)."""
    sc = allocate_scratch(cd, ra)
    tables = allocate_tables(cd)
    shape = tables.tranche.shape
    out = np.empty((n_paths, shape[0], shape[1], shape[2]))
    for path in range(n_paths):
        simulate_path(cd, ra, SEED, 0, path, sc, tables, False)
        out[path] = tables.tranche
    return out


@njit
def _outcomes_only(cd, ra, stored, part):  # type: ignore[no-untyped-def]
    """Over stored tranche tables: ``part`` 0 the whole path_outcomes, 1 the yield solve of
    every tranche, 2 the WAL of every tranche."""
    sc = allocate_scratch(cd, ra)
    tables = allocate_tables(cd)
    n_tr = cd.tr_balance.shape[0]
    tranche_row = np.zeros((n_tr, len(TRANCHE_OUTCOMES)))
    pool_row = np.zeros(len(POOL_OUTCOMES))
    cash = np.zeros(ra.n_periods)
    return _outcomes_loop(cd, ra, sc, tables, tranche_row, pool_row, cash, stored, part)


@njit(leaf=True)
def _outcomes_loop(cd, ra, sc, tables, tranche_row, pool_row, cash, stored, part):  # type: ignore[no-untyped-def]
    n_tr = cd.tr_balance.shape[0]
    n_t = ra.n_periods
    check = 0.0
    for i in range(stored.shape[0]):
        if part == 0:
            _copy_table(stored[i], tables.tranche)
            path_outcomes(cd, ra, sc, tables, tranche_row, pool_row)
            check += tranche_row[n_tr - 1, 6]
            continue
        for k in range(n_tr):
            if part == 1:
                for t in range(n_t):
                    cash[t] = (
                        stored[i, t, k, TR_INTEREST_PAID]
                        + stored[i, t, k, TR_PRINCIPAL_PAID]
                        + stored[i, t, k, TR_RESIDUAL_PAID]
                    )
                price = cd.tr_balance[k]
                guess = ra.tr_yield_guess[k]
                check += yield_on_grid(ra.gap_id, ra.gap_years, sc.gap_factor, ra.times, cash, price, guess)
            else:
                check += weighted_average_life(ra.times, stored[i, :, k, TR_PRINCIPAL_PAID])
    return check


@njit
def _copy_only(cd, ra, stored):  # type: ignore[no-untyped-def]
    """The copy of each stored table that ``_outcomes_only(part=0)`` pays (subtracted)."""
    return _copy_loop(allocate_tables(cd), stored)


@njit(leaf=True)
def _copy_loop(tables, stored):  # type: ignore[no-untyped-def]
    check = 0.0
    for i in range(stored.shape[0]):
        _copy_table(stored[i], tables.tranche)
        check += tables.tranche[0, 0, 0]
    return check


@njit(leaf=True, inline="always")
def _copy_table(src, dst):  # type: ignore[no-untyped-def]
    for t in range(src.shape[0]):
        for k in range(src.shape[1]):
            for j in range(src.shape[2]):
                dst[t, k, j] = src[t, k, j]


@njit
def _uniforms(n_paths, n_obligors):  # type: ignore[no-untyped-def]
    state = np.zeros(4, dtype=np.uint64)
    check = 0.0
    for path in range(n_paths):
        seed_state(state, SEED, path, 0)
        for _ in range(n_obligors):
            check += uniform(state)
    return check


def _best(fn: Callable[[], Any], repeat: int) -> float:
    """Best CPU seconds of the calling thread (time it was not running is not counted: the
    figures hold on a busy machine)."""
    fn()  # compile or warm
    best = math.inf
    for _ in range(repeat):
        start = time.thread_time()
        fn()
        best = min(best, time.thread_time() - start)
    return best


DEALS = ("fixed_cost", "pool_1000")


def _deal_text(deal: str) -> str:
    """The text of one of figure 1's deals of ``benchmarks/scale.py``."""
    if deal == "fixed_cost":
        from scale import small_deal

        return small_deal()
    import montecarlo as mc_bench

    return mc_bench.deal_yaml(mc_bench.make_pool(1_000))


def measure(paths: int, repeat: int, deal: str = "fixed_cost") -> dict[str, float]:
    """Microseconds per path of each stage and part (one thread, best of ``repeat``)."""
    from ipabs.api import _model
    from ipabs.deal.load import parse_deal
    from ipabs.risk.model import compile_risk

    model = _model(parse_deal(_deal_text(deal), f"{deal}.yaml"))
    cd = model.cd
    ra = compile_risk(model)
    n_tr = cd.tr_balance.shape[0]
    tr = np.empty((paths, n_tr, len(TRANCHE_OUTCOMES)))
    pool = np.empty((paths, len(POOL_OUTCOMES)))
    factors = np.empty((paths, ra.n_factors))
    groups = np.empty((paths, 0))
    shift = np.zeros(ra.n_factors)
    tilt = np.zeros(ra.g_threshold.shape[0])

    def chunk() -> None:
        simulate_chunk(cd, ra, SEED, 0, 0, shift, tilt, 0.0, 0.0, tr, pool, factors, groups)

    us = 1e6 / paths
    out: dict[str, float] = {"simulate_chunk": _best(chunk, repeat) * us}
    cumulative = [_best(lambda s=s: _stages(cd, ra, paths, s), repeat) * us for s in range(1, 6)]
    names = ["draws", "collections", "pool sum", "waterfall", "outcomes"]
    previous = 0.0
    for name, total in zip(names, cumulative, strict=True):
        out[f"stage: {name}"] = total - previous
        previous = total
    out["stages: whole path"] = cumulative[-1]
    stored = _store_tables(cd, ra, paths)
    copy = _best(lambda: _copy_only(cd, ra, stored), repeat) * us
    parts = [_best(lambda part=part: _outcomes_only(cd, ra, stored, part), repeat) * us for part in range(3)]
    out["outcomes alone: path_outcomes"] = parts[0] - copy
    out[f"outcomes alone: yield solve x {n_tr}"] = parts[1]
    out[f"outcomes alone: WAL x {n_tr}"] = parts[2]
    n_ob = ra.ob_group.shape[0]
    out[f"floor: {n_ob} uniforms"] = _best(lambda: _uniforms(paths, n_ob), repeat) * us
    out["paths with no default (%)"] = float(np.mean(pool[:, 2] == 0.0) * 100.0)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paths", type=int, default=200_000, help="paths per timing")
    parser.add_argument("--repeat", type=int, default=3, help="best of this many runs")
    parser.add_argument("--deal", choices=DEALS, default="fixed_cost", help="which deal of scale.py")
    args = parser.parse_args()
    figures = measure(args.paths, args.repeat, args.deal)
    print(f"{args.deal} deal, one thread, {args.paths:,} paths, best of {args.repeat}: CPU us per path")
    for name, value in figures.items():
        print(f"  {name:<36} {value:8.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
