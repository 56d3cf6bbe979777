"""Importance sampling that cannot fool itself: weight diagnostics, pilots judged before use,
fallbacks on the main run, and every weighted estimator checked against the path outcomes and
their weights."""

from __future__ import annotations

import functools

import is_reference as ir
import mc_reference as ref
import numpy as np
import pytest
from helpers import compile_text
from test_importance import JUNIOR, LOAN, RECOVERY, RHO, N, P, homogeneous_deal

from ipabs.analytics import weights
from ipabs.analytics.importance import Sampling, _group_tilt, run_checked
from ipabs.analytics.tables import risk_metrics
from ipabs.analytics.weights import Diagnostics, diagnose
from ipabs.montecarlo import SimulationResult, _run_paths, simulate
from ipabs.risk.model import compile_risk
from ipabs.risk.montecarlo_numba_fns import O_DURATION, O_LOSS, O_WAL, O_YIELD, P_DEFAULTS, P_LOSS_RATE

# ----------------------------------------------------------------------------- diagnostics


def test_diagnostics_of_a_plain_sample_without_a_loss_give_the_rule_of_three() -> None:
    d = weights.diagnose(np.zeros(3_000), None, "a loss")
    assert d.hits == 0 and not d.weighted and not d.reliable and not d.degenerate
    assert "1e-03" in d.problems[0] or "0.001" in d.problems[0]


def test_one_dominant_path_among_many_hits_is_degenerate() -> None:
    rng = np.random.default_rng(1)
    x = (rng.uniform(size=10_000) < 0.3).astype(float)
    w = np.full(10_000, 1e-6)
    w[np.nonzero(x)[0][0]] = 10.0  # one hit carries nearly everything
    d = weights.diagnose(x, w, "a loss")
    assert d.hits > 1_000 and d.hit_ess < 2.0 and d.max_share > 0.99
    assert d.degenerate and not d.reliable
    assert any("effective paths" in p for p in d.problems)


def test_a_sound_weighted_sample_passes_and_its_figures_are_right() -> None:
    rng = np.random.default_rng(2)
    z = rng.standard_normal(200_000) + 3.0  # the textbook shift towards P(Z > 3)
    w = np.exp(-3.0 * z + 4.5)
    x = (z > 3.0).astype(float)
    d = weights.diagnose(x, w, "the tail")
    assert d.reliable and not d.degenerate
    y = w * x
    assert d.hit_ess == pytest.approx(y.sum() ** 2 / (y * y).sum(), rel=1e-12)
    assert d.max_share == pytest.approx(y.max() / y.sum(), rel=1e-12)
    assert d.ess == pytest.approx(w.sum() ** 2 / (w * w).sum(), rel=1e-12)
    assert d.se_vs_plain < 0.2  # about a 30x variance reduction
    assert abs(d.weight_z) < 4.0


def test_weights_that_do_not_average_one_are_caught() -> None:
    rng = np.random.default_rng(3)
    w = rng.uniform(0.0, 1.0, size=50_000)  # mean 0.5: not a likelihood ratio
    d = weights.diagnose((rng.uniform(size=50_000) < 0.5).astype(float), w, "a loss")
    assert d.degenerate and any("average" in p for p in d.problems)


# ----------------------------------------------------------------------------- tilts


def test_tilts_are_limited_to_what_the_pilot_supports() -> None:
    """A thousand singleton groups and 40 pilot losses: at most two tilts, not a thousand."""
    rng = np.random.default_rng(4)
    n_groups, hits = 1_000, 40
    defaults = (rng.uniform(size=(hits, n_groups)) < 0.05).astype(float)
    cond = np.full((hits, n_groups), 0.01)
    t = _group_tilt(np.hstack([defaults, cond]), np.ones(hits), np.ones(n_groups))
    assert np.count_nonzero(t) <= hits // 20
    # a group that defaulted on every loss path (a guarantor, say) is the one kept
    defaults[:, 17] = 1.0
    t = _group_tilt(np.hstack([defaults, cond]), np.ones(hits), np.ones(n_groups))
    assert t[17] == t.max() > 2.0
    # the gates are fitted besides the budget
    few = np.hstack([defaults, cond])[:5]
    t = _group_tilt(few, np.ones(5), np.ones(n_groups), np.array([17]))
    assert np.count_nonzero(t) == 1 and t[17] > 0.0


