"""Royalty and income-share streams on the deal's period grid."""

from __future__ import annotations

import numpy as np

from ipabs.collateral.assets import RoyaltyArrays
from ipabs.dates import add_months_day
from ipabs.risk.collections_numba_fns import royalty_amount


def royalty_schedule(
    roy: RoyaltyArrays,
    grid: np.ndarray,
    growth: np.ndarray,
    haircut: np.ndarray,
    base_factor: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Royalty accrued in each period and the period in which it is paid.

    In period t the stream accrues ``royalty(S) x yf`` where ``S`` is the annual base
    (``initial x (1 + growth)^years`` since the stream's start, at the middle of the accrued
    part of the period, times ``base_factor[r, t]`` when given), ``yf`` the accrued part of the
    period in years (ACT/365, zero outside the licence and after patent expiry), and
    ``royalty`` the tiered rate (or income share) bounded by the annual minimum and cap. An
    accrual is paid on the stream's first payment date on or after the end of the accrual,
    plus the payment lag; payments after legal final are not collected (period -1).

    Parameters
    ----------
    roy : RoyaltyArrays
    grid : ndarray, shape (T+1,)
    growth, haircut : ndarray, shape (R,)
    base_factor : ndarray, shape (R, T), optional
        Multiplies the annual base (a Monte Carlo path of sales or income).

    Returns
    -------
    accrual : ndarray, shape (R, T)
    pay_period : ndarray, shape (R, T), int64
    """
    n = len(grid) - 1
    r_count = len(roy)
    accrual = np.zeros((r_count, n))
    pay_period = np.full((r_count, n), -1, dtype=np.int64)
    for r in range(r_count):
        start, end = int(roy.start_day[r]), int(roy.end_day[r])
        lo, hi = int(roy.tier_ptr[r]), int(roy.tier_ptr[r + 1])
        k = 1
        for t in range(n):
            s = max(int(grid[t]), start)
            e = min(int(grid[t + 1]), end)
            if e <= s:
                continue
            yf = (e - s) / 365.0
            years = ((s + e) / 2.0 - start) / 365.0
            base = roy.initial[r] * (1.0 + growth[r]) ** years
            if base_factor is not None:
                base *= base_factor[r, t]
            annual = royalty_amount(
                base,
                roy.rate[r],
                int(roy.kind[r]),
                lo,
                hi,
                roy.tier_above,
                roy.tier_rate,
                roy.minimum[r],
                roy.cap[r],
            )
            accrual[r, t] = annual * yf * (1.0 - haircut[r])
            while add_months_day(start, k * int(roy.freq_months[r])) < e:
                k += 1
            pay_day = add_months_day(
                add_months_day(start, k * int(roy.freq_months[r])), int(roy.lag_months[r])
            )
            if pay_day <= grid[-1]:
                pay_period[r, t] = max(int(np.searchsorted(grid, pay_day, side="left")) - 1, 0)
    return accrual, pay_period
