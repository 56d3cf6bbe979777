"""The Monte Carlo from a report date (docs/surveillance.md#the-monte-carlo-from-a-state):
zero-PD paths equal the deterministic run from the state; survivors default with their PDs
conditional on surviving, under the systematic factor's posterior given the defaults seen;
loans reported defaulted default in their period on every path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import integrate, stats

import ipabs
from ipabs.analytics.importance import Sampling
from ipabs.analytics.reproject import reproject, started_model
from ipabs.api import _model
from ipabs.cli import main
from ipabs.deal.load import parse_deal
from ipabs.deal.state import load_state
from ipabs.montecarlo import simulate
from ipabs.numerics.rng_numba_fns import seed_state
from ipabs.risk.model import compile_risk
from ipabs.risk.montecarlo_numba_fns import O_LOSS, O_WAL, O_YIELD, allocate_scratch, draw_defaults

ROOT = Path(__file__).resolve().parents[1]
CAOHEJING = ROOT / "scenarios" / "caohejing_ip_pledge.yaml"
Q3 = ROOT / "scenarios" / "states" / "caohejing_2025q3.yaml"


def _flat_caohejing(tmp_path: Path) -> Path:
    """The Caohejing deal with no new defaults in its risk model and the same constant
    recovery (30% after 6 months) in its risk model and in a scenario `flat`."""
    text = CAOHEJING.read_text(encoding="utf-8")
    text = text[: text.index("\nrisk:")] + (
        "\nrisk:\n  copula: gaussian\n  factors: {global: 0.35, region: 0.30}\n  pd_multiplier: 0\n"
        "  recovery: {model: constant, rate: 0.3, lag_months: 6}\n"
    )
    text = text.replace(
        "scenarios:\n",
        "scenarios:\n  flat:\n    description: constant recovery\n    recovery: {rate: 0.3, lag_months: 6}\n",
        1,
    )
    path = tmp_path / "caohejing_flat.yaml"
    path.write_text(text, encoding="utf-8")
    for f in Q3.parent.glob("caohejing_2025q3*"):
        (tmp_path / f.name).write_bytes(f.read_bytes())
    return path


def test_zero_pd_paths_equal_the_deterministic_run_from_the_state(tmp_path: Path) -> None:
    path = _flat_caohejing(tmp_path)
    deal = ipabs.load_deal(path)
    state = load_state(deal, tmp_path / Q3.name)
    det = reproject(deal, state, "flat")
    mc = simulate(started_model(_model(deal), state), paths=32, seed=5, outcomes="keep")
    assert mc.tranche_outcomes is not None
    for k, name in enumerate(det.summary.index):
        row = det.summary.loc[name]
        losses = mc.tranche_outcomes[:, k, O_LOSS]
        np.testing.assert_allclose(losses, row["loss"], rtol=1e-12, atol=1e-6)
        if row["wal_years"] == row["wal_years"]:
            np.testing.assert_allclose(mc.tranche_outcomes[:, k, O_WAL], row["wal_years"], rtol=1e-12)
        np.testing.assert_allclose(mc.tranche_outcomes[:, k, O_YIELD], row["yield"], rtol=1e-9, atol=1e-12)
    summary = {r["tranche"]: r for r in mc.tranche_summary}
    senior = det.summary.loc["senior"]
    assert summary["senior"]["expected_loss"] == pytest.approx(senior["loss"] / senior["report_date_balance"])


# a pool of 40 identical bullet loans (annual PD 8%, one factor of correlation 0.3) after
# four quarters, six of them defaulted: the factor's posterior moves up
DEAL = """\
deal:
  name: surveillance test pool
  closing_date: 2025-01-15
  first_payment_date: 2025-04-15
  payment_frequency: quarterly
  legal_final_date: 2028-01-15
  day_count: ACT/365
pools:
  - name: p
    loans:
{loans}
tranches:
  - {{name: A, balance: 30m, coupon: 0.03}}
  - {{name: B, balance: 10m}}
waterfalls:
  normal:
    - pay_interest: A
    - pay_principal: {{tranches: [A, B], mode: sequential}}
    - pay_residual: B
risk:
  correlation: 0.3
  default_pd: 0.08
  recovery: {{model: constant, rate: 0.2, lag_months: 3}}