# ----------------------------------------------------------------------------- fallbacks


def test_a_main_run_with_failing_weights_falls_back_to_a_simpler_sampling() -> None:
    n = 5_000
    bad = Sampling("importance", np.array([-2.0]), twist=5.0, alpha=0.1, tilt=np.array([3.0]), hit_rate=0.5)
    tr_bad = np.zeros((n, 1, 10))
    tr_bad[:, 0, O_LOSS] = 1.0
    pool_bad = np.zeros((n, 10))
    pool_bad[:, -1] = 1e-9
    pool_bad[0, -1] = 1.0  # the weight column is the last; one path carries everything
    from ipabs.risk.montecarlo_numba_fns import P_WEIGHT

    pool_bad[:, P_WEIGHT] = 1e-9
    pool_bad[0, P_WEIGHT] = 1.0
    calls: list[Sampling] = []

    def run(s: Sampling) -> tuple[tuple[np.ndarray, np.ndarray], Diagnostics]:
        calls.append(s)
        tr, pool = tr_bad, pool_bad
        if s.method == "plain":
            tr = np.zeros((n, 1, 10))
            tr[: n // 10, 0, O_LOSS] = 1.0
            pool = np.zeros((n, 10))
            pool[:, P_WEIGHT] = 1.0
        return (tr, pool), diagnose(tr[:, 0, O_LOSS], pool[:, P_WEIGHT], "losses of senior")

    used, (_tr, pool) = run_checked(bad, run)
    assert [describe.method for describe in calls] == ["importance", "importance", "importance", "plain"]
    assert calls[1].tilt is None and calls[1].twist == 5.0  # tilts dropped first
    assert calls[2].twist == 0.0  # then the twist
    assert used.method == "plain" and len(used.fallbacks) == 3
    assert "carries" in used.fallbacks[0] and "ran again" in used.reason
    assert np.all(pool[:, P_WEIGHT] == 1.0)


@functools.cache
def _reported_portfolio() -> tuple[ir.Portfolio, float, float]:
    # the reported shape: 1,000 obligors, PDs in (0, 2%], exposures 1-25, loading 0.3,
    # recovery 0, a senior attaching where its loss probability is about 1.6e-7
    return ir.make_portfolio(1_000, None, 1.6e-7, max_exposure=25, seed=1)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [8, 17, 19, 21])
def test_the_reported_heterogeneous_pool_is_estimated_within_its_errors(seed: int) -> None:
    """Seeds at which per-obligor tilts fitted to a handful of pilot losses reported a senior
    loss probability around 1e-27 with a confident standard error (exact: 1.59e-7)."""
    _, exact_p, exact_el = _reported_portfolio()
    assert exact_p == pytest.approx(1.5927e-7, rel=1e-3)
    model = _reported_model()
    r = simulate(model, paths=20_000, seed=seed, importance_sampling=True)
    row = r.tranches.loc["senior"]
    z = (row["probability_of_loss"] - exact_p) / row["probability_of_loss_se"]
    assert abs(z) <= 4.0, (row["probability_of_loss"], row["probability_of_loss_se"], r.sampling.reason)
    assert row["reliable"], row["diagnostics"]
    senior = float(r.original_balances[0])
    el_units = row["expected_loss"] * senior / 1e6
    assert abs(el_units - exact_el) <= 4.0 * row["expected_loss_se"] * senior / 1e6


@functools.cache
def _reported_model():
    return compile_text(ir.deal_yaml(_reported_portfolio()[0]))


