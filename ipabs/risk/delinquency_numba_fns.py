"""Kernel: one asset's cash flows when its loans move between days-past-due buckets.

The chain is monthly: each month a current loan falls 30 days behind with ``roll[0]``; a loan
in bucket ``k`` (30, 60, 90+ days) rolls on with ``roll[k]`` (from 90+ into default) or cures
(pays its arrears and is current again) with ``cure[k - 1]``, else stays. A period of ``m``
months takes ``m`` steps. As in :func:`ipabs.risk.collections_numba_fns.sifma_period`, every
amount is an expected value: the masses are factors of the asset's scheduled balance.

Cash of a period (the loan's payment falls due at the end of the period):

- loans current at the end of the period pay the period's scheduled interest and principal;
  loans that cured in it also pay the arrears they owed at its start;
- loans delinquent at the end of the period miss the period's payment: it is added to their
  arrears (principal arrears stay in the balance; interest arrears are owed, not accrued on);
- loans that default in the period default with their scheduled balance at its start plus
  their principal arrears; their interest arrears are lost;
- direct defaults (a CDR or SDA curve, a named default) hit the current loans at the start of
  the period, as without delinquency; prepayments are the SMM of the current loans' start
  balance less its expected amortisation, paid by loans still current at the end.

With all roll rates zero the flows are those of SIFMA's formulas.
"""

from __future__ import annotations

import math

import numpy as np

from ipabs._jit import njit
from ipabs.numerics.rng_numba_fns import uniform

# columns of the per-asset output
DQ_INTEREST = 0  # interest collected: current loans' scheduled interest and cured arrears
DQ_PRINCIPAL = 1  # principal collected: scheduled principal and cured arrears
DQ_PREPAYMENT = 2
DQ_DEFAULT = 3  # balance defaulting in the period (principal arrears included)
DQ_BALANCE_START = 4  # balance not defaulted at the start of the period (delinquent included)
DQ_BALANCE_END = 5
DQ_DELINQUENT_30 = 6  # balance 30-59 days past due at the end of the period
DQ_DELINQUENT_60 = 7  # 60-89
DQ_DELINQUENT_90 = 8  # 90 or more
DQ_MISSED_INTEREST = 9  # scheduled interest missed in the period
DQ_MISSED_PRINCIPAL = 10  # scheduled principal missed in the period
DQ_ARREARS_INTEREST = 11  # interest arrears owed at the end of the period
DQ_ARREARS_PRINCIPAL = 12  # principal arrears at the end of the period (in the balance)
DQ_DEFAULT_SHARE = 13  # share of the loan defaulting in the period (scales a recovery cap)
DQ_PERFORMING_START = 14  # share of the loan not defaulted at the start of the period
N_DQ_COLUMNS = 15


