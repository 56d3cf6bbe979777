"""Kernel of the streamed summaries: one block of paths reduced to shifted power sums.

Each series is a per-path value ``x`` with a per-path weight ``u`` over the paths where it is
defined; a block keeps ``[sum u, c, sum u (x - c), sum u (x - c)^2]`` with ``c`` the series'
first value in the block. Sums about a value of the sample do not lose the digits that raw sums
``sum x^2 - (sum x)^2 / n`` lose when the spread is small against the mean, and blocks merge
exactly by shifting to a common reference (:mod:`ipabs.analytics.accumulate`).
"""

from __future__ import annotations

import math

from ipabs._jit import njit
from ipabs.risk.montecarlo_numba_fns import (
    O_DISCOUNTED_LOSS,
    O_DURATION,
    O_LOSS,
    O_WAL,
    O_YIELD,
    P_DEFAULT_RATE,
    P_DEFAULTS,
    P_LOSS_RATE,
    P_WEIGHT,
)

# ---- per tranche: the series (rows k * N_SERIES + s of a block's sums)
S_LOSS = 0  # w x loss share (0 for a tranche of no balance)
S_HIT = 1  # w x 1{loss}
S_DISCOUNTED_LOSS = 2  # w x discounted loss share
S_LOSS_SQ = 3  # w x loss share^2
S_WAL = 4  # WAL over paths with one: weight 1, w, w^2
S_YIELD = 7  # yield: weight 1, w, w^2
S_DURATION = 10  # duration: weight 1, w, w^2
N_SERIES = 13
# ---- per tranche: the extras
E_CROSS = 0  # sum (y_loss - c_loss)(y_hit - c_hit), about the two series' references
E_LARGEST = 1  # max of w x loss share
E_LOSS_PATHS = 2  # paths with a loss share above 0
E_HIT_PATHS = 3  # paths with a loss above the dust
E_HIT_LARGEST = 4  # max of w x 1{loss}
N_EXTRAS = 5
# ---- the pool's series (rows after the tranches')
PS_LOSS = 0  # w x loss rate
PS_DEFAULT_RATE = 1
PS_DEFAULTS = 2
PS_WEIGHT = 3  # w
N_POOL_SERIES = 4


@njit(leaf=True, inline="always")
def _add(sums, row, x, u):  # type: ignore[no-untyped-def]
    if sums[row, 0] == 0.0:
        sums[row, 1] = x
    d = x - sums[row, 1]
    sums[row, 0] += u
    sums[row, 2] += u * d
    sums[row, 3] += u * d * d


@njit(nogil=True)
def block_sums(tr, pool, scale, eps, sums, extras):  # type: ignore[no-untyped-def]
    """Reduce one block of paths into ``sums`` ((T * N_SERIES + N_POOL_SERIES, 4), zeroed) and
    ``extras`` ((T, N_EXTRAS), zeroed).

    Parameters
    ----------
    tr : ndarray (n, T, len(TRANCHE_OUTCOMES))
        The block's tranche outcomes.
    pool : ndarray (n, len(POOL_OUTCOMES))
        Its pool outcomes (with each path's likelihood-ratio weight).
    scale : ndarray (T,)
        One over each tranche's original balance (0 for a tranche without one).
    eps : float
        A loss above this amount is a loss (rounding dust below).
    """
    n_tr = scale.shape[0]
    pool_row = n_tr * N_SERIES
    for i in range(pool.shape[0]):
        w = pool[i, P_WEIGHT]
        w2 = w * w
        for k in range(n_tr):
            r = k * N_SERIES
            amount = tr[i, k, O_LOSS]
            x = amount * scale[k]
            y = w * x
            h = 1.0 if amount > eps else 0.0
            _add(sums, r + S_LOSS, y, 1.0)
            _add(sums, r + S_HIT, w * h, 1.0)
            _add(sums, r + S_DISCOUNTED_LOSS, w * tr[i, k, O_DISCOUNTED_LOSS] * scale[k], 1.0)
            _add(sums, r + S_LOSS_SQ, y * x, 1.0)
            extras[k, E_CROSS] += (y - sums[r + S_LOSS, 1]) * (w * h - sums[r + S_HIT, 1])
            if y > extras[k, E_LARGEST] or i == 0:
                extras[k, E_LARGEST] = y
            if w * h > extras[k, E_HIT_LARGEST] or i == 0:
                extras[k, E_HIT_LARGEST] = w * h
            if x > 0.0:
                extras[k, E_LOSS_PATHS] += 1.0
            if h > 0.0:
                extras[k, E_HIT_PATHS] += 1.0
            for s, c in ((S_WAL, O_WAL), (S_YIELD, O_YIELD), (S_DURATION, O_DURATION)):
                v = tr[i, k, c]
                if not math.isnan(v):
                    _add(sums, r + s, v, 1.0)
                    _add(sums, r + s + 1, v, w)
                    _add(sums, r + s + 2, v, w2)
        _add(sums, pool_row + PS_LOSS, w * pool[i, P_LOSS_RATE], 1.0)
        _add(sums, pool_row + PS_DEFAULT_RATE, w * pool[i, P_DEFAULT_RATE], 1.0)
        _add(sums, pool_row + PS_DEFAULTS, w * pool[i, P_DEFAULTS], 1.0)
        _add(sums, pool_row + PS_WEIGHT, w, 1.0)
