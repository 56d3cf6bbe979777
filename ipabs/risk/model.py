"""Compile the risk model into the flat arrays of the Monte Carlo kernel."""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from ipabs.collateral.royalty import base_path, royalty_grid
from ipabs.collateral.value import royalty_values, value_slots, value_years
from ipabs.deal.assumptions import DelinquencyAssumption, last_recovery_months, recovery_pieces
from ipabs.deal.risk import RiskModel, beta_feasible, beta_value_sd
from ipabs.deal.schema import MONTHS_PER_PERIOD
from ipabs.engine.compile import CompiledModel
from ipabs.engine.layout import COVER_REALISED_LOSS, CoverArrays
from ipabs.engine.revolving_numba_fns import REC_BETA, REC_CONSTANT, REC_LOGNORMAL
from ipabs.errors import IpabsError
from ipabs.numerics.normal_numba_fns import norm_ppf_array
from ipabs.risk.deterministic import lag_table, period_months, prepayment_curve
from ipabs.risk.search_numba_fns import buckets_of

COPULA_GAUSSIAN = 0
COPULA_STUDENT_T = 1

RECOVERY_CODES = {"constant": REC_CONSTANT, "lognormal": REC_LOGNORMAL, "beta": REC_BETA}

BETA_TABLE_SIZE = 4097  # quantile table of the beta value factor, on a uniform grid of (0, 1)

# An obligor group with at least this many members draws its defaulters by geometric skipping
# (a cost in proportion to its defaulters); a smaller one draws one uniform per obligor. Every
# deal whose groups are all smaller keeps the per-obligor draws.
SKIP_MIN_MEMBERS = 512


# columns of RiskArrays.a_flows
A_INTEREST = 0
A_SCHED_PRINCIPAL = 1
A_PREPAYMENT = 2
A_BALANCE_START = 3
A_BALANCE_END = 4
A_COLLATERAL_VALUE = 5  # ---- collateral value: at the start of the period
# ---- delinquency: only when the risk model has roll rates (a_flows then has N_A_DQ_COLUMNS)
A_DELINQUENT_30 = 6  # the buckets' balances, as C_DELINQUENT_30 .. C_ARREARS_PRINCIPAL
A_MISSED_INTEREST = 9
A_MISSED_PRINCIPAL = 10
A_ARREARS_INTEREST = 11
A_ARREARS_PRINCIPAL = 12
N_A_DQ_COLUMNS = 13


class RiskArrays(NamedTuple):
    """Everything the path kernel draws from. Dimensions: O obligors, G obligor groups,
    A assets, R royalty streams, P pools, T periods, F factors, S supports, L lags."""

    n_periods: int
    n_factors: int  # 1 global + industries + regions
    copula: int
    dof: float
    ob_group: np.ndarray  # (O,) group of each obligor (same thresholds and loadings)
    # ---- how each group's defaulters are drawn (see sampling_lists)
    ob_single: np.ndarray  # (O1,) obligors drawn one uniform each, in obligor order
    g_skip: np.ndarray  # (G,) 1: the group's defaulters are drawn by geometric skipping
    g_member_ptr: np.ndarray  # (G+1,) members of skipping group g: g_member[ptr[g]:ptr[g+1]]
    g_member: np.ndarray  # (O2,) members of the skipping groups, in obligor order within each
    g_threshold: np.ndarray  # (G, T) latent-variable threshold for default by the end of period t
    # the thresholds bucketed for the search of a defaulter's period (PeriodSearch)
    g_search_row: np.ndarray  # (G, T - 1 + 2^max(steps, 3))
    g_search_start: np.ndarray  # (G, B)
    g_search_bucket: np.ndarray  # (G, 2): lo, inv
    g_factor: np.ndarray  # (G, 3) factor index for global, industry, region (-1: none)
    g_loading: np.ndarray  # (G, 3)
    g_idio: np.ndarray  # (G,) sqrt(1 - sum of squared loadings)
    # ---- surveillance: a run from a report date (-inf, +inf, 0 and 0.0 otherwise)
    g_floor: np.ndarray  # (G,) threshold a survivor's latent variable is above (-inf: none)
    g_hist_lo: np.ndarray  # (G,) the history a member showed by the report date: latent in
    g_hist_hi: np.ndarray  # (G,) (lo, hi] (a survivor: (floor, inf); a default in tau: its period's)
    floored: int  # 1: some group's latent variables are above a floor (survivors of a report date)
    posterior: int  # 1: weight each path by the likelihood of the history at its factors
    log_norm: float  # log of that likelihood's mean under the factors' law (the weights' mean 1)
    posterior_mean: np.ndarray  # (F,) the factors' mean under their posterior (zeros: no history)
    a_pool: np.ndarray  # (A,)
    a_obligor: np.ndarray  # (A,)
    a_flows: np.ndarray  # (A, T, 6) performing flows under the prepayment assumption (A_*)
    ob_asset_ptr: np.ndarray  # (O+1,) assets of obligor o: ob_asset[ob_asset_ptr[o]:ob_asset_ptr[o+1]]
    ob_asset: np.ndarray  # (A,) asset indices grouped by obligor, in asset order within each
    a_end: np.ndarray  # (A,) one past the last period in which the asset has any flow
    a_appraisal: np.ndarray  # (A,) nan when no pledged IP
    a_guarantor: np.ndarray  # (A,) -1 none
    a_guarantee_share: np.ndarray  # (A,)
    a_guarantee_lag: np.ndarray  # (A,) lag id
    rec_lag: int  # lag id of the recovery lag
    lag_period: np.ndarray  # (L, T)
    rec_model: int
    rec_rate: float
    rec_mu: float  # lognormal: mean of log V
    rec_sigma: float  # lognormal: sd of log V
    rec_loading: float
    rec_cost: float
    rec_beta_quantile: np.ndarray  # (BETA_TABLE_SIZE,) beta quantiles, or empty
    # ---- per-asset value volatility (pledged_ip.value_volatility): row 0 is the model's own
    # value factor, the others one per distinct asset volatility
    a_rec_dist: np.ndarray  # (A,) row of the value factor each asset's recovery draws from
    rec_dist_mu: np.ndarray  # (K,) lognormal: mean of log V
    rec_dist_sigma: np.ndarray  # (K,) lognormal: sd of log V
    rec_dist_quantile: np.ndarray  # (K, BETA_TABLE_SIZE) beta quantiles, or (K, 0)
    base_totals: np.ndarray  # (P, T, N_COLLECTION_COLUMNS) performing asset flows per pool
    r_pool: np.ndarray  # (R,)
    r_obligor: np.ndarray  # (R,)
    r_rate: np.ndarray
    r_kind: np.ndarray
    r_tier_ptr: np.ndarray
    r_tier_above: np.ndarray
    r_tier_rate: np.ndarray
    r_minimum: np.ndarray
    r_cap: np.ndarray
    r_base: np.ndarray  # (R, K) expected annual base per accrual slot (see royalty_grid)
    r_year_frac: np.ndarray  # (R, K)
    r_mid_years: np.ndarray  # (R, K)
    r_pay_period: np.ndarray  # (R, K)
    r_volatility: float
    r_loading: float
    r_invalidation_rate: float  # per year (continuous hazard)
    r_invalidation_cut: float
    # ---- collateral value of the streams (see ipabs.collateral.value)
    r_value: np.ndarray  # (R, T) valuation along risk.royalty's path, at the start of each period
    r_value_slot: np.ndarray  # (R, T) accrual slot whose Brownian factor values the period (-1: none)
    r_value_years: np.ndarray  # (R, T) years from the stream's start to the start of each period
    support_obligor: np.ndarray  # (S,)
    tr_discount: np.ndarray  # (N, T) discount factor of each payment date at each coupon
    tr_yield_guess: np.ndarray  # (N,) each coupon as an annual effective rate: where yield searches start
    tr_price: np.ndarray  # (N,) price of each tranche's yield: its balance at closing (or report date)
    times: np.ndarray  # (T,) years from closing to each payment date
    gap_id: np.ndarray  # (T,) which of gap_years precedes each date (the first: from closing)
    gap_years: np.ndarray  # (G,) the distinct gaps between dates, in years
    # ---- revolving: purchase templates as obligors (J templates)
    rv_factor: np.ndarray  # (J, 3) factor index for global, industry, region (-1: none)
    rv_loading: np.ndarray  # (J, 3)
    rv_idio: np.ndarray  # (J,)
    rv_threshold: np.ndarray  # (J, T, T) threshold of default by age a of a purchase in period s
    rv_smm: np.ndarray  # (T,) prepayment rate of purchased assets
    rv_ratio: np.ndarray  # (J,) appraisal / loan balance (nan: none)
    # ---- support
    cover: CoverArrays  # loss cover (risk-sharing pools, guarantee insurance)
    a_cover_lag: np.ndarray  # (A,) lag id of the period its cover pays a default in (-1: none)
    # ---- recovery timing: the recovery comes in instalments (rec_lag is the last one's)
    rec_piece_lag: np.ndarray  # (S,) lag id of each instalment
    rec_piece_share: np.ndarray  # (S,) share of the recovery paid in each instalment
    # ---- delinquency
    dq_on: int  # 1 when loans fall behind (a_flows carries the buckets)
    dq_exit: np.ndarray  # (3,) monthly roll + cure rate of each bucket (a defaulter's months behind)
    month_start: np.ndarray  # (T+1,) months from the start of the first collection period


