"""Kernels: asset cash flows of one path, summed per pool and collection period.

The columns of the collections array (last axis) are in :mod:`ipabs.engine.layout`.
Dimensions: A assets, R royalty streams, P pools, T periods, L distinct lags.
"""

from __future__ import annotations

import numpy as np

from ipabs._jit import njit
from ipabs.engine.layout import (
    C_ARREARS_INTEREST,
    C_ARREARS_PRINCIPAL,
    C_BALANCE_END,
    C_BALANCE_START,
    C_COLLATERAL_VALUE,
    C_DEFAULT,
    C_DELINQUENT_30,
    C_DELINQUENT_60,
    C_DELINQUENT_90,
    C_GUARANTEE,
    C_INSURANCE,
    C_INTEREST,
    C_LOSS,
    C_MISSED_INTEREST,
    C_MISSED_PRINCIPAL,
    C_PREPAYMENT,
    C_REALISED_LOSS,
    C_RECOVERY,
    C_RISK_SHARING,
    C_ROYALTY,
    C_SCHED_PRINCIPAL,
    COVER_INSURANCE,
    COVER_REALISED_LOSS,
    CoverArrays,
)
from ipabs.risk.delinquency_numba_fns import (
    DQ_ARREARS_INTEREST,
    DQ_ARREARS_PRINCIPAL,
    DQ_BALANCE_END,
    DQ_BALANCE_START,
    DQ_DEFAULT,
    DQ_DEFAULT_SHARE,
    DQ_DELINQUENT_30,
    DQ_DELINQUENT_60,
    DQ_DELINQUENT_90,
    DQ_INTEREST,
    DQ_MISSED_INTEREST,
    DQ_MISSED_PRINCIPAL,
    DQ_PERFORMING_START,
    DQ_PREPAYMENT,
    DQ_PRINCIPAL,
    N_DQ_COLUMNS,
    delinquency_flows,
)

REPAID_SHARE = 1e-9
"""A scheduled balance at most this share of the balance at closing is repaid: instalments
leave a rounding residue (a few 1e-10) that must not keep a loan's pledge in the collateral."""


@njit(leaf=True, inline="always")
def sifma_period(q: float, mdr: float, smm: float) -> tuple[float, float, float]:
    """One period of SIFMA's standard formulas for cash flows with defaults (Uniform Practices,
    chapter SF, section C.3), as factors of an asset's scheduled (contractual) balance.

    ``q`` is the performing balance at the start of the period over the scheduled balance
    then. New defaults are ``mdr x`` that start balance; interest and scheduled principal are
    collected on what did not default; voluntary prepayments are ``smm x`` (start balance less
    its *expected* scheduled amortisation), so new defaults do not shrink the prepayment base,
    capped so that the period ends with a balance of at least zero (C.2.e).

    Returns
    -------
    survivors, prepaid, q_end : float
        Factors of the period's scheduled amounts: ``survivors x`` scheduled interest and
        principal are collected, ``prepaid x`` and ``q_end x`` the scheduled balance at the end
        of the period are prepaid and still performing.
    """
    survivors = q * (1.0 - mdr)
    prepaid = q * min(smm, 1.0 - mdr)
    return survivors, prepaid, survivors - prepaid


