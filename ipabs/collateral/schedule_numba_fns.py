"""Kernel: contractual (no default, no prepayment) cash flows of amortising assets, bucketed
into the deal's collection periods.

Dimensions: A assets, T periods, K custom payments in all, I index points in all.
"""

from __future__ import annotations

import numpy as np

from ipabs._jit import njit
from ipabs.dates import add_months_day, year_fraction

BULLET = 0  # principal and all interest at maturity
IO_BULLET = 1  # interest each payment date, principal at maturity
ANNUITY = 2  # level payments (after an optional interest-only period)
EQUAL_PRINCIPAL = 3  # equal principal instalments (after an optional interest-only period)
CUSTOM = 4  # principal on given dates, interest each of those dates, the rest at maturity

AMORTISATION_CODES = {
    "bullet": BULLET,
    "interest_only_then_bullet": IO_BULLET,
    "annuity": ANNUITY,
    "equal_principal": EQUAL_PRINCIPAL,
    "custom": CUSTOM,
}


@njit
def index_rate(
    day: int, index_id: int, idx_ptr: np.ndarray, idx_day: np.ndarray, idx_rate: np.ndarray
) -> float:
    """Level of a step-function index curve on ``day`` (the first point applies before it)."""
    lo = idx_ptr[index_id]
    hi = idx_ptr[index_id + 1]
    r = idx_rate[lo]
    for j in range(lo, hi):
        if idx_day[j] <= day:
            r = idx_rate[j]
        else:
            break
    return r


@njit
def asset_rate(
    a: int,
    day: int,
    fixed_rate: np.ndarray,
    index_id: np.ndarray,
    spread: np.ndarray,
    rate_floor: np.ndarray,
    idx_ptr: np.ndarray,
    idx_day: np.ndarray,
    idx_rate: np.ndarray,
) -> float:
    """All-in annual rate of asset ``a`` for an accrual period starting on ``day``."""
    if index_id[a] < 0:
        return fixed_rate[a]
    r = index_rate(day, index_id[a], idx_ptr, idx_day, idx_rate) + spread[a]
    return max(r, rate_floor[a])


@njit
def _bucket(day: int, grid: np.ndarray) -> int:
    # period t (0-based) collects payments on days in (grid[t], grid[t+1]]
    t = np.searchsorted(grid, day, side="left") - 1
    if t < 0:
        t = 0
    if t > grid.shape[0] - 2:
        t = grid.shape[0] - 2
    return t


@njit
def contractual_flows(
    balance: np.ndarray,  # (A,)
    fixed_rate: np.ndarray,  # (A,) nan when floating
    index_id: np.ndarray,  # (A,) -1 when fixed
    spread: np.ndarray,  # (A,)
    rate_floor: np.ndarray,  # (A,) -inf when none
    maturity_day: np.ndarray,  # (A,)
    freq_months: np.ndarray,  # (A,)
    amortisation: np.ndarray,  # (A,) code
    io_months: np.ndarray,  # (A,)
    day_count: np.ndarray,  # (A,) code
    balloon: np.ndarray,  # (A,) balance left for the final payment (lease residual)
    custom_ptr: np.ndarray,  # (A+1,)
    custom_day: np.ndarray,  # (K,)
    custom_amount: np.ndarray,  # (K,)
    idx_ptr: np.ndarray,  # (n_index+1,)
    idx_day: np.ndarray,  # (I,)
    idx_rate: np.ndarray,  # (I,)
    grid: np.ndarray,  # (T+1,) period boundaries, grid[0] = closing
    out_interest: np.ndarray,  # (A, T) out
    out_principal: np.ndarray,  # (A, T) out
    out_balance: np.ndarray,  # (A, T) out: scheduled balance at the end of each period
    start_day: np.ndarray,  # (A,) origination day of a seasoned loan, -1 for none
) -> None:
    """Fill the contractual interest, principal and end-of-period balance of every asset.

    A seasoned loan (``start_day >= 0``) pays on its first date after the cut-off the interest
    accrued since its last scheduled date on or before the cut-off (or its origination), and its
    interest-only months count from origination; other assets accrue from the cut-off."""
    n_assets = balance.shape[0]
    n_periods = grid.shape[0] - 1
    close = grid[0]
    dates = np.empty(2048, dtype=np.int64)
    for a in range(n_assets):
        for t in range(n_periods):
            out_interest[a, t] = 0.0
            out_principal[a, t] = 0.0
        bal = balance[a]
        mat = maturity_day[a]
        code = amortisation[a]
        # payment dates, ascending
        n = 0
        if code == BULLET:
            dates[0] = mat
            n = 1
        elif code == CUSTOM:
            for j in range(custom_ptr[a], custom_ptr[a + 1]):
                if custom_day[j] < mat:
                    dates[n] = custom_day[j]
                    n += 1
            dates[n] = mat
            n += 1
        else:
            k = 0
            while True:
                d = add_months_day(mat, -k * freq_months[a])
                if d <= close or k >= dates.shape[0]:
                    break
                k += 1
            n = k
            for j in range(n):
                dates[j] = add_months_day(mat, -(n - 1 - j) * freq_months[a])
        prev = close
        io_end = add_months_day(close, io_months[a])
        if start_day[a] >= 0 and code != CUSTOM:  # ---- seasoned pools (a custom schedule
            # names only its dates after the cut-off, so it accrues from the cut-off)
            io_end = add_months_day(start_day[a], io_months[a])
            prev = start_day[a]  # a bullet pays all interest since origination
            if code != BULLET and n > 0:
                last = add_months_day(mat, -n * freq_months[a])  # last scheduled date <= cut-off
                if last > prev:
                    prev = last
        for j in range(n):
            d = dates[j]
            r = asset_rate(a, prev, fixed_rate, index_id, spread, rate_floor, idx_ptr, idx_day, idx_rate)
            interest = bal * r * year_fraction(prev, d, day_count[a])
            remaining = n - j
            if j == n - 1:
                principal = bal
            elif code == IO_BULLET:
                principal = 0.0
            elif code == CUSTOM:
                principal = 0.0
                for q in range(custom_ptr[a], custom_ptr[a + 1]):
                    if custom_day[q] == d:
                        principal += custom_amount[q]
            elif d <= io_end:
                principal = 0.0
            elif code == EQUAL_PRINCIPAL:
                principal = (bal - balloon[a]) / remaining
            else:  # ANNUITY: level payment on the nominal periodic rate
                rp = r * freq_months[a] / 12.0
                if rp == 0.0:
                    principal = (bal - balloon[a]) / remaining
                else:
                    v = (1.0 + rp) ** (-remaining)
                    payment = (bal - balloon[a] * v) * rp / (1.0 - v)
                    principal = payment - bal * rp
            if code == CUSTOM:
                # a rent or instalment below the interest capitalises the difference
                principal = min(principal, bal)
            else:
                principal = min(max(principal, 0.0), bal)
            t = _bucket(d, grid)
            out_interest[a, t] += interest
            out_principal[a, t] += principal
            bal -= principal
            prev = d
        remaining_bal = balance[a]
        for t in range(n_periods):
            remaining_bal -= out_principal[a, t]
            out_balance[a, t] = max(remaining_bal, 0.0)
