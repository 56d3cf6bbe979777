"""Royalty and income-share streams on the deal's period grid.

A stream accrues in each period ``royalty(S) x yf``: ``S`` is the annual base (sales or
income) — ``initial x (1 + growth)^years`` since the stream's start, taken at the middle of the
accrued part of the period (times a random factor in the Monte Carlo) — ``yf`` is the accrued
part of the period in years (ACT/365; zero outside the licence and after patent expiry), and
``royalty`` applies the tiered rate (or income share) and bounds it by the annual minimum and
cap. An accrual is paid on the stream's first payment date on or after the end of the accrual,
plus the payment lag; payments after legal final are not collected (period -1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ipabs._jit import njit
from ipabs.collateral.assets import RoyaltyArrays
from ipabs.dates import add_months_day
from ipabs.risk.collections_numba_fns import royalty_amount


@dataclass(frozen=True)
class RoyaltyGrid:
    """Where and when each stream accrues. Shapes (R, T).

    Attributes
    ----------
    base : expected annual base in each period (at the middle of the accrued part)
    year_frac : accrued part of each period, in years
    mid_years : years from the stream's start to the middle of the accrued part
    pay_period : period in which the accrual is paid (-1: never)
    """

    base: np.ndarray
    year_frac: np.ndarray
    mid_years: np.ndarray
    pay_period: np.ndarray


def royalty_grid(roy: RoyaltyArrays, grid: np.ndarray, growth: np.ndarray) -> RoyaltyGrid:
    """Lay every stream on the period grid with the given annual ``growth`` (R,)."""
    n = len(grid) - 1
    r_count = len(roy)
    base = np.zeros((r_count, n))
    yf = np.zeros((r_count, n))
    mid = np.zeros((r_count, n))
    pay = np.full((r_count, n), -1, dtype=np.int64)
    for r in range(r_count):
        start, end = int(roy.start_day[r]), int(roy.end_day[r])
        months = int(roy.freq_months[r])
        k = 1
        for t in range(n):
            s = max(int(grid[t]), start)
            e = min(int(grid[t + 1]), end)
            if e <= s:
                continue
            yf[r, t] = (e - s) / 365.0
            mid[r, t] = ((s + e) / 2.0 - start) / 365.0
            base[r, t] = roy.initial[r] * (1.0 + growth[r]) ** mid[r, t]
            while add_months_day(start, k * months) < e:
                k += 1
            pay_day = add_months_day(add_months_day(start, k * months), int(roy.lag_months[r]))
            if pay_day <= grid[-1]:
                pay[r, t] = max(int(np.searchsorted(grid, pay_day, side="left")) - 1, 0)
    return RoyaltyGrid(base, yf, mid, pay)


@njit(leaf=True, inline="always")
def royalty_accrual(
    r: int,
    t: int,
    base_factor: float,
    base: np.ndarray,  # (R, T)
    year_frac: np.ndarray,  # (R, T)
    rate: np.ndarray,  # (R,)
    kind: np.ndarray,  # (R,)
    tier_ptr: np.ndarray,  # (R+1,)
    tier_above: np.ndarray,
    tier_rate: np.ndarray,
    minimum: np.ndarray,  # (R,)
    cap: np.ndarray,  # (R,)
) -> float:
    """Royalty stream ``r`` accrues in period ``t`` when its base is ``base_factor`` x expected."""
    if year_frac[r, t] <= 0.0:
        return 0.0
    annual = royalty_amount(
        base[r, t] * base_factor,
        rate[r],
        kind[r],
        tier_ptr[r],
        tier_ptr[r + 1],
        tier_above,
        tier_rate,
        minimum[r],
        cap[r],
    )
    return annual * year_frac[r, t]


def royalty_schedule(
    roy: RoyaltyArrays, grid: np.ndarray, growth: np.ndarray, haircut: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic royalty accrued in each period and the period in which it is paid.

    Parameters
    ----------
    roy : RoyaltyArrays
    grid : ndarray, shape (T+1,)
    growth, haircut : ndarray, shape (R,)

    Returns
    -------
    accrual : ndarray, shape (R, T)
    pay_period : ndarray, shape (R, T), int64
    """
    g = royalty_grid(roy, grid, growth)
    accrual = np.zeros_like(g.base)
    for r in range(len(roy)):
        for t in range(g.base.shape[1]):
            amount = royalty_accrual(
                r,
                t,
                1.0,
                g.base,
                g.year_frac,
                roy.rate,
                roy.kind,
                roy.tier_ptr,
                roy.tier_above,
                roy.tier_rate,
                roy.minimum,
                roy.cap,
            )
            accrual[r, t] = amount * (1.0 - haircut[r])
    return accrual, g.pay_period
