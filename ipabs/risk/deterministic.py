"""Deterministic scenarios: default, prepayment, recovery and royalty assumptions turned into
per-asset, per-period rates for the collections kernel.

Conventions (SIFMA standard formulas): ``SMM = 1 - (1 - CPR)^(1/12)`` and likewise MDR from
CDR; an annual rate applies to a period of ``m`` months as ``1 - (1 - rate)^(m/12)``.
PSA: ``CPR = PSA/100 x 0.2% x min(max(month, 1), 30)``. SDA 100%: CDR ``0.02% x m`` up to
month 30, ``0.6%`` to 60, falling ``0.0095%`` a month to ``0.03%`` at 120, and zero in the
asset's last months equal to the liquidation lag.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from ipabs.dates import add_months_day, from_day
from ipabs.deal.schema import (
    DefaultAssumption,
    PrepaymentAssumption,
    RecoveryAssumption,
    RoyaltyAssumption,
    Scenario,
)


def period_rate(annual: np.ndarray | float, months: int) -> np.ndarray | float:
    """Annual rate -> rate over ``months`` months by the hazard rule."""
    return 1.0 - (1.0 - np.asarray(annual, dtype=np.float64)) ** (months / 12.0)


def psa_cpr(month: np.ndarray, psa: float) -> np.ndarray:
    """Annual CPR in month ``month`` (1-based) at ``psa`` percent PSA."""
    return psa / 100.0 * 0.002 * np.minimum(np.maximum(month, 1), 30)


def sda_cdr(month: np.ndarray, sda: float) -> np.ndarray:
    """Annual CDR in month ``month`` (1-based) at ``sda`` percent SDA (before the lag rule)."""
    m = np.asarray(month, dtype=np.float64)
    base = np.where(
        m <= 30,
        0.0002 * m,
        np.where(m <= 60, 0.006, np.where(m <= 120, 0.006 - 0.000095 * (m - 60), 0.0003)),
    )
    return np.minimum(sda / 100.0 * base, 1.0)


@dataclass(frozen=True)
class Assumptions:
    """Resolved assumptions of one asset group (pool, obligor)."""

    defaults: DefaultAssumption
    prepayment: PrepaymentAssumption
    recovery: RecoveryAssumption
    royalty: RoyaltyAssumption


def resolve(scenario: Scenario, pool: str, obligor: str) -> Assumptions:
    """The assumptions for an asset: obligor override, else pool override, else scenario."""
    parts = {
        "defaults": scenario.defaults,
        "prepayment": scenario.prepayment,
        "recovery": scenario.recovery,
        "royalty": scenario.royalty,
    }
    for level in ("pool", "obligor"):
        for ov in scenario.overrides:
            if getattr(ov, level) == (pool if level == "pool" else obligor):
                for k in parts:
                    v = getattr(ov, k)
                    if v is not None:
                        parts[k] = v
    return Assumptions(**parts)


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


def default_curve(
    d: DefaultAssumption, months: np.ndarray, maturity_month: int | None, lag: int
) -> np.ndarray:
    """Per-period default rate of one asset (before named obligor defaults)."""
    n = len(months)
    if d.cdr is not None:
        return period_rate(np.full(n, d.cdr), months)  # type: ignore[return-value]
    if d.cdr_vector is not None:
        v = np.array([d.cdr_vector[min(t, len(d.cdr_vector) - 1)] for t in range(n)])
        return period_rate(v, months)  # type: ignore[return-value]
    if d.sda is not None:
        total = int(months.sum())
        m = np.arange(1, total + 1)
        mdr = period_rate(sda_cdr(m, d.sda), 1)
        if maturity_month is not None:
            mdr = np.where(m > maturity_month - lag, 0.0, mdr)
        return monthly_to_periods(np.asarray(mdr), months)
    return np.zeros(n)


def prepayment_curve(p: PrepaymentAssumption, months: np.ndarray) -> np.ndarray:
    """Per-period prepayment rate SMM (share of the start balance less its expected
    scheduled amortisation, as in SIFMA's standard formulas)."""
    n = len(months)
    if p.cpr is not None:
        return period_rate(np.full(n, p.cpr), months)  # type: ignore[return-value]
    if p.cpr_vector is not None:
        v = np.array([p.cpr_vector[min(t, len(p.cpr_vector) - 1)] for t in range(n)])
        return period_rate(v, months)  # type: ignore[return-value]
    if p.psa is not None:
        m = np.arange(1, int(months.sum()) + 1)
        return monthly_to_periods(np.asarray(period_rate(psa_cpr(m, p.psa), 1)), months)
    return np.zeros(n)


def default_period(when: int | dt.date, grid: np.ndarray) -> int:
    """0-based period of a named default (period number or date); T when after legal final."""
    if isinstance(when, dt.date):
        from ipabs.dates import to_day

        day = to_day(when)
        t = int(np.searchsorted(grid, day, side="left")) - 1
        return max(t, 0) if day <= grid[-1] else len(grid) - 1
    return max(int(when) - 1, 0)


def lag_table(grid: np.ndarray, lags: list[int]) -> np.ndarray:
    """(L, T): the period receiving cash ``lag`` months after the end of each default period,
    or -1 when that falls after the legal final date."""
    n = len(grid) - 1
    out = np.full((len(lags), n), -1, dtype=np.int64)
    for i, lag in enumerate(lags):
        for t in range(n):
            day = add_months_day(int(grid[t + 1]), lag)
            if day <= grid[-1]:
                out[i, t] = max(int(np.searchsorted(grid, day, side="left")) - 1, t)
    return out