@njit
def performing_flows_kernel(
    sched_interest: np.ndarray,  # (A, T)
    sched_principal: np.ndarray,  # (A, T)
    sched_balance: np.ndarray,  # (A, T) scheduled balance at period end
    balance: np.ndarray,  # (A,) balance at closing
    hazard: np.ndarray,  # (A, T) probability that the obligor defaults in t, having survived t-1
    smm: np.ndarray,  # (A, T)
    value: np.ndarray,  # (A, T) what the asset is worth on schedule (see asset_values)
    out: np.ndarray,  # (A, T, 6) out: interest, scheduled principal, prepayment, start, end, value
) -> None:
    """Flows of each asset on the paths where its obligor has not defaulted (yet).

    A surviving obligor prepays ``smm / (1 - hazard)`` of its balance after amortisation: over
    all paths the expected flows are then those of :func:`sifma_period` with ``mdr = hazard``,
    the same rule as the deterministic scenarios (prepayments are SMM of the start balance
    less its expected amortisation, not of what survives the period's defaults). Its collateral
    value at the start of a period is ``value x`` its performing factor then (zero once its
    scheduled balance is repaid, to :data:`REPAID_SHARE`).
    """
    n_assets, n_periods = sched_interest.shape
    for a in range(n_assets):
        q = 1.0  # on surviving paths: performing / scheduled balance
        prev_sched = balance[a]
        for t in range(n_periods):
            h = hazard[a, t]
            out[a, t, 3] = q * prev_sched
            out[a, t, 5] = q * value[a, t] if prev_sched > REPAID_SHARE * balance[a] else 0.0
            out[a, t, 0] = q * sched_interest[a, t]
            out[a, t, 1] = q * sched_principal[a, t]
            if h < 1.0:
                _survivors, prepaid, q_end = sifma_period(q, h, smm[a, t])
                prepaid /= 1.0 - h
                q_end /= 1.0 - h
            else:  # no path survives the period: nothing to prepay
                prepaid = 0.0
                q_end = q
            out[a, t, 2] = prepaid * sched_balance[a, t]
            out[a, t, 4] = q_end * sched_balance[a, t]
            q = q_end
            prev_sched = sched_balance[a, t]


@njit(leaf=True)
def pay_loss_cover(cover, payer_stop, claim, paid_share, state, coll_pool):  # type: ignore[no-untyped-def]
    """Pay the claims on each loss cover in period order into ``coll_pool`` (P, T, C).

    ``claim[c, p, t]`` is what cover ``c`` owes pool ``p`` in period ``t`` before shares and
    caps. Each payer pays its share of the period's claim, no more than what is left of its cap
    for the deal year and of its total cap, and nothing from the period ``payer_stop`` (its
    default) on; claims of one period share a binding cap pro rata. ``paid_share[c, t]`` is set
    to the share of the period's claim paid (for the recoveries the payers take over).
    ``state`` (Q, 3) is scratch.
    """
    n_cover, n_pool, n_t = claim.shape
    for c in range(n_cover):
        col = C_INSURANCE if cover.cv_kind[c] == COVER_INSURANCE else C_RISK_SHARING
        q0 = cover.cv_payer_ptr[c]
        q1 = cover.cv_payer_ptr[c + 1]
        for q in range(q0, q1):
            state[q, 0] = -1.0  # deal year of the payments counted in state[q, 1]
            state[q, 1] = 0.0
            state[q, 2] = 0.0  # paid in total
        for t in range(n_t):
            paid_share[c, t] = 0.0
            total = 0.0
            for p in range(n_pool):
                total += claim[c, p, t]
            if total <= 0.0:
                continue
            year = cover.period_year[t]
            paid = 0.0
            for q in range(q0, q1):
                if t >= payer_stop[q]:  # a payer in default pays nothing more
                    continue
                if state[q, 0] != year:
                    state[q, 0] = year
                    state[q, 1] = 0.0
                x = cover.py_share[q] * total
                x = min(x, cover.py_cap_year[q] - state[q, 1], cover.py_cap_total[q] - state[q, 2])
                if x > 0.0:
                    state[q, 1] += x
                    state[q, 2] += x
                    paid += x
            share = paid / total
            paid_share[c, t] = share
            if share > 0.0:
                for p in range(n_pool):
                    coll_pool[p, t, col] += share * claim[c, p, t]


# ---- recovery timing


@njit(leaf=True, inline="always")
def recovery_instalments(  # type: ignore[no-untyped-def]
    rec, p, t, k0, k1, piece_lag, piece_share, lag_period, sign, out
):
    """Add ``sign x`` each instalment ``k0 <= k < k1`` of a recovery ``rec`` on a default in
    period ``t`` to pool ``p``'s recoveries (``out`` (P, T, C)), in the period its lag reaches;
    an instalment after legal final is lost. Returns what is received (times 1)."""
    received = 0.0
    if rec <= 0.0:
        return received
    for k in range(k0, k1):
        tk = lag_period[piece_lag[k], t]
        if tk >= 0:
            x = piece_share[k] * rec
            out[p, tk, C_RECOVERY] += sign * x
            received += x
    return received


