"""Collateral value: what the pledged IP and the royalty catalogues are worth at the start of
each period, before the performance of a scenario or a Monte Carlo path is applied.

An asset is worth its pledged IP's appraisal (a fixed licence: its stream's ``valuation`` by
payment date) times its performing factor, applied by the collections kernels. A royalty
stream is worth its ``valuation`` of the payment date times the level of its base relative to
the stream's own growth (the scenario's or risk model's path of growth, levels and shocks),
until the stream ends; the kernels apply the licensee's survival, the haircut or the Brownian
factor and invalidation.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ipabs.collateral.assets import AssetArrays, RoyaltyArrays
from ipabs.collateral.royalty import BasePath, RoyaltyGrid, path_factor


def by_period(values: tuple[float, ...], n: int) -> np.ndarray:
    """One value per period from values by payment date whose last repeats."""
    out = np.empty(n)
    k = min(len(values), n)
    out[:k] = values[:k]
    out[k:] = values[-1]
    return out


def asset_values(assets: AssetArrays, n: int) -> np.ndarray:
    """(A, T): what each asset is worth at the start of each period while it performs on
    schedule: its pledged IP's appraisal (none: 0), or a fixed licence's ``valuation``."""
    appraisal = np.nan_to_num(np.asarray(assets.appraised_value, dtype=np.float64), nan=0.0)
    out = np.repeat(appraisal[:, None], n, axis=1)
    for a, values in assets.valuation.items():
        out[a] = by_period(values, n)
    return out


def royalty_values(roy: RoyaltyArrays, grid: np.ndarray, paths: list[BasePath]) -> np.ndarray:
    """(R, T): each stream's ``valuation`` at the start of each period (day ``grid[t]``) times
    the base along ``paths`` over the base at the stream's own growth, both at that day (days
    before the stream's start count as its start; a level vector's factor is period t's, and
    a shock dated that day counts); zero from the stream's end (its licence end or patent
    expiry) and for a stream without a valuation."""
    n = len(grid) - 1
    out = np.zeros((len(roy), n))
    for r in range(len(roy)):
        values = roy.valuation_path[r] if r < len(roy.valuation_path) else ()
        if not values:
            continue
        start = int(roy.start_day[r])
        own = BasePath(growth=float(roy.growth[r]))
        v = by_period(values, n)
        if paths[r].level_vector:  # the period's own level, not the one ending on its first day
            v *= by_period(paths[r].level_vector, n)
        path = replace(paths[r], level_vector=())
        for t in range(n):
            day = float(max(int(grid[t]), start))
            if day >= roy.end_day[r]:
                break
            ratio = path_factor(path, start, day, grid) / path_factor(own, start, day, grid)
            out[r, t] = v[t] * ratio
    return out


def value_slots(roy: RoyaltyArrays, rg: RoyaltyGrid, grid: np.ndarray) -> np.ndarray:
    """(R, T) int64: per stream, the last accrual slot that ends on or before the start of each
    period (day ``grid[t]``), -1 when none has: a Monte Carlo path values the catalogue at the
    Brownian factor of that slot."""
    n = len(grid) - 1
    out = np.full((len(roy), n), -1, dtype=np.int64)
    for r in range(len(roy)):
        start = int(roy.start_day[r])
        ends = []
        for j in range(rg.year_frac.shape[1]):
            if rg.year_frac[r, j] > 0.0:
                end = start + (rg.mid_years[r, j] + 0.5 * rg.year_frac[r, j]) * 365.0
                ends.append((round(end), j))
        for t in range(n):
            for end, j in ends:
                if end <= grid[t]:
                    out[r, t] = j
    return out


def value_years(roy: RoyaltyArrays, grid: np.ndarray) -> np.ndarray:
    """(R, T): years (ACT/365) from each stream's start to the start of each period (an
    invalidation before that time cuts the value)."""
    return (grid[None, :-1] - roy.start_day[:, None].astype(np.float64)) / 365.0
