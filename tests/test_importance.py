"""Importance sampling: unbiased against exact finite-pool results, a real variance reduction,
reproducible, and plain sampling where it cannot help."""

from __future__ import annotations

import mc_reference as ref
import numpy as np
import pytest
from test_montecarlo import LOAN, assert_within, compile_text, homogeneous_deal

from ipabs.analytics.importance import Sampling, variance_reduction
from ipabs.engine.compile import CompiledModel
from ipabs.montecarlo import SimulationResult, _run_paths, simulate
from ipabs.risk.model import compile_risk
from ipabs.risk.montecarlo_numba_fns import O_LOSS, P_DEFAULTS, P_WEIGHT

N = 50
P = 0.01
RHO = 0.2
RECOVERY = 0.4
ATTACH_DEFAULTS = 12  # the senior loses from the 13th default on: P ~ 1.6e-4
JUNIOR = ATTACH_DEFAULTS * (1.0 - RECOVERY) * LOAN


@pytest.fixture(scope="module")
def rare() -> CompiledModel:
    return compile_text(homogeneous_deal(N, LOAN, JUNIOR, P, RHO, RECOVERY))


@pytest.fixture(scope="module")
def weighted(rare: CompiledModel) -> SimulationResult:
    return simulate(rare, paths=20_000, seed=11, threads=2, importance_sampling=True)


