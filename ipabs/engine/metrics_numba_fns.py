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
    With ``u = log(1 + y/f)`` the price error ``sum(c_t exp(-f t u)) - price`` is convex and
    decreasing in ``u`` (cash flows are non-negative), so Newton's method started left of the
    root climbs to it monotonically: a few exponentials per cash flow, fast enough per path.
    """
    if price <= 0.0:
        return np.nan
    total = 0.0
    for t in range(cash.shape[0]):
        total += cash[t]
    if total <= 0.0:
        return -1.0
    f = float(frequency)
    u = -1.0
    for _ in range(60):  # step left until the price error is positive
        if _price_error(times, cash, price, f, u) > 0.0:
            break
        u -= 1.0
    for _ in range(100):
        err = 0.0
        slope = 0.0
        for t in range(cash.shape[0]):
            if cash[t] != 0.0:
                x = f * times[t]
                v = cash[t] * np.exp(-x * u)
                err += v
                slope -= x * v
        err -= price
        if slope >= 0.0:
            break
        step = err / slope
        u -= step
        if abs(step) < 1e-14 * max(1.0, abs(u)):
            break
    return f * (np.exp(u) - 1.0)


@njit
def _price_error(times: np.ndarray, cash: np.ndarray, price: float, f: float, u: float) -> float:
    pv = 0.0
    for t in range(cash.shape[0]):
        if cash[t] != 0.0:
            pv += cash[t] * np.exp(-f * times[t] * u)
    return pv - price