# ----------------------------------------------------------------------------- estimators


@pytest.fixture(scope="module")
def weighted() -> SimulationResult:
    model = compile_text(homogeneous_deal(N, LOAN, JUNIOR, P, RHO, RECOVERY))
    return simulate(model, paths=20_000, seed=5, threads=2, importance_sampling=True)


def _weighted_quantile(x: np.ndarray, w: np.ndarray, q: float) -> float:
    """Smallest x whose weighted share of paths at or below it reaches q (written afresh)."""
    order = np.argsort(x)
    share = np.cumsum(w[order]) / w.sum()
    return float(x[order][np.argmax(share >= q)])


def test_every_weighted_estimator_uses_the_weights(weighted: SimulationResult) -> None:
    """Each figure equals the weighted figure computed here from path outcomes and weights:
    dropping the weight from any estimator changes it by far more than rounding."""
    w = weighted.weights
    assert weighted.sampling.method == "importance" and np.std(w) > 0.1
    table = risk_metrics(weighted).set_index(["subject", "metric"])["estimate"]
    tr = weighted.tranche_outcomes
    for k, name in enumerate(weighted.tranche_names):
        for metric, column in (("mean_yield", O_YIELD), ("expected_wal_years", O_WAL)):
            x = tr[:, k, column]
            ok = ~np.isnan(x)
            expect = (w * np.where(ok, x, 0.0)).sum() / (w * ok).sum()  # self-normalised
            assert table[(name, metric)] == pytest.approx(expect, rel=1e-12), (name, metric)
            assert weighted.tranches.loc[name, metric] == pytest.approx(expect, rel=1e-12)
        x = tr[:, k, O_DURATION]
        ok = ~np.isnan(x)
        expect = (w * np.where(ok, x, 0.0)).mean() / (w * ok).mean()
        assert table[(name, "mean_duration_years")] == pytest.approx(expect, rel=1e-12)
        for q in (0.05, 0.5, 0.95):
            x = tr[:, k, O_YIELD]
            ok = ~np.isnan(x)
            assert table[(name, f"yield_q{q * 100:g}")] == _weighted_quantile(x[ok], w[ok], q)
    loss = weighted.pool_outcomes[:, P_LOSS_RATE]
    for a in (0.95, 0.99, 0.999):
        q = _weighted_quantile(loss, w, a)
        assert table[("pool", f"loss_q{a * 100:g}")] == q
        tail = loss >= q
        assert table[("pool", f"expected_shortfall_{a * 100:g}")] == pytest.approx(
            (w[tail] * loss[tail]).sum() / w[tail].sum(), rel=1e-12
        )


def test_weighted_pool_quantiles_and_shortfall_match_the_exact_distribution(
    weighted: SimulationResult,
) -> None:
    """Against the exact finite-pool law: the weighted 99.9% loss quantile is the exact one, and
    the weighted default-count probabilities deep in the tail are unbiased."""
    exact = ref.finite_pool_distribution(N, P, RHO)
    step = (1.0 - RECOVERY) / N  # pool loss per default, share of the pool
    cdf = np.cumsum(exact)
    table = risk_metrics(weighted).set_index(["subject", "metric"])
    for a in (0.99, 0.999):
        exact_q = step * int(np.argmax(cdf >= a))
        row = table.loc[("pool", f"loss_q{a * 100:g}")]
        assert abs(row["estimate"] - exact_q) <= max(4.0 * row["se"], step + 1e-12)
    # expected shortfall at 99.9% from the exact law (with the fractional atom at the quantile)
    a = 0.999
    d = np.arange(N + 1)
    qd = int(np.argmax(cdf >= a))
    tail_mass = exact[d > qd].sum()
    es = (step * (d[d > qd] * exact[d > qd]).sum() + step * qd * (1 - a - tail_mass)) / (1 - a)
    row = table.loc[("pool", "expected_shortfall_99.9")]
    assert abs(row["estimate"] - es) <= 4.0 * row["se"] + step, (row["estimate"], es, row["se"])
    n_def = weighted.pool_outcomes[:, P_DEFAULTS]
    w = weighted.weights
    for k in (10, 15):
        y = w * (n_def >= k)
        assert abs(y.mean() - exact[k:].sum()) <= 4.0 * y.std(ddof=1) / np.sqrt(len(y))


