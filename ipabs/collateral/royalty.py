"""Royalty and income-share streams on the deal's period grid.

A stream accrues in each accrual slot ``royalty(S) x yf``: the slots cut the stream's life
(from closing or its start to its end) at every note payment date and at every one of the
stream's own payment dates; ``S`` is the annual base (sales or income) — ``initial x (1 +
growth)^years`` since the stream's start, taken at the middle of the slot (times a random factor
in the Monte Carlo) — ``yf`` is the slot's length in years (ACT/365), and ``royalty`` applies the
tiered rate (or income share) and bounds it by the annual minimum and cap. A slot is paid on the
stream's first payment date on or after its end, plus the payment lag, and collected in the note
period in which that day falls; payments after legal final are not collected (period -1).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from ipabs._jit import njit
from ipabs.collateral.assets import RoyaltyArrays
from ipabs.dates import add_months_day


@njit(leaf=True, inline="always")
def royalty_amount(
    annual_base: float,
    rate: float,
    kind: int,
    tier_lo: int,
    tier_hi: int,
    tier_above: np.ndarray,
    tier_rate: np.ndarray,
    minimum: float,
    cap: float,
) -> float:
    """Annual royalty on an annual base: tiered rate x sales (kind 0) or share x income
    (kind 1), bounded by the annual minimum and cap."""
    base = max(annual_base, 0.0)
    if kind == 1:
        amount = rate * base
    else:
        amount = 0.0
        lower = 0.0
        r = rate
        for j in range(tier_lo, tier_hi):
            upper = tier_above[j]
            if base > lower:
                amount += r * (min(base, upper) - lower)
            lower = upper
            r = tier_rate[j]
        if base > lower:
            amount += r * (base - lower)
    return min(max(amount, minimum), cap)


@dataclass(frozen=True)
class RoyaltyGrid:
    """Where and when each stream accrues, in accrual slots. Shapes (R, K).

    A stream's slots cut its accrual (from closing or its start, to its end) at every note
    payment date and at every one of its own payment dates, in time order; a stream with
    fewer slots than ``K`` is padded with empty slots (``year_frac`` 0, ``pay_period`` -1).
    When the stream pays on the note dates, its slots are the note periods.

    Attributes
    ----------
    base : expected annual base in each slot (at the middle of the slot)
    year_frac : length of each slot, in years (ACT/365)
    mid_years : years from the stream's start to the middle of the slot
    pay_period : period in which the slot's accrual is paid (-1: never, after legal final)
    """

    base: np.ndarray
    year_frac: np.ndarray
    mid_years: np.ndarray
    pay_period: np.ndarray


def _stream_slots(
    start: int, end: int, months: int, lag: int, grid: np.ndarray, extra: tuple[int, ...] = ()
) -> list[tuple[int, int, int]]:
    """(slot start, slot end, payment day) of one stream's accrual slots, in time order.

    Slots run from ``max(closing, start)`` to ``end``, cut at the note dates (so that no slot
    spans two collection periods' worth of accrual) and at the stream's own payment dates
    ``start + k x months`` (so that each slot is paid on exactly one of them), and at the
    ``extra`` days (a shock of the base: no slot straddles a jump). A slot is paid on the
    first of the stream's dates on or after its end, plus ``lag`` months.
    """
    lo = max(int(grid[0]), start)
    if end <= lo:
        return []
    cuts = {lo, end}
    cuts.update(int(d) for d in grid if lo < d < end)
    cuts.update(int(d) for d in extra if lo < d < end)
    k = 1
    own = []  # the stream's own payment dates up to the first one on or after `end`
    while True:
        d = add_months_day(start, k * months)
        own.append(d)
        if d >= end:
            break
        if d > lo:
            cuts.add(d)
        k += 1
    bounds = sorted(cuts)
    slots = []
    j = 0
    for s, e in pairwise(bounds):
        while own[j] < e:
            j += 1
        slots.append((s, e, add_months_day(own[j], lag)))
    return slots


# ---- time-varying royalty bases


@dataclass(frozen=True)
class BasePath:
    """The path of one stream's expected base relative to its start (see
    :class:`~ipabs.deal.assumptions.RoyaltyPath`), in day numbers.

    The base at day ``x`` is ``initial x exp(integral of log(1 + g) dt) x product of (1 +
    level) x level_vector[period of x]``: ``g`` is the annual growth in force (the growth of
    the latest shock at or before ``x`` that sets one, else ``growth_vector`` of the payment
    period, else ``growth``), ``t`` in years (ACT/365) from the stream's start, and the
    product runs over the shocks after the stream's start and on or before ``x``.
    """

    growth: float
    growth_vector: tuple[float, ...] = ()
    level_vector: tuple[float, ...] = ()
    shock_day: tuple[int, ...] = ()
    shock_level: tuple[float, ...] = ()
    shock_growth: tuple[float, ...] = ()  # nan: the growth in force continues

    def is_flat(self) -> bool:
        """One constant growth rate: the base is ``initial x (1 + growth)^years``."""
        return not (self.growth_vector or self.level_vector or self.shock_day)


def base_path(path: object, stream_growth: float) -> BasePath:
    """A stream's :class:`BasePath` from a :class:`~ipabs.deal.assumptions.RoyaltyPath`
    (a scenario's `royalty` or `risk.royalty`) and the stream's own growth."""
    from ipabs.dates import to_day
    from ipabs.deal.assumptions import RoyaltyPath

    assert isinstance(path, RoyaltyPath)
    return BasePath(
        growth=float(stream_growth if path.growth is None else path.growth),
        growth_vector=tuple(float(x) for x in path.growth_vector or ()),
        level_vector=tuple(float(x) for x in path.level_vector or ()),
        shock_day=tuple(to_day(s.from_) for s in path.shocks),
        shock_level=tuple(float(s.level) for s in path.shocks),
        shock_growth=tuple(np.nan if s.growth is None else float(s.growth) for s in path.shocks),
    )


def _period_of(day: float, grid: np.ndarray) -> int:
    """0-based note period containing ``day`` (``grid[t] < day <= grid[t + 1]``); days before
    closing count in the first period and days after legal final in the last."""
    t = int(np.searchsorted(grid, day, side="left")) - 1
    return min(max(t, 0), len(grid) - 2)


def _growth_at(path: BasePath, day: float, grid: np.ndarray) -> float:
    """Annual growth in force at ``day`` (inside a segment, never on a breakpoint)."""
    for k in range(len(path.shock_day) - 1, -1, -1):
        if path.shock_day[k] <= day and not np.isnan(path.shock_growth[k]):
            return path.shock_growth[k]
    if path.growth_vector:
        v = path.growth_vector
        return v[min(_period_of(day, grid), len(v) - 1)]
    return path.growth


def path_factor(path: BasePath, start: int, day: float, grid: np.ndarray) -> float:
    """Base at ``day`` over the base at the stream's ``start`` (days), on the note ``grid``."""
    if path.is_flat():
        return (1.0 + path.growth) ** ((day - start) / 365.0)
    lo, hi = (start, day) if day >= start else (day, start)
    cuts = {lo, hi}
    if path.growth_vector:
        cuts.update(float(d) for d in grid[1:-1] if lo < d < hi)
    cuts.update(float(d) for d in path.shock_day if lo < d < hi)
    edges = sorted(cuts)
    log_growth = 0.0
    for a, b in pairwise(edges):
        log_growth += np.log1p(_growth_at(path, (a + b) / 2.0, grid)) * (b - a) / 365.0
    if day < start:
        log_growth = -log_growth
    factor = float(np.exp(log_growth))
    for d, level in zip(path.shock_day, path.shock_level, strict=True):
        if start < d <= day:
            factor *= 1.0 + level
    if path.level_vector:
        v = path.level_vector
        factor *= v[min(_period_of(day, grid), len(v) - 1)]
    return factor


def royalty_grid(
    roy: RoyaltyArrays, grid: np.ndarray, growth: np.ndarray, paths: list[BasePath] | None = None
) -> RoyaltyGrid:
    """Lay every stream's accrual slots on the period grid with the given annual ``growth`` (R,),
    or along the given base ``paths`` (one per stream; their shocks also cut the slots).

    Each slot's accrual is collected in the note period in which its payment day falls
    (``previous date < day <= payment date``); a payment day after legal final is never
    collected.
    """
    slots = [
        _stream_slots(
            int(roy.start_day[r]),
            int(roy.end_day[r]),
            int(roy.freq_months[r]),
            int(roy.lag_months[r]),
            grid,
            () if paths is None else paths[r].shock_day,
        )
        for r in range(len(roy))
    ]
    n_slots = max((len(x) for x in slots), default=0)
    shape = (len(roy), n_slots)
    base = np.zeros(shape)
    yf = np.zeros(shape)
    mid = np.zeros(shape)
    pay = np.full(shape, -1, dtype=np.int64)
    for r, stream in enumerate(slots):
        start = int(roy.start_day[r])
        for j, (s, e, pay_day) in enumerate(stream):
            yf[r, j] = (e - s) / 365.0
            mid[r, j] = ((s + e) / 2.0 - start) / 365.0
            if paths is None or paths[r].is_flat():
                g_r = growth[r] if paths is None else paths[r].growth
                base[r, j] = roy.initial[r] * (1.0 + g_r) ** mid[r, j]
            else:
                base[r, j] = roy.initial[r] * path_factor(paths[r], start, (s + e) / 2.0, grid)
            if pay_day <= grid[-1]:
                pay[r, j] = max(int(np.searchsorted(grid, pay_day, side="left")) - 1, 0)
    return RoyaltyGrid(base, yf, mid, pay)


@njit(leaf=True, inline="always")
def royalty_accrual(
    r: int,
    t: int,
    base_factor: float,
    base: np.ndarray,  # (R, K)
    year_frac: np.ndarray,  # (R, K)
    rate: np.ndarray,  # (R,)
    kind: np.ndarray,  # (R,)
    tier_ptr: np.ndarray,  # (R+1,)
    tier_above: np.ndarray,
    tier_rate: np.ndarray,
    minimum: np.ndarray,  # (R,)
    cap: np.ndarray,  # (R,)
) -> float:
    """Royalty stream ``r`` accrues in slot ``t`` when its base is ``base_factor`` x expected."""
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
    roy: RoyaltyArrays,
    grid: np.ndarray,
    growth: np.ndarray,
    haircut: np.ndarray,
    paths: list[BasePath] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic royalty accrued in each slot and the period in which it is paid.

    Parameters
    ----------
    roy : RoyaltyArrays
    grid : ndarray, shape (T+1,)
    growth, haircut : ndarray, shape (R,)
    paths : list of BasePath, optional
        One per stream: the base's path (replaces ``growth``).

    Returns
    -------
    accrual : ndarray, shape (R, K)
    pay_period : ndarray, shape (R, K), int64
    """
    g = royalty_grid(roy, grid, growth, paths)
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
