"""Kernels of the Monte Carlo: one path of correlated defaults, recoveries and royalty bases,
run through the same waterfall as the deterministic case, reduced to per-path outcomes.

Path *i* draws only from the generator keyed by (seed, i), in a fixed order: the systematic
factors (and the Student-t mixing variable), one uniform per obligor of the groups drawn one
by one (``RiskArrays.ob_single``, in obligor order), then for each group of at least
``SKIP_MIN_MEMBERS`` obligors in group order its defaulters by geometric skipping (a uniform
per gap, then the defaulter's bits given default; a uniform per member when the path's
probability of default is ``SKIP_MAX_Q`` or more; see :func:`_skip_defaulters`), a normal per
defaulted asset's recovery (defaulters in obligor order, each one's assets in asset order),
then per royalty stream an invalidation uniform and its Brownian path. A deal whose groups are
all smaller draws one uniform per obligor, in obligor order.

Memory is O(paths x tranches): each thread reuses one scratch set of per-period tables.
Every per-path kernel is a leaf (see :func:`ipabs._jit.njit`): no allocation, no reference
counting.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ipabs._jit import njit
from ipabs.collateral.royalty import royalty_accrual
from ipabs.engine.layout import (
    C_ARREARS_INTEREST,
    C_ARREARS_PRINCIPAL,
    C_BALANCE_END,
    C_BALANCE_START,
    C_COLLATERAL_VALUE,
    C_DEFAULT,
    C_DELINQUENT_30,
    C_GUARANTEE,
    C_INTEREST,
    C_LOSS,
    C_MISSED_INTEREST,
    C_MISSED_PRINCIPAL,
    C_PREPAYMENT,
    C_REALISED_LOSS,
    C_ROYALTY,
    C_SCHED_PRINCIPAL,
    COVER_REALISED_LOSS,
    TR_BALANCE_END,
    TR_INTEREST_ARREARS,
    TR_INTEREST_PAID,
    TR_PRINCIPAL_PAID,
    TR_PUT_UNFUNDED,
    TR_RESIDUAL_PAID,
    TR_WRITTEN_DOWN,
    allocate_tables,
)
from ipabs.engine.metrics_numba_fns import yield_on_grid
from ipabs.engine.revolving_numba_fns import (
    MODE_NONE,
    MODE_RANDOM,
    T_DEFAULTED,
    T_DEFAULTS,
    T_LOSS,
    T_PURCHASED,
    RevolvingPath,
    new_revolving_path,
    recovery_value,
)
from ipabs.engine.waterfall_numba_fns import allocate_work, waterfall_path, waterfall_path_inline
from ipabs.numerics.normal_numba_fns import ACKLAM_TAIL, acklam_centre, norm_cdf, norm_ppf_tails
from ipabs.numerics.prefetch_numba_fns import prefetch_row
from ipabs.numerics.rng_numba_fns import (
    bits_to_uniform,
    chi_square,
    normal,
    seed_state,
    uniform,
    xoshiro_step,
)
from ipabs.risk.collections_numba_fns import pay_loss_cover, recovery_instalments
from ipabs.risk.delinquency_numba_fns import months_to_default
from ipabs.risk.model import (
    A_BALANCE_END,
    A_BALANCE_START,
    A_COLLATERAL_VALUE,
    A_DELINQUENT_30,
    A_INTEREST,
    A_MISSED_INTEREST,
    A_MISSED_PRINCIPAL,
    A_PREPAYMENT,
    A_SCHED_PRINCIPAL,
    COPULA_STUDENT_T,
    N_A_DQ_COLUMNS,
    REC_CONSTANT,
)
from ipabs.risk.search_numba_fns import extra_steps, search_period

# per-path tranche outcomes (last axis)
O_PRINCIPAL_LOSS = 0
O_INTEREST_SHORTFALL = 1
O_LOSS = 2
O_DISCOUNTED_LOSS = 3
O_PV_RECEIVED = 4
O_WAL = 5
O_YIELD = 6
O_DURATION = 7  # Macaulay duration (years) of the cash received, discounted at the coupon
TRANCHE_OUTCOMES = (
    "principal_loss",
    "interest_shortfall",
    "loss",
    "discounted_loss",
    "pv_received",
    "wal_years",
    "yield",
    "duration_years",
)
# ---- note options
O_PUT_UNFUNDED = 8  # investor put amount the supporter did not fund (> 0: an event of default)
TRANCHE_OUTCOMES = (*TRANCHE_OUTCOMES, "put_unfunded")

# per-path pool outcomes
P_DEFAULT_RATE = 0  # cumulative defaulted balance / original pool balance
P_LOSS_RATE = 1  # defaulted balance less recoveries and guarantees / original pool balance
P_DEFAULTS = 2  # number of obligors that default while they owe an asset or royalty payment
P_ROYALTY = 3  # royalty and income-share cash collected
P_WEIGHT = 4  # likelihood ratio of the path (1 without importance sampling)
P_PURCHASED = 5  # par bought in the revolving period
POOL_OUTCOMES = ("default_rate", "loss_rate", "defaults", "royalty_collected", "weight", "purchased")

# defaulters between the one taken out of the pool and the one whose flows are prefetched,
# when the per-asset flows pass 32 MB (smaller tables stay in the caches: the hints only cost)
PREFETCH_AHEAD = 8
PREFETCH_MIN_ENTRIES = 1 << 22

# a group whose probability of default on the path is below this skips to its defaulters;
# at or above it, a uniform per member costs less (about a tenth of a skip's per-defaulter cost)
SKIP_MAX_Q = 0.125

# the generator stream of purchased assets: apart from the pool's, so that purchases (which
# depend on the waterfall) never shift the pool's draws
REVOLVING_STREAM = 1 << 40


@njit(leaf=True, inline="always")
def _conditional_pd(ra, g, t, scale, m):  # type: ignore[no-untyped-def]
    # P(default by the end of period t | factors): the latent variable m + idio x e, divided by
    # the Student-t scale, falls below the threshold
    return norm_cdf((ra.g_threshold[g, t] * scale - m) / ra.g_idio[g])


@njit(leaf=True, inline="always")
def draw_defaults(ra, sc):  # type: ignore[no-untyped-def]
    """Draw the factors and every obligor's default period into ``sc.ob_period`` (T when it
    survives the horizon). The defaulters are listed, in obligor order, in the first entries of
    ``sc.d_obligor``; returns their number. A large group's defaulters are drawn by skipping
    (:func:`_skip_defaulters`); each defaulter's bits (``sc.ob_bits``) then follow the law of
    the per-obligor draw given default."""
    n_t = ra.n_periods
    state = sc.state
    z = sc.z
    g_mean = sc.g_mean
    g_horizon = sc.g_horizon
    ob_period = sc.ob_period
    shift = sc.shift
    # Importance sampling draws from the defensive mixture "nominal model with probability
    # alpha, shifted and twisted model otherwise" (Hesterberg), which bounds every weight by
    # 1 / alpha: estimates away from the target's tail stay sound.
    alpha = sc.sampling[1]
    nominal = False
    if alpha > 0.0:
        nominal = uniform(state) < alpha
    for k in range(ra.n_factors):
        z[k] = normal(state) if nominal else normal(state) + shift[k]
    scale = 1.0
    if ra.copula == COPULA_STUDENT_T:
        scale = math.sqrt(chi_square(state, ra.dof) / ra.dof)
    sc.t_scale[0] = scale
    floored = ra.floored == 1  # ---- surveillance: some group survived a report date
    for g in range(ra.g_threshold.shape[0]):
        m = 0.0
        for j in range(3):
            f = ra.g_factor[g, j]
            if f >= 0:
                m += ra.g_loading[g, j] * z[f]
        g_mean[g] = m
        p = _conditional_pd(ra, g, n_t - 1, scale, m)
        if floored:  # ---- surveillance: survivors of a report date default only later
            f = 0.0
            if ra.g_floor[g] > -np.inf:
                f = norm_cdf((ra.g_floor[g] * scale - m) / ra.g_idio[g])
                p = max(p - f, 0.0) / (1.0 - f) if f < 1.0 else 0.0
            sc.g_floor_cdf[g] = f
        g_horizon[g] = p
    # The importance density: the factor shift, and a twist of each group's conditional
    # default probability's odds by exp(theta + tilt_g): tilt_g is fixed per group (learnt
    # from pilot runs), theta >= 0 is set so that the expected number of defaulters given the
    # factors reaches the target (Glasserman and Li; 0 without a target). log_q is the log of
    # the importance density relative to the model's at the path drawn.
    log_q = 0.0
    for k in range(shift.shape[0]):
        log_q += shift[k] * (z[k] - 0.5 * shift[k])
    tilt = sc.g_tilt
    g_theta = sc.g_theta
    theta = _twist_theta(g_horizon, sc.g_count, sc.sampling[0], tilt)
    twisted = False
    for g in range(g_horizon.shape[0]):
        g_theta[g] = theta + tilt[g]
        if g_theta[g] != 0.0:
            twisted = True
            log_q -= sc.g_count[g] * math.log1p(g_horizon[g] * math.expm1(g_theta[g]))
    g_twisted = sc.g_twisted
    sample_twisted = twisted and not nominal  # a nominal path is drawn from the model itself
    for g in range(g_horizon.shape[0]):
        p = g_horizon[g]
        if sample_twisted:
            e = math.expm1(g_theta[g])
            g_twisted[g] = p * (1.0 + e) / (1.0 + p * e)
        else:
            g_twisted[g] = p
    # Two passes. The first draws every obligor's random bits with the generator state held in
    # registers (the same sequence as uniform()) and lists the defaulters without a branch
    # (the bits are kept at each obligor's own place: that store need not wait for the count);
    # the second places each defaulter's default period. Mixing the two in one loop paid a
    # mispredicted branch per defaulter and kept the work of one defaulter from overlapping
    # the next.
    ob_group = ra.ob_group
    d_obligor = sc.d_obligor
    ob_bits = sc.ob_bits
    # u = ((bits >> 12) + 0.5) 2^-52 < p exactly when (bits >> 12) < ceil(p 2^52 - 0.5): the
    # first pass compares integers and converts only the defaulters' bits to uniforms
    g_below = sc.g_below
    for g in range(g_twisted.shape[0]):
        scaled = g_twisted[g] * 4503599627370496.0  # 2^52, exact
        g_below[g] = np.int64(math.ceil(scaled - 0.5)) if scaled < 4503599627370496.0 else np.int64(1) << 52
    # only the previous path's defaulters differ from "no default": reset those, not everyone
    for i in range(sc.n_defaulters[0]):
        ob_period[d_obligor[i]] = n_t
        sc.ob_hit[d_obligor[i]] = 0
        sc.ob_loss[d_obligor[i]] = 0.0
    s0, s1, s2, s3 = state[0], state[1], state[2], state[3]
    n_d = 0
    ob_single = ra.ob_single
    if ob_single.shape[0] == ob_group.shape[0]:  # every obligor (no group skips): no indirection
        for o in range(ob_group.shape[0]):
            bits, s0, s1, s2, s3 = xoshiro_step(s0, s1, s2, s3)
            k = np.int64(bits >> np.uint64(12))
            d_obligor[n_d] = o
            ob_bits[o] = bits
            n_d += 1 if k < g_below[np.uint64(ob_group[o])] else 0  # unsigned: no wraparound check
    else:
        for j in range(ob_single.shape[0]):
            o = ob_single[np.uint64(j)]
            bits, s0, s1, s2, s3 = xoshiro_step(s0, s1, s2, s3)
            k = np.int64(bits >> np.uint64(12))
            d_obligor[n_d] = o
            ob_bits[o] = bits
            n_d += 1 if k < g_below[np.uint64(ob_group[o])] else 0
    state[0] = s0
    state[1] = s1
    state[2] = s2
    state[3] = s3
    for g in range(g_below.shape[0]):
        if ra.g_skip[g] == 1:
            n_d = _skip_defaulters(ra, sc, g, n_d)
    # A defaulter: its uniform, back to its latent variable, then the first period whose
    # threshold it is below. Acklam's inverse of Phi has a formula for the tails and one for
    # the centre; a branch between them was mispredicted for a defaulter in two, so the
    # uniforms are first sorted into two index lists (tails from the front of d_region,
    # centre from the back; neither write can land on a kept entry of the other) and each
    # list is converted in a loop of its own.
    d_latent = sc.d_latent
    d_region = sc.d_region
    n_tail = 0
    n_centre = 0
    for i in range(n_d):
        u = bits_to_uniform(ob_bits[d_obligor[i]])
        if sample_twisted:  # uniform below the twisted probability -> below the model's
            g = ob_group[d_obligor[i]]
            u *= g_horizon[g] / g_twisted[g]
            log_q += g_theta[g]
        if floored:  # ---- surveillance: a survivor's latent variable, above its floor
            f = sc.g_floor_cdf[ob_group[d_obligor[i]]]
            u = f + u * (1.0 - f)
        d_latent[i] = u
        tail = 1 if min(u, 1.0 - u) < ACKLAM_TAIL else 0
        d_region[n_tail] = i
        d_region[n_d - 1 - n_centre] = i
        n_tail += tail
        n_centre += 1 - tail
    for k in range(n_tail):
        i = d_region[k]
        d_latent[i] = norm_ppf_tails(d_latent[i])
    for k in range(n_tail, n_d):
        i = d_region[k]
        d_latent[i] = acklam_centre(d_latent[i] - 0.5)
    # then its period, by a bucketed search of its group's thresholds (search_period)
    g_idio = ra.g_idio
    search_row = ra.g_search_row
    search_start = ra.g_search_start
    search_bucket = ra.g_search_bucket
    search_extra = extra_steps(search_row.shape[1], n_t)
    student_t = ra.copula == COPULA_STUDENT_T
    for i in range(n_d):
        # unsigned indices: numba checks a signed one for wraparound
        o = np.uint64(d_obligor[i])
        g = np.uint64(ob_group[o])
        y = d_latent[i] * g_idio[g] + g_mean[g]
        if student_t:  # a division by 1 costs as much as any other
            y /= scale
        row, start = search_row[g], search_start[g]
        ob_period[o] = search_period(row, start, search_bucket[g], search_extra, y, n_t - 1)
    if alpha > 0.0:
        if twisted and not sample_twisted:
            for i in range(n_d):
                log_q += g_theta[ob_group[d_obligor[i]]]
        sc.weight[0] = 1.0 / (alpha + (1.0 - alpha) * math.exp(log_q))
    else:
        sc.weight[0] = 1.0
    if ra.posterior == 1:  # ---- surveillance: the factors' posterior given the history
        sc.weight[0] *= math.exp(_history_log_likelihood(ra, sc, scale) - ra.log_norm)
    sc.n_defaulters[0] = n_d
    return n_d


@njit(leaf=True)
def _history_log_likelihood(ra, sc, scale):  # type: ignore[no-untyped-def]
    """Log-likelihood, at the path's factors, of what each obligor did by the report date of a
    run from a state: its latent variable in ``(g_hist_lo, g_hist_hi]``."""
    out = 0.0
    for g in range(ra.g_hist_lo.shape[0]):
        lo = ra.g_hist_lo[g]
        hi = ra.g_hist_hi[g]
        if lo == -np.inf and hi == np.inf:
            continue
        m = sc.g_mean[g]
        p_hi = 1.0 if hi == np.inf else norm_cdf((hi * scale - m) / ra.g_idio[g])
        p_lo = 0.0 if lo == -np.inf else norm_cdf((lo * scale - m) / ra.g_idio[g])
        out += sc.g_count[g] * math.log(max(p_hi - p_lo, 1e-300))
    return out


@njit(leaf=True)
def _skip_defaulters(ra, sc, g, n_d):  # type: ignore[no-untyped-def]
    """Draw the defaulters of group ``g`` (one with members listed in ``ra.g_member``) and
    list them after the ``n_d`` already in ``sc.d_obligor``, keeping the list in obligor
    order; returns the new count.

    The per-obligor draw makes a member default when the top 52 bits of its uniform,
    ``k``, are below ``below = g_below[g]``: each member independently with probability
    ``q = below / 2^52``, and given default ``k`` is uniform on ``0 .. below - 1``. Below
    ``SKIP_MAX_Q`` the members are skipped: the gap to the next defaulter is Geometric(q),
    ``floor(log(u) / log1p(-q))`` (P(gap >= j) = (1 - q)^j), and each defaulter's ``k`` is
    drawn uniform on ``0 .. below - 1`` (top bits under the next power of two, redrawn when
    not below): the same law, at a cost in proportion to the defaulters. Draws: a uniform
    per gap, then the defaulter's bits (one or more). From ``SKIP_MAX_Q`` on (a path where
    most of a group defaults) a uniform per member is cheaper: the member loop of the
    per-obligor draw, whose cost is then at most 1 / ``SKIP_MAX_Q`` per defaulter."""
    below = sc.g_below[g]
    if below <= 0:  # a zero probability: no uniform drawn
        return n_d
    state = sc.state
    d_obligor = sc.d_obligor
    ob_bits = sc.ob_bits
    member = ra.g_member
    lo = ra.g_member_ptr[g]
    hi = ra.g_member_ptr[g + 1]
    q = float(below) * 2.0**-52
    first = n_d
    s0, s1, s2, s3 = state[0], state[1], state[2], state[3]
    if q >= SKIP_MAX_Q:
        for j in range(lo, hi):
            o = member[j]
            bits, s0, s1, s2, s3 = xoshiro_step(s0, s1, s2, s3)
            d_obligor[n_d] = o
            ob_bits[o] = bits
            n_d += 1 if np.int64(bits >> np.uint64(12)) < below else 0
    else:
        log_survive = math.log1p(-q)  # < 0: q < 1
        n_bits = 0  # k < 2^n_bits: the fewest bits that hold below - 1
        while (np.int64(1) << n_bits) < below:
            n_bits += 1
        j = lo
        while True:
            bits, s0, s1, s2, s3 = xoshiro_step(s0, s1, s2, s3)
            gap = math.log(bits_to_uniform(bits)) / log_survive  # >= 0; may pass 2^63 when q is tiny
            if gap >= hi - j:
                break
            j += np.int64(gap)
            o = member[j]
            k = below
            while k >= below:
                bits, s0, s1, s2, s3 = xoshiro_step(s0, s1, s2, s3)
                k = np.int64(bits >> np.uint64(64 - n_bits)) if n_bits > 0 else np.int64(0)
            ob_bits[o] = np.uint64(k) << np.uint64(12)  # bits_to_uniform: (k + 0.5) 2^-52, as per obligor
            d_obligor[n_d] = o
            n_d += 1
            j += 1
    state[0] = s0
    state[1] = s1
    state[2] = s2
    state[3] = s3
    if first > 0 and n_d > first and d_obligor[first - 1] > d_obligor[first]:
        # the groups interleave: merge the two sorted runs through d_region (free until the
        # uniforms are converted)
        merged = sc.d_region
        a = 0
        b = first
        for i in range(n_d):
            if b >= n_d or (a < first and d_obligor[a] < d_obligor[b]):
                merged[i] = d_obligor[a]
                a += 1
            else:
                merged[i] = d_obligor[b]
                b += 1
        for i in range(n_d):
            d_obligor[i] = merged[i]
    return n_d


@njit(leaf=True, inline="always")
def _twist_excess(p, count, target, theta, tilt):  # type: ignore[no-untyped-def]
    x = -target
    for g in range(p.shape[0]):
        e = math.expm1(theta + tilt[g])
        x += count[g] * p[g] * (1.0 + e) / (1.0 + p[g] * e)
    return x


@njit(leaf=True)
def _twist_theta(p, count, target, tilt):  # type: ignore[no-untyped-def]
    """The theta >= 0 with sum_g count_g p_g(theta) = target, where p_g(theta) has the odds of
    p_g times exp(theta + tilt_g); 0 when the expected number already reaches the target (or
    there is no target)."""
    if not target > 0.0:
        return 0.0
    total = 0.0
    for g in range(p.shape[0]):
        total += count[g]
    target = min(target, 0.999 * total)
    if _twist_excess(p, count, target, 0.0, tilt) >= 0.0:
        return 0.0
    lo = 0.0
    hi = 1.0
    while _twist_excess(p, count, target, hi, tilt) < 0.0 and hi < 64.0:  # odds x 6e27 at most
        lo = hi
        hi *= 2.0
    for _ in range(200):  # bisection: plain and sure, on a handful of groups
        mid = 0.5 * (lo + hi)
        if _twist_excess(p, count, target, mid, tilt) < 0.0:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return hi


@njit(leaf=True, inline="always")
def _recovery_value(ra, state, z0, a):  # type: ignore[no-untyped-def]
    """Value factor of asset ``a``'s pledged IP: the recovery model's, or the one of the
    asset's own value volatility (row ``a_rec_dist[a]`` of the table; row 0 is the model's)."""
    eps = normal(state)
    k = ra.a_rec_dist[a]
    return recovery_value(
        ra.rec_model,
        ra.rec_loading,
        ra.rec_dist_mu[k],
        ra.rec_dist_sigma[k],
        ra.rec_dist_quantile[k],
        z0,
        eps,
    )


# ---- delinquency


@njit(leaf=True)
def _fall_behind(ra, a, p, t0, m0, tau, exposure, coll_pool):  # type: ignore[no-untyped-def]
    """Asset ``a`` of a defaulter pays nothing from period ``t0`` (it fell behind in month
    ``m0``) and defaults in ``tau``: its survivor flows come out from ``t0`` on; until ``tau``
    its balance stays at ``exposure`` in the bucket of its months behind at each period end,
    and it misses the payments survivors make."""
    flows = ra.a_flows
    for t in range(t0, ra.a_end[a]):
        coll_pool[p, t, C_INTEREST] -= flows[a, t, A_INTEREST]
        coll_pool[p, t, C_SCHED_PRINCIPAL] -= flows[a, t, A_SCHED_PRINCIPAL]
        coll_pool[p, t, C_PREPAYMENT] -= flows[a, t, A_PREPAYMENT]
        coll_pool[p, t, C_BALANCE_START] -= flows[a, t, A_BALANCE_START]
        coll_pool[p, t, C_BALANCE_END] -= flows[a, t, A_BALANCE_END]
        for k in range(N_A_DQ_COLUMNS - A_DELINQUENT_30):
            coll_pool[p, t, C_DELINQUENT_30 + k] -= flows[a, t, A_DELINQUENT_30 + k]
        if t > tau:  # its pledged IP counts until it defaults, as without delinquency
            coll_pool[p, t, C_COLLATERAL_VALUE] -= flows[a, t, A_COLLATERAL_VALUE]
    arrears_i = 0.0
    arrears_p = 0.0
    for t in range(t0, tau):
        behind = min(ra.month_start[t + 1] - m0, 3)  # months behind at the period end
        coll_pool[p, t, C_BALANCE_START] += exposure
        coll_pool[p, t, C_BALANCE_END] += exposure
        coll_pool[p, t, C_DELINQUENT_30 + behind - 1] += exposure
        if t < ra.a_end[a]:
            missed_i = flows[a, t, A_INTEREST] + flows[a, t, A_MISSED_INTEREST]
            missed_p = flows[a, t, A_SCHED_PRINCIPAL] + flows[a, t, A_MISSED_PRINCIPAL]
            coll_pool[p, t, C_MISSED_INTEREST] += missed_i
            coll_pool[p, t, C_MISSED_PRINCIPAL] += missed_p
            arrears_i += missed_i
            arrears_p += missed_p
        coll_pool[p, t, C_ARREARS_INTEREST] += arrears_i
        coll_pool[p, t, C_ARREARS_PRINCIPAL] += arrears_p
    coll_pool[p, tau, C_BALANCE_START] += exposure


@njit(leaf=True, inline="always")
def path_collections(ra, sc, n_defaulters):  # type: ignore[no-untyped-def]
    """Asset cash flows of one path per pool (``sc.coll_pool``), given the default periods and
    the list of defaulters from :func:`draw_defaults`. ``sc.ob_hit[o]`` is set to 1 when
    obligor ``o`` defaults while it still owes something."""
    state = sc.state
    z = sc.z
    ob_period = sc.ob_period
    coll_pool = sc.coll_pool
    brownian = sc.brownian
    ob_hit = sc.ob_hit
    base = ra.base_totals
    n_cover = ra.cover.cv_kind.shape[0]
    a_cover = ra.cover.a_cover
    cover_claim = sc.cover_claim
    cover_taken = sc.cover_taken
    for p in range(base.shape[0]):
        for t in range(base.shape[1]):
            for c in range(base.shape[2]):
                coll_pool[p, t, c] = base[p, t, c]
    flows = ra.a_flows
    n_t = flows.shape[1]
    # what the defaulters no longer pay, per pool, period and asset column: an asset's rows
    # from the period after its default on are one contiguous run in both arrays, added in
    # one flat loop the compiler vectorises (scattered subtractions from the 21-column
    # collections cost a few times more); taken out of the collections after the loop
    removed = sc.removed
    width = flows.shape[2]
    flows_flat = sc.flows_flat  # flat views made once per thread: a reshape per path costs
    removed_flat = sc.removed_flat
    t_first = n_t  # the first period with anything removed
    # only the defaulters' assets change: take each out from its default period on
    prefetch = flows.size >= PREFETCH_MIN_ENTRIES
    for i in range(n_defaulters):
        if prefetch and i + PREFETCH_AHEAD < n_defaulters:
            # a large pool's flows are far larger than the caches: ask for a later defaulter's
            # rows now, so that reading them overlaps this one's work
            o_next = sc.d_obligor[i + PREFETCH_AHEAD]
            t_next = ob_period[o_next] if ra.dq_on == 0 else 0
            for j in range(ra.ob_asset_ptr[o_next], ra.ob_asset_ptr[o_next + 1]):
                a = ra.ob_asset[j]
                for t in range(t_next, min(ra.a_end[a], n_t)):
                    prefetch_row(flows, a, t)
        o = sc.d_obligor[i]
        tau = ob_period[o]
        # ---- delinquency: the defaulter stopped paying the months its roll took, from
        # period t0 on (month m0 of the collection periods)
        t0 = tau
        m0 = 0
        if ra.dq_on == 1:
            m0 = ra.month_start[tau] - months_to_default(state, ra.dq_exit)
            t0 = 0
            while t0 + 1 < tau and ra.month_start[t0 + 1] <= m0:
                t0 += 1
        for j in range(ra.ob_asset_ptr[o], ra.ob_asset_ptr[o + 1]):
            a = ra.ob_asset[j]
            # an asset already repaid owes nothing: decided from the small array of last
            # periods, before reading its flows
            if t0 >= ra.a_end[a]:
                continue
            exposure_at_default = flows[a, t0, A_BALANCE_START]
            if exposure_at_default <= 0.0:
                continue
            p = ra.a_pool[a]
            ob_hit[o] = 1
            if ra.dq_on == 1:
                _fall_behind(ra, a, p, t0, m0, tau, exposure_at_default, coll_pool)
            else:
                # in its default period it still starts with its balance and pledge
                removed[p, tau, A_INTEREST] += flows[a, tau, A_INTEREST]
                removed[p, tau, A_SCHED_PRINCIPAL] += flows[a, tau, A_SCHED_PRINCIPAL]
                removed[p, tau, A_PREPAYMENT] += flows[a, tau, A_PREPAYMENT]
                removed[p, tau, A_BALANCE_END] += flows[a, tau, A_BALANCE_END]
                t_first = min(t_first, tau)
                # every column of the later periods, up to its last flow (unsigned indices:
                # numba checks a signed one for wraparound, which stops the vectorising)
                src = np.uint64((a * n_t + tau + 1) * width)
                dst = np.uint64((p * n_t + tau + 1) * width)
                for j in range(np.uint64(max(ra.a_end[a] - tau - 1, 0) * width)):
                    removed_flat[dst + j] += flows_flat[src + j]
            coll_pool[p, tau, C_DEFAULT] += exposure_at_default
            covered = 0.0
            g = ra.a_guarantor[a]
            if g >= 0 and ra.a_guarantee_share[a] > 0.0:
                tg = ra.lag_period[ra.a_guarantee_lag[a], tau]
                if tg >= 0 and tg < ob_period[g]:  # a defaulted guarantor pays nothing more
                    covered = ra.a_guarantee_share[a] * exposure_at_default
                    coll_pool[p, tg, C_GUARANTEE] += covered
            exposure = exposure_at_default - covered
            appraisal = ra.a_appraisal[a]
            if ra.rec_model == REC_CONSTANT or math.isnan(appraisal):
                rec = ra.rec_rate * exposure
            else:
                value = _recovery_value(ra, state, z[0], a)
                rec = min(exposure, max(appraisal * (value - ra.rec_cost), 0.0))
            tr = ra.lag_period[ra.rec_lag, tau]  # the last instalment: the loss is realised
            full = rec
            n_pieces = ra.rec_piece_lag.shape[0]
            rec = recovery_instalments(
                rec, p, tau, 0, n_pieces, ra.rec_piece_lag, ra.rec_piece_share, ra.lag_period, 1.0, coll_pool
            )
            coll_pool[p, tau, C_LOSS] += exposure - rec
            sc.ob_loss[o] += exposure - rec  # what ipabs monitor allocates a tranche's loss by
            if tr >= 0:  # liquidation ends within the deal's life: the loss is realised
                coll_pool[p, tr, C_REALISED_LOSS] += exposure - rec
            if n_cover > 0 and a_cover[a] >= 0:  # loss cover: claims now, paid below
                c = a_cover[a]
                tc = ra.lag_period[ra.a_cover_lag[a], tau]
                if tc >= 0:
                    if ra.cover.cv_kind[c] == COVER_REALISED_LOSS:
                        cover_claim[c, p, tc] += exposure - rec
                    else:
                        cover_claim[c, p, tc] += exposure
                        cover_taken[a] = full if rec > 0.0 else 0.0
    for p in range(removed.shape[0]):
        for t in range(t_first, n_t):
            coll_pool[p, t, C_INTEREST] -= removed[p, t, A_INTEREST]
            coll_pool[p, t, C_SCHED_PRINCIPAL] -= removed[p, t, A_SCHED_PRINCIPAL]
            coll_pool[p, t, C_PREPAYMENT] -= removed[p, t, A_PREPAYMENT]
            coll_pool[p, t, C_BALANCE_START] -= removed[p, t, A_BALANCE_START]
            coll_pool[p, t, C_BALANCE_END] -= removed[p, t, A_BALANCE_END]
            coll_pool[p, t, C_COLLATERAL_VALUE] -= removed[p, t, A_COLLATERAL_VALUE]
            for c in range(width):
                removed[p, t, c] = 0.0
    if n_cover > 0:
        _pay_cover(ra, sc, n_defaulters)

    vol = ra.r_volatility
    rho = ra.r_loading
    for r in range(ra.r_pool.shape[0]):
        tau_l = ob_period[ra.r_obligor[r]]
        invalid_at = math.inf
        if ra.r_invalidation_rate > 0.0:
            invalid_at = -math.log(uniform(state)) / ra.r_invalidation_rate
        horizon = 0.0
        n_slots = ra.r_year_frac.shape[1]  # accrual slots, not periods (see royalty_grid)
        for t in range(n_slots):
            if ra.r_year_frac[r, t] > 0.0:
                horizon = ra.r_mid_years[r, t]
        # Brownian path at the accrual mid-points: the end value correlates with the global
        # factor, the points before it follow the Brownian bridge
        w_end = 0.0
        if vol > 0.0 and horizon > 0.0:
            w_end = math.sqrt(horizon) * (rho * z[0] + math.sqrt(1.0 - rho * rho) * normal(state))
        w_prev = 0.0
        t_prev = 0.0
        p = ra.r_pool[r]
        for t in range(n_slots):
            brownian[t] = 0.0
            if ra.r_year_frac[r, t] <= 0.0:
                continue
            tm = ra.r_mid_years[r, t]
            factor = 1.0
            if vol > 0.0 and horizon > 0.0:
                if tm >= horizon:
                    w = w_end
                else:
                    mean = w_prev + (tm - t_prev) / (horizon - t_prev) * (w_end - w_prev)
                    var = (tm - t_prev) * (horizon - tm) / (horizon - t_prev)
                    w = mean + math.sqrt(max(var, 0.0)) * normal(state)
                brownian[t] = w
                factor = math.exp(vol * w - 0.5 * vol * vol * tm)
                w_prev = w
                t_prev = tm
            amount = royalty_accrual(
                r,
                t,
                factor,
                ra.r_base,
                ra.r_year_frac,
                ra.r_rate,
                ra.r_kind,
                ra.r_tier_ptr,
                ra.r_tier_above,
                ra.r_tier_rate,
                ra.r_minimum,
                ra.r_cap,
            )
            if tm > invalid_at:
                amount *= 1.0 - ra.r_invalidation_cut
            tp = ra.r_pay_period[r, t]
            if tp >= 0 and tp < tau_l:  # the licensee pays only while it has not defaulted
                coll_pool[p, tp, C_ROYALTY] += amount
            elif tp >= tau_l:
                ob_hit[ra.r_obligor[r]] = 1
        # ---- collateral value: the catalogue at the Brownian factor of the last slot ended by
        # the start of the period, nothing from the licensee's default period on, cut after
        # invalidation
        for t in range(min(tau_l, ra.r_value.shape[1])):
            v = ra.r_value[r, t]
            if v == 0.0:
                continue
            j = ra.r_value_slot[r, t]
            if j >= 0 and vol > 0.0 and horizon > 0.0:
                tm = ra.r_mid_years[r, j]
                v *= math.exp(vol * brownian[j] - 0.5 * vol * vol * tm)
            if ra.r_value_years[r, t] > invalid_at:
                v *= 1.0 - ra.r_invalidation_cut
            coll_pool[p, t, C_COLLATERAL_VALUE] += v


@njit(leaf=True)
def _pay_cover(ra, sc, n_defaulters):  # type: ignore[no-untyped-def]
    """Pay the path's loss-cover claims (``sc.cover_claim``) in period order, caps and payer
    defaults applied; the payers of a defaulted balance take over the recovery on what they
    paid. Leaves the claim scratch cleared for the next path."""
    ob_period = sc.ob_period
    coll_pool = sc.coll_pool
    cover = ra.cover
    for q in range(cover.py_obligor.shape[0]):
        sc.payer_stop[q] = ob_period[cover.py_obligor[q]]
    pay_loss_cover(cover, sc.payer_stop, sc.cover_claim, sc.cover_paid, sc.payer_state, coll_pool)
    for i in range(n_defaulters):
        o = sc.d_obligor[i]
        tau = ob_period[o]
        for j in range(ra.ob_asset_ptr[o], ra.ob_asset_ptr[o + 1]):
            a = ra.ob_asset[j]
            if sc.cover_taken[a] > 0.0:
                c = cover.a_cover[a]
                tc = ra.lag_period[ra.a_cover_lag[a], tau]
                recovery_instalments(
                    sc.cover_taken[a],
                    ra.a_pool[a],
                    tau,
                    0,
                    ra.rec_piece_lag.shape[0],
                    ra.rec_piece_lag,
                    ra.rec_piece_share,
                    ra.lag_period,
                    -sc.cover_paid[c, tc],
                    coll_pool,
                )
                sc.cover_taken[a] = 0.0
    claim = sc.cover_claim
    for c in range(claim.shape[0]):
        for p in range(claim.shape[1]):
            for t in range(claim.shape[2]):
                claim[c, p, t] = 0.0


@njit(leaf=True, inline="always")
def simulate_path(cd, ra, seed, stream, path, sc, tables, full):  # type: ignore[no-untyped-def]
    """Run path ``path`` of (``seed``, ``stream``) into ``tables`` and the scratch ``sc``,
    with the systematic factors' mean at ``sc.shift``; ``full`` False fills only the tranche
    table (see :func:`ipabs.engine.waterfall_numba_fns.waterfall_path`)."""
    path_cash(cd, ra, seed, stream, path, sc)
    waterfall_path(cd, sc.coll, sc.support_stop, tables, sc.work, sc.flags, full, sc.rv)


@njit(leaf=True, inline="always")
def path_cash(cd, ra, seed, stream, path, sc):  # type: ignore[no-untyped-def]
    """The waterfall's inputs of path ``path`` in ``sc``: its collections (``sc.coll``), the
    periods its support providers default (``sc.support_stop``) and its purchased assets'
    generator and factors (``sc.rv``)."""
    seed_state(sc.state, seed, path, stream)
    n_defaulters = draw_defaults(ra, sc)
    path_collections(ra, sc, n_defaulters)
    coll = sc.coll
    coll_pool = sc.coll_pool
    # the sum over pools, pool by pool over contiguous rows: per cell the same additions in the
    # same order as 0.0 + pool 0 + pool 1 + ... (x + 0.0 is 0.0 + x, -0.0 included)
    # (one pool: coll is a view of its rows, nothing to add)
    n_pools = coll_pool.shape[0]
    if n_pools != 1:
        for t in range(coll.shape[0]):
            for c in range(coll.shape[1]):
                coll[t, c] = coll_pool[0, t, c] + 0.0 if n_pools > 0 else 0.0
    for p in range(1, n_pools):
        for t in range(coll.shape[0]):
            for c in range(coll.shape[1]):
                coll[t, c] += coll_pool[p, t, c]
    for s in range(sc.support_stop.shape[0]):
        sc.support_stop[s] = sc.ob_period[ra.support_obligor[s]]
    rv = sc.rv
    if rv.mode != MODE_NONE:  # purchased loans load on the path's factors
        seed_state(rv.state, seed, path, stream + REVOLVING_STREAM)
        rv.factor[0] = sc.z[0]
        rv.factor[1] = sc.t_scale[0]
        for j in range(rv.mean.shape[0]):
            m = 0.0
            for k in range(3):
                f = ra.rv_factor[j, k]
                if f >= 0:
                    m += ra.rv_loading[j, k] * sc.z[f]
            rv.mean[j] = m


class PathScratch(NamedTuple):
    """Arrays one thread reuses from path to path (see :func:`allocate_scratch`)."""

    state: np.ndarray  # uint64[4] generator state
    z: np.ndarray  # systematic factors
    shift: np.ndarray  # mean of the systematic factors (importance sampling; zeros otherwise)
    g_mean: np.ndarray  # per group: systematic part of the latent variable
    g_horizon: np.ndarray  # per group: conditional probability of default by the horizon
    g_twisted: np.ndarray  # per group: the probability sampled (twisted by importance sampling)
    g_count: np.ndarray  # per group: number of obligors
    g_tilt: np.ndarray  # per group: fixed log-odds twist of importance sampling (zeros: none)
    g_theta: np.ndarray  # per group: the path's log-odds twist
    sampling: np.ndarray  # [twist target (expected defaulters; 0: none), defensive share alpha (0: plain)]
    weight: np.ndarray  # [likelihood ratio of the path]
    ob_period: np.ndarray  # per obligor: default period (T when none)
    d_obligor: np.ndarray  # the defaulters of the path
    ob_bits: np.ndarray  # per obligor: its random bits on the path (uint64; read for defaulters)
    d_latent: np.ndarray  # per defaulter: its uniform, then its latent variable (standardised)
    d_region: np.ndarray  # defaulters in the tails of the inverse normal, then in its centre
    g_below: np.ndarray  # per group: (bits >> 12) below this is a default (int64)
    g_floor_cdf: np.ndarray  # per group: P(latent below its floor | factors) (report dates)
    coll_pool: np.ndarray  # (P, T, C) collections per pool
    coll: np.ndarray  # (T, C) collections of the deal (a view of coll_pool[0] with one pool)
    removed: np.ndarray  # (P, T, asset columns) the path's defaulters' flows (zeros between paths)
    removed_flat: np.ndarray  # removed, flat (a view)
    flows_flat: np.ndarray  # ra.a_flows, flat (a view)
    support_stop: np.ndarray  # per support provider: period it defaults
    brownian: np.ndarray  # (K,) royalty Brownian path at the accrual slots
    cash: np.ndarray  # (T,) a tranche's cash received
    gap_factor: np.ndarray  # (G,) discount factor of each distinct gap between dates (yields)
    ob_hit: np.ndarray  # per obligor: 1 when it defaults owing something
    ob_loss: np.ndarray  # per obligor: its assets' loss on the path (set for defaulters only)
    n_defaulters: np.ndarray  # [number of defaulters of the last path drawn]
    work: np.ndarray  # waterfall state
    flags: np.ndarray  # waterfall trigger state
    t_scale: np.ndarray  # [the path's Student-t scale (1: Gaussian copula)]
    rv: RevolvingPath  # purchased assets (revolving period)
    # ---- support: loss cover (all empty when the deal has none)
    cover_claim: np.ndarray  # (V, P, T) claims on each cover by pool and payment period
    cover_paid: np.ndarray  # (V, T) share of each period's claim paid
    cover_taken: np.ndarray  # (A,) recovery the payers take over, per defaulted asset
    payer_state: np.ndarray  # (Q, 3) deal year, paid in that year, paid in total
    payer_stop: np.ndarray  # (Q,) default period of each payer
    # ---- yields remembered (see _tranche_yield)
    yield_cash: np.ndarray  # (2, N, T) per slot and tranche: the cash received (nan: empty)
    yield_value: np.ndarray  # (2, N) per slot and tranche: the yield of that cash


@njit
def allocate_scratch(cd, ra):  # type: ignore[no-untyped-def]
    """Per-thread scratch arrays for :func:`simulate_path`."""
    n_t = ra.n_periods
    n_ob = ra.ob_group.shape[0]
    n_groups = ra.g_threshold.shape[0]
    work, flags = allocate_work(cd)
    n_cover = ra.cover.cv_kind.shape[0]
    n_taken = ra.a_pool.shape[0] if n_cover > 0 else 0
    g_count = np.zeros(n_groups)
    for o in range(n_ob):
        g_count[ra.ob_group[o]] += 1.0
    coll_pool = np.zeros(ra.base_totals.shape)
    removed = np.zeros((coll_pool.shape[0], n_t, ra.a_flows.shape[2]))
    # with one pool the deal's collections are the pool's: no per-path sum
    coll = np.zeros((n_t, coll_pool.shape[2]))
    if coll_pool.shape[0] == 1:
        coll = coll_pool[0]
    n_tpl = ra.rv_idio.shape[0]
    n_cohorts = (cd.rv_last + 1) * n_tpl if cd.rv_last >= 0 else 0
    rv = new_revolving_path(
        MODE_RANDOM if n_cohorts > 0 else MODE_NONE,
        np.zeros(n_t),
        ra.rv_smm.copy(),
        np.full(n_tpl, ra.rec_rate),
        ra.lag_period[ra.rec_lag].copy(),
        ra.rv_idio.copy(),
        ra.rv_threshold,
        ra.rec_model,
        np.array([ra.rec_loading, ra.rec_mu, ra.rec_sigma, ra.rec_cost]),
        ra.rec_beta_quantile,
        ra.rv_ratio.copy(),
        n_cohorts,
    )
    return PathScratch(
        np.zeros(4, dtype=np.uint64),
        np.zeros(ra.n_factors),
        np.zeros(ra.n_factors),
        np.zeros(n_groups),
        np.zeros(n_groups),
        np.zeros(n_groups),
        g_count,
        np.zeros(n_groups),
        np.zeros(n_groups),
        np.zeros(2),
        np.ones(1),
        np.full(n_ob, n_t, dtype=np.int64),  # no defaults yet: draw_defaults resets only defaulters
        np.zeros(n_ob, dtype=np.int64),
        np.zeros(n_ob, dtype=np.uint64),
        np.zeros(n_ob),
        np.zeros(n_ob, dtype=np.int64),
        np.zeros(n_groups, dtype=np.int64),
        np.zeros(n_groups),
        coll_pool,
        coll,
        removed,
        removed.reshape(removed.size),
        ra.a_flows.reshape(ra.a_flows.size),
        np.zeros(ra.support_obligor.shape[0], dtype=np.int64),
        np.zeros(ra.r_year_frac.shape[1]),
        np.zeros(n_t),
        np.zeros(ra.gap_years.shape[0]),
        np.zeros(n_ob, dtype=np.int64),
        np.zeros(n_ob),
        np.zeros(1, dtype=np.int64),
        work,
        flags,
        np.ones(1),
        rv,
        np.zeros((n_cover, ra.base_totals.shape[0], n_t)),
        np.zeros((n_cover, n_t)),
        np.zeros(n_taken),
        np.zeros((ra.cover.py_obligor.shape[0], 3)),
        np.zeros(ra.cover.py_obligor.shape[0], dtype=np.int64),
        np.full((2, cd.tr_balance.shape[0], n_t), np.nan),  # nan equals no cash: empty slots
        np.zeros((2, cd.tr_balance.shape[0])),
    )


@njit(leaf=True, inline="always")
def _tranche_yield(ra, scratch, k, cash, price, guess):  # type: ignore[no-untyped-def]
    """The yield of tranche ``k`` receiving ``cash`` at ``price`` (:func:`yield_on_grid`).

    The yield is a function of the cash alone (price, guess and dates are fixed for a run), so
    it is remembered for two cash vectors per tranche and reused only when this path's cash
    equals one of them in every period: the last cash solved, and the last one solved on a path
    without a defaulter (on most paths the senior notes receive exactly their scheduled cash,
    but paths with defaulters come in between). Equal floats are equal bits except 0.0 and
    -0.0, which price alike; nan (an empty slot) equals nothing."""
    memo_cash = scratch.yield_cash
    memo = scratch.yield_value
    n_t = cash.shape[0]
    for slot in range(2):
        same = True
        for t in range(n_t):
            if memo_cash[slot, k, t] != cash[t]:
                same = False
                break
        if same:
            return memo[slot, k]
    y = yield_on_grid(ra.gap_id, ra.gap_years, scratch.gap_factor, ra.times, cash, price, guess)
    last = 0 if scratch.n_defaulters[0] == 0 else 1
    for slot in range(last, 2):
        for t in range(n_t):
            memo_cash[slot, k, t] = cash[t]
        memo[slot, k] = y
    return y


@njit(leaf=True, inline="always")
def path_outcomes(cd, ra, scratch, tables, tranche_row, pool_row):  # type: ignore[no-untyped-def]
    """Reduce one path's tables to its outcomes."""
    ob_hit = scratch.ob_hit
    coll = scratch.coll
    cash = scratch.cash
    n_t = ra.n_periods
    times = ra.times
    for k in range(cd.tr_balance.shape[0]):
        # written-down principal is lost too
        principal_loss = tables.tranche[n_t - 1, k, TR_BALANCE_END]
        principal_loss += tables.tranche[n_t - 1, k, TR_WRITTEN_DOWN]
        shortfall = tables.tranche[n_t - 1, k, TR_INTEREST_ARREARS]
        loss = principal_loss + shortfall
        discount = ra.tr_discount[k]
        pv = 0.0
        timed = 0.0
        principal = 0.0  # the WAL's sums, formed as weighted_average_life forms them
        weighted = 0.0
        for t in range(n_t):  # one pass: cash received, its present value and timing, the WAL
            paid = tables.tranche[t, k, TR_PRINCIPAL_PAID]
            x = tables.tranche[t, k, TR_INTEREST_PAID] + paid + tables.tranche[t, k, TR_RESIDUAL_PAID]
            cash[t] = x
            pv += x * discount[t]
            timed += times[t] * x * discount[t]
            principal += paid
            weighted += times[t] * paid
        orig = ra.tr_price[k]  # the balance at closing, or on the report date of a run from a state
        tranche_row[k, O_PRINCIPAL_LOSS] = principal_loss
        tranche_row[k, O_INTEREST_SHORTFALL] = shortfall
        tranche_row[k, O_LOSS] = loss
        tranche_row[k, O_DISCOUNTED_LOSS] = loss * discount[n_t - 1]
        tranche_row[k, O_PV_RECEIVED] = pv
        tranche_row[k, O_WAL] = np.nan if principal <= 0.0 else weighted / principal
        guess = ra.tr_yield_guess[k]
        tranche_row[k, O_YIELD] = _tranche_yield(ra, scratch, k, cash, orig, guess) if orig > 0.0 else np.nan
        tranche_row[k, O_DURATION] = timed / pv if pv > 0.0 else np.nan
        tp = cd.tr_put_period[k]  # ---- note options
        tranche_row[k, O_PUT_UNFUNDED] = tables.tranche[tp, k, TR_PUT_UNFUNDED] if tp >= 0 else 0.0
    defaults = 0.0
    losses = 0.0
    royalty = 0.0
    for t in range(n_t):
        defaults += coll[t, C_DEFAULT]
        losses += coll[t, C_LOSS]
        royalty += coll[t, C_ROYALTY]
    orig_pool = cd.original_pool_balance
    rv = scratch.rv
    hits = 0.0
    purchased = 0.0
    if rv.mode != MODE_NONE:  # assets bought count as pool assets: rates are of all ever owned
        defaults += rv.total[T_DEFAULTED]
        losses += rv.total[T_LOSS]
        hits += rv.total[T_DEFAULTS]
        purchased = rv.total[T_PURCHASED]
        orig_pool += purchased
    pool_row[P_DEFAULT_RATE] = defaults / orig_pool if orig_pool > 0.0 else 0.0
    pool_row[P_LOSS_RATE] = losses / orig_pool if orig_pool > 0.0 else 0.0
    for i in range(scratch.n_defaulters[0]):  # only defaulters can have hit
        hits += ob_hit[scratch.d_obligor[i]]
    pool_row[P_DEFAULTS] = hits
    pool_row[P_PURCHASED] = purchased
    pool_row[P_ROYALTY] = royalty
    pool_row[P_WEIGHT] = scratch.weight[0]


