"""A plain vectorised NumPy Monte Carlo of the benchmark pool deal, for comparison with ipabs.

This is what a competent user would write without a compiler: everything is vectorised over
paths (in chunks), nothing is vectorised over time except by a loop over the periods.

- one global normal factor per path and one normal per loan; a loan defaults in the first
  period whose latent-variable threshold lies above ``sqrt(rho) Z + sqrt(1 - rho) e``;
- collections per period as matrix products of the (paths x loans) survival indicator with
  the loans' performing flows (only the loans still outstanding in that period);
- a sequential waterfall over the periods, vectorised over paths, with the same rules as the
  benchmark deal in ipabs: two senior fees (one on the pool balance, one fixed per year), A and
  B interest, a reserve drawn for A and B interest and refilled to 2% of the pool balance
  (with a floor), pro-rata turbo principal to A, B and C that turns sequential once the
  cumulative default rate passes a threshold (not curable), residual cash to C;
- tranche loss = principal unpaid plus interest arrears at legal final.

The model matches the deal that ``benchmarks/montecarlo.py`` writes for ipabs (monthly annuity
loans on 30/360, default times on ACT/365 year fractions, constant recovery after a lag), so
the two agree on expected tranche losses within Monte Carlo error; the draws differ (NumPy's
PCG64 here), so individual paths do not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

EPS = 1e-6  # payments below a millionth of a unit are rounding dust, as in the ipabs waterfall


@dataclass(frozen=True)
class PoolDeal:
    """Inputs of the benchmark deal: a pool of monthly annuity loans and its notes.

    Dates are whole months from ``closing`` (all on the same day of the month); the notes and
    fees accrue on 30/360, so every period is 1/12 of a year.
    """

    closing: str  # ISO date, e.g. "2025-01-15"
    n_periods: int  # monthly payment dates after closing; the last is legal final
    balance: np.ndarray  # (N,) loan balance at closing
    rate: np.ndarray  # (N,) annual loan rate (30/360, monthly)
    term: np.ndarray  # (N,) months to maturity (<= n_periods)
    grade: np.ndarray  # (N,) credit grade of each loan's obligor (one obligor per loan)
    pd_by_grade: dict[str, float]  # annual PD per grade
    correlation: float  # one-factor asset correlation
    recovery_rate: float  # share of the defaulted balance recovered
    recovery_lag: int  # months from the end of the default period to the recovery
    tranche_names: tuple[str, ...]  # most senior first; A and B pay interest, the last is C
    tranche_balance: np.ndarray  # (K,)
    tranche_coupon: np.ndarray  # (K,) annual coupons
    servicing_rate: float  # annual fee on the pool balance at the start of each period
    trustee_annual: float  # fixed annual fee
    reserve_initial: float
    reserve_share: float  # reserve target: share x pool balance at the period's end ...
    reserve_floor: float  # ... but at least this much while notes are outstanding
    trigger_threshold: float  # cumulative default rate above which principal is sequential

    @property
    def n_loans(self) -> int:
        return int(self.balance.shape[0])


@dataclass(frozen=True)
class ReferenceResult:
    """Per-path tranche losses and their summary."""

    tranche_names: tuple[str, ...]
    loss: np.ndarray  # (paths, K) principal unpaid plus interest arrears at legal final
    expected_loss: np.ndarray  # (K,) mean loss / original balance
    expected_loss_se: np.ndarray  # (K,) its standard error
    pool_loss_rate: np.ndarray  # (paths,) (defaults - recoveries) / original pool


def loan_flows(deal: PoolDeal) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Performing flows of every loan per period: interest, principal, balance at the start and
    at the end of the period, each (N, T). Level monthly payments, the last one clears the loan."""
    n, t_max = deal.n_loans, deal.n_periods
    interest = np.zeros((n, t_max))
    principal = np.zeros((n, t_max))
    start = np.zeros((n, t_max))
    end = np.zeros((n, t_max))
    bal = deal.balance.astype(np.float64).copy()
    r = deal.rate / 12.0
    for t in range(t_max):
        remaining = deal.term - t  # payments left, this one included
        live = remaining > 0
        start[:, t] = bal
        i = bal * r
        v = (1.0 + r) ** -np.maximum(remaining, 1)
        level = np.where(r > 0.0, bal * r / (1.0 - v), bal / np.maximum(remaining, 1))
        p = np.where(remaining == 1, bal, np.clip(level - i, 0.0, bal))
        interest[:, t] = np.where(live, i, 0.0)
        principal[:, t] = np.where(live, p, 0.0)
        bal = bal - principal[:, t]
        end[:, t] = np.maximum(bal, 0.0)
    return interest, principal, start, end


