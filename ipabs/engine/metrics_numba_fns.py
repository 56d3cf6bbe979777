"""Kernels: per-tranche metrics from a path's payments (WAL, yield, discounting)."""

from __future__ import annotations

import numpy as np

from ipabs._jit import njit


@njit(leaf=True)
def weighted_average_life(times: np.ndarray, principal: np.ndarray) -> float:
    """WAL in years: principal-weighted mean payment time (nan when no principal was paid).

    Parameters
    ----------
    times : ndarray, shape (T,)
        Years from closing to each payment date.
    principal : ndarray, shape (T,)
        Principal paid on each date.
    """
    total = 0.0
    weighted = 0.0
    for t in range(principal.shape[0]):
        total += principal[t]
        weighted += times[t] * principal[t]
    if total <= 0.0:
        return np.nan
    return weighted / total


@njit(leaf=True)
def present_value(times: np.ndarray, cash: np.ndarray, rate: float, frequency: int) -> float:
    """PV of ``cash`` at an annual ``rate`` compounded ``frequency`` times a year."""
    pv = 0.0
    for t in range(times.shape[0]):
        if cash[t] != 0.0:
            pv += cash[t] * (1.0 + rate / frequency) ** (-frequency * times[t])
    return pv


@njit(leaf=True)
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
    # Newton's method on u, each step pricing and differentiating in one pass. From the left
    # of the root the iterates climb monotonically; from the right, one step lands left of it
    # (convexity). A good guess (the coupon as an annual effective rate) needs one or two.
    u = np.log1p(guess) if guess > -1.0 else 0.0
    t_max = 0.0
    for t in range(cash.shape[0]):
        if cash[t] != 0.0:
            t_max = max(t_max, times[t])
    for _ in range(100):
        err = -price
        slope = 0.0
        for t in range(cash.shape[0]):
            if cash[t] != 0.0:
                v = cash[t] * np.exp(-times[t] * u)
                err += v
                slope -= times[t] * v
        if not (slope < 0.0 and np.isfinite(err)):
            break  # far out (overflow or no slope): the bracketing search below
        step = err / slope
        u -= step
        # Newton's next step would be at most (t_max / 2) step^2 (the price error's curvature
        # is at most t_max times its slope): stop when that is below the tolerance
        if abs(step) < 1e-14 * max(1.0, abs(u)) or 0.5 * t_max * step * step < 1e-15 * max(1.0, abs(u)):
            return np.expm1(u)
    return _bracketed_yield(times, cash, price)


@njit(leaf=True)
def _bracketed_yield(times: np.ndarray, cash: np.ndarray, price: float) -> float:
    # start where the price error is positive (left of the root), then Newton climbs to it
    u = 0.0
    for _ in range(200):
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


@njit(leaf=True)
def _price_error(times: np.ndarray, cash: np.ndarray, price: float, u: float) -> float:
    pv = 0.0
    for t in range(cash.shape[0]):
        if cash[t] != 0.0:
            pv += cash[t] * np.exp(-times[t] * u)
    return pv - price


@njit(leaf=True)
def yield_on_grid(
    gap_id: np.ndarray,
    gap_years: np.ndarray,
    factor: np.ndarray,
    times: np.ndarray,
    cash: np.ndarray,
    price: float,
    guess: float = 0.0,
) -> float:
    """:func:`yield_at_price` on a payment grid made of a few distinct gaps: the same Newton
    search, with each discount factor ``exp(-u t)`` built as the previous date's times
    ``exp(-u gap)``, so a step costs one exponential per distinct gap instead of one per date.

    Parameters
    ----------
    gap_id : ndarray of int, shape (T,)
        Index into ``gap_years`` of the gap before each date (the first: from closing).
    gap_years : ndarray, shape (G,)
        The distinct gaps in years; ``times[t] = times[t - 1] + gap_years[gap_id[t]]``.
    factor : ndarray, shape (G,)
        Scratch for the gaps' discount factors (overwritten).
    times, cash, price, guess
        As in :func:`yield_at_price`.
    """
    if price <= 0.0:
        return np.nan
    total = 0.0
    last = -1  # last date with cash: the discount recurrence stops there
    for t in range(cash.shape[0]):
        total += cash[t]
        if cash[t] != 0.0:
            last = t
    if total <= 0.0:
        return -1.0
    u = np.log1p(guess) if guess > -1.0 else 0.0
    t_max = times[last]
    for _ in range(100):
        for g in range(gap_years.shape[0]):
            factor[g] = np.exp(-gap_years[g] * u)
        err = -price
        slope = 0.0
        d = 1.0
        for t in range(last + 1):
            d *= factor[gap_id[t]]
            v = cash[t] * d
            err += v
            slope -= times[t] * v
        if not (slope < 0.0 and np.isfinite(err)):
            break  # far out (overflow or no slope): the bracketing search
        step = err / slope
        u -= step
        if abs(step) < 1e-14 * max(1.0, abs(u)) or 0.5 * t_max * step * step < 1e-15 * max(1.0, abs(u)):
            return np.expm1(u)
    return _bracketed_yield(times, cash, price)