@njit(leaf=True)
def simulate_rows(cd, ra, seed, stream, first_path, sc, tables, tranche_out, pool_out, factor_out, group_out):  # type: ignore[no-untyped-def]
    """The paths of :func:`simulate_chunk` on its scratch. The draws, collections, waterfall
    and outcomes kernels are all inlined into this one loop: a call passes the deal, the risk
    arrays and the scratch (thousands of array descriptors), which cost more than a small path's
    own work. Inlining the waterfall (the same function the deterministic run calls, see
    ``waterfall_path_inline``) also drops its full-table branches (``full`` is False here): a
    one-period path costs about 30% less, for a second compilation of the waterfall (about 50 s
    more on a cold cache)."""
    for i in range(pool_out.shape[0]):
        path_cash(cd, ra, seed, stream, first_path + i, sc)
        waterfall_path_inline(cd, sc.coll, sc.support_stop, tables, sc.work, sc.flags, False, sc.rv)
        path_outcomes(cd, ra, sc, tables, tranche_out[i], pool_out[i])
        for k in range(factor_out.shape[1]):
            factor_out[i, k] = sc.z[k]
        if group_out.shape[1] > 0:  # per group: defaulters by the horizon, conditional PD
            n_groups = sc.g_horizon.shape[0]
            for g in range(n_groups):
                group_out[i, g] = 0.0
                group_out[i, n_groups + g] = sc.g_horizon[g]
            for o in range(ra.ob_group.shape[0]):
                if sc.ob_period[o] < ra.n_periods:
                    group_out[i, ra.ob_group[o]] += 1.0


