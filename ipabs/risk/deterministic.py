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

# the prepayment rules moved down to the collateral layer (planned amortisation uses them at
# compile time); re-exported here, where they were
from ipabs.collateral.prepayment import annual_rates
from ipabs.collateral.prepayment import monthly_to_periods as monthly_to_periods
from ipabs.collateral.prepayment import period_months as period_months
from ipabs.collateral.prepayment import period_rate as period_rate
from ipabs.collateral.prepayment import prepayment_curve as prepayment_curve
from ipabs.collateral.prepayment import psa_cpr as psa_cpr
from ipabs.dates import add_months_day
from ipabs.deal.schema import (
    DefaultAssumption,
    DelinquencyAssumption,
    PrepaymentAssumption,
    RecoveryAssumption,
    RoyaltyAssumption,
    Scenario,
)


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
    delinquency: DelinquencyAssumption | None = None  # ---- delinquency


def resolve(scenario: Scenario, pool: str, obligor: str) -> Assumptions:
    """The assumptions for an asset: obligor override, else pool override, else scenario."""
    parts = {
        "defaults": scenario.defaults,
        "prepayment": scenario.prepayment,
        "recovery": scenario.recovery,
        "royalty": scenario.royalty,
        "delinquency": scenario.delinquency,
    }
    for level in ("pool", "obligor"):
        for ov in scenario.overrides:
            if getattr(ov, level) == (pool if level == "pool" else obligor):
                for k in parts:
                    v = getattr(ov, k)
                    if v is not None:
                        parts[k] = v
    return Assumptions(**parts)


def default_curve(
    d: DefaultAssumption, months: np.ndarray, maturity_month: int | None, lag: int, age: int = 0
) -> np.ndarray:
    """Per-period default rate of one asset (before named obligor defaults).

    ``maturity_month``: months from the start of the first period to the asset's maturity (SDA's
    lag rule); ``age``: the asset's age in whole months then (the SDA ramp counts loan age)."""
    n = len(months)
    rates = annual_rates(d.cdr, d.cdr_vector, months)
    if rates is not None:
        return rates
    if d.sda is not None:
        total = int(months.sum())
        m = np.arange(1, total + 1)
        mdr = period_rate(sda_cdr(m + age, d.sda), 1)
        if maturity_month is not None:
            mdr = np.where(m > maturity_month - lag, 0.0, mdr)
        return monthly_to_periods(np.asarray(mdr), months)
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