def payment_times(deal: PoolDeal) -> np.ndarray:
    """Years (ACT/365) from closing to each payment date."""
    closing = np.datetime64(deal.closing, "D")
    month0 = closing.astype("datetime64[M]")
    day = closing - month0.astype("datetime64[D]")
    months = month0 + np.arange(1, deal.n_periods + 1)
    dates = months.astype("datetime64[D]") + day
    return (dates - closing).astype(np.float64) / 365.0


def thresholds(deal: PoolDeal) -> dict[str, np.ndarray]:
    """Latent-variable thresholds per grade, each (T,): a loan has defaulted by the end of
    period t when its latent variable lies below ``thresholds[grade][t]``."""
    times = payment_times(deal)
    inv = NormalDist().inv_cdf
    return {g: np.array([inv(1.0 - (1.0 - pd) ** x) for x in times]) for g, pd in deal.pd_by_grade.items()}


def default_periods(
    rng: np.random.Generator, deal: PoolDeal, thr: dict[str, np.ndarray], paths: int
) -> np.ndarray:
    """(paths, N) default period of every loan (T when it survives): the number of its grade's
    thresholds at or below its latent variable (they rise with t)."""
    rho = deal.correlation
    z = rng.standard_normal(paths)
    x = math.sqrt(1.0 - rho) * rng.standard_normal((paths, deal.n_loans))
    x += math.sqrt(rho) * z[:, None]
    tau = np.empty(x.shape, dtype=np.int64)
    for g, levels in thr.items():
        cols = np.flatnonzero(deal.grade == g)
        tau[:, cols] = np.searchsorted(levels, x[:, cols], side="right")
    return tau


def collections(deal: PoolDeal, tau: np.ndarray, flows: tuple[np.ndarray, ...]) -> dict[str, np.ndarray]:
    """Pool cash per path and period, each (paths, T): interest, principal, recoveries,
    defaulted balance, pool balance at the start and end of the period.

    Per period, the (paths x loans) indicators "performing through the period" and "defaulting
    in it" times the loans' flows. Loans are taken longest term first, so that each period's
    products cover only the loans still outstanding (a prefix of the columns, no copies).
    """
    interest, principal, start, end = flows
    order = np.argsort(-deal.term, kind="stable")
    tau = np.ascontiguousarray(tau[:, order])
    w = np.stack((interest, principal, start, end), axis=2)[order]  # (N, T, 4)
    paths = tau.shape[0]
    t_max = deal.n_periods
    names = ("interest", "principal", "recovery", "default", "start", "end")
    out = {k: np.zeros((paths, t_max)) for k in names}
    for t in range(t_max):
        n = int((deal.term > t).sum())  # loans still outstanding in period t
        live = tau[:, :n]
        perf = (live > t).astype(np.float64) @ w[:n, t]  # performing through period t
        defaulted = (live == t).astype(np.float64) @ w[:n, t, 2]  # defaulting in period t
        out["interest"][:, t] = perf[:, 0]
        out["principal"][:, t] = perf[:, 1]
        out["start"][:, t] = perf[:, 2] + defaulted
        out["end"][:, t] = perf[:, 3]
        out["default"][:, t] = defaulted
        tr = t + deal.recovery_lag
        if tr < t_max:  # recoveries due after legal final are lost
            out["recovery"][:, tr] += deal.recovery_rate * defaulted
    return out