@njit(leaf=True)
def delinquency_flows(  # type: ignore[no-untyped-def]
    sched_interest, sched_principal, sched_balance, balance, mdr, smm, months, roll, cure, out, bucket
):
    """Expected cash flows of one asset whose loans follow the roll-rate chain.

    Parameters
    ----------
    sched_interest, sched_principal, sched_balance : ndarray, shape (T,)
        The asset's contractual schedule (balance at the end of each period).
    balance : float
        Balance at the start of the first period.
    mdr, smm : ndarray, shape (T,)
        Direct default rate of current loans and prepayment rate per period.
    months : ndarray of int, shape (T,)
        Chain steps (months) in each period.
    roll : ndarray, shape (4,)
        Monthly rates current -> 30, 30 -> 60, 60 -> 90+, 90+ -> default.
    cure : ndarray, shape (3,)
        Monthly rates 30 -> current, 60 -> current, 90+ -> current.
    out : ndarray, shape (T, N_DQ_COLUMNS)
        Written in full.
    bucket : int
        The bucket the loans start in: 0 current, 1, 2, 3 behind (a run from a report date
        whose state reports the loan behind; its earlier periods have no steps, see
        :func:`ipabs.analytics.reproject.started_inputs`).
    """
    n = sched_interest.shape[0]
    c = 1.0 if bucket == 0 else 0.0  # current loans, as a factor of the scheduled balance
    q1 = 1.0 if bucket == 1 else 0.0  # delinquent buckets 30, 60, 90+ (scheduled-equivalent
    q2 = 1.0 if bucket == 2 else 0.0  # balance factors)
    q3 = 1.0 if bucket == 3 else 0.0
    ap1 = 0.0  # principal arrears of each bucket (amounts)
    ap2 = 0.0
    ap3 = 0.0
    ai1 = 0.0  # interest arrears of each bucket
    ai2 = 0.0
    ai3 = 0.0
    r0, r1, r2, r3 = roll[0], roll[1], roll[2], roll[3]
    c1, c2, c3 = cure[0], cure[1], cure[2]
    s1 = 1.0 - r1 - c1
    s2 = 1.0 - r2 - c2
    s3 = 1.0 - r3 - c3
    prev = balance
    for t in range(n):
        b_end = sched_balance[t]
        row = out[t]
        row[:] = 0.0
        row[DQ_BALANCE_START] = (c + q1 + q2 + q3) * prev + ap1 + ap2 + ap3
        row[DQ_PERFORMING_START] = c + q1 + q2 + q3
        if mdr[t] >= 1.0:  # a named default: the whole loan, delinquent parts included
            row[DQ_DEFAULT] = row[DQ_BALANCE_START]
            row[DQ_DEFAULT_SHARE] = c + q1 + q2 + q3
            c = q1 = q2 = q3 = 0.0
            ap1 = ap2 = ap3 = ai1 = ai2 = ai3 = 0.0
            prev = b_end
            continue
        c_start = c
        direct = c * mdr[t]
        c -= direct
        defaulted_mass = direct
        cured_ap = 0.0
        cured_ai = 0.0
        lost_ap = 0.0
        for _ in range(months[t]):
            into_default = q3 * r3
            cured_ap += ap1 * c1 + ap2 * c2 + ap3 * c3
            cured_ai += ai1 * c1 + ai2 * c2 + ai3 * c3
            lost_ap += ap3 * r3
            nc = c * (1.0 - r0) + q1 * c1 + q2 * c2 + q3 * c3
            n1 = c * r0 + q1 * s1
            n2 = q1 * r1 + q2 * s2
            n3 = q2 * r2 + q3 * s3
            ap1, ap2, ap3 = ap1 * s1, ap1 * r1 + ap2 * s2, ap2 * r2 + ap3 * s3
            ai1, ai2, ai3 = ai1 * s1, ai1 * r1 + ai2 * s2, ai2 * r2 + ai3 * s3
            c, q1, q2, q3 = nc, n1, n2, n3
            defaulted_mass += into_default
        interest = sched_interest[t]
        principal = sched_principal[t]
        row[DQ_INTEREST] = c * interest + cured_ai
        row[DQ_PRINCIPAL] = c * principal + cured_ap
        prepaid = min(c_start * smm[t], c)
        row[DQ_PREPAYMENT] = prepaid * b_end
        c -= prepaid
        behind = q1 + q2 + q3
        row[DQ_MISSED_INTEREST] = behind * interest
        row[DQ_MISSED_PRINCIPAL] = behind * principal
        ap1 += q1 * principal
        ap2 += q2 * principal
        ap3 += q3 * principal
        ai1 += q1 * interest
        ai2 += q2 * interest
        ai3 += q3 * interest
        row[DQ_DEFAULT] = defaulted_mass * prev + lost_ap
        row[DQ_DEFAULT_SHARE] = defaulted_mass
        row[DQ_DELINQUENT_30] = q1 * b_end + ap1
        row[DQ_DELINQUENT_60] = q2 * b_end + ap2
        row[DQ_DELINQUENT_90] = q3 * b_end + ap3
        row[DQ_BALANCE_END] = c * b_end + row[DQ_DELINQUENT_30] + row[DQ_DELINQUENT_60]
        row[DQ_BALANCE_END] += row[DQ_DELINQUENT_90]
        row[DQ_ARREARS_INTEREST] = ai1 + ai2 + ai3
        row[DQ_ARREARS_PRINCIPAL] = ap1 + ap2 + ap3
        prev = b_end


def cure_chances(roll: np.ndarray, cure: np.ndarray) -> np.ndarray:
    """``h[k]``, the chance that a loan ``k`` buckets behind (1, 2, 3) cures before it
    defaults: ``h[k] (roll[k] + cure[k - 1]) = cure[k - 1] + roll[k] h[k + 1]``, ``h[4] = 0``
    (default); ``h[0]`` is unused (1)."""
    h = np.ones(5)
    h[4] = 0.0
    for k in (3, 2, 1):
        leave = roll[k] + cure[k - 1]
        h[k] = (cure[k - 1] + roll[k] * h[k + 1]) / leave if leave > 0.0 else 1.0
    return h