"""
N_LOANS = 40
DEFAULTED = {
    3: "2025-07-15",
    7: "2025-10-15",
    11: "2025-10-15",
    15: "2026-01-15",
    19: "2026-01-15",
    23: "2026-01-15",
}


def _pool(tmp_path: Path):  # type: ignore[no-untyped-def]
    loans = "\n".join(
        f"      - {{obligor: L{i:02d}, balance: 1m, rate: 0.06, term_months: 30}}" for i in range(N_LOANS)
    )
    deal = parse_deal(DEAL.format(loans=loans), str(tmp_path / "pool.yaml"))
    rows = []
    for i in range(N_LOANS):
        if i in DEFAULTED:
            rows.append(f"  - {{id: L{i:02d}, balance: 1m, status: defaulted, default_date: {DEFAULTED[i]}}}")
        else:
            rows.append(f"  - {{id: L{i:02d}, balance: 1m, status: current}}")
    state = (
        "report_date: 2026-01-15\ntranches:\n  A: {balance: 30m}\n  B: {balance: 10m}\nloans:\n"
        + "\n".join(rows)
        + "\n"
    )
    (tmp_path / "state.yaml").write_text(state, encoding="utf-8")
    return deal, load_state(deal, tmp_path / "state.yaml")


def _posterior_expectation(f, thresholds: np.ndarray, t0: int, rho: float) -> float:  # type: ignore[no-untyped-def]
    """E[f(z)] under the factor's posterior given the history, by quadrature (scipy)."""
    s = np.sqrt(1.0 - rho * rho)

    def p(t: int, z: float) -> float:
        return 0.0 if t < 0 else float(stats.norm.cdf((thresholds[t] - rho * z) / s))

    def likelihood(z: float) -> float:
        out = 1.0
        for date in DEFAULTED.values():
            tau = ["2025-04-15", "2025-07-15", "2025-10-15", "2026-01-15"].index(date)
            out *= p(tau, z) - p(tau - 1, z)
        return out * (1.0 - p(t0 - 1, z)) ** (N_LOANS - len(DEFAULTED))

    def dens(z: float) -> float:
        return float(stats.norm.pdf(z)) * likelihood(z)

    # the likelihood is tiny: an absolute tolerance would end the integration early
    norm = integrate.quad(dens, -10, 10, limit=200, epsabs=0.0, epsrel=1e-10)[0]
    return integrate.quad(lambda z: dens(z) * f(z), -10, 10, limit=200, epsabs=0.0, epsrel=1e-10)[0] / norm


def test_survivors_default_under_the_factors_posterior(tmp_path: Path) -> None:
    deal, state = _pool(tmp_path)
    model = started_model(_model(deal), state)
    ra = compile_risk(model)
    assert ra.posterior == 1
    t0 = state.period
    assert t0 == 4
    n_t = model.n_periods
    days = (model.grid[1:] - model.grid[0]) / 365.0
    thresholds = stats.norm.ppf(1.0 - (1.0 - 0.08) ** days)  # default_pd on an ACT/365 clock
    rho = np.sqrt(0.3)
    sc = allocate_scratch(model.cd, ra)
    reps = 20_000
    weights = np.empty(reps)
    later = np.empty(reps)  # survivors defaulting by the horizon
    before = 0
    for r in range(reps):
        seed_state(sc.state, 11, r, 0)
        draw_defaults(ra, sc)
        weights[r] = sc.weight[0]
        periods = sc.ob_period.copy()
        for i, date in DEFAULTED.items():
            assert periods[i] == ["2025-04-15", "2025-07-15", "2025-10-15", "2026-01-15"].index(date)
        survivors = np.array([i for i in range(N_LOANS) if i not in DEFAULTED])
        before += int((periods[survivors] < t0).sum())
        later[r] = (periods[survivors] < n_t).sum()
    assert before == 0, "a survivor of the report date defaulted before it"
    s = np.sqrt(1.0 - rho * rho)

    def q(z: float) -> float:  # P(default by the horizon | z, survived to the report date)
        f = stats.norm.cdf((thresholds[t0 - 1] - rho * z) / s)
        return float((stats.norm.cdf((thresholds[n_t - 1] - rho * z) / s) - f) / (1.0 - f))

    expected = (N_LOANS - len(DEFAULTED)) * _posterior_expectation(q, thresholds, t0, rho)
    estimate = (weights * later).mean()
    se = (weights * later).std() / np.sqrt(reps)
    assert abs(estimate - expected) < 4 * se, (estimate, expected, se)
    assert abs(weights.mean() - 1.0) < 4 * weights.std() / np.sqrt(reps)
    # the history says more defaults: more than the prior conditional PDs give
    prior = (N_LOANS - len(DEFAULTED)) * integrate.quad(lambda z: stats.norm.pdf(z) * q(z), -10, 10)[0]
    assert expected > 1.2 * prior