@njit
def deterministic_collections(
    pool: np.ndarray,  # (A,)
    sched_interest: np.ndarray,  # (A, T)
    sched_principal: np.ndarray,  # (A, T)
    sched_balance: np.ndarray,  # (A, T) scheduled balance at period end
    balance: np.ndarray,  # (A,) balance at closing
    mdr: np.ndarray,  # (A, T) share of the performing balance defaulting in each period
    smm: np.ndarray,  # (A, T) share of the start balance less its expected amortisation prepaid
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
    cover: CoverArrays,
    cover_period: np.ndarray,  # (A, T) period paying the cover of a default in t; -1 none
    cover_stop: np.ndarray,  # (Q,) period from which each cover payer pays nothing
    rec_piece_ptr: np.ndarray,  # (A+1,) recovery instalments of each asset
    rec_piece_lag: np.ndarray,  # (S,) lag id of each instalment
    rec_piece_share: np.ndarray,  # (S,) share of the recovery paid in each instalment
    asset_value: np.ndarray,  # (A, T) what each asset is worth on schedule (see asset_values)
    roy_value: np.ndarray,  # (R, T) each stream's valuation on the scenario's path, haircut applied
    dq_on: np.ndarray,  # (A,) 1 when the asset's loans follow the delinquency chain
    dq_roll: np.ndarray,  # (A, 4) monthly roll rates
    dq_cure: np.ndarray,  # (A, 3) monthly cure rates
    months: np.ndarray,  # (T,) months in each collection period (the chain's steps)
    dq_bucket: np.ndarray,  # (A,) bucket the asset's loans start in (0 current; 1-3 behind)
) -> None:
    """Expected-value cash flows under deterministic default and prepayment rates.

    Per period (:func:`sifma_period`): defaults hit the performing balance at the start of the
    period; interest and scheduled principal are collected on what survives; prepayments are
    the SMM of the start balance less its expected scheduled amortisation. A default's
    guarantee arrives after its lag, its recovery in instalments after theirs
    (:func:`recovery_instalments`; ``recovery_lag`` is the last one's, when the loss is
    realised). An asset whose loans follow the delinquency chain (``dq_on``) takes its flows,
    its defaults and its delinquent buckets from :func:`delinquency_flows`.

    Loss cover (``cover``) pays on these expected defaults, its caps applied to the expected
    flows in time order (:func:`pay_loss_cover`): a scenario approximation of the cover's
    expected payments, exact when the caps do not bind.

    Collateral value at the start of a period: each asset's ``asset_value`` times its
    performing factor (performing over scheduled balance, zero once the scheduled balance is
    repaid), and each stream's ``roy_value`` times the probability that its licensee has not
    defaulted by the end of the period (as for its royalties).
    """
    out[:] = 0.0
    n_assets, n_periods = sched_interest.shape
    n_cover = cover.cv_kind.shape[0]
    claim = np.zeros((n_cover, out.shape[0], n_periods))
    taken_rec = np.zeros((n_assets if n_cover > 0 else 0, n_periods))  # recovery payers may take
    dq = np.zeros((n_periods, N_DQ_COLUMNS))
    for a in range(n_assets):
        p = pool[a]
        q = 1.0  # performance factor: actual / scheduled balance
        prev_sched = balance[a]
        chain = dq_on[a] == 1
        if chain:  # ---- delinquency
            delinquency_flows(
                sched_interest[a],
                sched_principal[a],
                sched_balance[a],
                balance[a],
                mdr[a],
                smm[a],
                months,
                dq_roll[a],
                dq_cure[a],
                dq,
                dq_bucket[a],
            )
        for t in range(n_periods):
            if chain:
                row = dq[t]
                out[p, t, C_BALANCE_START] += row[DQ_BALANCE_START]
                if prev_sched > REPAID_SHARE * balance[a]:  # not repaid (see REPAID_SHARE)
                    out[p, t, C_COLLATERAL_VALUE] += row[DQ_PERFORMING_START] * asset_value[a, t]
                out[p, t, C_INTEREST] += row[DQ_INTEREST]
                out[p, t, C_SCHED_PRINCIPAL] += row[DQ_PRINCIPAL]
                out[p, t, C_PREPAYMENT] += row[DQ_PREPAYMENT]
                out[p, t, C_BALANCE_END] += row[DQ_BALANCE_END]
                out[p, t, C_DELINQUENT_30] += row[DQ_DELINQUENT_30]
                out[p, t, C_DELINQUENT_60] += row[DQ_DELINQUENT_60]
                out[p, t, C_DELINQUENT_90] += row[DQ_DELINQUENT_90]
                out[p, t, C_MISSED_INTEREST] += row[DQ_MISSED_INTEREST]
                out[p, t, C_MISSED_PRINCIPAL] += row[DQ_MISSED_PRINCIPAL]
                out[p, t, C_ARREARS_INTEREST] += row[DQ_ARREARS_INTEREST]
                out[p, t, C_ARREARS_PRINCIPAL] += row[DQ_ARREARS_PRINCIPAL]
                defaulted = row[DQ_DEFAULT]
                share_defaulting = row[DQ_DEFAULT_SHARE]
                prev_sched = sched_balance[a, t]
            else:
                start = q * prev_sched
                out[p, t, C_BALANCE_START] += start
                if prev_sched > REPAID_SHARE * balance[a]:  # not repaid (see REPAID_SHARE)
                    out[p, t, C_COLLATERAL_VALUE] += q * asset_value[a, t]
                d_rate = mdr[a, t]
                defaulted = start * d_rate
                share_defaulting = q * d_rate  # of the obligors (not of the balance) at closing
                survivors, prepaid_factor, q = sifma_period(q, d_rate, smm[a, t])
                out[p, t, C_INTEREST] += survivors * sched_interest[a, t]
                out[p, t, C_SCHED_PRINCIPAL] += survivors * sched_principal[a, t]
                out[p, t, C_PREPAYMENT] += prepaid_factor * sched_balance[a, t]
                out[p, t, C_BALANCE_END] += q * sched_balance[a, t]
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
                full = rec
                rec = recovery_instalments(
                    rec,
                    p,
                    t,
                    rec_piece_ptr[a],
                    rec_piece_ptr[a + 1],
                    rec_piece_lag,
                    rec_piece_share,
                    lag_period,
                    1.0,
                    out,
                )
                out[p, t, C_LOSS] += defaulted - covered - rec
                if tr >= 0:  # liquidation ends within the deal's life: the loss is realised
                    out[p, tr, C_REALISED_LOSS] += defaulted - covered - rec
                if n_cover > 0 and cover.a_cover[a] >= 0:
                    c = cover.a_cover[a]
                    tc = cover_period[a, t]
                    if tc >= 0:
                        if cover.cv_kind[c] == COVER_REALISED_LOSS:
                            claim[c, p, tc] += defaulted - covered - rec
                        else:
                            claim[c, p, tc] += defaulted - covered
                            taken_rec[a, t] = full
    if n_cover > 0:
        paid_share = np.zeros((n_cover, n_periods))
        state = np.zeros((cover.py_share.shape[0], 3))
        pay_loss_cover(cover, cover_stop, claim, paid_share, state, out)
        # the payers take over the recovery on what they paid
        for a in range(n_assets):
            c = cover.a_cover[a]
            if c < 0 or cover.cv_kind[c] == COVER_REALISED_LOSS:
                continue
            for t in range(n_periods):
                if taken_rec[a, t] > 0.0:
                    recovery_instalments(
                        taken_rec[a, t],
                        pool[a],
                        t,
                        rec_piece_ptr[a],
                        rec_piece_ptr[a + 1],
                        rec_piece_lag,
                        rec_piece_share,
                        lag_period,
                        -paid_share[c, cover_period[a, t]],
                        out,
                    )
    n_roy = roy_accrual.shape[0]
    alive = np.empty(n_periods)
    for r in range(n_roy):
        p = roy_pool[r]
        survival = 1.0
        for t in range(n_periods):
            survival *= 1.0 - roy_mdr[r, t]
            alive[t] = survival
            out[p, t, C_COLLATERAL_VALUE] += survival * roy_value[r, t]
        for j in range(roy_accrual.shape[1]):
            tp = roy_pay_period[r, j]
            if tp >= 0:
                # a licensee pays what it accrued only if it is still alive on the payment date
                out[p, tp, C_ROYALTY] += alive[tp] * roy_accrual[r, j]
