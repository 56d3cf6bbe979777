"""The skipping sampler of large obligor groups: its defaulters follow the same law as one
uniform per obligor (checked against exact binomial and period laws, and against the
per-obligor sampler on whole deals), listed in obligor order, importance sampling intact."""

from __future__ import annotations

import os
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats

from ipabs._jit import njit
from ipabs.api import _model
from ipabs.deal.load import parse_deal
from ipabs.numerics.prefetch_numba_fns import prefetch_row
from ipabs.numerics.rng_numba_fns import bits_to_uniform, seed_state
from ipabs.risk.model import SKIP_MIN_MEMBERS, RiskArrays, compile_risk, sampling_lists
from ipabs.risk.montecarlo_numba_fns import (
    O_LOSS,
    P_DEFAULTS,
    P_WEIGHT,
    POOL_OUTCOMES,
    SKIP_MAX_Q,
    TRANCHE_OUTCOMES,
    _skip_defaulters,
    allocate_scratch,
    draw_defaults,
    simulate_chunk,
)

TWO52 = 2**52
PER_OBLIGOR = 10**9  # a group size no deal reaches: every obligor draws its own uniform

DEAL = """\
deal: {name: granular, closing_date: 2025-01-15, first_payment_date: 2025-04-15,
       payment_frequency: quarterly, legal_final_date: 2028-01-15, day_count: 30/360}
pools:
  - name: p
    loans:
LOANS
tranches:
  - {name: senior, balance: SENIOR, coupon: 3%}
  - {name: junior, balance: JUNIOR}
risk:
  correlation: CORRELATION
  default_pd: 4%
  recovery: {model: constant, rate: 30%, lag_months: 3}
waterfalls:
  normal:
    - pay_interest: senior
    - pay_principal: {tranches: [senior, junior]}
    - pay_residual: junior
"""


@cache
def deal(n: int, mixed: bool = False, correlation: float = 0.2) -> tuple[Any, RiskArrays]:
    """``n`` one-loan obligors at 4% a year (``mixed``: every third at 10%, a second group
    interleaved with the first); the compiled model and its risk arrays."""
    loans = "\n".join(
        f"      - {{obligor: O{i:04d}, balance: 100000, rate: 5%, term_months: 36, amortisation: annuity"
        + (", pd: 10%" if mixed and i % 3 == 0 else "")
        + "}"
        for i in range(n)
    )
    total = 100_000 * n
    text = DEAL.replace("LOANS", loans).replace("CORRELATION", str(correlation))
    text = text.replace("SENIOR", str(int(total * 0.9))).replace("JUNIOR", str(total - int(total * 0.9)))
    model = _model(parse_deal(text, "granular.yaml"))
    return model, compile_risk(model)


def drawn(ra: RiskArrays, min_members: int) -> RiskArrays:
    """The risk arrays with groups of at least ``min_members`` drawn by skipping."""
    return ra._replace(**sampling_lists(ra.ob_group, ra.g_threshold.shape[0], min_members))


def p_value_counts(observed: np.ndarray, expected: np.ndarray) -> float:
    """Chi-square goodness of fit, neighbouring cells merged until each expects 5 or more."""
    obs, exp = [], []
    o_acc = e_acc = 0.0
    for o, e in zip(observed, expected, strict=True):
        o_acc += o
        e_acc += e
        if e_acc >= 5.0:
            obs.append(o_acc)
            exp.append(e_acc)
            o_acc = e_acc = 0.0
    if obs:  # the remainder joins the last cell
        obs[-1] += o_acc
        exp[-1] += e_acc
    obs_a, exp_a = np.array(obs), np.array(exp)
    exp_a *= obs_a.sum() / exp_a.sum()  # the same total (rounding of the expectations)
    return float(stats.chisquare(obs_a, exp_a).pvalue)


def skip_draws(ra: RiskArrays, below: int, reps: int, seed: int = 5) -> tuple[np.ndarray, np.ndarray, list]:
    """``reps`` draws of group 0 at ``g_below = below``: the defaulter count of each, every
    member's default count, and each draw's defaulters (with their 52 bits)."""
    model, _ = deal(600)
    sc = allocate_scratch(model.cd, ra)
    sc.g_below[0] = below
    members = ra.g_member[ra.g_member_ptr[0] : ra.g_member_ptr[1]]
    counts = np.zeros(reps, dtype=np.int64)
    per_member = np.zeros(len(ra.ob_group), dtype=np.int64)
    lists = []
    for r in range(reps):
        seed_state(sc.state, seed, r, 0)
        n_d = _skip_defaulters(ra, sc, 0, 0)
        listed = sc.d_obligor[:n_d].copy()
        assert np.all(np.diff(listed) > 0)
        assert np.all(np.isin(listed, members))
        counts[r] = n_d
        per_member[listed] += 1
        lists.append((listed, sc.ob_bits[listed] >> np.uint64(12)))
    return counts, per_member, lists


