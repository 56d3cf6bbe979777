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
def yield_at_price(times: np.ndarray, cash: np.ndarray, price: float, guess: float = 0.0) -> float:
    """Annual effective yield at which ``cash`` (received ``times`` years from closing) is
    worth ``price``: the ``y`` with ``sum(cash_t / (1 + y)^t) = price``.

    Returns -1.0 (a total loss, also the limit as cash vanishes) when no cash is received and
    nan when ``price`` is not positive. With ``u = log(1 + y)`` the price error
    ``sum(c_t exp(-t u)) - price`` is convex and decreasing in ``u`` (cash flows are
    non-negative), so Newton's method started left of the root climbs to it monotonically;
    ``guess`` (e.g. the coupon) only sets where the search starts, not the answer.
    """
    if price <= 0.0:
        return np.nan
    total = 0.0
    for t in range(cash.shape[0]):
        total += cash[t]
    if total <= 0.0:
        return -1.0
    # From a start right of the root one Newton step lands left of it (convexity); from the
    # left the iterates climb monotonically. A good guess (the coupon) needs two or three.
    u = np.log1p(guess) if guess > -1.0 else 0.0
    err = _price_error(times, cash, price, u)
    if not err > 0.0:
        slope = 0.0
        for t in range(cash.shape[0]):
            slope -= times[t] * cash[t] * np.exp(-times[t] * u)
        if slope < 0.0:
            u -= err / slope
    for _ in range(200):  # step left until the price error is positive
        if _price_error(times, cash, price, u) > 0.0:
            break
        u -= 1.0
    for _ in range(100):
        err = 0.0
        slope = 0.0
        for t in range(cash.shape[0]):
            if cash[t] != 0.0:
                v = cash[t] * np.exp(-times[t] * u)
                err += v
                slope -= times[t] * v
        err -= price
        if slope >= 0.0:
            break
        step = err / slope
        u -= step
        if abs(step) < 1e-14 * max(1.0, abs(u)):
            break
    return np.expm1(u)


@njit
def _price_error(times: np.ndarray, cash: np.ndarray, price: float, u: float) -> float:
    pv = 0.0
    for t in range(cash.shape[0]):
        if cash[t] != 0.0:
            pv += cash[t] * np.exp(-times[t] * u)
    return pv - price