def test_the_two_estimator_families_are_labelled(weighted: SimulationResult) -> None:
    """The mean yield is self-normalised, the expected loss is not: the output names each
    estimator and gives the mean weight that separates them."""
    w = weighted.weights
    y = weighted.tranche_outcomes[:, 0, O_YIELD]
    assert weighted.tranches.loc["senior", "mean_yield"] == pytest.approx((w * y).sum() / w.sum(), rel=1e-13)
    loss = weighted.tranche_outcomes[:, 0, O_LOSS] / weighted.original_balances[0]
    assert weighted.tranches.loc["senior", "expected_loss"] == pytest.approx((w * loss).mean(), rel=1e-13)
    pool = weighted.pool_summary
    assert pool["mean_weight"] == pytest.approx(w.mean(), rel=1e-13)
    assert pool["mean_weight_se"] == pytest.approx(w.std(ddof=1) / np.sqrt(len(w)), rel=1e-12)
    doc = weighted.to_dict()
    assert "sum(w x) / sum(w)" in doc["estimators"]["mean_yield"]
    assert "mean(w x)" in doc["estimators"]["expected_loss"]


def test_importance_diagnostics_reach_json_and_metrics(weighted: SimulationResult) -> None:
    doc = weighted.to_dict()
    assert "warnings" in doc and doc["sampling"]["pilots"]
    assert {"accepted", "verdict", "variance_reduction"} <= set(doc["sampling"]["pilots"][0])
    table = risk_metrics(weighted)
    assert "diagnostics" in table.columns
    rows = table.set_index(["subject", "metric"])
    assert rows.loc[("senior", "loss_paths"), "estimate"] == float(
        (weighted.tranche_outcomes[:, 0, O_LOSS] > 1e-6).sum()
    )
    assert rows.loc[("senior", "loss_effective_paths"), "estimate"] >= 30.0


def test_auto_flags_a_tranche_that_importance_sampling_makes_worse() -> None:
    """Aimed at the senior, the weights cost the junior precision: the output says so next to
    the junior instead of printing its wider error as if it were plain sampling's."""
    model = compile_text(homogeneous_deal(N, LOAN, JUNIOR, P, RHO, RECOVERY))
    r = simulate(model, paths=20_000, seed=3, importance_sampling="auto")
    assert r.sampling.method == "importance"
    plain = simulate(model, paths=20_000, seed=3)
    for name in r.tranche_names:
        row, base = r.tranches.loc[name], plain.tranches.loc[name]
        if row["expected_loss_se"] > 1.5 * base["expected_loss_se"]:
            assert not row["reliable"] and "plain sampling" in row["diagnostics"], name
    assert any(line.startswith("junior") for line in r.warnings) or (
        r.tranches.loc["junior", "expected_loss_se"] <= 1.5 * plain.tranches.loc["junior", "expected_loss_se"]
    )


def test_tilt_of_a_real_run_is_sparse_for_singleton_groups() -> None:
    pf, _, _ = ir.make_portfolio(200, None, 1e-6, max_exposure=10, seed=7)
    model = compile_text(ir.deal_yaml(pf))
    r = simulate(model, paths=2_000, seed=0, importance_sampling=True)
    arrays = compile_risk(model)
    assert arrays.g_threshold.shape[0] >= 150  # nearly one group per obligor
    if r.sampling.tilt is not None:
        assert np.count_nonzero(r.sampling.tilt) <= 10
    _ = _run_paths  # the module's path runner is what simulate uses