def sampling_lists(
    ob_group: np.ndarray, n_groups: int, min_members: int = SKIP_MIN_MEMBERS
) -> dict[str, np.ndarray]:
    """How the Monte Carlo draws each obligor group's defaulters.

    A group with at least ``min_members`` members is drawn by geometric skipping over its
    member list; the other obligors draw one uniform each. Returns the ``RiskArrays`` fields
    ``ob_single``, ``g_skip``, ``g_member_ptr`` and ``g_member`` (pass them to
    ``RiskArrays._replace`` to draw a compiled model another way).

    Parameters
    ----------
    ob_group : numpy.ndarray
        Group of each obligor.
    n_groups : int
        Number of groups.
    min_members : int
        Smallest group drawn by skipping.

    Returns
    -------
    dict of str to numpy.ndarray
        The four fields.
    """
    ob_group = np.asarray(ob_group, dtype=np.int64)
    counts = np.bincount(ob_group, minlength=n_groups)
    skip = (counts >= min_members).astype(np.int64)
    skipped = skip[ob_group] == 1
    members = np.flatnonzero(skipped)
    order = np.argsort(ob_group[members], kind="stable")  # by group, obligor order within
    return {
        "ob_single": np.flatnonzero(~skipped).astype(np.int64),
        "g_skip": skip,
        "g_member_ptr": np.concatenate([[0], np.cumsum(counts * skip)]).astype(np.int64),
        "g_member": members[order].astype(np.int64),
    }


def cumulative_pd(
    annual: float | None, curve: list[float] | None, times: np.ndarray, multiplier: float = 1.0
) -> np.ndarray:
    """Cumulative default probability at each time (years), from an annual PD or a curve of
    cumulative PDs at year ends (constant hazard within each year; the last year's hazard
    continues after the curve ends), times ``multiplier`` (``risk.pd_multiplier``)."""
    if curve:
        cum = np.array([0.0, *curve])
        hazards = -np.log((1.0 - cum[1:]) / (1.0 - cum[:-1]))
        out = np.empty(len(times))
        for i, t in enumerate(times):
            year = min(math.floor(t), len(hazards) - 1)
            out[i] = 1.0 - (1.0 - cum[year]) * math.exp(-hazards[year] * (t - year))
        return out * multiplier
    p = 0.0 if annual is None else float(annual)
    return (1.0 - (1.0 - p) ** times) * multiplier


