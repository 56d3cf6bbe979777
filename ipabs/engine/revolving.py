"""Compile a deal's revolving period: when purchases may happen, and the contractual cash flows
of one unit of par of each purchase template bought on each payment date."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from ipabs.collateral.assets import rate_terms
from ipabs.collateral.schedule_numba_fns import AMORTISATION_CODES, asset_rate, contractual_flows
from ipabs.dates import DAY_COUNTS, add_months, from_day, to_day
from ipabs.deal.schema import MONTHS_PER_PERIOD, Deal


class RevolvingTerms(NamedTuple):
    """The revolving period as arrays. J templates, T periods; a unit bought on the payment
    date of period ``s`` pays from period ``s + 1``: age ``a`` is period ``s + 1 + a``."""

    last_period: int  # last period whose payment date may buy (-1: no revolving)
    price: float
    share: np.ndarray  # (J,)
    loan_size: np.ndarray  # (J,)
    max_share: np.ndarray  # (J,) inf: no limit
    eligible: np.ndarray  # (J, T) 1 when the template may be bought on period t's date
    unit_interest: np.ndarray  # (J, T, T) [template, purchase period, age]
    unit_principal: np.ndarray  # (J, T, T)
    unit_balance: np.ndarray  # (J, T, T) scheduled balance at the end of each age


def no_revolving(n: int) -> RevolvingTerms:
    """Terms of a deal without a revolving period."""
    return RevolvingTerms(
        -1,
        1.0,
        np.zeros(0),
        np.ones(0),
        np.zeros(0),
        np.zeros((0, n), dtype=np.int64),
        np.zeros((0, n, n)),
        np.zeros((0, n, n)),
        np.zeros((0, n, n)),
    )


def last_purchase_period(spec: Deal, dates: list[Any]) -> int:
    """Index of the last payment date of the revolving period (-1: none)."""
    rv = spec.revolving
    if rv is None:
        return -1
    if rv.periods is not None:
        return min(rv.periods, len(dates)) - 1
    return sum(1 for d in dates if d <= rv.until) - 1


def compile_revolving(
    spec: Deal, grid: np.ndarray, idx: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> RevolvingTerms:
    """The revolving terms of ``spec`` on the payment grid ``grid`` (day numbers)."""
    n = len(grid) - 1
    rv = spec.revolving
    if rv is None:
        return no_revolving(n)
    dates = [from_day(int(d)) for d in grid[1:]]
    last = last_purchase_period(spec, dates)
    index_ids = {name: i for i, name in enumerate(spec.indices)}
    tpl = rv.templates
    j_n = len(tpl)
    u_int = np.zeros((j_n, n, n))
    u_prin = np.zeros((j_n, n, n))
    u_bal = np.zeros((j_n, n, n))
    eligible = np.zeros((j_n, n), dtype=np.int64)
    terms = [rate_terms(x.rate, index_ids) for x in tpl]
    fixed = np.array([r[0] for r in terms], dtype=np.float64)
    index_id = np.array([r[1] for r in terms], dtype=np.int64)
    spread = np.array([r[2] for r in terms], dtype=np.float64)
    floor = np.array([r[3] for r in terms], dtype=np.float64)
    limits = rv.limits
    for s in range(min(last + 1, n - 1)):  # a purchase on the last date would never pay
        start = dates[s]
        sub = np.ascontiguousarray(grid[s + 1 :])
        m = len(sub) - 1
        out_i, out_p, out_b = np.zeros((j_n, m)), np.zeros((j_n, m)), np.zeros((j_n, m))
        contractual_flows(
            np.ones(j_n),
            fixed,
            index_id,
            spread,
            floor,
            np.array([to_day(add_months(start, x.term_months)) for x in tpl], dtype=np.int64),
            np.array([MONTHS_PER_PERIOD[x.payment_frequency] for x in tpl], dtype=np.int64),
            np.array([AMORTISATION_CODES[x.amortisation] for x in tpl], dtype=np.int64),
            np.zeros(j_n, dtype=np.int64),
            np.array([DAY_COUNTS[x.day_count] for x in tpl], dtype=np.int64),
            np.zeros(j_n),
            np.zeros(j_n + 1, dtype=np.int64),
            np.zeros(0, dtype=np.int64),
            np.zeros(0),
            idx[0],
            idx[1],
            idx[2],
            sub,
            out_i,
            out_p,
            out_b,
            np.full(j_n, -1, dtype=np.int64),
        )
        u_int[:, s, :m] = out_i
        u_prin[:, s, :m] = out_p
        u_bal[:, s, :m] = out_b
        for j, x in enumerate(tpl):
            rate = asset_rate(j, int(grid[s + 1]), fixed, index_id, spread, floor, idx[0], idx[1], idx[2])
            ok = limits.min_rate is None or rate >= limits.min_rate - 1e-12
            ok = ok and (limits.max_term_months is None or x.term_months <= limits.max_term_months)
            eligible[j, s] = 1 if ok else 0
    return RevolvingTerms(
        last,
        float(rv.price),
        np.array([x.share for x in tpl], dtype=np.float64),
        np.array([x.loan_size for x in tpl], dtype=np.float64),
        np.array([np.inf if x.max_share_of_pool is None else x.max_share_of_pool for x in tpl]),
        eligible,
        u_int,
        u_prin,
        u_bal,
    )
