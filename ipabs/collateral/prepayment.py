"""Prepayment speeds as per-period rates (SIFMA standard formulas): ``SMM = 1 - (1 -
CPR)^(1/12)``; an annual rate applies to a period of ``m`` months as ``1 - (1 - rate)^(m/12)``;
PSA: ``CPR = PSA/100 x 0.2% x min(max(month, 1), 30)``. Used by the deterministic scenarios
and, at compile time, by planned amortisation bands."""

from __future__ import annotations

import numpy as np

from ipabs.dates import from_day
from ipabs.deal.assumptions import PrepaymentAssumption


def period_rate(annual: np.ndarray | float, months: int) -> np.ndarray | float:
    """Annual rate -> rate over ``months`` months by the hazard rule."""
    return 1.0 - (1.0 - np.asarray(annual, dtype=np.float64)) ** (months / 12.0)


def psa_cpr(month: np.ndarray, psa: float) -> np.ndarray:
    """Annual CPR in month ``month`` (1-based) at ``psa`` percent PSA."""
    return psa / 100.0 * 0.002 * np.minimum(np.maximum(month, 1), 30)


def monthly_to_periods(monthly: np.ndarray, months_per_period: np.ndarray) -> np.ndarray:
    """Compound monthly rates (..., M) into period rates (..., T) given each period's months."""
    out = np.empty((*monthly.shape[:-1], len(months_per_period)))
    m0 = 0
    for t, m in enumerate(months_per_period):
        out[..., t] = 1.0 - np.prod(1.0 - monthly[..., m0 : m0 + m], axis=-1)
        m0 += m
    return out


def period_months(grid: np.ndarray) -> np.ndarray:
    """Whole months in each period of the grid (at least 1; a short stub counts as 1)."""
    out = np.empty(len(grid) - 1, dtype=np.int64)
    for t in range(len(grid) - 1):
        a, b = from_day(int(grid[t])), from_day(int(grid[t + 1]))
        months = (
            (b.year - a.year) * 12
            + (b.month - a.month)
            + (1 if b.day - a.day > 15 else 0)
            - (1 if b.day - a.day < -15 else 0)
        )
        out[t] = max(months, 1)
    return out


def annual_rates(flat: float | None, vector: list[float] | None, months: np.ndarray) -> np.ndarray | None:
    """Per-period rates from an annual rate, or from a vector of annual rates by period (the
    last repeating); None when neither is given."""
    n = len(months)
    if flat is not None:
        return period_rate(np.full(n, flat), months)  # type: ignore[return-value]
    if vector is not None:
        v = np.array([vector[min(t, len(vector) - 1)] for t in range(n)])
        return period_rate(v, months)  # type: ignore[return-value]
    return None


def prepayment_curve(p: PrepaymentAssumption, months: np.ndarray, age: int = 0) -> np.ndarray:
    """Per-period prepayment rate SMM (share of the start balance less its expected
    scheduled amortisation, as in SIFMA's standard formulas).

    ``age``: the loan's age in whole months at the start of the first period; the PSA ramp
    counts loan age, so the first month of a loan aged 20 has the CPR of month 21."""
    n = len(months)
    rates = annual_rates(p.cpr, p.cpr_vector, months)
    if rates is not None:
        return rates
    if p.psa is not None:
        m = np.arange(1, int(months.sum()) + 1) + age
        return monthly_to_periods(np.asarray(period_rate(psa_cpr(m, p.psa), 1)), months)
    return np.zeros(n)
