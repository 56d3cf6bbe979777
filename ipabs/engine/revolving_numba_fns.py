"""Kernels of the revolving period: assets bought by ``buy_assets`` steps, held as cohorts (one
per template and purchase date), and their cash flows period by period.

A cohort is ``n`` equal loans of at most the template's ``loan_size``. Its flows follow SIFMA's
standard formulas (:func:`sifma_period`) on the cohort as a whole: defaults hit the performing
balance at the start of a period, interest and scheduled principal are collected on what
survives, and prepayments are the SMM of the start balance less its expected amortisation.

In a deterministic run (``MODE_EXPECTED``) a cohort defaults at the scenario's rate of each
period. On a Monte Carlo path (``MODE_RANDOM``) every loan is a new obligor: when it is bought
it draws one uniform from the path's revolving stream, its latent variable loads on the path's
systematic factors like any obligor's, and the first age whose threshold (the cumulative PD
since purchase) it falls below is when it defaults. Recoveries arrive after the recovery lag.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ipabs._jit import njit
from ipabs.numerics.normal_numba_fns import norm_cdf, norm_ppf
from ipabs.numerics.rng_numba_fns import normal, uniform

MODE_NONE = 0  # the deal has no revolving period
MODE_EXPECTED = 1  # deterministic scenario: expected defaults
MODE_RANDOM = 2  # Monte Carlo path: each purchased loan is an obligor

REC_CONSTANT = 0
REC_LOGNORMAL = 1
REC_BETA = 2

# columns of the period flows of all cohorts (RevolvingPath.flow)
F_INTEREST = 0
F_SCHED_PRINCIPAL = 1
F_PREPAYMENT = 2
F_DEFAULT = 3
F_BALANCE_START = 4
F_BALANCE_END = 5
F_RECOVERY = 6
F_REALISED_LOSS = 7
F_COLLATERAL_VALUE = 8  # ---- collateral value: pledged IP of the performing loans, period start
N_FLOW = 9

# RevolvingPath.total
T_PURCHASED = 0  # par bought
T_DEFAULTED = 1  # balance defaulted
T_LOSS = 2  # defaulted balance less recoveries (those within the deal's life)
T_DEFAULTS = 3  # loans defaulted (Monte Carlo)
N_TOTAL = 4

EPS = 1e-6


class RevolvingPath(NamedTuple):
    """What the revolving kernels read and write on one path (or one deterministic run).
    J templates, T periods, C cohorts (one per template and purchase date)."""

    mode: int  # MODE_*
    mdr: np.ndarray  # (T,) expected mode: share of the performing balance defaulting
    smm: np.ndarray  # (T,) prepayment rate (SIFMA SMM)
    rec_rate: np.ndarray  # (J,) recovery per unit of defaulted balance (constant recovery)
    rec_lag: np.ndarray  # (T,) period receiving the recovery of a default in t (-1: after the end)
    state: np.ndarray  # (4,) uint64: the path's revolving generator (random mode)
    factor: np.ndarray  # (2,) the path's global factor and Student-t scale (1: Gaussian)
    mean: np.ndarray  # (J,) systematic part of each template's latent variable on the path
    idio: np.ndarray  # (J,) weight of the idiosyncratic part
    threshold: np.ndarray  # (J, T, T) latent threshold of default by age a of a purchase in s
    rec_model: int  # REC_*
    rec_param: np.ndarray  # (4,) loading, mu, sigma, disposal cost of the value model
    rec_quantile: np.ndarray  # beta value quantiles (or empty)
    appraisal_ratio: np.ndarray  # (J,) nan: recover rec_rate of the exposure
    c_template: np.ndarray  # (C,) int
    c_start: np.ndarray  # (C,) int purchase period
    c_par: np.ndarray  # (C,) par bought
    c_loans: np.ndarray  # (C,) loans not (yet) defaulted
    c_loan_par: np.ndarray  # (C,) par of each loan
    c_factor: np.ndarray  # (C,) performing balance / scheduled balance of the par bought
    c_default: np.ndarray  # (C, T) loans defaulting at each age (random mode)
    n_cohorts: np.ndarray  # (1,) int
    pending: np.ndarray  # (T, 2) recoveries and realised losses arriving in each period
    flow: np.ndarray  # (N_FLOW,) this period's flows of all cohorts
    total: np.ndarray  # (N_TOTAL,)


def revolving_path(
    mode: int,
    n_templates: int,
    n_periods: int,
    n_cohorts: int,
    *,
    mdr: np.ndarray | None = None,
    smm: np.ndarray | None = None,
    rec_rate: np.ndarray | None = None,
    rec_lag: np.ndarray | None = None,
    idio: np.ndarray | None = None,
    threshold: np.ndarray | None = None,
    rec_model: int = REC_CONSTANT,
    rec_param: np.ndarray | None = None,
    rec_quantile: np.ndarray | None = None,
    appraisal_ratio: np.ndarray | None = None,
) -> RevolvingPath:
    """A :class:`RevolvingPath` with its scratch allocated (zeros where not given)."""
    j, n = n_templates, n_periods

    def f64(x: np.ndarray | None, shape: tuple[int, ...], fill: float = 0.0) -> np.ndarray:
        return np.full(shape, fill) if x is None else np.ascontiguousarray(x, dtype=np.float64)

    return new_revolving_path(
        mode,
        f64(mdr, (n,)),
        f64(smm, (n,)),
        f64(rec_rate, (j,)),
        np.full(n, -1, dtype=np.int64) if rec_lag is None else np.ascontiguousarray(rec_lag, dtype=np.int64),
        f64(idio, (j,), 1.0),
        f64(threshold, (j, n, n), -np.inf),
        rec_model,
        f64(rec_param, (4,)),
        f64(rec_quantile, (0,)),
        f64(appraisal_ratio, (j,), np.nan),
        n_cohorts,
    )


@njit
def new_revolving_path(  # type: ignore[no-untyped-def]
    mode, mdr, smm, rec_rate, rec_lag, idio, threshold, rec_model, rec_param, rec_quantile, ratio, n_cohorts
):
    """A :class:`RevolvingPath` over the given assumptions, with fresh scratch for
    ``n_cohorts`` cohorts (the one constructor: deterministic runs and Monte Carlo threads)."""
    n = mdr.shape[0]
    return RevolvingPath(
        mode,
        mdr,
        smm,
        rec_rate,
        rec_lag,
        np.zeros(4, dtype=np.uint64),
        np.array([0.0, 1.0]),
        np.zeros(idio.shape[0]),
        idio,
        threshold,
        rec_model,
        rec_param,
        rec_quantile,
        ratio,
        np.zeros(n_cohorts, dtype=np.int64),
        np.zeros(n_cohorts, dtype=np.int64),
        np.zeros(n_cohorts),
        np.zeros(n_cohorts),
        np.zeros(n_cohorts),
        np.zeros(n_cohorts),
        np.zeros((n_cohorts, n)),
        np.zeros(1, dtype=np.int64),
        np.zeros((n, 2)),
        np.zeros(N_FLOW),
        np.zeros(N_TOTAL),
    )


@njit(leaf=True)
def recovery_value(model, loading, mu, sigma, quantile, z0, eps):  # type: ignore[no-untyped-def]
    """Value factor of a defaulted asset's pledged IP: lognormal or beta (a quantile table on a
    uniform grid, linearly interpolated) of ``loading x z0 + sqrt(1 - loading^2) x eps``."""
    x = loading * z0 + math.sqrt(1.0 - loading * loading) * eps
    if model == REC_LOGNORMAL:
        return math.exp(mu + sigma * x)
    q = quantile
    pos = norm_cdf(x) * q.shape[0] - 0.5
    if pos <= 0.0:
        return q[0]
    i = int(pos)
    if i >= q.shape[0] - 1:
        return q[q.shape[0] - 1]
    w = pos - i
    return q[i] * (1.0 - w) + q[i + 1] * w


@njit(leaf=True)
def reset(rv):  # type: ignore[no-untyped-def]
    """Forget the cohorts, pending cash and totals of the previous path."""
    rv.n_cohorts[0] = 0
    rv.pending[:] = 0.0
    rv.total[:] = 0.0


@njit(leaf=True)
def performing_balance(cd, rv, t, j):  # type: ignore[no-untyped-def]
    """Performing balance at the end of period ``t`` of the cohorts of template ``j`` (all
    templates when ``j`` < 0)."""
    total = 0.0
    for c in range(rv.n_cohorts[0]):
        jc = rv.c_template[c]
        if j >= 0 and jc != j:
            continue
        s = rv.c_start[c]
        if t > s:
            total += rv.c_factor[c] * cd.rv_bal[jc, s, t - s - 1] * rv.c_par[c]
        else:
            total += rv.c_factor[c] * rv.c_par[c]
    return total


@njit(leaf=True)
def period_flows(cd, rv, t):  # type: ignore[no-untyped-def]
    """Cash flows of every cohort in period ``t`` into ``rv.flow`` (defaults, recoveries and
    realised losses of later periods go to ``rv.pending``)."""
    flow = rv.flow
    flow[:] = 0.0
    flow[F_RECOVERY] = rv.pending[t, 0]
    flow[F_REALISED_LOSS] = rv.pending[t, 1]
    for c in range(rv.n_cohorts[0]):
        s = rv.c_start[c]
        a = t - s - 1
        if a < 0:
            continue
        j = rv.c_template[c]
        q = rv.c_factor[c]
        par = rv.c_par[c]
        unit_start = 1.0 if a == 0 else cd.rv_bal[j, s, a - 1]
        start = q * unit_start * par
        if start <= 0.0:
            continue  # repaid (or nothing left)
        n_def = 0.0
        if rv.mode == MODE_RANDOM:
            n_def = rv.c_default[c, a]
            mdr = n_def / rv.c_loans[c] if rv.c_loans[c] > 0.0 else 0.0
            rv.c_loans[c] -= n_def
        else:
            mdr = rv.mdr[t]
        defaulted = start * mdr
        # sifma_period, inlined: survivors pay; prepayments on the start balance less its
        # expected amortisation, so this period's defaults do not shrink them
        survivors = q * (1.0 - mdr)
        prepaid = q * min(rv.smm[t], 1.0 - mdr)
        q_end = survivors - prepaid
        flow[F_INTEREST] += survivors * cd.rv_int[j, s, a] * par
        flow[F_SCHED_PRINCIPAL] += survivors * cd.rv_prin[j, s, a] * par
        flow[F_PREPAYMENT] += prepaid * cd.rv_bal[j, s, a] * par
        flow[F_BALANCE_START] += start
        ratio = rv.appraisal_ratio[j]
        # each loan's pledged IP is appraised at ratio x its par, until its schedule is repaid
        # (a rounding residue of the unit schedule is not a balance: see REPAID_SHARE)
        if not math.isnan(ratio) and unit_start > 1e-9:
            flow[F_COLLATERAL_VALUE] += ratio * q * par
        flow[F_BALANCE_END] += q_end * cd.rv_bal[j, s, a] * par
        rv.c_factor[c] = q_end
        if defaulted > 0.0:
            flow[F_DEFAULT] += defaulted
            if rv.mode == MODE_RANDOM and rv.rec_model != REC_CONSTANT and not math.isnan(ratio):
                # each defaulted loan sells its own pledged IP
                exposure = defaulted / n_def
                appraisal = ratio * rv.c_loan_par[c]
                rec = 0.0
                p = rv.rec_param
                for _ in range(int(n_def + 0.5)):
                    value = recovery_value(
                        rv.rec_model, p[0], p[1], p[2], rv.rec_quantile, rv.factor[0], normal(rv.state)
                    )
                    rec += min(exposure, max(appraisal * (value - p[3]), 0.0))
            else:
                rec = rv.rec_rate[j] * defaulted
            rec = min(rec, defaulted)
            tr = rv.rec_lag[t]
            if tr < 0:
                rec = 0.0
            else:
                rv.pending[tr, 0] += rec
                rv.pending[tr, 1] += defaulted - rec
            rv.total[T_DEFAULTED] += defaulted
            rv.total[T_LOSS] += defaulted - rec
            rv.total[T_DEFAULTS] += n_def


@njit(leaf=True)
def buy(cd, rv, t, cash, pool_balance):  # type: ignore[no-untyped-def]
    """Spend up to ``cash`` on period ``t``'s purchase (the templates' mix, eligible templates
    only, each within its share of the pool ``pool_balance`` after the purchase). Returns the
    cash spent; on a Monte Carlo path every loan bought draws its default age."""
    n_t = cd.n_periods
    if t >= n_t - 1 or cash <= EPS:
        return 0.0
    n_tpl = cd.rv_share.shape[0]
    weight = 0.0
    for j in range(n_tpl):
        if cd.rv_eligible[j, t]:
            weight += cd.rv_share[j]
    if weight <= 0.0:
        return 0.0
    wanted = cash / cd.rv_price
    bought = 0.0
    after = pool_balance + wanted
    for j in range(n_tpl):
        if not cd.rv_eligible[j, t]:
            continue
        x = wanted * cd.rv_share[j] / weight
        if cd.rv_max_share[j] < 1.0:
            room = cd.rv_max_share[j] * after - performing_balance(cd, rv, t, j)
            x = min(x, max(room, 0.0))
        c = rv.n_cohorts[0]
        if x <= EPS or c >= rv.c_template.shape[0]:  # room for one cohort per template and date
            continue
        rv.n_cohorts[0] = c + 1
        n = math.ceil(x / cd.rv_loan_size[j] - 1e-9)
        rv.c_template[c] = j
        rv.c_start[c] = t
        rv.c_par[c] = x
        rv.c_loans[c] = n
        rv.c_loan_par[c] = x / n
        rv.c_factor[c] = 1.0
        for a in range(n_t):
            rv.c_default[c, a] = 0.0
        if rv.mode == MODE_RANDOM:
            last = n_t - t - 2  # the last age before the legal final date
            thr = rv.threshold
            for _ in range(n):
                y = rv.mean[j] + rv.idio[j] * norm_ppf(uniform(rv.state))
                y /= rv.factor[1]
                if y < thr[j, t, last]:
                    a = 0
                    while y >= thr[j, t, a]:
                        a += 1
                    rv.c_default[c, a] += 1.0
        bought += x
    rv.total[T_PURCHASED] += bought
    return bought * cd.rv_price
