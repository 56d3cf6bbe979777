"""Kernels: per-tranche metrics from a path's payments (WAL, yield, discounting)."""

from __future__ import annotations

import numpy as np

from ipabs._jit import njit


@njit
def weighted_average_life(times: np.ndarray, principal: np.ndarray) -> float:
    """WAL in years: principal-weighted mean payment time (nan when no principal was paid).

    Parameters
    ----------
    times : ndarray, shape (T,)
        Years from closing to each payment date.
    principal : ndarray, shape (T,)
        Principal paid on each date.
    """
    total = principal.sum()
    if total <= 0.0:
        return np.nan
    return (times * principal).sum() / total


@njit
def present_value(times: np.ndarray, cash: np.ndarray, rate: float, frequency: int) -> float:
    """PV of ``cash`` at an annual ``rate`` compounded ``frequency`` times a year."""
    pv = 0.0
    for t in range(times.shape[0]):
        if cash[t] != 0.0:
            pv += cash[t] * (1.0 + rate / frequency) ** (-frequency * times[t])
    return pv


@njit
def yield_at_price(times: np.ndarray, cash: np.ndarray, price: float, frequency: int) -> float:
    """Annual yield (compounded ``frequency`` times a year) at which ``cash`` is worth ``price``.

    Returns -1.0 (a total loss) when no cash is received, nan when ``price`` is not positive.
    Solved by bisection to 1e-12, which is safe for any sign pattern of a bond's cash flows.
    """
    if price <= 0.0:
        return np.nan
    if cash.sum() <= 0.0:
        return -1.0
    lo = -frequency * (1.0 - 1e-9)
    hi = 10.0
    if present_value(times, cash, hi, frequency) > price:
        return hi
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if present_value(times, cash, mid, frequency) > price:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12:
            break
    return 0.5 * (lo + hi)