def _check_multiplied(
    model: CompiledModel,
    risk: RiskModel,
    pds: list[tuple[float | None, list[float] | None]],
    times: np.ndarray,
) -> None:
    """Every multiplied PD input, and every multiplied cumulative PD up to the last payment
    date, stays below 1 (a probability of 1 or more has no threshold)."""
    m = risk.pd_multiplier
    if m <= 1.0:  # the inputs are below 1 already
        return
    ob = model.obligors
    bad = []
    for i, (annual, curve) in enumerate(pds):
        if annual is None and not curve:
            continue
        given = max(curve) if curve else float(annual or 0.0)
        worst = max(float(cumulative_pd(annual, curve, times, m).max(initial=0.0)), m * given)
        if worst >= 1.0:
            if curve:
                source = "pd_curve"
            elif ob.horizon_pd[i] is not None:
                source = "cumulative_pd"
            elif not math.isnan(ob.pd[i]):
                source = "pd"
            elif ob.grade[i] and ob.grade[i] in risk.pd_by_grade:
                source = f"grade {ob.grade[i]!r} (risk.pd_by_grade)"
            else:
                source = "risk.default_pd"
            bad.append(f"{ob.names[i]!r} ({source}: {m:g} x PD reaches {worst:.4g})")
    if bad:
        shown = "; ".join(bad[:8]) + (f"; and {len(bad) - 8} more" if len(bad) > 8 else "")
        raise IpabsError(
            f"risk.pd_multiplier {m:g} lifts a default probability to 1 or more for obligor(s) {shown}: "
            "lower the multiplier or those PDs"
        )


def _obligor_pds(model: CompiledModel, risk: RiskModel) -> list[tuple[float | None, list[float] | None]]:
    ob = model.obligors
    needs = set(model.assets.obligor.tolist()) | set(model.royalties.obligor.tolist())
    out: list[tuple[float | None, list[float] | None]] = []
    missing = []
    for i, name in enumerate(ob.names):
        curve = ob.pd_curve[i]
        annual: float | None = None if math.isnan(ob.pd[i]) else float(ob.pd[i])
        horizon = ob.horizon_pd[i]
        if horizon is not None:
            # the annual PD on the ACT/365 clock whose cumulative PD by the horizon is the one given
            pd, years = horizon
            annual = 1.0 - (1.0 - pd) ** (1.0 / years)
        if curve is None and annual is None:
            grade = ob.grade[i]
            if grade and grade in risk.pd_by_grade:
                annual = risk.pd_by_grade[grade]
            elif grade and grade not in risk.pd_by_grade and i in needs:
                raise IpabsError(
                    f"obligor {name!r} has grade {grade!r}, which risk.pd_by_grade does not list"
                )
            elif risk.default_pd is not None:
                annual = risk.default_pd
            elif i in needs:
                missing.append(name)
        out.append((annual, curve))
    if missing:
        shown = ", ".join(missing[:8]) + (f" and {len(missing) - 8} more" if len(missing) > 8 else "")
        raise IpabsError(
            f"no default probability for obligor(s) {shown}: give `pd` or `pd_curve` on the obligor "
            "or its asset, a `grade` listed in risk.pd_by_grade, or risk.default_pd"
        )
    return out


class HistoryPosterior(NamedTuple):
    """The systematic factors given the history by a report date (:func:`history_posterior`)."""

    log_norm: float  # log E[L(Z)] (-inf: the history is impossible under the model)
    mean: np.ndarray  # (F,) E[Z | history] (zeros when impossible)


def history_posterior(
    hist: np.ndarray,
    counts: np.ndarray,
    factor: np.ndarray,
    loading: np.ndarray,
    idio: np.ndarray,
    n_factors: int,
    risk: RiskModel,
) -> HistoryPosterior:
    """``log E[L(Z)]``, the mean over the systematic factors' law of the likelihood of the
    history by a report date, ``L(z) = prod_g (Phi((hi_g - m_g(z)) / s_g) - Phi((lo_g -
    m_g(z)) / s_g))^n_g`` (each group's members' latent variables in their ``(lo, hi]``), and
    the factors' posterior mean ``E[Z L(Z)] / E[L(Z)]``. Dividing a path's ``L`` by the first
    gives a weight of mean 1: the factors' posterior given the history; the Monte Carlo draws
    its factors around the second (:func:`ipabs.analytics.importance.posterior_sampling`).
    One Gaussian factor: Gauss-Hermite quadrature (96 nodes); otherwise a scrambled Sobol'
    sample of 2^16 points of the factors (and the Student-t scale). ``log_norm`` is ``-inf``
    when the history is impossible under the model (a default it gives probability 0)."""
    from scipy import special, stats

    finite = np.isfinite(hist).any(axis=1)
    h, n, f, w, s = hist[finite], counts[finite], factor[finite], loading[finite], idio[finite]
    t_copula = risk.copula == "student_t"
    one_factor = not t_copula and (f[:, 1:] < 0).all()

    def log_lik(z: np.ndarray, scale: np.ndarray) -> np.ndarray:
        m = np.zeros((z.shape[0], len(h)))
        for j in range(3):
            cols = f[:, j]
            used = cols >= 0
            m[:, used] += w[used, j] * z[:, cols[used]]
        lo = special.ndtr((h[:, 0] * scale[:, None] - m) / s)
        hi = special.ndtr((h[:, 1] * scale[:, None] - m) / s)
        with np.errstate(divide="ignore"):
            return (n * np.log(np.maximum(hi - lo, 0.0))).sum(axis=1)

    if one_factor:
        x, wts = np.polynomial.hermite_e.hermegauss(96)
        z = x[:, None] * np.ones((1, n_factors))
        ll = log_lik(z, np.ones(len(x)))
        wts = wts / np.sqrt(2.0 * np.pi)
    else:
        dims = n_factors + (1 if t_copula else 0)
        u = stats.qmc.Sobol(dims, scramble=True, seed=20261203).random_base2(16)
        u = np.clip(u, 1e-12, 1.0 - 1e-12)
        z = special.ndtri(u[:, :n_factors])
        scale = np.ones(len(u))
        if t_copula:
            dof = float(risk.degrees_of_freedom or 0.0)
            scale = np.sqrt(stats.chi2.ppf(u[:, n_factors], dof) / dof)
        ll = log_lik(z, scale)
        wts = np.full(len(u), 1.0 / len(u))
    top = ll.max()
    if not np.isfinite(top):
        return HistoryPosterior(-np.inf, np.zeros(n_factors))
    lik = wts * np.exp(ll - top)  # scaled by exp(-top): no underflow for long histories
    return HistoryPosterior(float(top + np.log(lik.sum())), (lik @ z) / lik.sum())