def test_monte_carlo_from_a_state_on_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["mc", str(CAOHEJING), "--state", str(Q3), "--paths", "2000", "--json", "--quiet"])
    assert code == 0
    out = capsys.readouterr().out
    assert '"original_balance": 93350000.0' in out


def test_factors_are_drawn_around_their_posterior_mean(tmp_path: Path) -> None:
    # the shift is the factor's posterior mean (scipy quadrature); the estimates agree with
    # drawing the factor from its prior and weighting by the likelihood alone, more precisely
    deal, state = _pool(tmp_path)
    model = started_model(_model(deal), state)
    ra = compile_risk(model)
    days = (model.grid[1:] - model.grid[0]) / 365.0
    thresholds = stats.norm.ppf(1.0 - (1.0 - 0.08) ** days)
    mean = _posterior_expectation(lambda z: z, thresholds, state.period, np.sqrt(0.3))
    assert mean < -0.3  # six defaults in forty: a bad draw of the factor
    assert ra.posterior_mean[0] == pytest.approx(mean, abs=1e-6)
    shifted = simulate(model, paths=20_000, seed=4)
    assert shifted.sampling.method == "importance"
    assert shifted.sampling.shift[0] == pytest.approx(mean, abs=1e-6)
    assert not shifted.sampling.fallbacks
    prior = simulate(model, paths=20_000, seed=4, sampling=Sampling("plain", np.zeros(1)))
    for a, b in zip(shifted.tranche_summary, prior.tranche_summary, strict=True):
        se = np.hypot(a["expected_loss_se"], b["expected_loss_se"])
        assert abs(a["expected_loss"] - b["expected_loss"]) < 4.0 * se, (a["tranche"], a, b)
    for a, b in zip(shifted.tranche_summary, prior.tranche_summary, strict=True):
        assert a["expected_loss_se"] < 0.9 * b["expected_loss_se"], (a["tranche"], a, b)


# monthly bullet loans that cannot default on their own (PD 0): half are 31-60 days behind on
# the report date and roll on through the risk model's delinquency chain
DQ_DEAL = """\
deal:
  name: delinquent loans
  closing_date: 2025-01-15
  first_payment_date: 2025-02-15
  payment_frequency: monthly
  legal_final_date: 2027-01-15
  day_count: 30/360
pools:
  - name: p
    loans:
{loans}
tranches:
  - {{name: A, balance: 16m, coupon: 0.03}}
  - {{name: B, balance: 4m}}
waterfalls:
  normal:
    - pay_interest: A
    - pay_principal: {{tranches: [A, B], mode: sequential}}
    - pay_residual: B
risk:
  correlation: 0.2
  default_pd: 0.0
  recovery: {{model: constant, rate: 0.3, lag_months: 0}}
{delinquency}
"""
ROLL = [0.03, 0.40, 0.50, 0.60]
CURE = [0.35, 0.20, 0.10]


def _dq_pool(tmp_path: Path, chain: bool):  # type: ignore[no-untyped-def]
    loans = "\n".join(
        f"      - {{obligor: D{i:02d}, balance: 1m, rate: 0.06, term_months: 24, amortisation: bullet}}"
        for i in range(20)
    )
    dq = f"  delinquency: {{roll_rates: {ROLL}, cure_rates: {CURE}}}" if chain else ""
    deal = parse_deal(DQ_DEAL.format(loans=loans, delinquency=dq), str(tmp_path / "dq.yaml"))
    rows = [
        f"  - {{id: D{i:02d}, balance: 1m, status: dpd_31_60, days_past_due: 45}}"
        if i < 10
        else f"  - {{id: D{i:02d}, balance: 1m, status: current}}"
        for i in range(20)
    ]
    text = "report_date: 2025-06-15\ntranches:\n  A: {balance: 16m}\n  B: {balance: 4m}\nloans:\n"
    (tmp_path / "state.yaml").write_text(text + "\n".join(rows) + "\n", encoding="utf-8")
    return deal, load_state(deal, tmp_path / "state.yaml")