def test_groups_of_512_or_more_obligors_are_drawn_by_skipping() -> None:
    assert SKIP_MIN_MEMBERS == 512  # the documented size
    _, small = deal(SKIP_MIN_MEMBERS - 1)
    assert small.g_skip.tolist() == [0]
    assert small.ob_single.tolist() == list(range(SKIP_MIN_MEMBERS - 1))
    _, large = deal(SKIP_MIN_MEMBERS)
    assert large.g_skip.tolist() == [1] and large.ob_single.size == 0
    assert large.g_member.tolist() == list(range(SKIP_MIN_MEMBERS))
    _, mixed = deal(900, mixed=True)  # 300 at 10% (group 0, obligor 0's), 600 at 4%: those skip
    assert mixed.g_skip.tolist() == [0, 1]
    assert mixed.ob_single.tolist() == list(range(0, 900, 3))
    assert mixed.g_member.tolist() == [i for i in range(900) if i % 3]


@pytest.mark.parametrize("q", [3e-6, 0.002, 0.05, 0.124, 0.125, 0.5, 0.999])
def test_defaulter_count_is_binomial(q: float) -> None:
    """Given the factors (here: a fixed probability), the number of defaulters of n members
    is Binomial(n, below / 2^52): the law of n per-obligor draws (skipped below SKIP_MAX_Q,
    a uniform per member from it on)."""
    _, ra = deal(600)
    below = round(q * TWO52)
    reps = 3000
    counts, _, _ = skip_draws(ra, below, reps)
    law = stats.binom(600, below / TWO52)
    if q < 1e-4:  # almost always none: the share of draws with any, exactly
        hits = int(np.count_nonzero(counts))
        assert stats.binomtest(hits, reps, 1.0 - law.pmf(0)).pvalue > 1e-3
        assert counts.max() <= 2
        return
    k = np.arange(601)
    observed = np.bincount(counts, minlength=601)
    assert p_value_counts(observed, reps * law.pmf(k)) > 1e-3
    se = np.sqrt(law.var() / reps)
    assert abs(counts.mean() - law.mean()) < 4 * se


def test_certain_and_impossible_default() -> None:
    _, ra = deal(600)
    counts, per_member, lists = skip_draws(ra, TWO52, 50)  # q = 1: every member, no gap drawn
    assert np.all(counts == 600) and np.all(per_member == 50)
    bits = np.concatenate([b for _, b in lists]).astype(np.float64)  # given default: any k
    assert stats.kstest(bits / TWO52, "uniform").pvalue > 1e-3
    model, _ = deal(600)
    sc = allocate_scratch(model.cd, ra)
    sc.g_below[0] = 0
    seed_state(sc.state, 1, 0, 0)
    before = sc.state.copy()
    assert _skip_defaulters(ra, sc, 0, 0) == 0
    assert np.array_equal(sc.state, before)  # a zero probability draws nothing