def weighted_mean_se(x: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    y = w * x
    return float(y.mean()), float(y.std(ddof=1) / np.sqrt(len(y)))


def test_rare_senior_loss_matches_the_exact_finite_pool(weighted: SimulationResult) -> None:
    assert weighted.sampling is not None and weighted.sampling.method == "importance"
    w = weighted.weights
    lgd = (1.0 - RECOVERY) * LOAN
    exact_el = ref.finite_pool_tranche_loss(N, P, RHO, lgd, JUNIOR, N * LOAN)
    m, se = weighted_mean_se(weighted.tranche_outcomes[:, 0, O_LOSS], w)
    assert_within(m, exact_el, se, "senior expected loss")
    # relative error of a few percent from 20,000 paths: plain sampling would see ~3 losses
    assert se / exact_el < 0.1
    exact_p = ref.finite_pool_distribution(N, P, RHO)[ATTACH_DEFAULTS + 1 :].sum()
    hit = (weighted.tranche_outcomes[:, 0, O_LOSS] > 1e-6).astype(float)
    m, se = weighted_mean_se(hit, w)
    assert_within(m, exact_p, se, "senior loss probability")
    # the summaries report the weighted estimates
    row = weighted.tranches.loc["senior"]
    assert row["probability_of_loss"] == pytest.approx(m, rel=1e-12)
    assert row["expected_loss_vrf"] > 50.0


def test_weights_average_one_and_default_counts_are_unbiased(weighted: SimulationResult) -> None:
    w = weighted.weights
    assert_within(float(w.mean()), 1.0, float(w.std(ddof=1) / np.sqrt(len(w))), "mean weight")
    exact = ref.finite_pool_distribution(N, P, RHO)
    d = weighted.pool_outcomes[:, P_DEFAULTS]
    for k in (0, 1, 5, 13, 20):
        m, se = weighted_mean_se((d == k).astype(float), w)
        assert_within(m, exact[k], se, f"P(D = {k})")


@pytest.mark.parametrize(
    ("shift", "twist", "alpha"), [(-1.5, 0.0, 0.1), (0.0, 6.0, 0.1), (-1.0, 10.0, 0.1), (-1.0, 4.0, 0.5)]
)
def test_any_shift_and_twist_is_unbiased(
    rare: CompiledModel, shift: float, twist: float, alpha: float
) -> None:
    """The likelihood ratio is right for the shift alone, the twist alone and both, and the
    defensive mixture bounds every weight by 1 / alpha."""
    arrays = compile_risk(rare)
    sampling = Sampling("importance", np.array([shift]), twist=twist, alpha=alpha)
    _tr, pool, z, _ = _run_paths(rare, arrays, 5, 0, 20_000, sampling, 2)
    w = pool[:, P_WEIGHT]
    assert w.max() <= 1.0 / alpha + 1e-12
    exact = ref.finite_pool_distribution(N, P, RHO)
    d = pool[:, P_DEFAULTS]
    for k in (0, 2, 8):
        m, se = weighted_mean_se((d == k).astype(float), w)
        assert_within(m, exact[k], se, f"P(D = {k}) at shift {shift}, twist {twist}")
    if shift:  # the factors were drawn around the shift, a share alpha around zero
        z0 = z[:, 0]
        se = float(z0.std(ddof=1) / np.sqrt(len(z0)))
        assert_within(float(z0.mean()), (1.0 - alpha) * shift, se, f"mean factor at shift {shift}")
    if twist:
        assert d.mean() > 2 * N * P  # the twist makes defaults common


def test_importance_sampling_is_reproducible(rare: CompiledModel, weighted: SimulationResult) -> None:
    again = simulate(rare, paths=20_000, seed=11, threads=1, batch_size=3_000, importance_sampling=True)
    np.testing.assert_array_equal(again.tranche_outcomes, weighted.tranche_outcomes)
    np.testing.assert_array_equal(again.pool_outcomes, weighted.pool_outcomes)
    kept = simulate(rare, paths=100, seed=11, importance_sampling=True, keep=[7])
    np.testing.assert_array_equal(kept.sampling.shift, weighted.sampling.shift)
    assert kept.tranche_outcomes[7, 0, O_LOSS] == weighted.tranche_outcomes[7, 0, O_LOSS]
    table = kept.kept[7].summary
    assert table.loc["senior", "loss"] == pytest.approx(kept.tranche_outcomes[7, 0, O_LOSS], abs=1e-6)


def test_auto_uses_plain_sampling_when_losses_are_common() -> None:
    # a thin senior with a tiny junior loses often: plain sampling sees enough losses
    model = compile_text(homogeneous_deal(N, LOAN, 0.5 * LOAN, 0.05, RHO, RECOVERY))
    result = simulate(model, paths=2_000, seed=3, importance_sampling="auto")
    assert result.sampling.method == "plain"
    assert "plain pilot" in result.sampling.reason
    assert np.all(result.weights == 1.0)
    plain = simulate(model, paths=2_000, seed=3)
    np.testing.assert_array_equal(plain.tranche_outcomes, result.tranche_outcomes)


def test_a_tranche_that_cannot_lose_gets_plain_sampling() -> None:
    # the junior absorbs more than the whole pool can lose
    model = compile_text(homogeneous_deal(10, LOAN, 9.0 * LOAN, 0.02, RHO, 0.5))
    result = simulate(model, paths=1_000, seed=3, importance_sampling=True)
    assert result.sampling.method == "plain"
    assert "too few losses" in result.sampling.reason
    assert result.tranches.loc["senior", "expected_loss"] == 0.0


def test_variance_reduction_of_a_textbook_normal_tail() -> None:
    rng = np.random.default_rng(4)
    x = rng.standard_normal(200_000)
    assert variance_reduction((x > 3.0).astype(float), np.ones_like(x)) == 1.0
    shifted = x + 3.0
    w = np.exp(-3.0 * shifted + 4.5)
    hit = (shifted > 3.0).astype(float)
    m, se = weighted_mean_se(hit, w)
    assert_within(m, 0.0013498980316301035, se, "P(X > 3)")
    assert variance_reduction(hit, w) > 100.0


def test_unknown_target_tranche_is_an_error(rare: CompiledModel) -> None:
    from ipabs.errors import IpabsError

    with pytest.raises(IpabsError, match="no tranche 'mezz'"):
        simulate(rare, paths=10, importance_sampling=True, importance_tranche="mezz")
    with pytest.raises(IpabsError, match="importance_sampling must be"):
        simulate(rare, paths=10, importance_sampling="sometimes")