def test_delinquent_loans_roll_to_default_through_the_chain(tmp_path: Path) -> None:
    # a loan two buckets behind defaults by month m with the chance that the monthly chain,
    # cures absorbing, has reached default by then: a matrix power (numpy), not the code's
    # product of cure chances and convolution of geometric months
    from ipabs.analytics.reproject import delinquent_loans_note

    deal, state = _dq_pool(tmp_path, chain=True)
    model = started_model(_model(deal), state)
    assert delinquent_loans_note(model) is None
    ra = compile_risk(model)
    t0 = state.period  # payment dates on Feb 15 .. Jun 15: period 5 (0-based) runs first
    assert t0 == 5
    chain = np.zeros((5, 5))  # buckets 1, 2, 3 behind, cured, defaulted
    for k in range(3):
        chain[k, k + 1 if k < 2 else 4] = ROLL[k + 1]
        chain[k, 3] = CURE[k]
        chain[k, k] = 1.0 - ROLL[k + 1] - CURE[k]
    chain[3, 3] = chain[4, 4] = 1.0
    sc = allocate_scratch(model.cd, ra)
    reps = 20_000
    horizons = (t0, t0 + 2, t0 + 5, model.n_periods - 1)
    counts = np.zeros((reps, len(horizons)))
    for r in range(reps):
        seed_state(sc.state, 5, r, 0)
        draw_defaults(ra, sc)
        assert sc.weight[0] == 1.0
        periods = sc.ob_period.copy()
        assert (periods[10:] == model.n_periods).all(), "a current loan of PD 0 defaulted"
        for j, t in enumerate(horizons):
            counts[r, j] = (periods[:10] <= t).sum()
    for j, t in enumerate(horizons):
        m = t - t0 + 1  # months from the report date to the end of period t
        expected = np.linalg.matrix_power(chain, m)[1, 4]
        got = counts[:, j].mean() / 10.0
        se = counts[:, j].std() / np.sqrt(reps) / 10.0
        assert abs(got - expected) < 4.0 * se + 1e-12, (t, got, expected, se)
    assert counts[:, -1].mean() / 10.0 > 0.2


def test_delinquent_loans_without_a_chain_are_flagged(tmp_path: Path) -> None:
    from ipabs.analytics.reproject import delinquent_loans_note

    deal, state = _dq_pool(tmp_path, chain=False)
    note = delinquent_loans_note(started_model(_model(deal), state))
    assert note is not None and "10 obligor(s) are behind" in note and "risk.delinquency" in note


def test_deterministic_run_from_a_state_starts_loans_in_their_bucket(tmp_path: Path) -> None:
    # the scenario's chain takes no steps before the report date and starts each loan where
    # the state has it: the pool's defaults by k months later are those of a matrix power of
    # the monthly chain (numpy) from "2 behind" for ten loans and from current for ten
    deal, state = _dq_pool(tmp_path, chain=False)
    loans = (
        f"      - {{obligor: D{i:02d}, balance: 1m, rate: 0.06, term_months: 24, amortisation: bullet}}"
        for i in range(20)
    )
    chain_text = f"    delinquency: {{roll_rates: {ROLL}, cure_rates: {CURE}}}\n"
    text = DQ_DEAL.format(loans="\n".join(loans), delinquency="")
    text += "scenarios:\n  dq:\n    description: roll rates\n" + chain_text
    deal = parse_deal(text, str(tmp_path / "dq.yaml"))
    state = load_state(deal, tmp_path / "state.yaml")
    result = reproject(deal, state, "dq")
    chain = np.zeros((5, 5))  # current, 1, 2, 3 behind, defaulted; cures go back to current
    chain[0, 1], chain[0, 0] = ROLL[0], 1.0 - ROLL[0]
    for k in (1, 2, 3):
        chain[k, k + 1 if k < 3 else 4] = ROLL[k]
        chain[k, 0] = CURE[k - 1]
        chain[k, k] = 1.0 - ROLL[k] - CURE[k - 1]
    chain[4, 4] = 1.0
    defaults = result.periods["pool.defaults"].to_numpy()
    for k in (1, 3, 6, 12):
        step = np.linalg.matrix_power(chain, k)
        expected = 1e6 * (10 * step[2, 4] + 10 * step[0, 4])
        assert defaults[:k].sum() == pytest.approx(expected, rel=1e-9), k


def test_a_loss_probability_above_one_is_flagged() -> None:
    # mean(w x) can read above 100% when the weights' sample mean is above 1: said, not hidden
    import dataclasses

    result = simulate(CAOHEJING, paths=500, seed=1)
    assert not any("above 100%" in w for w in result.warnings)
    rows = [dict(r) for r in result.tranche_summary]
    rows[1]["probability_of_loss"], rows[1]["probability_of_loss_se"] = 1.019, 0.013
    flagged = dataclasses.replace(result, tranche_summary=rows)
    (warning,) = [w for w in flagged.warnings if "above 100%" in w]
    assert warning.startswith("sub: its loss probability reads 101.90% ± 1.30%")