def waterfall(deal: PoolDeal, coll: dict[str, np.ndarray]) -> np.ndarray:
    """Run the priority of payments on every path at once; returns (paths, K) tranche losses."""
    paths, t_max = coll["interest"].shape
    yf = 1.0 / 12.0
    orig_pool = float(deal.balance.sum())
    k_a, k_b, k_c = 0, 1, 2
    bal = np.tile(deal.tranche_balance.astype(np.float64), (paths, 1))
    arrears = np.zeros((paths, 3))
    fee_arrears = np.zeros(paths)
    reserve = np.full(paths, float(deal.reserve_initial))
    carry = np.zeros(paths)
    cum_default = np.zeros(paths)
    sequential = np.zeros(paths, dtype=bool)
    for t in range(t_max):
        last = t == t_max - 1
        cash = coll["interest"][:, t] + coll["principal"][:, t] + coll["recovery"][:, t]
        pool_start = coll["start"][:, t]
        pool_end = coll["end"][:, t]
        cum_default += coll["default"][:, t]
        avail = carry + cash
        notes = bal.sum(axis=1)
        alive = (notes + arrears.sum(axis=1) > EPS) | (cash > EPS)
        int_due = bal * (deal.tranche_coupon * yf) + arrears
        fee_due = np.where(alive, deal.servicing_rate * pool_start * yf + deal.trustee_annual * yf, 0.0)
        fee_due += fee_arrears
        sequential |= cum_default / orig_pool > deal.trigger_threshold

        # reserve: release everything at legal final or once the notes are repaid, else the excess
        ended = (notes <= EPS) | last
        target = np.where(ended, 0.0, np.maximum(deal.reserve_floor, deal.reserve_share * pool_end))
        release = np.where(ended, reserve, np.maximum(reserve - target, 0.0))
        reserve -= release
        avail += release

        # fees, then A and B interest
        pay = np.minimum(avail, fee_due)
        pay = np.where(pay > EPS, pay, 0.0)
        fee_due -= pay
        avail -= pay
        for k in (k_a, k_b):
            pay = np.minimum(avail, int_due[:, k])
            pay = np.where(pay > EPS, pay, 0.0)
            int_due[:, k] -= pay
            avail -= pay
        # draw the reserve for unpaid A and B interest
        need = int_due[:, k_a] + int_due[:, k_b]
        draw = np.minimum(np.maximum(need - avail, 0.0), np.maximum(reserve, 0.0))
        draw = np.where(draw > EPS, draw, 0.0)
        reserve -= draw
        for k in (k_a, k_b):
            x = np.minimum(draw, int_due[:, k])
            int_due[:, k] -= x
            draw -= x
        # refill the reserve
        x = np.minimum(avail, np.maximum(target - reserve, 0.0))
        x = np.where(x > EPS, x, 0.0)
        reserve += x
        avail -= x
        # principal: A, B and C pro rata (sequential once triggered) with all cash left
        group = bal.sum(axis=1)
        cap = np.minimum(avail, group)
        cap = np.where(cap > EPS, cap, 0.0)
        share = np.divide(bal, group[:, None], out=np.zeros_like(bal), where=group[:, None] > 0.0)
        pro_rata = np.minimum(cap[:, None] * share, bal)
        left = cap.copy()
        in_order = np.empty_like(bal)
        for k in range(3):
            in_order[:, k] = np.minimum(left, bal[:, k])
            left -= in_order[:, k]
        paid = np.where(sequential[:, None], in_order, pro_rata)
        bal -= paid
        avail -= paid.sum(axis=1)
        # residual to C: its balance first, the rest is C's return
        paying = avail > EPS
        bal[:, k_c] -= np.where(paying, np.minimum(avail, bal[:, k_c]), 0.0)
        avail = np.where(paying, 0.0, avail)

        arrears = np.where(int_due > EPS, int_due, 0.0)
        bal = np.where(bal < EPS, 0.0, bal)
        fee_arrears = np.where(fee_due > EPS, fee_due, 0.0)
        carry = avail
    return bal + arrears


def simulate(deal: PoolDeal, paths: int, seed: int = 0, chunk: int = 2_000) -> ReferenceResult:
    """Monte Carlo of ``deal`` over ``paths`` paths, ``chunk`` paths at a time."""
    rng = np.random.default_rng(seed)
    flows = loan_flows(deal)
    thr = thresholds(deal)
    losses = []
    pool_loss = []
    orig_pool = float(deal.balance.sum())
    for lo in range(0, paths, chunk):
        n = min(chunk, paths - lo)
        tau = default_periods(rng, deal, thr, n)
        coll = collections(deal, tau, flows)
        losses.append(waterfall(deal, coll))
        pool_loss.append((coll["default"].sum(axis=1) - coll["recovery"].sum(axis=1)) / orig_pool)
    loss = np.concatenate(losses)
    scaled = loss / deal.tranche_balance
    se = scaled.std(axis=0, ddof=1) / math.sqrt(paths) if paths > 1 else np.full(scaled.shape[1], np.nan)
    return ReferenceResult(
        tranche_names=deal.tranche_names,
        loss=loss,
        expected_loss=scaled.mean(axis=0),
        expected_loss_se=se,
        pool_loss_rate=np.concatenate(pool_loss),
    )
