"""Kernels: asset cash flows of one path, summed per pool and collection period.

Column layout of the collections array (last axis), shared with the waterfall kernel.
Dimensions: A assets, R royalty streams, P pools, T periods, L distinct lags.
"""

from __future__ import annotations

import numpy as np

from ipabs._jit import njit

C_INTEREST = 0  # interest collected on performing assets
C_SCHED_PRINCIPAL = 1  # scheduled principal collected
C_PREPAYMENT = 2  # prepayments
C_RECOVERY = 3  # recoveries on defaulted assets (after the lag)
C_GUARANTEE = 4  # payments by loan guarantors
C_ROYALTY = 5  # royalty and income-share payments
C_DEFAULT = 6  # principal balance that defaulted in the period
C_BALANCE_START = 7  # performing balance at the start of the period
C_BALANCE_END = 8  # performing balance at the end of the period
C_LOSS = 9  # defaulted balance less what recovery and guarantee will bring
N_COLLECTION_COLUMNS = 10

COLLECTION_COLUMNS = (
    "interest",
    "scheduled_principal",
    "prepayment",
    "recovery",
    "guarantee",
    "royalty",
    "defaults",
    "balance_start",
    "balance_end",
    "loss",
)


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


@njit
def deterministic_collections(
    pool: np.ndarray,  # (A,)
    sched_interest: np.ndarray,  # (A, T)
    sched_principal: np.ndarray,  # (A, T)
    sched_balance: np.ndarray,  # (A, T) scheduled balance at period end
    balance: np.ndarray,  # (A,) balance at closing
    mdr: np.ndarray,  # (A, T) share of the performing balance defaulting in each period
    smm: np.ndarray,  # (A, T) share of the post-amortisation balance prepaid
    recovery_rate: np.ndarray,  # (A,)
    recovery_cap: np.ndarray,  # (A,) recovery cap on a full default (inf: none)
    recovery_lag: np.ndarray,  # (A,) lag id into lag_period
    guarantee_share: np.ndarray,  # (A,)
    guarantee_lag: np.ndarray,  # (A,) lag id into lag_period
    guarantee_stop: np.ndarray,  # (A,) period from which the guarantor pays nothing
    lag_period: np.ndarray,  # (L, T) period receiving cash for a default in t; -1 beyond legal final
    roy_pool: np.ndarray,  # (R,)
    roy_accrual: np.ndarray,  # (R, K) royalty accrued in each accrual slot (before survival)
    roy_pay_period: np.ndarray,  # (R, K) period in which a slot's accrual is paid; -1 never
    roy_mdr: np.ndarray,  # (R, T) licensee default rate per period
    out: np.ndarray,  # (P, T, N_COLLECTION_COLUMNS) out
) -> None:
    """Expected-value cash flows under deterministic default and prepayment rates.

    Per period, in this order: defaults hit the performing balance at the start of the period;
    interest and scheduled principal are collected on what survives; prepayments apply after
    scheduled amortisation. A default's guarantee and recovery arrive after their lags.
    """
    out[:] = 0.0
    n_assets, n_periods = sched_interest.shape
    for a in range(n_assets):
        p = pool[a]
        q = 1.0  # performance factor: actual / scheduled balance
        prev_sched = balance[a]
        for t in range(n_periods):
            start = q * prev_sched
            out[p, t, C_BALANCE_START] += start
            d_rate = mdr[a, t]
            defaulted = start * d_rate
            share_defaulting = q * d_rate  # of the obligors (not of the balance) at closing
            q *= 1.0 - d_rate
            interest = q * sched_interest[a, t]
            principal = q * sched_principal[a, t]
            after = q * sched_balance[a, t]
            prepaid = after * smm[a, t]
            q *= 1.0 - smm[a, t]
            out[p, t, C_INTEREST] += interest
            out[p, t, C_SCHED_PRINCIPAL] += principal
            out[p, t, C_PREPAYMENT] += prepaid
            out[p, t, C_BALANCE_END] += after - prepaid
            prev_sched = sched_balance[a, t]
            if defaulted > 0.0:
                out[p, t, C_DEFAULT] += defaulted
                covered = 0.0
                tg = lag_period[guarantee_lag[a], t]
                if guarantee_share[a] > 0.0 and tg >= 0 and tg < guarantee_stop[a]:
                    covered = guarantee_share[a] * defaulted
                    out[p, tg, C_GUARANTEE] += covered
                # recovery on the uncovered part; the cap (e.g. the pledged IP's value) belongs to
                # the obligors defaulting now, so it scales with their share
                rec = min(recovery_rate[a] * (defaulted - covered), share_defaulting * recovery_cap[a])
                rec = max(min(rec, defaulted - covered), 0.0)
                tr = lag_period[recovery_lag[a], t]
                if tr >= 0 and rec > 0.0:
                    out[p, tr, C_RECOVERY] += rec
                else:
                    rec = 0.0
                out[p, t, C_LOSS] += defaulted - covered - rec
    n_roy = roy_accrual.shape[0]
    alive = np.empty(n_periods)
    for r in range(n_roy):
        p = roy_pool[r]
        survival = 1.0
        for t in range(n_periods):
            survival *= 1.0 - roy_mdr[r, t]
            alive[t] = survival
        for j in range(roy_accrual.shape[1]):
            tp = roy_pay_period[r, j]
            if tp >= 0:
                # a licensee pays what it accrued only if it is still alive on the payment date
                out[p, tp, C_ROYALTY] += alive[tp] * roy_accrual[r, j]