def rolled_cumulative_pd(cum: np.ndarray, t0: int, behind: int, months: np.ndarray, chain: Any) -> np.ndarray:
    """Cumulative PD by each period's end of an obligor ``behind`` buckets behind on a report
    date (the end of period ``t0 - 1``): it rolls on into default before it cures with
    ``r = 1 - h[behind]`` (:func:`~ipabs.risk.delinquency_numba_fns.cure_chances`), within
    ``m`` months with ``F(m)`` (:func:`~ipabs.risk.delinquency_numba_fns.roll_months_law`);
    otherwise it cures and keeps its own PDs. From the report date on::

        cum'_t = c + (1 - c) [r F(m_t) + (1 - r) (cum_t - c) / (1 - c)],   c = cum_{t0-1}

    with ``m_t`` the months from the report date to the end of period t; before it, ``cum``.
    Survivors of the report date draw their latent variable above the threshold of ``c``, so
    their chance of defaulting by t given the factors averages to the bracket."""
    from ipabs.risk.delinquency_numba_fns import cure_chances, roll_months_law

    roll = np.asarray(chain.roll_rates, dtype=np.float64)
    cure = np.asarray(chain.cure_rates, dtype=np.float64)
    rolls = 1.0 - cure_chances(roll, cure)[behind]
    elapsed = np.cumsum(months)[t0 - 1 :] - np.cumsum(months)[t0 - 1]  # months to each period end
    law = roll_months_law(roll, cure, behind, int(elapsed[-1]))
    c = float(cum[t0 - 1])
    out = cum.copy()
    later = cum[t0 - 1 :]
    own = (later - c) / (1.0 - c) if c < 1.0 else np.zeros_like(later)
    out[t0 - 1 :] = c + (1.0 - c) * (rolls * law[elapsed] + (1.0 - rolls) * own)
    return out


def _thresholds(cum: np.ndarray, risk: RiskModel) -> np.ndarray:
    if risk.copula == "student_t":
        from scipy import special  # imported here: a Gaussian run need not pay for scipy

        out = special.stdtrit(risk.degrees_of_freedom, cum)
    else:
        out = norm_ppf_array(np.ascontiguousarray(cum, dtype=np.float64))
    # a zero PD never defaults, whatever the library returns at 0 (stdtrit gives +inf there)
    return np.where(cum <= 0.0, -np.inf, out)


class PeriodSearch(NamedTuple):
    """Tables of the bucketed search of default thresholds (:mod:`ipabs.risk.search_numba_fns`)."""

    rows: np.ndarray  # (G, T - 1 + 2^max(steps, 3)) thresholds of periods 0 .. T-2, then +inf
    start: np.ndarray  # (G, B) per bucket: thresholds in earlier buckets (and the -inf ones)
    # (G, 2) where bucket 0 starts, and buckets per unit of latent variable (0: one bucket)
    bucket: np.ndarray
    steps: int  # bisection steps: 2^steps exceeds the most thresholds sharing a bucket