@pytest.mark.parametrize("q", [0.05, 0.3])
def test_defaulters_are_spread_uniformly_over_the_members(q: float) -> None:
    """Each member defaults with probability q (first and last included), pairs at any
    distance together with q^2, and a defaulter's 52 bits are uniform below ``below``."""
    _, ra = deal(600)
    reps = 4000 if q < SKIP_MAX_Q else 1000
    below = round(q * TWO52)
    q = below / TWO52
    _, per_member, lists = skip_draws(ra, below, reps, seed=11)
    chi2 = float(np.sum((per_member - reps * q) ** 2 / (reps * q * (1 - q))))
    assert stats.chi2(600).sf(chi2) > 1e-3 and stats.chi2(600).cdf(chi2) > 1e-3
    for d in (1, 2, 7, 300, 599):
        together = 0
        for listed, _ in lists:
            mask = np.zeros(600, dtype=bool)
            mask[listed] = True
            together += int(np.count_nonzero(mask[:-d] & mask[d:]))
        pairs = reps * (600 - d)
        assert stats.binomtest(together, pairs, q * q).pvalue > 1e-4, d  # near-independent pairs
    k = np.concatenate([b for _, b in lists]).astype(np.int64)
    assert k.min() >= 0 and k.max() < below
    observed = np.bincount(k * 20 // below, minlength=20)
    assert p_value_counts(observed, np.full(20, len(k) / 20)) > 1e-3


Draws = list[tuple[np.ndarray, np.ndarray, np.ndarray, float]]


def path_draws(ra: RiskArrays, paths: int, twist: float) -> Draws:
    """Per path: its defaulters, their periods, the groups' factor means, the t scale."""
    model, _ = deal(600)
    sc = allocate_scratch(model.cd, ra)
    sc.sampling[0] = twist
    out = []
    n_t = ra.n_periods
    for path in range(paths):
        seed_state(sc.state, 3, path, 0)
        n_d = draw_defaults(ra, sc)
        listed = sc.d_obligor[:n_d].copy()
        assert np.all(np.diff(listed) > 0), "defaulters in obligor order"
        periods = sc.ob_period.copy()
        assert np.all(periods[listed] < n_t)
        assert np.count_nonzero(periods < n_t) == n_d  # everyone else survives
        out.append((listed, periods[listed], sc.g_mean.copy(), float(sc.t_scale[0])))
    return out


@pytest.mark.parametrize("min_members", [1, 400])
def test_interleaved_groups_are_listed_in_obligor_order(min_members: int) -> None:
    """Two interleaved groups, both skipping (1) or one skipping and one drawn per obligor
    (400): the merged list stays in obligor order and every defaulter has a period."""
    _, ra = deal(900, mixed=True)
    ra = drawn(ra, min_members)
    assert ra.g_skip.tolist() == ([1, 1] if min_members == 1 else [0, 1])
    draws = path_draws(ra, 300, 0.0)
    assert sum(len(x[0]) for x in draws) > 1000
    assert any(len(x[0]) and np.any(x[0] % 3 == 0) and np.any(x[0] % 3 != 0) for x in draws)


@pytest.mark.parametrize("twist", [0.0, 60.0])
def test_default_periods_follow_the_conditional_law(twist: float) -> None:
    """Given the factors, a defaulter of group g defaults in period t with probability
    (PD_t - PD_{t-1}) / PD_T, each PD conditional on the path's factors (from scipy's
    normal), with or without the importance-sampling twist of the default probability."""
    _, ra = deal(900, mixed=True)
    ra = drawn(ra, 1)
    n_t = ra.n_periods
    observed = np.zeros(n_t)
    expected = np.zeros(n_t)
    for listed, periods, g_mean, scale in path_draws(ra, 600, twist):
        observed += np.bincount(periods, minlength=n_t)
        for g in range(2):
            cum = stats.norm.cdf((ra.g_threshold[g] * scale - g_mean[g]) / ra.g_idio[g])
            law = np.diff(cum, prepend=0.0) / cum[-1]
            expected += np.count_nonzero(ra.ob_group[listed] == g) * law
    assert observed.sum() > 3000
    assert p_value_counts(observed, expected) > 1e-3


def run_paths(
    ra: RiskArrays, paths: int, twist: float = 0.0, alpha: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Paths 0 .. paths - 1 of the 600-loan deal drawn with ``ra``: tranche and pool outcomes."""
    model, _ = deal(600)
    n_tr = model.cd.tr_balance.shape[0]
    tr = np.zeros((paths, n_tr, len(TRANCHE_OUTCOMES)))
    pool = np.zeros((paths, len(POOL_OUTCOMES)))
    factors = np.zeros((paths, ra.n_factors))
    groups = np.zeros((paths, 0))
    n_g = ra.g_threshold.shape[0]
    shift = np.zeros(ra.n_factors)
    simulate_chunk(model.cd, ra, 7, 0, 0, shift, np.zeros(n_g), twist, alpha, tr, pool, factors, groups)
    return tr, pool


def two_sample_z(x: np.ndarray, y: np.ndarray) -> float:
    return float((x.mean() - y.mean()) / np.sqrt(x.var() / len(x) + y.var() / len(y)))


def test_a_whole_deal_matches_the_per_obligor_sampler() -> None:
    """600 loans in one group: tranche losses and the defaulters' count from the skipping
    sampler (the default for this size) and from one uniform per obligor agree within their
    standard errors (independent draws: the two samplers use the generator differently)."""
    _, ra = deal(600)
    assert ra.g_skip.tolist() == [1]
    paths = 6000
    tr_skip, pool_skip = run_paths(ra, paths)
    tr_one, pool_one = run_paths(drawn(ra, PER_OBLIGOR), paths)
    for k in range(tr_skip.shape[1]):
        assert abs(two_sample_z(tr_skip[:, k, O_LOSS], tr_one[:, k, O_LOSS])) < 4.0, k
    assert tr_skip[:, 1, O_LOSS].mean() > 0.0  # the junior tranche does lose
    skip_d, one_d = pool_skip[:, P_DEFAULTS], pool_one[:, P_DEFAULTS]
    assert abs(two_sample_z(skip_d, one_d)) < 4.0
    top = int(max(skip_d.max(), one_d.max())) + 1
    table = np.vstack([np.bincount(x.astype(np.int64), minlength=top) for x in (skip_d, one_d)])
    bins = np.add.reduceat(table, np.arange(0, top, 4), axis=1)  # a few defaulters per cell
    bins = bins[:, bins.sum(axis=0) >= 10]
    assert stats.chi2_contingency(bins).pvalue > 1e-3


def test_importance_sampling_stays_unbiased_with_skipping() -> None:
    """Twisted and shifted paths drawn by skipping: the weights average 1 and the weighted
    tranche losses estimate the plain ones."""
    _, ra = deal(600)
    paths = 6000
    tr_plain, _ = run_paths(ra, paths)
    tr_is, pool_is = run_paths(ra, paths, twist=120.0, alpha=0.1)
    w = pool_is[:, P_WEIGHT]
    assert np.any(w != 1.0)
    assert abs(w.mean() - 1.0) < 4.0 * w.std() / np.sqrt(paths)
    for k in range(tr_is.shape[1]):
        weighted = w * tr_is[:, k, O_LOSS]
        assert abs(two_sample_z(weighted, tr_plain[:, k, O_LOSS])) < 4.0, k


def test_a_skipped_defaulters_uniform_is_the_per_obligor_one_given_default() -> None:
    """The bits a skipping draw leaves for a defaulter convert to (k + 0.5) 2^-52 below the
    group's probability, as the per-obligor draw's do."""
    _, ra = deal(600)
    below = round(0.03 * TWO52)
    _, _, lists = skip_draws(ra, below, 200)
    for _, k in lists:
        for x in k:
            u = bits_to_uniform(np.uint64(x) << np.uint64(12))
            assert 0.0 < u < below / TWO52


TWIN = """
import sys
import warnings
import numba
import numpy as np
assert numba.config.DISABLE_JIT
# the generator relies on 64-bit wrap-around, which NumPy's scalars do with a warning
warnings.filterwarnings("ignore", message="overflow encountered in scalar", category=RuntimeWarning)
sys.path.insert(0, sys.argv[1])
from test_granular_draws import deal
from ipabs.numerics.rng_numba_fns import seed_state
from ipabs.risk.montecarlo_numba_fns import allocate_scratch, draw_defaults
model, ra = deal(900, mixed=True)
sc = allocate_scratch(model.cd, ra)
rows = []
for path in range(4):
    seed_state(sc.state, 3, path, 0)
    n_d = draw_defaults(ra, sc)
    rows.append(np.concatenate([sc.d_obligor[:n_d], sc.ob_period]))
np.save(sys.argv[2], np.concatenate(rows))
"""


def test_the_python_twin_skips_as_the_compiled_kernel(tmp_path: Path) -> None:
    """Skipping draws the same defaulters and periods with NUMBA_DISABLE_JIT=1."""
    model, ra = deal(900, mixed=True)
    assert ra.g_skip.tolist() == [0, 1]
    sc = allocate_scratch(model.cd, ra)
    rows = []
    for path in range(4):
        seed_state(sc.state, 3, path, 0)
        n_d = draw_defaults(ra, sc)
        rows.append(np.concatenate([sc.d_obligor[:n_d], sc.ob_period]))
    target = tmp_path / "twin.npy"
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1", "PYTHONWARNINGS": "error"}
    here = Path(__file__).resolve().parent
    subprocess.run([sys.executable, "-c", TWIN, str(here), str(target)], check=True, env=env, cwd=here.parent)
    assert np.array_equal(np.load(target), np.concatenate(rows))


def test_prefetch_hint_changes_nothing() -> None:
    """The prefetch hint compiles for a 3-D table and, in Python, does nothing."""
    table = np.arange(24.0).reshape(2, 3, 4)

    @njit
    def hinted(x: np.ndarray) -> float:
        total = 0.0
        for i in range(x.shape[0]):
            for j in range(x.shape[1]):
                prefetch_row(x, i, j)
                total += x[i, j, 0]
        return total

    assert hinted(table) == table[:, :, 0].sum()
    assert prefetch_row(table, 1, 2) is None