def roll_months_law(roll: np.ndarray, cure: np.ndarray, behind: int, months: int) -> np.ndarray:
    """``F[m]``, m = 0 .. ``months``: the chance that a loan ``behind`` buckets behind has rolled
    into default within m months, given that it rolls on without curing. Its months in each
    remaining bucket are geometric (at least 1) with the bucket's exit rate, as
    :func:`months_to_default` draws them for a defaulter."""
    pmf = np.zeros(months + 1)
    pmf[0] = 1.0
    for k in range(behind, 4):
        exit_rate = roll[k] + cure[k - 1]
        stay = np.zeros(months + 1)
        if 0.0 < exit_rate < 1.0:
            m = np.arange(1, months + 1)
            stay[1:] = exit_rate * (1.0 - exit_rate) ** (m - 1)
        elif months >= 1:
            stay[1] = 1.0
        pmf = np.convolve(pmf, stay)[: months + 1]
    return np.cumsum(pmf)


def cured_episode_rates(roll: np.ndarray, cure: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The chain of a loan whose delinquencies all cure (a Monte Carlo survivor).

    ``h[k]``, the chance that a loan ``k`` buckets behind cures before it defaults, solves
    ``h[k] (roll[k] + cure[k]) = cure[k] + roll[k] h[k + 1]`` (``h`` past 90+ is 0). Conditioned
    on curing (Doob's h-transform), a bucket rolls on with ``roll[k] h[k + 1] / h[k]``, cures
    with ``cure[k] / h[k]`` and stays as before; loans fall behind at ``roll[0] h[1]``, the
    episodes that end in a cure.

    Returns
    -------
    roll, cure : ndarray
        The conditioned monthly rates (``roll[3]`` is 0).
    """
    h = cure_chances(roll, cure)
    out_roll = np.zeros(4)
    out_cure = np.zeros(3)
    out_roll[0] = roll[0] * h[1]
    for k in (1, 2, 3):
        if h[k] > 0.0:
            out_roll[k] = roll[k] * h[k + 1] / h[k]
            out_cure[k - 1] = cure[k - 1] / h[k]
    return out_roll, out_cure


@njit(leaf=True, inline="always")
def months_to_default(state, exit_rate):  # type: ignore[no-untyped-def]
    """Months a loan that rolls to default spends behind: in each bucket a geometric number
    of months (at least 1) with the bucket's monthly exit rate (roll + cure), which is its
    sojourn given that it leaves by rolling on."""
    total = 0
    for k in range(3):
        p = exit_rate[k]
        if p > 0.0 and p < 1.0:
            # a non-negative ratio: int() is its floor
            total += 1 + int(math.log(uniform(state)) / math.log(1.0 - p))
        else:
            total += 1
    return total


@njit
def survivor_delinquency_flows(  # type: ignore[no-untyped-def]
    sched_interest, sched_principal, sched_balance, balance, hazard, smm, months, roll, cure, out, bucket
):
    """:func:`delinquency_flows` of every asset on the Monte Carlo paths where its obligor has
    not defaulted (yet): no defaults through the chain (``roll`` and ``cure`` are the rates
    conditioned on curing, :func:`cured_episode_rates`), and, as for loans without
    delinquency, a survivor prepays ``smm / (1 - hazard)`` so that prepayments over all paths
    are SIFMA's. ``out`` (A, T, N_DQ_COLUMNS); ``bucket`` (A,) the bucket each starts in."""
    n_assets, n = sched_interest.shape
    no_defaults = np.zeros(n)
    adjusted = np.empty(n)
    for a in range(n_assets):
        for t in range(n):
            h = hazard[a, t]
            adjusted[t] = min(smm[a, t], 1.0 - h) / (1.0 - h) if h < 1.0 else 0.0
        delinquency_flows(
            sched_interest[a],
            sched_principal[a],
            sched_balance[a],
            balance[a],
            no_defaults,
            adjusted,
            months,
            roll,
            cure,
            out[a],
            bucket[a],
        )
