"""Kernel of the streamed summaries: one block of paths reduced to shifted power sums.

Each series is a per-path value ``x`` with a per-path weight ``u`` over the paths where it is
defined; a block keeps ``[sum u, c, sum u (x - c), sum u (x - c)^2]`` with ``c`` the series'
first value in the block. Sums about a value of the sample do not lose the digits that raw sums
``sum x^2 - (sum x)^2 / n`` lose when the spread is small against the mean, and blocks merge
exactly by shifting to a common reference (:mod:`ipabs.analytics.accumulate`).
"""

from __future__ import annotations

import math

import numpy as np

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


SUB_BLOCK = 1024  # paths read per pass over the tranches: their outcomes stay in cache


@njit(leaf=True, inline="always")
def _first_defined(tr, k, c):  # type: ignore[no-untyped-def]
    for i in range(tr.shape[0]):
        if not math.isnan(tr[i, k, c]):
            return tr[i, k, c]
    return 0.0


@njit(leaf=True, inline="always")
def _conditional(acc, j, v, d, w, w2, unit):  # type: ignore[no-untyped-def]
    # one path's WAL, yield or duration v (d = v - reference) into the sums of weight 1, w, w^2
    if not math.isnan(v):
        acc[j] += 1.0
        acc[j + 1] += d
        acc[j + 2] += d * d
        if not unit:
            acc[j + 3] += w
            acc[j + 4] += w * d
            acc[j + 5] += w * d * d
            acc[j + 6] += w2
            acc[j + 7] += w2 * d
            acc[j + 8] += w2 * d * d


@njit(nogil=True)
def block_sums(tr, pool, scale, eps, sums, extras):  # type: ignore[no-untyped-def]
    """Reduce one block of paths into ``sums`` ((T * N_SERIES + N_POOL_SERIES, 4)) and
    ``extras`` ((T, N_EXTRAS)).

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
    n = pool.shape[0]
    n_tr = scale.shape[0]
    unit = True
    for i in range(n):
        unit = unit and pool[i, P_WEIGHT] == 1.0
    # the references: each series' first value in the block
    ref = np.zeros((n_tr, 7))
    if n > 0:
        w0 = pool[0, P_WEIGHT]
        for k in range(n_tr):
            amount = tr[0, k, O_LOSS]
            share = amount * scale[k]
            ref[k, 0] = w0 * share
            ref[k, 1] = w0 if amount > eps else 0.0
            ref[k, 2] = w0 * share * share
            ref[k, 3] = w0 * tr[0, k, O_DISCOUNTED_LOSS] * scale[k]
            ref[k, 4] = _first_defined(tr, k, O_WAL)
            ref[k, 5] = _first_defined(tr, k, O_YIELD)
            ref[k, 6] = _first_defined(tr, k, O_DURATION)
    # per tranche: 8 sums of the loss series, the cross sum, 2 maxima, 2 counts, then 9 sums
    # for each of WAL, yield and duration
    acc = np.zeros((n_tr, 40))
    for k in range(n_tr):
        acc[k, 9] = -np.inf
        acc[k, 10] = -np.inf
    for lo in range(0, n, SUB_BLOCK):
        hi = min(lo + SUB_BLOCK, n)
        for k in range(n_tr):
            a = acc[k]
            c_loss, c_hit, c_sq, c_disc = ref[k, 0], ref[k, 1], ref[k, 2], ref[k, 3]
            c_wal, c_yield, c_dur = ref[k, 4], ref[k, 5], ref[k, 6]
            sk = scale[k]
            for i in range(lo, hi):
                w = pool[i, P_WEIGHT]
                amount = tr[i, k, O_LOSS]
                share = amount * sk
                y = w * share
                hit = amount > eps
                h = w if hit else 0.0
                d_loss = y - c_loss
                d_hit = h - c_hit
                d_sq = y * share - c_sq
                d_disc = w * tr[i, k, O_DISCOUNTED_LOSS] * sk - c_disc
                a[0] += d_loss
                a[1] += d_loss * d_loss
                a[2] += d_hit
                a[3] += d_hit * d_hit
                a[4] += d_sq
                a[5] += d_sq * d_sq
                a[6] += d_disc
                a[7] += d_disc * d_disc
                a[8] += d_loss * d_hit
                a[9] = max(a[9], y)
                a[10] = max(a[10], h)
                a[11] += 1.0 if share > 0.0 else 0.0
                a[12] += 1.0 if hit else 0.0
                w2 = w * w
                v = tr[i, k, O_WAL]
                _conditional(a, 13, v, v - c_wal, w, w2, unit)
                v = tr[i, k, O_YIELD]
                _conditional(a, 22, v, v - c_yield, w, w2, unit)
                v = tr[i, k, O_DURATION]
                _conditional(a, 31, v, v - c_dur, w, w2, unit)
    for k in range(n_tr):
        r = k * N_SERIES
        a = acc[k]
        for j, (s, c) in enumerate(((S_LOSS, 0), (S_HIT, 1), (S_LOSS_SQ, 2), (S_DISCOUNTED_LOSS, 3))):
            sums[r + s, 0] = n
            sums[r + s, 1] = ref[k, c]
            sums[r + s, 2] = a[2 * j]
            sums[r + s, 3] = a[2 * j + 1]
        extras[k, E_CROSS] = a[8]
        extras[k, E_LARGEST] = a[9]
        extras[k, E_HIT_LARGEST] = a[10]
        extras[k, E_LOSS_PATHS] = a[11]
        extras[k, E_HIT_PATHS] = a[12]
        for s, j, c in ((S_WAL, 13, 4), (S_YIELD, 22, 5), (S_DURATION, 31, 6)):
            for m in range(3):
                src = j if unit else j + 3 * m  # every weight one: the weighted sums are these
                sums[r + s + m, 0] = a[src]
                sums[r + s + m, 1] = ref[k, c]
                sums[r + s + m, 2] = a[src + 1]
                sums[r + s + m, 3] = a[src + 2]
    p = n_tr * N_SERIES
    for s, c in (
        (PS_LOSS, P_LOSS_RATE),
        (PS_DEFAULT_RATE, P_DEFAULT_RATE),
        (PS_DEFAULTS, P_DEFAULTS),
        (PS_WEIGHT, -1),
    ):
        c0 = 0.0
        s1 = 0.0
        s2 = 0.0
        for i in range(n):
            w = pool[i, P_WEIGHT]
            v = w * pool[i, c] if c >= 0 else w
            if i == 0:
                c0 = v
            d = v - c0
            s1 += d
            s2 += d * d
        sums[p + s, 0] = n
        sums[p + s, 1] = c0
        sums[p + s, 2] = s1
        sums[p + s, 3] = s2
