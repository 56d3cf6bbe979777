"""Compiled kernel of early warning (``ipabs monitor``): the Monte Carlo's paths again, with
their full tables, reduced to each obligor's contribution to a tranche's loss and to when
each trigger first takes effect.

A path's loss of the target tranche is shared among the path's defaulters in proportion to
their own losses (exposure at default less recovery and guarantee): obligor ``o``'s
contribution on the path is ``w * L_k * l_o / sum_j l_j``. Its mean over the paths is the
obligor's share of the tranche's expected loss, and the shares add up to the expected loss
(the part on paths whose pool lost nothing to defaults, e.g. royalty shortfalls, is kept
apart as unallocated). The paths are those of :func:`ipabs.risk.montecarlo_numba_fns.simulate_chunk`
under the same sampling, bit for bit, so the contributions add up to the run's own estimate.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ipabs._jit import njit
from ipabs.engine.layout import TRG_ACTIVE, allocate_tables
from ipabs.engine.waterfall_numba_fns import waterfall_path
from ipabs.risk.montecarlo_numba_fns import (
    O_LOSS,
    P_WEIGHT,
    POOL_OUTCOMES,
    TRANCHE_OUTCOMES,
    allocate_scratch,
    path_cash,
    path_outcomes,
    set_sampling,
)

# columns of a chunk's ``totals``: sums over its paths of
M_LOSS = 0  # w * L_k (the target tranche's loss)
M_LOSS_SQ = 1  # (w * L_k)^2
M_UNALLOCATED = 2  # w * L_k on paths whose defaulters lost nothing (royalty shortfalls, fees)
M_UNALLOCATED_SQ = 3
M_WEIGHT = 4  # w
M_WEIGHT_SQ = 5  # w^2
N_MONITOR_TOTALS = 6
_N_TRANCHE_OUTCOMES = len(TRANCHE_OUTCOMES)
_N_POOL_OUTCOMES = len(POOL_OUTCOMES)


class MonitorSums(NamedTuple):
    """A chunk's sums over its paths (:func:`monitor_chunk`; :func:`new_monitor_sums`)."""

    ob_sum: np.ndarray  # (O,) per obligor: its contributions to the target tranche's loss
    ob_sq: np.ndarray  # (O,) their squares
    ob_paths: np.ndarray  # (O,) int: paths on which it contributes
    fire_sum: np.ndarray  # (G, H) per trigger and horizon: weights of the paths it fired on
    fire_sq: np.ndarray  # (G, H) their squares
    totals: np.ndarray  # (N_MONITOR_TOTALS,) the M_* sums


def new_monitor_sums(n_obligors: int, n_triggers: int, n_horizons: int) -> MonitorSums:
    """Zeroed sums for :func:`monitor_chunk`."""
    return MonitorSums(
        np.zeros(n_obligors),
        np.zeros(n_obligors),
        np.zeros(n_obligors, dtype=np.int64),
        np.zeros((n_triggers, n_horizons)),
        np.zeros((n_triggers, n_horizons)),
        np.zeros(N_MONITOR_TOTALS),
    )


@njit(nogil=True)
def monitor_chunk(
    cd, ra, seed, stream, first_path, n_paths, shift, tilt, twist, alpha, target, horizon_last, sums
):  # type: ignore[no-untyped-def]
    """Paths ``first_path .. first_path + n_paths - 1`` (the sampling as in ``simulate_chunk``),
    accumulated into this chunk's :class:`MonitorSums`: per obligor the sum of its
    contributions to tranche ``target``'s loss, of their squares and the number of paths on
    which it contributes; per trigger and horizon ``j`` the sum of the weights (and their
    squares) of the paths on which the trigger is in effect at some payment date up to period
    ``horizon_last[j]`` (periods before the run's start are not counted); and the totals
    ``M_*``."""
    sc = allocate_scratch(cd, ra)
    tables = allocate_tables(cd)
    set_sampling(sc, shift, tilt, twist, alpha)
    tranche_row = np.zeros((cd.tr_balance.shape[0], _N_TRANCHE_OUTCOMES))
    pool_row = np.zeros(_N_POOL_OUTCOMES)
    rows = (tranche_row, pool_row)
    _monitor_rows(cd, ra, seed, stream, first_path, n_paths, sc, tables, rows, target, horizon_last, sums)


@njit(leaf=True)
def _monitor_rows(cd, ra, seed, stream, first_path, n_paths, sc, tables, rows, target, horizon_last, sums):  # type: ignore[no-untyped-def]
    """The loop of :func:`monitor_chunk` on its scratch, built as ``simulate_rows`` is: a leaf
    loop with the draws and collections inlined and the waterfall called (with its full tables:
    the triggers). Inlining ``simulate_path`` (which inlines ``path_cash`` in turn) straight into
    the allocating kernel compiled to different paths than the Python twin; this layout gives
    the same paths as ``simulate_chunk``, bit for bit (tests/test_monitor.py)."""
    tranche_row, pool_row = rows
    ob_sum, ob_sq, ob_paths = sums.ob_sum, sums.ob_sq, sums.ob_paths
    fire_sum, fire_sq, totals = sums.fire_sum, sums.fire_sq, sums.totals
    trigger = tables.trigger
    n_trg = trigger.shape[1]
    t_start = cd.start_period
    for i in range(n_paths):
        trigger[:] = 0.0  # a deal that ends early leaves its later rows unwritten
        path_cash(cd, ra, seed, stream, first_path + i, sc)
        waterfall_path(cd, sc.coll, sc.support_stop, tables, sc.work, sc.flags, True, sc.rv)
        path_outcomes(cd, ra, sc, tables, tranche_row, pool_row)
        w = pool_row[P_WEIGHT]
        loss = w * tranche_row[target, O_LOSS]
        totals[M_LOSS] += loss
        totals[M_LOSS_SQ] += loss * loss
        totals[M_WEIGHT] += w
        totals[M_WEIGHT_SQ] += w * w
        if loss > 0.0:
            pool_loss = 0.0
            n_d = sc.n_defaulters[0]
            for j in range(n_d):
                pool_loss += sc.ob_loss[sc.d_obligor[j]]
            if pool_loss > 0.0:
                for j in range(n_d):
                    o = sc.d_obligor[j]
                    x = loss * (sc.ob_loss[o] / pool_loss)
                    ob_sum[o] += x
                    ob_sq[o] += x * x
                    if x > 0.0:
                        ob_paths[o] += 1
            else:
                totals[M_UNALLOCATED] += loss
                totals[M_UNALLOCATED_SQ] += loss * loss
        for g in range(n_trg):
            first = -1
            for t in range(t_start, trigger.shape[0]):
                if trigger[t, g, TRG_ACTIVE] > 0.0:
                    first = t
                    break
            if first < 0:
                continue
            for h in range(horizon_last.shape[0]):
                if first <= horizon_last[h]:
                    fire_sum[g, h] += w
                    fire_sq[g, h] += w * w