def period_search(threshold: np.ndarray, max_entries: int = 1 << 20) -> PeriodSearch:
    """Bucket each group's thresholds of periods 0 .. T-2 for :func:`search_period`.

    The buckets cut the range of a group's finite thresholds evenly. Their number doubles
    from 8 until no bucket holds more than 7 thresholds (three bisection steps), or up to 256
    buckets (fewer when the groups' tables would pass ``max_entries``), keeping the fewest
    steps found: ties or very close thresholds cost steps, never a wrong count. Buckets are
    assigned with the kernel's own arithmetic (:func:`buckets_of`).
    """
    n_groups, n = threshold.shape
    searched = threshold[:, : n - 1]
    lo = np.zeros(n_groups)
    span = np.zeros(n_groups)
    finite = []
    for g in range(n_groups):
        # +inf (a certain default: a loan reported defaulted) is above every latent variable:
        # left out of the buckets like the row's padding, so that no inf - inf is formed
        values = np.ascontiguousarray(searched[g][np.isfinite(searched[g])])
        finite.append(values)
        if values.size and values[-1] > values[0]:
            lo[g], span[g] = values[0], values[-1] - values[0]
        elif values.size:
            lo[g] = values[0]
    limit = max(8, min(256, max_entries // max(n_groups, 1)))
    best: tuple[int, int, np.ndarray, np.ndarray] | None = None
    n_buckets = 8
    while True:
        inv = np.divide(n_buckets, span, out=np.zeros(n_groups), where=span > 0.0)
        counts = np.zeros((n_groups, n_buckets), dtype=np.int64)
        for g in range(n_groups):
            counts[g] = np.bincount(buckets_of(finite[g], lo[g], inv[g], n_buckets), minlength=n_buckets)
        steps = int(counts.max(initial=0)).bit_length()
        if best is None or steps < best[0]:
            best = (steps, n_buckets, counts, inv)
        if steps <= 3 or 2 * n_buckets > limit:
            break
        n_buckets *= 2
    steps, n_buckets, counts, inv = best
    n_minus_inf = (searched == -np.inf).sum(axis=1).astype(np.int64)
    start = np.zeros((n_groups, n_buckets), dtype=np.int64)
    start[:, 1:] = np.cumsum(counts, axis=1)[:, :-1]
    start += n_minus_inf[:, None]
    rows = np.full((n_groups, n - 1 + (1 << max(steps, 3))), np.inf)  # the kernel does >= 3 steps
    rows[:, : n - 1] = searched
    return PeriodSearch(rows, start, np.ascontiguousarray(np.stack([lo, inv], axis=1)), steps)


def period_hazards(cum: np.ndarray) -> np.ndarray:
    """Probability of defaulting in each period having survived the ones before, from the
    cumulative default probabilities at the period ends (last axis)."""
    before = np.concatenate([np.zeros((*cum.shape[:-1], 1)), cum[..., :-1]], axis=-1)
    return np.divide(cum - before, 1.0 - before, out=np.ones_like(cum), where=before < 1.0)


def performing_flows(
    model: CompiledModel, smm: np.ndarray, hazard: np.ndarray | None = None
) -> tuple[np.ndarray, ...]:
    """Per-asset flows on the paths where the asset's obligor has not defaulted: interest,
    scheduled principal, prepayment, balance at start and end of each period, and collateral
    value at the start of each period (each (A, T)).

    ``hazard`` (A, T) is the obligor's probability of defaulting in each period having
    survived the earlier ones (none: zero). Prepayments follow SIFMA's standard formulas
    in expectation over the paths (:func:`~ipabs.risk.collections_numba_fns.performing_flows_kernel`).
    """
    from ipabs.collateral.value import asset_values
    from ipabs.risk.collections_numba_fns import performing_flows_kernel

    n_assets, n = model.sched_balance.shape
    out = np.empty((n_assets, n, 6))
    h = np.zeros((n_assets, n)) if hazard is None else np.ascontiguousarray(hazard, dtype=np.float64)
    performing_flows_kernel(
        model.sched_interest,
        model.sched_principal,
        model.sched_balance,
        model.assets.balance.astype(np.float64),
        h,
        np.ascontiguousarray(smm, dtype=np.float64),
        asset_values(model.assets, n),
        out,
    )
    return tuple(np.ascontiguousarray(out[:, :, k]) for k in range(6))


def _active_end(*flows: np.ndarray) -> np.ndarray:
    """Per asset, one past the last period with any nonzero flow (0 when none)."""
    active = np.zeros(flows[0].shape, dtype=bool)
    for f in flows:
        active |= f != 0.0
    last = active.shape[1] - np.argmax(active[:, ::-1], axis=1)
    return np.where(active.any(axis=1), last, 0).astype(np.int64)


def survivor_flows(
    model: CompiledModel, smm: np.ndarray, hazard: np.ndarray, dq: DelinquencyAssumption, months: np.ndarray
) -> np.ndarray:
    """(A, T, N_A_DQ_COLUMNS): each asset's flows on the paths where its obligor survives, its
    loans falling behind and curing with the chain conditioned on curing (the copula decides
    who defaults; see :func:`~ipabs.risk.delinquency_numba_fns.cured_episode_rates`)."""
    from ipabs.collateral.value import asset_values
    from ipabs.risk.collections_numba_fns import REPAID_SHARE
    from ipabs.risk.delinquency_numba_fns import (
        DQ_ARREARS_PRINCIPAL,
        DQ_BALANCE_END,
        DQ_BALANCE_START,
        DQ_DELINQUENT_30,
        DQ_INTEREST,
        DQ_PERFORMING_START,
        DQ_PREPAYMENT,
        DQ_PRINCIPAL,
        N_DQ_COLUMNS,
        cured_episode_rates,
        survivor_delinquency_flows,
    )

    roll, cure = cured_episode_rates(np.array(dq.roll_rates), np.array(dq.cure_rates))
    n_assets, n = model.sched_balance.shape
    steps = months.astype(np.int64)
    bucket = np.zeros(n_assets, dtype=np.int64)
    if model.start is not None:  # ---- surveillance: the chain starts on the report date
        steps[: model.start.period] = 0
        if model.start.asset_behind is not None:
            bucket = model.start.asset_behind.astype(np.int64)
    raw = np.empty((n_assets, n, N_DQ_COLUMNS))
    survivor_delinquency_flows(
        model.sched_interest,
        model.sched_principal,
        model.sched_balance,
        model.assets.balance.astype(np.float64),
        np.ascontiguousarray(hazard, dtype=np.float64),
        np.ascontiguousarray(smm, dtype=np.float64),
        steps,
        roll,
        cure,
        raw,
        bucket,
    )
    order = [DQ_INTEREST, DQ_PRINCIPAL, DQ_PREPAYMENT, DQ_BALANCE_START, DQ_BALANCE_END, DQ_PERFORMING_START]
    order += list(range(DQ_DELINQUENT_30, DQ_ARREARS_PRINCIPAL + 1))
    out = np.ascontiguousarray(raw[:, :, order])
    # ---- collateral value: the pledged IP of the loans not defaulted, until they are repaid
    balance = model.assets.balance.astype(np.float64)
    start_sched = np.concatenate([balance[:, None], model.sched_balance[:, :-1]], axis=1)
    live = start_sched > REPAID_SHARE * balance[:, None]
    out[:, :, A_COLLATERAL_VALUE] *= np.where(live, asset_values(model.assets, n), 0.0)
    return out


def compile_risk(model: CompiledModel, risk: RiskModel | None = None) -> RiskArrays:
    """Compile the deal's (or the given) risk model for the Monte Carlo kernel.

    Raises
    ------
    IpabsError
        If the deal has no risk model or an obligor has no default probability.
    """
    from ipabs.engine.layout import (
        C_BALANCE_END,
        C_BALANCE_START,
        C_COLLATERAL_VALUE,
        C_DELINQUENT_30,
        C_INTEREST,
        C_PREPAYMENT,
        C_SCHED_PRINCIPAL,
        N_COLLECTION_COLUMNS,
    )

    risk = risk if risk is not None else model.spec.risk
    if risk is None:
        raise IpabsError(
            f"{model.deal.source.file}: the deal has no `risk` section; add one or pass a risk file"
        )
    grid = model.grid
    n = model.n_periods
    times = (grid[1:] - grid[0]) / 365.0
    # ---- calendars: the pool's default clock and cash run on the collection periods, from the
    # cut-off (the same as the payment grid for a deal without a calendar or cut-off date)
    cgrid = model.collection_grid
    pd_times = (cgrid[1:] - cgrid[0]) / 365.0
    # a payment grid has few distinct gaps (28-31 days monthly): yields price with one
    # exponential per gap instead of one per date
    gap_days, gap_id = np.unique(np.diff(grid), return_inverse=True)
    gap_id = gap_id.astype(np.int64)
    start = model.start  # ---- surveillance: a run from a report date
    t0 = 0 if start is None else start.period
    if t0 > 0:
        # yields, WAL and duration from the report date: the periods before it take no time
        times = np.maximum(times - times[t0 - 1], 0.0)
        gap_days = np.append(gap_days, 0)
        gap_id[:t0] = len(gap_days) - 1
    ob = model.obligors
    months = period_months(cgrid)

    # --- obligor groups: same thresholds, industry and region share one conditional PD
    templates = model.spec.revolving.templates if model.spec.revolving is not None else []
    industries = sorted({x for x in ob.industry if x} | {x.industry for x in templates if x.industry})
    regions = sorted({x for x in ob.region if x} | {x.region for x in templates if x.region})
    lg, li, lr = risk.loadings()
    n_factors = 1 + len(industries) + len(regions)
    pds = _obligor_pds(model, risk)
    _check_multiplied(model, risk, pds, pd_times)
    groups: dict[tuple, int] = {}
    thresholds, factors, loadings, cumulative = [], [], [], []
    floors: list[float] = []  # ---- surveillance
    history: list[tuple[float, float]] = []
    ob_group = np.empty(len(ob.names), dtype=np.int64)
    for i, (annual, curve) in enumerate(pds):
        ind = 1 + industries.index(ob.industry[i]) if ob.industry[i] and li > 0 else -1
        reg = 1 + len(industries) + regions.index(ob.region[i]) if ob.region[i] and lr > 0 else -1
        tau = -1 if start is None else int(start.obligor_default_period[i])
        behind = 0  # ---- surveillance: buckets behind on the report date (rolls with the chain)
        if start is not None and start.obligor_behind is not None and risk.delinquency is not None:
            behind = int(start.obligor_behind[i]) if tau < 0 else 0
        key = (annual, tuple(curve) if curve else None, ind, reg, tau, behind)
        if key not in groups:
            groups[key] = len(groups)
            cum = cumulative_pd(annual, curve, pd_times, risk.pd_multiplier)
            threshold = _thresholds(cum, risk)
            floor, lo, hi = -np.inf, -np.inf, np.inf
            if start is not None and tau >= 0:
                # defaulted before the report date: its history is a default in period tau,
                # and it defaults there on every path
                lo = threshold[tau - 1] if tau > 0 else -np.inf
                hi = threshold[tau]
                cum = np.where(np.arange(n) >= tau, 1.0, 0.0)
                threshold = _thresholds(cum, risk)
            elif start is not None:  # survived to the report date: its latent variable is above
                floor = lo = threshold[t0 - 1]
                if behind > 0:  # behind on the report date: it may roll on into default
                    cum = rolled_cumulative_pd(cum, t0, behind, months, risk.delinquency)
                    threshold = _thresholds(cum, risk)
            cumulative.append(cum)
            thresholds.append(threshold)
            floors.append(floor)
            history.append((lo, hi))
            factors.append((0, ind, reg))
            loadings.append((lg, li if ind >= 0 else 0.0, lr if reg >= 0 else 0.0))
        ob_group[i] = groups[key]
    g_loading = np.array(loadings, dtype=np.float64).reshape(-1, 3)
    idio = np.sqrt(1.0 - (g_loading**2).sum(axis=1))
    hist = np.array(history, dtype=np.float64).reshape(-1, 2)
    g_factor_arr = np.array(factors, dtype=np.int64).reshape(-1, 3)
    counts = np.bincount(ob_group, minlength=len(groups)).astype(np.float64)
    log_norm = 0.0
    posterior = 0
    posterior_mean = np.zeros(n_factors)
    if start is not None and np.isfinite(hist).any():
        log_norm, posterior_mean = history_posterior(
            hist, counts, g_factor_arr, g_loading, idio, n_factors, risk
        )
        posterior = int(np.isfinite(log_norm))  # an observed default the model rules out: no update
        log_norm = log_norm if posterior else 0.0

    # --- assets under the prepayment assumption
    # ---- seasoned pools: the PSA ramp counts each loan's age
    ages = model.assets.age_months
    smm = np.zeros((len(model.assets), n))
    for age in np.unique(ages).tolist():
        smm[ages == age] = prepayment_curve(risk.prepayment, months, int(age))
    if start is not None:  # what a loan prepaid before the report date is in its balance
        loans = np.array([k != "licence" for k in model.assets.kind], dtype=bool)
        smm[loans, :t0] = 0.0
        smm[start.asset_default_period >= 0] = 0.0
    # each asset's flows while its obligor survives depend on that obligor's default hazard
    g_hazard = period_hazards(np.array(cumulative, dtype=np.float64).reshape(-1, n))
    a_hazard = g_hazard[ob_group[model.assets.obligor]] if len(model.assets) else np.zeros((0, n))
    dq = risk.delinquency  # ---- delinquency: survivors fall behind and cure
    if dq is None:
        interest, principal, prepaid, start, end, value = performing_flows(model, smm, a_hazard)
        a_flows = np.ascontiguousarray(np.stack([interest, principal, prepaid, start, end, value], axis=-1))
    else:
        a_flows = survivor_flows(model, smm, a_hazard, dq, months)
    totals = np.zeros((len(model.pool_names), n, N_COLLECTION_COLUMNS))
    columns = [
        C_INTEREST,
        C_SCHED_PRINCIPAL,
        C_PREPAYMENT,
        C_BALANCE_START,
        C_BALANCE_END,
        C_COLLATERAL_VALUE,
    ]
    if dq is not None:
        columns += [C_DELINQUENT_30 + k for k in range(N_A_DQ_COLUMNS - A_DELINQUENT_30)]
    for k, col in enumerate(columns):
        np.add.at(totals[:, :, col], model.assets.pool, a_flows[:, :, k])

    rec = risk.recovery
    pieces = recovery_pieces(rec)
    last = last_recovery_months(rec)  # the liquidation ends with the last instalment
    if len(pieces) > 1 and model.cd.rv_last >= 0:
        raise IpabsError(
            f"{model.deal.source.file}: risk.recovery.timing in instalments is not supported with a "
            "revolving period (the purchased assets recover in one payment); use lag_months"
        )
    # a realised loss is covered lag_months after its recovery; a defaulted balance after its default
    cover = model.cover
    cover_lag = [
        -1
        if c < 0
        else int(cover.cv_lag_months[c]) + (last if cover.cv_kind[c] == COVER_REALISED_LOSS else 0)
        for c in cover.a_cover.tolist()
    ]
    lags = sorted(
        {
            last,
            *(m for m, _ in pieces),
            *model.assets.guarantee_lag_months.tolist(),
            0,
            *(x for x in cover_lag if x >= 0),
        }
    )
    lag_id = {lag: i for i, lag in enumerate(lags)}
    mu, sigma, beta_q = _value_factor(rec.model, rec.value_mean, rec.value_dispersion)
    a_dist, d_mu, d_sigma, d_quantile = _asset_value_factors(model, risk, mu, sigma, beta_q)

    roy = model.royalties
    # the expected base follows risk.royalty's path (growth, vectors, shocks) when it gives one
    r_paths = [base_path(risk.royalty, float(roy.growth[r])) for r in range(len(roy))]
    rg = royalty_grid(roy, cgrid, roy.growth, r_paths)
    frequency = 12 // MONTHS_PER_PERIOD[model.spec.deal.payment_frequency]
    hazard = risk.royalty.invalidation_hazard
    g_threshold = np.array(thresholds, dtype=np.float64).reshape(-1, n)
    search = period_search(g_threshold)
    rv = _revolving_risk(model, risk, templates, industries, regions, months)
    return RiskArrays(
        n_periods=n,
        n_factors=n_factors,
        copula=COPULA_STUDENT_T if risk.copula == "student_t" else COPULA_GAUSSIAN,
        dof=float(risk.degrees_of_freedom or 0.0),
        ob_group=ob_group,
        **sampling_lists(ob_group, g_threshold.shape[0]),
        g_threshold=g_threshold,
        g_search_row=search.rows,
        g_search_start=search.start,
        g_search_bucket=search.bucket,
        g_factor=np.array(factors, dtype=np.int64).reshape(-1, 3),
        g_loading=g_loading,
        g_idio=idio,
        g_floor=np.array(floors, dtype=np.float64),
        g_hist_lo=np.ascontiguousarray(hist[:, 0]),
        g_hist_hi=np.ascontiguousarray(hist[:, 1]),
        floored=int(np.isfinite(np.array(floors, dtype=np.float64)).any()),
        posterior=posterior,
        log_norm=float(log_norm),
        posterior_mean=np.ascontiguousarray(posterior_mean, dtype=np.float64),
        a_pool=model.assets.pool,
        a_obligor=model.assets.obligor,
        # one record per asset and period, so that taking a defaulted asset out reads one
        # contiguous block
        a_flows=np.ascontiguousarray(a_flows),
        ob_asset_ptr=np.concatenate(
            [[0], np.cumsum(np.bincount(model.assets.obligor, minlength=len(ob_group)))]
        ).astype(np.int64),
        ob_asset=np.argsort(model.assets.obligor, kind="stable").astype(np.int64),
        a_end=_active_end(*(a_flows[:, :, k] for k in range(a_flows.shape[2]))),
        a_appraisal=model.assets.appraised_value,
        a_guarantor=model.assets.guarantor,
        a_guarantee_share=model.assets.guarantee_share,
        a_guarantee_lag=np.array(
            [lag_id[x] for x in model.assets.guarantee_lag_months.tolist()], dtype=np.int64
        ),
        rec_lag=lag_id[last],
        lag_period=lag_table(cgrid, lags),
        rec_model=RECOVERY_CODES[rec.model],
        rec_rate=rec.rate,
        rec_mu=mu,
        rec_sigma=sigma,
        rec_loading=rec.systematic_loading,
        rec_cost=rec.disposal_cost,
        rec_beta_quantile=beta_q,
        a_rec_dist=a_dist,
        rec_dist_mu=d_mu,
        rec_dist_sigma=d_sigma,
        rec_dist_quantile=d_quantile,
        base_totals=totals,
        r_pool=roy.pool,
        r_obligor=roy.obligor,
        r_rate=roy.rate,
        r_kind=roy.kind,
        r_tier_ptr=roy.tier_ptr,
        r_tier_above=roy.tier_above,
        r_tier_rate=roy.tier_rate,
        r_minimum=roy.minimum,
        r_cap=roy.cap,
        r_base=rg.base,
        r_year_frac=rg.year_frac,
        r_mid_years=rg.mid_years,
        r_pay_period=rg.pay_period,
        r_volatility=risk.royalty.volatility,
        r_loading=risk.royalty.systematic_loading,
        r_invalidation_rate=-math.log(1.0 - hazard) if hazard > 0 else 0.0,
        r_invalidation_cut=risk.royalty.invalidation_cut,
        r_value=royalty_values(roy, cgrid, r_paths),
        r_value_slot=value_slots(roy, rg, cgrid),
        r_value_years=value_years(roy, cgrid),
        support_obligor=model.support_provider,
        tr_discount=(1.0 + model.cd.tr_rate[:, :1] / frequency) ** (-frequency * times[None, :]),
        tr_yield_guess=(1.0 + model.cd.tr_rate[:, 0] / frequency) ** frequency - 1.0,
        tr_price=np.ascontiguousarray(model.balances, dtype=np.float64),
        times=times,
        gap_id=gap_id,
        gap_years=gap_days / 365.0,
        rv_factor=rv[0],
        rv_loading=rv[1],
        rv_idio=rv[2],
        rv_threshold=rv[3],
        rv_smm=rv[4],
        rv_ratio=rv[5],
        cover=cover,
        a_cover_lag=np.array([lag_id[x] if x >= 0 else -1 for x in cover_lag], dtype=np.int64),
        rec_piece_lag=np.array([lag_id[m] for m, _ in pieces], dtype=np.int64),
        dq_on=int(risk.delinquency is not None),
        dq_exit=np.array(
            [0.0, 0.0, 0.0]
            if risk.delinquency is None
            else [risk.delinquency.roll_rates[k + 1] + risk.delinquency.cure_rates[k] for k in range(3)]
        ),
        month_start=np.concatenate([[0], np.cumsum(months)]).astype(np.int64),
        rec_piece_share=np.array([w for _, w in pieces], dtype=np.float64),
    )


def _value_factor(model: str, mean: float, dispersion: float) -> tuple[float, float, np.ndarray]:
    """(mu, sigma, beta quantiles) of a recovery value factor of ``mean`` and ``dispersion``
    (lognormal: sd of log V; beta: sd of V); zeros and an empty table where unused."""
    beta_q = np.zeros(0)
    mu = sigma = 0.0
    if model == "lognormal":
        sigma = dispersion
        mu = math.log(mean) - 0.5 * sigma * sigma if mean > 0 else -math.inf
    elif model == "beta":
        m, s = mean, dispersion
        k = m * (1.0 - m) / (s * s) - 1.0
        u = (np.arange(BETA_TABLE_SIZE) + 0.5) / BETA_TABLE_SIZE
        from scipy import special

        beta_q = special.betaincinv(m * k, (1.0 - m) * k, u)
    return mu, sigma, beta_q


def _asset_value_factors(
    model: CompiledModel, risk: RiskModel, mu: float, sigma: float, beta_q: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Each asset's row of the value-factor table (``a_rec_dist``) and the table's rows
    (mu, sigma, beta quantiles): row 0 is the recovery model's own factor; an asset whose
    pledged IP gives ``value_volatility`` gets the row of that volatility (lognormal: its sd of
    log V; beta: the sd ``value_mean x sqrt(exp(volatility^2) - 1)``, the same coefficient of
    variation as a lognormal of that volatility)."""
    rec = risk.recovery
    vols = np.asarray(model.assets.value_volatility, dtype=np.float64)
    a_dist = np.zeros(len(vols), dtype=np.int64)
    rows: list[tuple[float, float, np.ndarray]] = [(mu, sigma, beta_q)]
    if rec.model in ("lognormal", "beta"):
        seen: dict[float, int] = {}
        m = rec.value_mean
        for a in np.flatnonzero(~np.isnan(vols)).tolist():
            vol = float(vols[a])
            if vol not in seen:
                dispersion = vol if rec.model == "lognormal" else beta_value_sd(m, vol)
                if rec.model == "beta" and not beta_feasible(m, dispersion):
                    raise IpabsError(
                        f"asset {model.assets.id[a]!r}: pledged_ip.value_volatility {vol:g} gives a beta "
                        f"value factor of mean {m:g} the sd {dispersion:.4f}, which must lie in (0, "
                        f"{math.sqrt(m * (1.0 - m)):.4f}): lower the volatility, or use "
                        "risk.recovery.model: lognormal"
                    )
                seen[vol] = len(rows)
                rows.append(_value_factor(rec.model, m, dispersion))
            a_dist[a] = seen[vol]
    width = len(beta_q)
    quantile = np.zeros((len(rows), width))
    for k, (_, _, q) in enumerate(rows):
        quantile[k] = q
    return (
        a_dist,
        np.array([r[0] for r in rows], dtype=np.float64),
        np.array([r[1] for r in rows], dtype=np.float64),
        quantile,
    )


def _revolving_risk(
    model: CompiledModel,
    risk: RiskModel,
    templates: list[Any],
    industries: list[str],
    regions: list[str],
    months: np.ndarray,
) -> tuple[np.ndarray, ...]:
    """Factors, thresholds by age since purchase, prepayments and appraisal ratios of the
    purchase templates (see :mod:`ipabs.engine.revolving_numba_fns`)."""
    grid = model.grid
    n = len(grid) - 1
    j_n = len(templates)
    lg, li, lr = risk.loadings()
    factor = np.full((j_n, 3), -1, dtype=np.int64)
    loading = np.zeros((j_n, 3))
    threshold = np.full((j_n, n, n), -np.inf)
    for j, tpl in enumerate(templates):
        ind = 1 + industries.index(tpl.industry) if tpl.industry and li > 0 else -1
        reg = 1 + len(industries) + regions.index(tpl.region) if tpl.region and lr > 0 else -1
        factor[j] = (0, ind, reg)
        loading[j] = (lg, li if ind >= 0 else 0.0, lr if reg >= 0 else 0.0)
        if tpl.pd is not None:
            annual = float(tpl.pd)
        elif tpl.grade is not None and tpl.grade in risk.pd_by_grade:
            annual = risk.pd_by_grade[tpl.grade]
        elif tpl.grade is not None:
            raise IpabsError(
                f"purchase template {tpl.name!r} has grade {tpl.grade!r}, "
                "which risk.pd_by_grade does not list"
            )
        elif risk.default_pd is not None:
            annual = risk.default_pd
        else:
            raise IpabsError(
                f"no default probability for purchase template {tpl.name!r}: give it `pd` or a `grade` "
                "listed in risk.pd_by_grade, or give risk.default_pd"
            )
        for s in range(n - 1):  # bought on period s's date: ages 0 .. n - s - 2
            years = (grid[s + 2 :] - grid[s + 1]) / 365.0
            cum = cumulative_pd(annual, None, years, risk.pd_multiplier)
            if cum.max(initial=0.0) >= 1.0:
                raise IpabsError(
                    f"risk.pd_multiplier {risk.pd_multiplier:g} lifts the default probability of purchase "
                    f"template {tpl.name!r} to 1 or more: lower the multiplier or the template's PD"
                )
            threshold[j, s, : len(years)] = _thresholds(cum, risk)
    idio = np.sqrt(1.0 - (loading**2).sum(axis=1))
    ratio = np.array(
        [np.nan if t.appraisal_ratio is None else float(t.appraisal_ratio) for t in templates],
        dtype=np.float64,
    )
    return factor, loading, idio, threshold, prepayment_curve(risk.prepayment, months), ratio