@njit(leaf=True)
def set_sampling(sc, shift, tilt, twist, alpha):  # type: ignore[no-untyped-def]
    """Put a run's sampling into a path scratch: the factors' mean ``shift``, the per-group
    log-odds ``tilt``, the count ``twist`` and the defensive share ``alpha`` (see
    :func:`simulate_chunk`)."""
    for k in range(shift.shape[0]):
        sc.shift[k] = shift[k]
    for g in range(tilt.shape[0]):
        sc.g_tilt[g] = tilt[g]
    sc.sampling[0] = twist
    sc.sampling[1] = alpha


@njit(nogil=True)
def simulate_chunk(
    cd, ra, seed, stream, first_path, shift, tilt, twist, alpha, tranche_out, pool_out, factor_out, group_out
):  # type: ignore[no-untyped-def]
    """Paths ``first_path .. first_path + len(pool_out) - 1`` into the given output rows
    (``factor_out``: each path's systematic factors; ``group_out``, unless it has no columns:
    each group's number of defaulters by the horizon, then its conditional probability of
    default by the horizon given the path's factors). Importance sampling (``alpha`` > 0): a
    share ``alpha`` of the paths from the model, the others with the factors' mean at ``shift``
    and each group's conditional default odds times ``exp(theta + tilt_g)``, theta set so that
    ``twist`` defaulters are expected (0: theta = 0); ``alpha`` = 0: plain sampling.

    Releases the GIL, so several chunks run at once on Python threads. A path's outcome
    depends only on (seed, stream, path index and the sampling), never on how paths are split into
    chunks.
    """
    scratch = allocate_scratch(cd, ra)
    tables = allocate_tables(cd)
    set_sampling(scratch, shift, tilt, twist, alpha)
    simulate_rows(
        cd, ra, seed, stream, first_path, scratch, tables, tranche_out, pool_out, factor_out, group_out
    )
