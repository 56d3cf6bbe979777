"""Monte Carlo against closed forms and against the deterministic engine.

Every statistical check uses a fixed seed and a tolerance of four standard errors, computed
from the simulated paths themselves; exact identities are checked to the cent. Closed forms
(finite pool, Vasicek, bivariate normal and t) are in ``mc_reference.py``.

Deals are small YAML texts designed so the closed form is exact: annual or quarterly grids,
zero coupons, bullet loans maturing at legal final, one sequential principal waterfall. Two
read-outs recover per-obligor events from the pool outcomes:

- *bit masks*: obligor ``i`` owes ``UNIT x 2^i``, so the path's defaulted balance
  (``default_rate x original pool``) is a binary number whose bits are the defaulted obligors;
- *royalty digits*: obligor ``i`` pays ``K x base^i`` a year while it has not defaulted, so the
  royalty collected on a path is a number in base ``base`` whose digits are the years each
  licensee paid, that is its default period.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Any

import mc_reference as ref
import numpy as np
import pandas as pd
import pytest
from helpers import CENT, compile_text

from ipabs import api
from ipabs.deal.load import parse_deal
from ipabs.deal.risk import RiskModel
from ipabs.engine.compile import CompiledModel
from ipabs.engine.metrics_numba_fns import present_value
from ipabs.errors import DealError, IpabsError
from ipabs.montecarlo import SimulationResult, simulate
from ipabs.numerics.rng_numba_fns import seed_state
from ipabs.risk.model import compile_risk, cumulative_pd
from ipabs.risk.montecarlo_numba_fns import (
    O_DISCOUNTED_LOSS,
    O_INTEREST_SHORTFALL,
    O_LOSS,
    O_PRINCIPAL_LOSS,
    O_PV_RECEIVED,
    O_WAL,
    O_YIELD,
    P_DEFAULT_RATE,
    P_DEFAULTS,
    P_LOSS_RATE,
    P_ROYALTY,
    POOL_OUTCOMES,
    TRANCHE_OUTCOMES,
    allocate_scratch,
    draw_defaults,
)

K_SE = 4.0  # tolerance in standard errors
UNIT = 1000.0  # bit-mask deals: obligor i owes UNIT x 2^i


# --------------------------------------------------------------------------- helpers


def risk(**fields: Any) -> RiskModel:
    """A validated risk model from keyword fields (``factors={"global": 0.4}`` etc.)."""
    return RiskModel.model_validate(fields)


def mean_se(x: np.ndarray) -> tuple[float, float]:
    """Sample mean and its standard error."""
    x = np.asarray(x, dtype=np.float64)
    return float(x.mean()), float(x.std(ddof=1) / math.sqrt(len(x)))


def assert_within(value: float, expected: float, se: float, what: str, k: float = K_SE) -> None:
    """``value`` is within ``k`` standard errors of ``expected``."""
    assert se > 0.0 or value == expected, f"{what}: zero standard error"
    assert abs(value - expected) <= k * se, (
        f"{what}: {value:.6g}, expected {expected:.6g} "
        f"(difference {(value - expected) / se:+.2f} SE, se {se:.3g})"
    )


def header(
    name: str,
    *,
    closing: str = "2025-01-01",
    first: str = "2026-01-01",
    frequency: str = "annual",
    final: str = "2026-01-01",
) -> str:
    return f"""deal:
  name: {name}
  closing_date: {closing}
  first_payment_date: {first}
  payment_frequency: {frequency}
  legal_final_date: {final}
"""


def one_tranche_tail(notes: float) -> str:
    """A single zero-coupon note paid from all cash."""
    return f"""tranches:
  - name: notes
    balance: {notes}
waterfalls:
  normal:
    - pay_principal: notes
    - pay_residual: notes
"""


def bitmask_deal(obligor_fields: list[str], frequency: str = "annual", final: str = "2026-01-01") -> str:
    """Zero-rate bullet loans maturing at legal final; loan ``i`` (with the extra YAML fields
    ``obligor_fields[i]``) owes ``UNIT x 2^i``."""
    first = "2026-01-01" if frequency == "annual" else "2025-07-01"
    term = {"2026-01-01": 12, "2026-07-01": 18}[final]
    loans = "\n".join(
        f"      - {{obligor: O{i}, balance: {UNIT * 2**i:.0f}, rate: 0, term_months: {term}, "
        f"amortisation: bullet, payment_frequency: {frequency}{', ' + extra if extra else ''}}}"
        for i, extra in enumerate(obligor_fields)
    )
    total = UNIT * (2 ** len(obligor_fields) - 1)
    return (
        header("bit mask", frequency=frequency, first=first, final=final)
        + f"pools:\n  - name: pool\n    loans:\n{loans}\n"
        + one_tranche_tail(total)
    )


def defaulted(result: SimulationResult, n: int) -> np.ndarray:
    """(paths, n) booleans: which obligors of a :func:`bitmask_deal` defaulted on each path."""
    total = UNIT * (2**n - 1)
    mask = np.rint(result.pool_outcomes[:, P_DEFAULT_RATE] * total / UNIT).astype(np.int64)
    assert np.allclose(mask * UNIT, result.pool_outcomes[:, P_DEFAULT_RATE] * total, rtol=0, atol=1e-6)
    return ((mask[:, None] >> np.arange(n)[None, :]) & 1).astype(bool)


def pair_statistic(d: np.ndarray, pairs: list[tuple[int, int]]) -> np.ndarray:
    """Per path: the share of ``pairs`` in which both obligors defaulted."""
    a = np.array([i for i, _ in pairs])
    b = np.array([j for _, j in pairs])
    return (d[:, a] & d[:, b]).mean(axis=1)


def numeric_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c])]


def assert_periods_equal(actual: pd.DataFrame, expected: pd.DataFrame, what: str) -> None:
    """Two ``RunResult.periods`` tables agree to half a cent in every numeric cell."""
    assert list(actual.columns) == list(expected.columns), what
    for c in actual.columns:
        a, e = actual[c].to_numpy(), expected[c].to_numpy()
        if c in numeric_columns(expected):
            a, e = a.astype(np.float64), e.astype(np.float64)
            same = (a == e) | (np.isnan(a) & np.isnan(e))  # also equal infinities (an OC test on no notes)
            diff = np.abs(np.where(same, 0.0, a) - np.where(same, 0.0, e))
            bad = np.nonzero(~same & ~(diff <= CENT))[0]
            assert len(bad) == 0, (
                f"{what}: {c} differs in period(s) {(bad + 1).tolist()}: {a[bad]} vs {e[bad]}"
            )
        else:
            assert (a == e).all(), f"{what}: {c} differs"


# --------------------------------------------------------------------------- zero PD = deterministic

RICH_DEAL = """deal:
  name: Rich deal
  closing_date: 2025-01-15
  first_payment_date: 2025-04-15
  payment_frequency: quarterly
  legal_final_date: 2028-01-15
indices:
  LPR1Y: 3.45%
obligors:
  - {name: Provider}
pools:
  - name: park
    loans:
      - {obligor: Alpha, industry: chips, region: north, balance: 6m, rate: 5.5%, term_months: 24,
         amortisation: annuity, pledged_ip: {appraised_value: 15m}}
      - {obligor: Beta, industry: chips, region: south, balance: 5m, rate: {index: LPR1Y, spread: 1.5%},
         term_months: 30, amortisation: equal_principal, pledged_ip: {appraised_value: 8m}}
      - {obligor: Gamma, industry: biotech, region: north, balance: 4m, rate: 4%, term_months: 36,
         amortisation: interest_only_then_bullet}
    royalties:
      - {obligor: Delta, kind: running, rate: 4%, tiers: [{above: 20m, rate: 6%}], minimum: 200k,
         sales: {initial: 18m, growth: 8%}, valuation: 2m}
scenarios:
  base:
    prepayment: {cpr: 5%}
tranches:
  - {name: senior, balance: 13m, coupon: 3.2%}
  - {name: sub, balance: 2m}
fees:
  - {name: trustee, annual_amount: 50k}
  - {name: servicer, rate: 0.5%, base: pool_balance_start}
accounts:
  - {name: reserve, initial: 200k, target: {share: 2%, of: balance(senior), floor: 100k}}
support:
  - {name: keepwell, kind: deficiency_payment, provider: Provider, cap_total: 300k}
triggers:
  - name: oc_test
    kind: overcollateralisation
    tranches: [senior]
    threshold: 1.2
    effect: {waterfall: accelerated}
risk:
  correlation: 0.3
  default_pd: 0
  prepayment: {cpr: 5%}
  recovery: {model: lognormal, value_mean: 0.3, value_dispersion: 0.4, lag_months: 6}
waterfalls:
  normal:
    - pay_fee: [trustee, servicer]
    - pay_interest: senior
    - draw: {from: keepwell, covers: [senior.interest]}
    - fund_account: reserve
    - pay_principal: senior
    - pay_principal: sub
    - pay_residual: sub
  accelerated:
    - pay_fee: [trustee, servicer]
    - pay_interest: senior
    - draw: {from: reserve, covers: [senior.interest]}
    - pay_principal: senior
    - pay_principal: sub
    - pay_residual: sub
"""


@pytest.fixture(scope="module")
def rich() -> CompiledModel:
    """Loans of three amortisation kinds (one floating), a royalty with a tier and a minimum,
    two fees, a reserve, a deficiency provider and an OC trigger that switches the waterfall."""
    return compile_text(RICH_DEAL)


def explicit_zero_pd(text: str) -> str:
    """The rich deal with ``pd: 0`` on every obligor and no ``default_pd``."""
    for name in ("Provider", "Alpha", "Beta", "Gamma", "Delta"):
        text = text.replace(f"{{name: {name}}}", f"{{name: {name}, pd: 0}}")
        text = text.replace(f"{{obligor: {name},", f"{{obligor: {name}, pd: 0,")
    return text.replace("  default_pd: 0\n", "")


ZERO_PD_VIEWS = {
    "deal risk, default_pd 0": None,
    "pd 0 everywhere, t copula": risk(
        copula="student_t",
        degrees_of_freedom=3,
        factors={"global": 0.5, "industry": 0.4, "region": 0.3},
        prepayment={"cpr": 0.05},
        recovery={"model": "beta", "value_mean": 0.3, "value_dispersion": 0.2, "systematic_loading": 0.6},
        royalty={"volatility": 0.0, "systematic_loading": 0.7, "invalidation_hazard": 0.0},
    ),
}


@pytest.mark.parametrize("view", list(ZERO_PD_VIEWS))
def test_zero_pd_paths_equal_the_deterministic_run(rich: CompiledModel, view: str) -> None:
    model = rich if ZERO_PD_VIEWS[view] is None else compile_text(explicit_zero_pd(RICH_DEAL))
    det = api.run(model, "base")
    assert det.triggers["periods_active"].iloc[0] > 0, "the trigger should fire in this deal"
    assert (det.periods["deal.waterfall"] == "accelerated").any()
    result = simulate(model, paths=64, seed=11, threads=2, keep=[0, 37, 63], risk=ZERO_PD_VIEWS[view])
    for i, kept in result.kept.items():
        assert_periods_equal(kept.periods, det.periods, f"path {i}")
    # every path has the same outcomes, equal to the deterministic summary
    tr = result.tranche_outcomes
    assert np.all(tr == tr[:1]), "zero PD and zero volatility: all paths must be identical"
    for k, name in enumerate(result.tranche_names):
        row = det.summary.loc[name]
        assert tr[0, k, O_LOSS] == pytest.approx(row["loss"], abs=CENT)
        assert tr[0, k, O_WAL] == pytest.approx(row["wal_years"], rel=1e-12)
        assert tr[0, k, O_YIELD] == pytest.approx(row["yield"], rel=1e-9)
    pool = result.pool_outcomes
    assert np.all(pool[:, P_DEFAULT_RATE] == 0.0)
    assert np.all(pool[:, P_DEFAULTS] == 0.0)
    assert pool[0, P_ROYALTY] == pytest.approx(det.periods["pool.royalty"].sum(), abs=CENT)


EQUIVALENCE_DEAL = """deal:
  name: equivalence
  closing_date: 2025-01-15
  first_payment_date: 2025-04-15
  payment_frequency: quarterly
  legal_final_date: 2028-01-15
obligors:
  - {name: Provider}
pools:
  - name: park
    loans:
      - {obligor: Alpha, balance: 6m, rate: 5.5%, term_months: 24, amortisation: annuity,
         guarantee: {guarantor: Guarantor, share: 0.7, lag_months: 3}}
      - {obligor: Beta, balance: 5m, rate: 4.5%, term_months: 30, amortisation: equal_principal}
      - {obligor: Gamma, balance: 4m, rate: 4%, term_months: 36, amortisation: interest_only_then_bullet}
      - {obligor: Guarantor, balance: 1m, rate: 3%, term_months: 36, amortisation: bullet}
    leases:
      - {obligor: Lessee, balance: 2m, rate: 6%, term_months: 24, residual: 200k}
    royalties:
      - {obligor: Delta, kind: running, rate: 4%, sales: {initial: 18m, growth: 8%}, valuation: 2m,
         payment_lag_months: 3}
scenarios:
SCENARIOS
tranches:
  - {name: senior, balance: 15m, coupon: 3.2%}
  - {name: sub, balance: 3m}
fees:
  - {name: servicer, rate: 0.5%, base: pool_balance_start}
accounts:
  - {name: reserve, initial: 200k, target: {share: 2%, of: balance(senior), floor: 100k}}
support:
  - {name: keepwell, kind: deficiency_payment, provider: Provider, cap_total: 300k}
triggers:
  - {name: cdr, kind: cumulative_default_rate, threshold: 0.1, effect: {waterfall: accelerated}}
risk:
  correlation: 0.3
  default_pd: 0.12
  prepayment: {cpr: 10%}
  recovery: {model: constant, rate: 0.35, lag_months: 6}
waterfalls:
  normal:
    - pay_fee: servicer
    - pay_interest: senior
    - draw: {from: keepwell, covers: [senior.interest]}
    - fund_account: reserve
    - pay_principal: senior
    - pay_principal: sub
    - pay_residual: sub
  accelerated:
    - pay_fee: servicer
    - pay_interest: senior
    - draw: {from: reserve, covers: [senior.interest]}
    - pay_principal: senior
    - pay_principal: sub
    - pay_residual: sub
"""


def default_periods(model: CompiledModel, seed: int, path: int) -> dict[str, int]:
    """Obligor -> 0-based default period on a path, from the kernel's documented first draws
    (factors, then one uniform per obligor)."""
    ra = compile_risk(model)
    sc = allocate_scratch(model.cd, ra)
    seed_state(sc.state, seed, path, 0)
    draw_defaults(ra, sc)
    period = sc.ob_period
    return {
        name: int(period[o]) for o, name in enumerate(model.obligors.names) if period[o] < model.n_periods
    }


def test_paths_equal_deterministic_runs_with_the_same_named_defaults() -> None:
    """Each path's tables equal those of a deterministic scenario in which the same obligors
    default in the same periods (same prepayment and constant recovery): amortising loans, a
    lease, a guaranteed loan whose guarantor may default, a royalty with a payment lag, a
    deficiency provider, a reserve and a default trigger.

    A surviving obligor prepays SMM / (1 - its default hazard) of its balance after
    amortisation, so that over all paths prepayments are the SMM of the start balance less its
    expected amortisation (SIFMA's order); the deterministic twin states that conditional rate
    as a CPR vector (every obligor here has the same PD, hence the same hazard)."""
    model = compile_text(EQUIVALENCE_DEAL.replace("SCENARIOS", "  base: {}"))
    times = (model.grid[1:] - model.grid[0]) / 365.0
    cum = cumulative_pd(0.12, None, times)
    hazard = 1.0 - (1.0 - cum) / np.concatenate([[1.0], 1.0 - cum[:-1]])
    smm = 1.0 - 0.9**0.25  # 10% CPR over a quarter
    cpr = 1.0 - (1.0 - smm / (1.0 - hazard)) ** 4
    common = (
        f"prepayment: {{cpr_vector: [{', '.join(repr(float(x)) for x in cpr)}]}}, "
        "recovery: {rate: 0.35, lag_months: 6}"
    )
    seed, n_paths = 5, 40
    named = {i: default_periods(model, seed, i) for i in range(n_paths)}
    with_defaults = [i for i in range(n_paths) if named[i]]
    guarantor_first = [i for i in with_defaults if named[i].get("Guarantor", 99) < named[i].get("Alpha", -1)]
    guarantor_pays = [
        i for i in with_defaults if named[i].get("Alpha", 99) + 1 < named[i].get("Guarantor", model.n_periods)
    ]
    provider = [i for i in with_defaults if named[i].get("Provider", 99) < 8]
    none = [i for i in range(n_paths) if not named[i]]
    assert guarantor_first and guarantor_pays and provider and none
    chosen = sorted({*with_defaults[:8], guarantor_first[0], guarantor_pays[0], provider[0], none[0]})
    scenarios = "\n".join(
        f"  path_{i}: {{{common}, defaults: {{obligors: {{"
        + ", ".join(f"{name}: {t + 1}" for name, t in named[i].items())
        + "}}}"
        for i in chosen
    )
    det_model = compile_text(EQUIVALENCE_DEAL.replace("SCENARIOS", scenarios))
    result = simulate(model, paths=n_paths, seed=seed, threads=2, keep=chosen)
    for i in chosen:
        det = api.run(det_model, f"path_{i}")
        assert_periods_equal(result.kept[i].periods, det.periods, f"path {i} (defaults {named[i]})")
        k = result.tranche_names.index("sub")
        assert result.tranche_outcomes[i, k, O_LOSS] == pytest.approx(
            det.summary.loc["sub", "loss"], abs=CENT
        )


# --------------------------------------------------------------------------- finite homogeneous pool

N_SMALL, P_SMALL, RHO_SMALL, R_SMALL = 20, 0.1, 0.3, 0.4
LOAN = 1_000_000.0
JUNIOR = 3_000_000.0


def homogeneous_deal(n: int, loan: float, junior: float, p: float, rho: float, recovery: float) -> str:
    """``n`` equal zero-rate bullet loans, one annual period (all cash on legal final), a senior
    and a junior zero-coupon note paid sequentially: tranche losses are min/max of the pool loss."""
    loans = "\n".join(
        f"      - {{obligor: B{i}, balance: {loan:.0f}, rate: 0, term_months: 12, "
        "amortisation: bullet, payment_frequency: annual}"
        for i in range(n)
    )
    return (
        header("homogeneous pool")
        + f"""pools:
  - name: pool
    loans:
{loans}
tranches:
  - name: senior
    balance: {n * loan - junior:.0f}
  - name: junior
    balance: {junior:.0f}
risk:
  correlation: {rho}
  default_pd: {p}
  recovery: {{model: constant, rate: {recovery}, lag_months: 0}}
waterfalls:
  normal:
    - pay_principal: senior
    - pay_principal: junior
"""
    )


@pytest.fixture(scope="module")
def small_pool() -> SimulationResult:
    text = homogeneous_deal(N_SMALL, LOAN, JUNIOR, P_SMALL, RHO_SMALL, R_SMALL)
    return simulate(compile_text(text), paths=40_000, seed=2024, threads=2)


def test_finite_pool_tranche_losses_match_the_conditional_binomial(small_pool: SimulationResult) -> None:
    lgd = (1.0 - R_SMALL) * LOAN
    total = N_SMALL * LOAN
    for k, (name, lo, hi) in enumerate((("senior", JUNIOR, total), ("junior", 0.0, JUNIOR))):
        exact = ref.finite_pool_tranche_loss(N_SMALL, P_SMALL, RHO_SMALL, lgd, lo, hi)
        m, se = mean_se(small_pool.tranche_outcomes[:, k, O_LOSS])
        assert_within(m, exact, se, f"{name} expected loss")
        # the summary reports the same as a share of the tranche
        row = small_pool.tranches.loc[name]
        assert row["expected_loss"] == pytest.approx(m / (hi - lo), rel=1e-12)
        assert row["expected_loss_se"] == pytest.approx(se / (hi - lo), rel=1e-9)
    # zero coupons: the loss is all principal
    tr = small_pool.tranche_outcomes
    assert np.all(tr[:, :, O_INTEREST_SHORTFALL] == 0.0)
    assert np.array_equal(tr[:, :, O_LOSS], tr[:, :, O_PRINCIPAL_LOSS])


def test_finite_pool_default_count_distribution(small_pool: SimulationResult) -> None:
    n_paths = small_pool.paths
    pool = small_pool.pool_outcomes
    d = pool[:, P_DEFAULTS]
    assert np.array_equal(d, np.rint(d)), "defaults is a count"
    lgd = 1.0 - R_SMALL
    # each default loses exactly (1 - R) of one loan; recoveries arrive on legal final (lag 0)
    np.testing.assert_allclose(pool[:, P_LOSS_RATE], d * lgd / N_SMALL, rtol=0, atol=1e-12)
    np.testing.assert_allclose(pool[:, P_DEFAULT_RATE], d / N_SMALL, rtol=0, atol=1e-12)
    pmf = ref.finite_pool_distribution(N_SMALL, P_SMALL, RHO_SMALL)
    freq = np.bincount(d.astype(np.int64), minlength=N_SMALL + 1) / n_paths
    for k in range(N_SMALL + 1):
        se = max(ref.binomial_se(pmf[k], n_paths), 1.0 / n_paths)
        assert_within(freq[k], pmf[k], se, f"P(D = {k})")
    # probability of loss: junior when any default, senior beyond the junior's width
    first_senior = math.floor(JUNIOR / (lgd * LOAN)) + 1
    for k, threshold in ((0, first_senior), (1, 1)):
        exact = pmf[threshold:].sum()
        hit = (small_pool.tranche_outcomes[:, k, O_LOSS] > 1e-6).mean()
        assert_within(hit, exact, ref.binomial_se(exact, n_paths), f"P(tranche {k} loss)")
        name = small_pool.tranche_names[k]
        assert small_pool.tranches.loc[name, "probability_of_loss"] == pytest.approx(hit, abs=1e-15)


def test_reference_finite_pool_sums_to_one_and_has_mean_p() -> None:
    pmf = ref.finite_pool_distribution(N_SMALL, P_SMALL, RHO_SMALL)
    assert pmf.sum() == pytest.approx(1.0, abs=1e-10)
    assert pmf @ np.arange(N_SMALL + 1) == pytest.approx(N_SMALL * P_SMALL, rel=1e-10)
    # the second factorial moment is N(N-1) x the pairwise joint default probability
    d = np.arange(N_SMALL + 1)
    joint = ref.joint_default_gaussian(P_SMALL, P_SMALL, RHO_SMALL)
    assert pmf @ (d * (d - 1)) == pytest.approx(N_SMALL * (N_SMALL - 1) * joint, rel=1e-6)
    assert joint == pytest.approx(ref.joint_default_gaussian_integral(P_SMALL, P_SMALL, RHO_SMALL), rel=1e-8)


# --------------------------------------------------------------------------- large pool vs Vasicek

N_LARGE, P_LARGE, RHO_LARGE, R_LARGE = 1000, 0.05, 0.2, 0.4
ATTACH = 0.06  # junior [0, 6%], senior [6%, 100%]


@pytest.fixture(scope="module")
def large_pool() -> SimulationResult:
    text = homogeneous_deal(N_LARGE, 1000.0, ATTACH * N_LARGE * 1000.0, P_LARGE, RHO_LARGE, R_LARGE)
    return simulate(compile_text(text), paths=20_000, seed=77, threads=2)


def test_large_pool_tranche_losses_match_vasicek(large_pool: SimulationResult) -> None:
    lgd = 1.0 - R_LARGE
    for name, lo, hi in (("senior", ATTACH, 1.0), ("junior", 0.0, ATTACH)):
        vasicek = ref.vasicek_tranche_loss(lo, hi, P_LARGE, RHO_LARGE, lgd) / (hi - lo)
        finite = ref.finite_pool_tranche_loss(N_LARGE, P_LARGE, RHO_LARGE, lgd / N_LARGE, lo, hi) / (hi - lo)
        row = large_pool.tranches.loc[name]
        el, se = row["expected_loss"], row["expected_loss_se"]
        # the exact finite pool is the yardstick; the Vasicek limit is within granularity of it
        assert_within(el, finite, se, f"{name} expected loss vs the exact 1000-obligor pool")
        assert abs(finite - vasicek) < se, "granularity should be below one standard error here"
        assert abs(el - vasicek) <= K_SE * se + abs(finite - vasicek), f"{name}: {el} vs Vasicek {vasicek}"
    pool = large_pool.pool.iloc[0]
    assert_within(pool["expected_loss"], P_LARGE * lgd, pool["expected_loss_se"], "pool expected loss")


@pytest.mark.parametrize("alpha", [0.95, 0.99])
def test_large_pool_loss_quantile_matches_vasicek(large_pool: SimulationResult, alpha: float) -> None:
    lgd = 1.0 - R_LARGE
    n_paths = large_pool.paths
    loss = large_pool.pool_outcomes[:, P_LOSS_RATE]
    q = ref.vasicek_quantile(alpha, P_LARGE, RHO_LARGE, lgd)
    # exact finite-pool probability of a loss at most q (losses come in steps of lgd / N)
    pmf = ref.finite_pool_distribution(N_LARGE, P_LARGE, RHO_LARGE)
    finite_cdf = pmf[: math.floor(q / lgd * N_LARGE + 1e-9) + 1].sum()
    assert abs(finite_cdf - alpha) < 2e-3, "1000 obligors should be close to the Vasicek limit"
    se = ref.binomial_se(alpha, n_paths)
    assert_within(float((loss <= q).mean()), finite_cdf, se, f"P(L <= Vasicek q{alpha})")
    # the reported quantile sits where the Vasicek distribution puts alpha (order statistics)
    reported = large_pool.pool.iloc[0][f"loss_q{alpha * 100:g}"]
    assert reported == pytest.approx(np.quantile(loss, alpha), abs=1e-15)
    at = ref.vasicek_cdf(reported, P_LARGE, RHO_LARGE, lgd)
    assert abs(at - alpha) <= K_SE * se + abs(finite_cdf - alpha) + lgd / N_LARGE * 5, (
        f"q{alpha}: {reported} (Vasicek CDF there {at})"
    )


# --------------------------------------------------------------------------- marginal PDs

HETERO = [
    "pd: 0.002",
    "pd: 0.01",
    "industry: chips",  # pd 5% from the obligors section (see hetero_deal)
    "grade: A",
    "grade: B, industry: chips, region: north",
    "region: north",  # default_pd
    "pd: 40%",
    "pd: 0.6, industry: bio",
    "pd: 0.8, region: south",
    "pd: 0.95",
    "pd_curve: [0.2, 0.5]",  # one-year horizon: 0.2
    "pd: 0",
]
HETERO_PD = [0.002, 0.01, 0.05, 0.03, 0.15, 0.25, 0.4, 0.6, 0.8, 0.95, 0.2, 0.0]


@pytest.fixture(scope="module")
def hetero() -> CompiledModel:
    text = bitmask_deal(HETERO).replace("pools:", "obligors:\n  - {name: O2, pd: 0.05}\npools:", 1)
    return compile_text(text)


COPULAS = {
    "gaussian": {"correlation": 0.3},
    "factors": {"factors": {"global": 0.4, "industry": 0.5, "region": 0.3}},
    "student_t": {"copula": "student_t", "degrees_of_freedom": 4, "correlation": 0.3},
}


@pytest.mark.parametrize("copula", list(COPULAS))
def test_each_obligor_defaults_with_its_pd(hetero: CompiledModel, copula: str) -> None:
    model = risk(**COPULAS[copula], pd_by_grade={"A": 0.03, "B": 0.15}, default_pd=0.25)
    result = simulate(hetero, paths=20_000, seed=5, threads=2, risk=model)
    d = defaulted(result, len(HETERO))
    for i, p in enumerate(HETERO_PD):
        freq = d[:, i].mean()
        if p == 0.0:
            assert freq == 0.0, f"obligor {i} has pd 0 and defaulted"
        else:
            assert_within(freq, p, ref.binomial_se(p, result.paths), f"{copula}: obligor {i} ({HETERO[i]})")
    # the pool counts defaulted obligors
    assert np.array_equal(result.pool_outcomes[:, P_DEFAULTS], d.sum(axis=1))


def test_pd_curve_and_annual_pd_at_a_horizon_inside_a_year() -> None:
    """Semi-annual grid, legal final after 18 months: constant hazard within each year."""
    fields = ["pd: 0.1", "pd_curve: [0.05, 0.2]", "pd_curve: [0.3]", "pd: 0.02"]
    text = bitmask_deal(fields, frequency="semi-annual", final="2026-07-01")
    result = simulate(compile_text(text), paths=20_000, seed=8, threads=2, risk=risk(correlation=0.2))
    t = (dt.date(2026, 7, 1) - dt.date(2025, 1, 1)).days / 365.0
    expected = [
        ref.cumulative_pd_annual(0.1, [t])[0],
        ref.cumulative_pd_curve([0.05, 0.2], [t])[0],
        ref.cumulative_pd_curve([0.3], [t])[0],  # the last year's hazard continues
        ref.cumulative_pd_annual(0.02, [t])[0],
    ]
    assert expected[2] == pytest.approx(1.0 - 0.7**t)
    d = defaulted(result, len(fields))
    for i, p in enumerate(expected):
        assert_within(d[:, i].mean(), p, ref.binomial_se(p, result.paths), f"obligor {i} ({fields[i]})")


ROYALTY_BASE = 4  # digits of the royalty read-out (years 0..3)


def royalty_digits_deal(pd_fields: list[str], years: int = 3) -> str:
    """Licensee ``i`` pays ``1000 x 4^i`` at the end of each year while it has not defaulted."""
    streams = "\n".join(
        f"      - {{obligor: L{i}, kind: running, rate: 1.0, payment_frequency: annual, "
        f"sales: {{initial: {1000 * ROYALTY_BASE**i}}}, valuation: 1000, {extra}}}"
        for i, extra in enumerate(pd_fields)
    )
    final = f"{2025 + years}-01-01"
    return (
        header("royalty digits", final=final)
        + f"pools:\n  - name: pool\n    royalties:\n{streams}\n"
        + one_tranche_tail(1000.0 * len(pd_fields))
    )


def paid_years(result: SimulationResult, n: int) -> np.ndarray:
    """(paths, n): years each licensee of :func:`royalty_digits_deal` paid (its default period,
    capped at the horizon)."""
    units = result.pool_outcomes[:, P_ROYALTY] / 1000.0
    whole = np.rint(units).astype(np.int64)
    assert np.allclose(whole, units, rtol=0, atol=1e-6), "royalties should be whole units"
    return (whole[:, None] // ROYALTY_BASE ** np.arange(n)[None, :]) % ROYALTY_BASE


def test_default_period_distribution_follows_the_pd_term_structure() -> None:
    """Three annual periods of exactly one year: P(default period <= k) = cumulative PD(k+1)."""
    fields = ["pd_curve: [0.05, 0.12, 0.25]", "pd: 0.1", "pd_curve: [0.1, 0.2]"]
    model = compile_text(royalty_digits_deal(fields))
    assert np.allclose(np.diff(model.grid), 365)
    result = simulate(model, paths=20_000, seed=9, threads=2, risk=risk(correlation=0.25))
    years = paid_years(result, len(fields))
    cum = [
        ref.cumulative_pd_curve([0.05, 0.12, 0.25], [1, 2, 3]),
        ref.cumulative_pd_annual(0.1, [1, 2, 3]),
        ref.cumulative_pd_curve([0.1, 0.2], [1, 2, 3]),
    ]
    assert cum[2][2] == pytest.approx(1.0 - 0.8 * (0.8 / 0.9))
    for i in range(len(fields)):
        for k in range(3):
            freq = (years[:, i] <= k).mean()
            assert_within(freq, cum[i][k], ref.binomial_se(cum[i][k], result.paths), f"licensee {i} year {k}")


# --------------------------------------------------------------------------- joint defaults

N_JOINT, P_JOINT, RHO_JOINT = 10, 0.1, 0.3


@pytest.fixture(scope="module")
def homogeneous_ten() -> CompiledModel:
    return compile_text(bitmask_deal([f"pd: {P_JOINT}"] * N_JOINT))


ALL_PAIRS = [(i, j) for i in range(N_JOINT) for j in range(i + 1, N_JOINT)]


def test_pairwise_joint_default_matches_bivariate_normal(homogeneous_ten: CompiledModel) -> None:
    result = simulate(homogeneous_ten, paths=40_000, seed=31, threads=2, risk=risk(correlation=RHO_JOINT))
    d = defaulted(result, N_JOINT)
    m, se = mean_se(pair_statistic(d, ALL_PAIRS))
    assert_within(m, ref.joint_default_gaussian(P_JOINT, P_JOINT, RHO_JOINT), se, "joint default")
    # and not the independent value
    assert abs(m - P_JOINT**2) > K_SE * se


def test_multi_factor_pairs_have_the_loading_implied_correlation() -> None:
    groups = [("a", "x"), ("a", "y"), ("b", "x"), ("b", "y")]
    fields = [f"pd: 0.1, industry: {ind}, region: {reg}" for ind, reg in groups for _ in range(4)]
    model = compile_text(bitmask_deal(fields))
    g, i_, r_ = 0.4, 0.5, 0.35
    result = simulate(
        model,
        paths=30_000,
        seed=13,
        threads=2,
        risk=risk(factors={"global": g, "industry": i_, "region": r_}),
    )
    d = defaulted(result, len(fields))
    group = [k // 4 for k in range(len(fields))]
    categories: dict[tuple[bool, bool], list[tuple[int, int]]] = {}
    for a in range(len(fields)):
        for b in range(a + 1, len(fields)):
            ga, gb = groups[group[a]], groups[group[b]]
            categories.setdefault((ga[0] == gb[0], ga[1] == gb[1]), []).append((a, b))
    for (same_ind, same_reg), pairs in categories.items():
        corr = g * g + (i_ * i_ if same_ind else 0.0) + (r_ * r_ if same_reg else 0.0)
        m, se = mean_se(pair_statistic(d, pairs))
        what = f"industry {'same' if same_ind else 'different'}, region {'same' if same_reg else 'different'}"
        assert_within(m, ref.joint_default_gaussian(0.1, 0.1, corr), se, what)


def test_student_t_copula_has_fatter_joint_tails(homogeneous_ten: CompiledModel) -> None:
    dof = 4.0
    gauss = simulate(homogeneous_ten, paths=40_000, seed=3, threads=2, risk=risk(correlation=RHO_JOINT))
    t = simulate(
        homogeneous_ten,
        paths=40_000,
        seed=3,
        threads=2,
        risk=risk(copula="student_t", degrees_of_freedom=dof, correlation=RHO_JOINT),
    )
    dt_ = defaulted(t, N_JOINT)
    m, se = mean_se(pair_statistic(dt_, ALL_PAIRS))
    exact = ref.joint_default_student_t(P_JOINT, RHO_JOINT, dof)
    assert exact == pytest.approx(ref.joint_default_student_t_scipy(P_JOINT, RHO_JOINT, dof), rel=1e-3)
    assert_within(m, exact, se, "Student-t joint default")
    # same marginals, more extreme joint defaults than the Gaussian copula
    n = gauss.paths
    extreme = 6
    pg = (gauss.pool_outcomes[:, P_DEFAULTS] >= extreme).mean()
    pt = (t.pool_outcomes[:, P_DEFAULTS] >= extreme).mean()
    exact_g = ref.finite_pool_distribution(N_JOINT, P_JOINT, RHO_JOINT)[extreme:].sum()
    assert_within(pg, exact_g, ref.binomial_se(exact_g, n), "Gaussian P(D >= 6)")
    se_diff = math.sqrt(pg * (1 - pg) / n + pt * (1 - pt) / n)
    assert pt - pg > K_SE * se_diff, f"P(D >= {extreme}): t {pt}, Gaussian {pg}"
    assert exact > ref.joint_default_gaussian(P_JOINT, P_JOINT, RHO_JOINT)


# --------------------------------------------------------------------------- recoveries

SOLO_DEAL = (
    header("one amortising loan", first="2025-04-01", frequency="quarterly", final="2027-01-01")
    + """pools:
  - name: pool
    loans:
      - {obligor: Solo, balance: 8m, rate: 6%, term_months: 24, amortisation: equal_principal,
         payment_frequency: quarterly, pledged_ip: {appraised_value: 4m}}
"""
    + one_tranche_tail(8e6)
)


@pytest.fixture(scope="module")
def solo() -> CompiledModel:
    return compile_text(SOLO_DEAL)


@pytest.mark.parametrize("lag", [0, 6, 7])
def test_default_timing_exposure_and_recovery_lag(solo: CompiledModel, lag: int) -> None:
    """One equal-principal loan (8m, 1m a quarter): the default period, its exposure (the
    performing balance at the start of the period), and the recovery ``lag`` months later,
    lost when that falls after legal final."""
    rate, pd_annual, n_t = 0.5, 0.4, 8
    det = api.run(solo, "base").periods
    start = det["pool.balance_start"].to_numpy()
    np.testing.assert_allclose(start, 8e6 - 1e6 * np.arange(n_t))
    model = risk(correlation=0.2, default_pd=pd_annual, recovery={"rate": rate, "lag_months": lag})
    result = simulate(solo, paths=20_000, seed=21, threads=2, risk=model)
    exposure = result.pool_outcomes[:, P_DEFAULT_RATE] * 8e6
    tau = np.full(result.paths, n_t)
    for t in range(n_t):
        tau[np.abs(exposure - start[t]) < 1e-6] = t
    assert np.all((tau < n_t) | (exposure == 0.0)), "every exposure is a start-of-period balance"
    # timing: P(default period = t) from the cumulative PD at the period ends
    times = (solo.grid[1:] - solo.grid[0]) / 365.0
    cum = np.concatenate([[0.0], ref.cumulative_pd_annual(pd_annual, times)])
    for t in range(n_t + 1):
        p = 1.0 - cum[-1] if t == n_t else cum[t + 1] - cum[t]
        freq = (tau == t).mean()
        assert_within(freq, p, ref.binomial_se(p, result.paths), f"P(default in period {t + 1})")
    # loss: the exposure less the recovery, unless the recovery falls after legal final
    shift = math.ceil(lag / 3)
    recovered = np.where(tau + shift <= n_t - 1, rate, 0.0)
    expected_loss = np.where(tau < n_t, exposure * (1.0 - recovered), 0.0)
    np.testing.assert_allclose(result.pool_outcomes[:, P_LOSS_RATE] * 8e6, expected_loss, rtol=0, atol=1e-4)
    # the full tables of a few paths
    keep = [int(np.argmax(tau == t)) for t in (0, 3, n_t - 2, n_t - 1, n_t) if (tau == t).any()]
    assert len(keep) == 5
    again = simulate(solo, paths=max(keep) + 1, seed=21, threads=1, risk=model, keep=keep)
    for i in keep:
        p = again.kept[i].periods
        k = tau[i]
        defaults = np.zeros(n_t)
        recovery = np.zeros(n_t)
        interest = det["pool.interest"].to_numpy().copy()
        principal = det["pool.scheduled_principal"].to_numpy().copy()
        if k < n_t:
            defaults[k] = start[k]
            if k + shift < n_t:
                recovery[k + shift] = rate * start[k]
            interest[k:] = 0.0
            principal[k:] = 0.0
        for name, want in (
            ("defaults", defaults),
            ("recovery", recovery),
            ("interest", interest),
            ("scheduled_principal", principal),
        ):
            np.testing.assert_allclose(
                p[f"pool.{name}"], want, rtol=0, atol=CENT, err_msg=f"path {i}: {name}"
            )


def single_loan(appraisal: float | None) -> CompiledModel:
    ip = f", pledged_ip: {{appraised_value: {appraisal:.0f}}}" if appraisal is not None else ""
    text = (
        header("one loan")
        + "pools:\n  - name: pool\n    loans:\n"
        + f"      - {{obligor: One, balance: 1m, rate: 0, term_months: 12, amortisation: bullet, "
        f"payment_frequency: annual{ip}}}\n" + one_tranche_tail(1e6)
    )
    return compile_text(text)


def recoveries(model: CompiledModel, recovery: dict[str, Any], paths: int = 20_000) -> np.ndarray:
    """Recovered amount on each path where the loan (1m, pd 50%) defaulted (lag 0)."""
    result = simulate(
        model,
        paths=paths,
        seed=17,
        threads=2,
        risk=risk(default_pd=0.5, recovery={**recovery, "lag_months": 0}),
    )
    pool = result.pool_outcomes
    hit = pool[:, P_DEFAULT_RATE] > 0
    assert np.all(pool[hit, P_DEFAULT_RATE] == 1.0)
    assert_within(float(hit.mean()), 0.5, ref.binomial_se(0.5, paths), "share of paths in default")
    return (pool[hit, P_DEFAULT_RATE] - pool[hit, P_LOSS_RATE]) * 1e6


M_V, S_V = 0.4, 0.5  # value factor: mean and sd of log


def test_lognormal_recovery_mean_is_value_mean_times_appraisal() -> None:
    appraisal = 10_000.0  # far below the 1m exposure: never capped
    rec = recoveries(
        single_loan(appraisal), {"model": "lognormal", "value_mean": M_V, "value_dispersion": S_V}
    )
    m, se = mean_se(rec)
    assert_within(m, M_V * appraisal, se, "mean recovery")
    logs = np.log(rec / appraisal)
    sd_se = S_V / math.sqrt(2 * len(rec))
    assert_within(float(logs.std(ddof=1)), S_V, sd_se, "sd of log value")
    assert_within(
        float(logs.mean()), math.log(M_V) - 0.5 * S_V**2, S_V / math.sqrt(len(rec)), "mean log value"
    )


def test_lognormal_recovery_with_disposal_cost_and_cap() -> None:
    spec = {"model": "lognormal", "value_mean": M_V, "value_dispersion": S_V}
    # disposal cost: E[max(V - c, 0)] x appraisal
    small = 10_000.0
    rec = recoveries(single_loan(small), {**spec, "disposal_cost": 0.2})
    m, se = mean_se(rec)
    assert_within(m, small * ref.lognormal_call(M_V, S_V, 0.2), se, "recovery net of disposal cost")
    assert (rec == 0.0).mean() > 0.05, "values below the cost recover nothing"
    # capped at the exposure: E[min(A V, 1m)] = A (m - E[max(V - 1m/A, 0)])
    big = 2_500_000.0
    rec = recoveries(single_loan(big), spec)
    m, se = mean_se(rec)
    assert rec.max() == pytest.approx(1e6, abs=1e-6)
    assert_within(m, big * (M_V - ref.lognormal_call(M_V, S_V, 1e6 / big)), se, "capped recovery")


def test_beta_and_constant_recoveries() -> None:
    appraisal = 10_000.0
    with_ip = single_loan(appraisal)
    rec = recoveries(with_ip, {"model": "beta", "value_mean": M_V, "value_dispersion": 0.2})
    m, se = mean_se(rec)
    assert_within(m, M_V * appraisal, se, "beta mean recovery")
    sd = float(rec.std(ddof=1))
    assert_within(sd, 0.2 * appraisal, 0.2 * appraisal * math.sqrt(1.0 / len(rec)), "beta recovery sd")
    assert rec.min() >= 0.0 and rec.max() <= appraisal
    # constant: rate x exposure whatever the IP is worth
    rec = recoveries(with_ip, {"model": "constant", "rate": 0.3}, paths=2000)
    np.testing.assert_allclose(rec, 0.3e6, rtol=0, atol=1e-6)
    # an asset without pledged IP recovers the constant rate under any model
    rec = recoveries(single_loan(None), {"model": "lognormal", "rate": 0.3, "value_mean": 0.9}, paths=2000)
    np.testing.assert_allclose(rec, 0.3e6, rtol=0, atol=1e-6)


@pytest.fixture(scope="module")
def wrong_way_pool() -> CompiledModel:
    loans = "\n".join(
        f"      - {{obligor: W{i}, balance: 1000, rate: 0, term_months: 12, amortisation: bullet, "
        "payment_frequency: annual, pledged_ip: {appraised_value: 1000}}"
        for i in range(200)
    )
    return compile_text(
        header("wrong way") + f"pools:\n  - name: pool\n    loans:\n{loans}\n" + one_tranche_tail(2e5)
    )


def recovery_gap(model: CompiledModel, loading: float) -> tuple[float, float]:
    """Mean recovery per default on low-default paths less that on high-default paths, with SE."""
    result = simulate(
        model,
        paths=8000,
        seed=44,
        threads=2,
        risk=risk(
            correlation=0.4,
            default_pd=0.1,
            recovery={
                "model": "lognormal",
                "value_mean": 0.4,
                "value_dispersion": 0.5,
                "systematic_loading": loading,
                "lag_months": 0,
            },
        ),
    )
    pool = result.pool_outcomes
    d = pool[:, P_DEFAULTS]
    some = d > 0
    rate = (pool[some, P_DEFAULT_RATE] - pool[some, P_LOSS_RATE]) / pool[some, P_DEFAULT_RATE]
    high = d[some] > np.median(d[some])
    (m_lo, se_lo), (m_hi, se_hi) = mean_se(rate[~high]), mean_se(rate[high])
    return m_lo - m_hi, math.hypot(se_lo, se_hi)


def test_wrong_way_recovery_is_lower_when_defaults_are_high(wrong_way_pool: CompiledModel) -> None:
    gap, se = recovery_gap(wrong_way_pool, 0.8)
    assert gap > K_SE * se, f"recovery gap {gap} (se {se})"
    gap0, se0 = recovery_gap(wrong_way_pool, 0.0)
    assert abs(gap0) <= K_SE * se0, f"no loading, yet recovery gap {gap0} (se {se0})"


# --------------------------------------------------------------------------- royalties

ROYALTY_DEAL = (
    header("royalty", first="2025-04-01", frequency="quarterly", final="2028-01-01")
    + """pools:
  - name: licences
    royalties:
      - {obligor: Licensee, grade: L, kind: running, rate: 5%, payment_frequency: quarterly,
         sales: {initial: 10m, growth: 5%}, valuation: 2m}
  - name: loans
    loans:
"""
    + "\n".join(
        f"      - {{obligor: B{i}, balance: 100k, rate: 4%, term_months: 36, payment_frequency: quarterly}}"
        for i in range(50)
    )
    + "\n"
    + one_tranche_tail(7e6)
)


@pytest.fixture(scope="module")
def royalty_deal() -> tuple[CompiledModel, np.ndarray, np.ndarray]:
    """The model, the deterministic royalty paid each quarter (= accrued that quarter) and the
    years from the stream's start to the middle of each quarter."""
    model = compile_text(ROYALTY_DEAL)
    paid = api.run(model, "base").periods["pool.royalty"].to_numpy()
    grid = model.grid.astype(np.float64)
    mid = ((grid[:-1] + grid[1:]) / 2.0 - grid[0]) / 365.0
    return model, paid, mid


def royalty_risk(**royalty: Any) -> dict[str, Any]:
    return {"royalty": royalty, "correlation": 0.3}


def test_royalty_volatility_keeps_the_mean_and_has_brownian_covariance(
    royalty_deal: tuple[CompiledModel, np.ndarray, np.ndarray],
) -> None:
    model, paid, mid = royalty_deal
    sigma = 0.35
    result = simulate(
        model,
        paths=20_000,
        seed=61,
        threads=2,
        risk=risk(
            **royalty_risk(volatility=sigma, systematic_loading=0.6), pd_by_grade={"L": 0.0}, default_pd=0.1
        ),
    )
    x = result.pool_outcomes[:, P_ROYALTY]
    m, se = mean_se(x)
    assert_within(m, paid.sum(), se, "mean royalty")
    # Var(sum a_t F_t) with F_t = exp(sigma W_t - sigma^2 t / 2): Cov(F_s, F_t) = e^(sigma^2 min) - 1
    cov = np.exp(sigma**2 * np.minimum.outer(mid, mid)) - 1.0
    var = float(paid @ cov @ paid)
    sq = (x - m) ** 2
    assert_within(
        float(sq.mean()) * len(x) / (len(x) - 1), var, float(sq.std(ddof=1) / math.sqrt(len(x))), "var"
    )
    # wrong-way: low royalties come with high defaults (both driven by the global factor)
    corr = np.corrcoef(x, result.pool_outcomes[:, P_DEFAULT_RATE])[0, 1]
    assert corr < -K_SE / math.sqrt(len(x)), f"royalty/default correlation {corr}"


def test_royalty_without_systematic_loading_is_independent_of_defaults(
    royalty_deal: tuple[CompiledModel, np.ndarray, np.ndarray],
) -> None:
    model, _, _ = royalty_deal
    result = simulate(
        model,
        paths=20_000,
        seed=62,
        threads=2,
        risk=risk(**royalty_risk(volatility=0.35), pd_by_grade={"L": 0.0}, default_pd=0.1),
    )
    corr = np.corrcoef(result.pool_outcomes[:, P_ROYALTY], result.pool_outcomes[:, P_DEFAULT_RATE])[0, 1]
    assert abs(corr) <= K_SE / math.sqrt(result.paths), f"royalty/default correlation {corr}"


def test_invalidation_hazard_cuts_royalties_by_the_expected_factor(
    royalty_deal: tuple[CompiledModel, np.ndarray, np.ndarray],
) -> None:
    model, paid, mid = royalty_deal
    hazard, cut = 0.15, 0.6
    result = simulate(
        model,
        paths=20_000,
        seed=63,
        threads=2,
        risk=risk(
            **royalty_risk(invalidation_hazard=hazard, invalidation_cut=cut),
            pd_by_grade={"L": 0.0},
            default_pd=0.0,
        ),
    )
    x = result.pool_outcomes[:, P_ROYALTY]
    expected = float(paid @ (1.0 - cut * (1.0 - (1.0 - hazard) ** mid)))
    m, se = mean_se(x)
    assert_within(m, expected, se, "mean royalty under invalidation")
    # each path: full payments until the invalidation, (1 - cut) of them after
    n_t = len(paid)
    outcomes = np.array([paid[:k].sum() + (1.0 - cut) * paid[k:].sum() for k in range(n_t + 1)])
    nearest = np.abs(x[:, None] - outcomes[None, :]).min(axis=1)
    assert nearest.max() < 1e-6
    # no cut at all when the invalidation comes after the last accrual's mid-point
    untouched = (1.0 - hazard) ** mid[-1]
    share = float((np.abs(x - paid.sum()) < 1e-6).mean())
    assert_within(share, untouched, ref.binomial_se(untouched, len(x)), "share of paths never cut")


def test_licensee_default_stops_royalties(royalty_deal: tuple[CompiledModel, np.ndarray, np.ndarray]) -> None:
    model, paid, _ = royalty_deal
    p = 0.2
    result = simulate(
        model,
        paths=20_000,
        seed=64,
        threads=2,
        risk=risk(**royalty_risk(), pd_by_grade={"L": p}, default_pd=0.0),
    )
    x = result.pool_outcomes[:, P_ROYALTY]
    times = (model.grid[1:] - model.grid[0]) / 365.0
    expected = float(paid @ (1.0 - p) ** times)  # paid in period t while not defaulted by its end
    m, se = mean_se(x)
    assert_within(m, expected, se, "mean royalty with licensee defaults")
    prefix = np.concatenate([[0.0], np.cumsum(paid)])
    k = np.abs(x[:, None] - prefix[None, :]).argmin(axis=1)
    assert np.allclose(x, prefix[k], rtol=0, atol=1e-6), "royalties stop for good at the default"
    # the licensee counts as a defaulted obligor exactly when its payments stopped early
    assert np.array_equal(result.pool_outcomes[:, P_DEFAULTS] == 1, k < len(paid))
    cum_horizon = 1.0 - (1.0 - p) ** times[-1]
    assert_within(
        (k < len(paid)).mean(), cum_horizon, ref.binomial_se(cum_horizon, result.paths), "P(default)"
    )


# --------------------------------------------------------------------------- reproducibility

RICH_RISK = risk(
    copula="student_t",
    degrees_of_freedom=6,
    factors={"global": 0.4, "industry": 0.4, "region": 0.3},
    default_pd=0.15,
    prepayment={"cpr": 0.05},
    recovery={"model": "lognormal", "value_mean": 0.3, "value_dispersion": 0.6, "systematic_loading": 0.5},
    royalty={
        "volatility": 0.3,
        "systematic_loading": 0.4,
        "invalidation_hazard": 0.1,
        "invalidation_cut": 0.5,
    },
)


def outcome_bytes(result: SimulationResult) -> tuple[bytes, bytes]:
    return result.tranche_outcomes.tobytes(), result.pool_outcomes.tobytes()


def test_results_do_not_depend_on_threads_or_batches(rich: CompiledModel) -> None:
    base = simulate(rich, paths=3000, seed=99, threads=1, risk=RICH_RISK)
    assert base.pool_outcomes[:, P_DEFAULTS].mean() > 0.1, "the risk model should produce defaults"
    assert np.ptp(base.pool_outcomes[:, P_ROYALTY]) > 0.0
    for threads, batch in ((2, 257), (3, 1000), (2, None)):
        other = simulate(rich, paths=3000, seed=99, threads=threads, batch_size=batch, risk=RICH_RISK)
        assert outcome_bytes(other) == outcome_bytes(base), f"threads {threads}, batch {batch}"
    # path i depends on (seed, i) only
    head = simulate(rich, paths=1000, seed=99, threads=2, risk=RICH_RISK)
    assert head.tranche_outcomes.tobytes() == base.tranche_outcomes[:1000].tobytes()
    # another seed: other outcomes, not a permutation of the same ones
    other = simulate(rich, paths=3000, seed=100, threads=2, risk=RICH_RISK)
    assert not np.array_equal(other.pool_outcomes, base.pool_outcomes)
    assert not np.array_equal(
        np.sort(other.pool_outcomes[:, P_ROYALTY]), np.sort(base.pool_outcomes[:, P_ROYALTY])
    )


def test_bad_batch_size_is_a_user_error(rich: CompiledModel) -> None:
    with pytest.raises(IpabsError, match="batch"):
        simulate(rich, paths=10, seed=1, batch_size=-5, risk=RICH_RISK)


def test_kept_paths_equal_their_outcome_rows(rich: CompiledModel) -> None:
    keep = [0, 123, 1999]
    result = simulate(rich, paths=2000, seed=7, threads=2, risk=RICH_RISK, keep=keep)
    times = (rich.grid[1:] - rich.grid[0]) / 365.0
    orig_pool = float(rich.cd.original_pool_balance)
    assert sorted(result.kept) == keep
    for i, kept in result.kept.items():
        assert kept.scenario == f"path {i} (seed 7)"
        periods = kept.periods
        for k, name in enumerate(result.tranche_names):
            row = result.tranche_outcomes[i, k]
            s = kept.summary.loc[name]
            assert row[O_PRINCIPAL_LOSS] == s["principal_loss"]
            assert row[O_INTEREST_SHORTFALL] == s["interest_shortfall"]
            assert row[O_LOSS] == s["loss"]
            assert row[O_DISCOUNTED_LOSS] == pytest.approx(s["discounted_loss"], rel=1e-12, abs=1e-9)
            assert row[O_WAL] == pytest.approx(s["wal_years"], rel=1e-14, nan_ok=True)
            assert row[O_YIELD] == pytest.approx(s["yield"], rel=1e-12, nan_ok=True)
            cash = (
                periods[f"{name}.interest_paid"]
                + periods[f"{name}.principal_paid"]
                + periods[f"{name}.residual_paid"]
            ).to_numpy()
            pv = present_value(times, cash, float(rich.cd.tr_rate[k, 0]), 4)
            assert row[O_PV_RECEIVED] == pytest.approx(pv, rel=1e-12)
        pool = result.pool_outcomes[i]
        assert pool[P_DEFAULT_RATE] == pytest.approx(
            periods["pool.defaults"].sum() / orig_pool, rel=1e-12, abs=1e-15
        )
        assert pool[P_LOSS_RATE] == pytest.approx(
            periods["pool.loss"].sum() / orig_pool, rel=1e-12, abs=1e-15
        )
        assert pool[P_ROYALTY] == pytest.approx(periods["pool.royalty"].sum(), rel=1e-12)
    assert len(TRANCHE_OUTCOMES) == result.tranche_outcomes.shape[2]
    assert len(POOL_OUTCOMES) == result.pool_outcomes.shape[1]


# --------------------------------------------------------------------------- support provider default

N_SUPPORT_PERIODS = 8
SUPPORT_DEAL = (
    header("deficiency support", first="2025-04-01", frequency="quarterly", final="2027-01-01")
    + """obligors:
  - {name: Provider, pd: 0.3}
pools:
  - name: pool
    loans:
      - {obligor: Borrower, pd: 0, balance: 10m, rate: 2%, term_months: 24, payment_frequency: quarterly}
scenarios:
  base: {}
"""
    + "".join(
        f"  provider_{k}:\n    defaults: {{obligors: {{Provider: {k}}}}}\n"
        for k in range(1, N_SUPPORT_PERIODS + 1)
    )
    + """tranches:
  - {name: senior, balance: 10m, coupon: 6%}
support:
  - {name: keepwell, kind: deficiency_payment, provider: Provider}
risk:
  correlation: 0.2
waterfalls:
  normal:
    - pay_interest: senior
    - draw: {from: keepwell, covers: [senior.interest]}
    - pay_principal: senior
    - draw: {from: keepwell, covers: [senior.principal]}
"""
)


def test_defaulted_support_provider_pays_nothing_from_its_default_period() -> None:
    """The senior coupon (6%) exceeds the loan's (2%): the provider covers the difference every
    quarter while it has not defaulted. Each path equals the deterministic scenario in which the
    provider defaults in the same period."""
    model = compile_text(SUPPORT_DEAL)
    names = ["base", *(f"provider_{k}" for k in range(1, N_SUPPORT_PERIODS + 1))]
    runs = {name: api.run(model, name) for name in names}
    assert runs["base"].periods["keepwell.draw"].gt(0).all()
    assert runs["base"].summary.loc["senior", "loss"] == 0.0
    losses = np.array([runs[n].summary.loc["senior", "loss"] for n in names])
    assert len(np.unique(np.round(losses, 2))) == len(names), "each default period gives its own loss"
    result = simulate(model, paths=20_000, seed=5, threads=2)
    loss = result.tranche_outcomes[:, 0, O_LOSS]
    match = np.abs(loss[:, None] - losses[None, :]).argmin(axis=1)
    assert np.allclose(loss, losses[match], rtol=0, atol=CENT), "every path is one of the scenarios"
    tau = np.where(match == 0, N_SUPPORT_PERIODS, match - 1)  # provider's default period (0-based)
    times = (model.grid[1:] - model.grid[0]) / 365.0
    cum = np.concatenate([[0.0], ref.cumulative_pd_annual(0.3, times)])
    for t in range(N_SUPPORT_PERIODS + 1):
        p = 1.0 - cum[-1] if t == N_SUPPORT_PERIODS else cum[t + 1] - cum[t]
        assert_within(
            (tau == t).mean(), p, ref.binomial_se(p, result.paths), f"provider default in period {t + 1}"
        )
    keep = [int(np.argmax(tau == t)) for t in (0, 2, 5, N_SUPPORT_PERIODS)]
    kept = simulate(model, paths=max(keep) + 1, seed=5, threads=1, keep=keep).kept
    for i in keep:
        name = names[0] if tau[i] == N_SUPPORT_PERIODS else names[tau[i] + 1]
        assert_periods_equal(kept[i].periods, runs[name].periods, f"path {i} vs scenario {name}")
        draws = kept[i].periods["keepwell.draw"].to_numpy()
        assert np.all(draws[tau[i] :] == 0.0) and np.all(draws[: tau[i]] > 0.0)


# --------------------------------------------------------------------------- bad inputs

VALIDATION_DEAL = (
    header("validation")
    + """pools:
  - name: pool
    loans:
      - {obligor: A, balance: 1m, rate: 0.05, term_months: 12, LOAN_EXTRA}
tranches:
  - {name: notes, balance: 1m}
risk:
  RISK_LINE
waterfalls:
  normal:
    - pay_interest: notes
    - pay_principal: notes
"""
)


def validation_text(risk_line: str, loan_extra: str = "pd: 0.02") -> str:
    return VALIDATION_DEAL.replace("RISK_LINE", risk_line).replace("LOAN_EXTRA", loan_extra)


@pytest.mark.parametrize(
    ("risk_line", "loan_extra", "marker", "path"),
    [
        ("correlation: 1.0", "pd: 0.02", "correlation: 1.0", "risk.correlation"),
        ("correlation: -0.1", "pd: 0.02", "correlation: -0.1", "risk.correlation"),
        ("correlation: 0.2", "pd: 1.0", "pd: 1.0", "pools[0].loans[0].pd"),
        ("royalty: {volatility: -0.2}", "pd: 0.02", "volatility: -0.2", "risk.royalty.volatility"),
        ("factors: {global: 0.8, industry: 0.7}", "pd: 0.02", "factors:", "risk.factors"),
        ("copula: student_t\n  correlation: 0.2", "pd: 0.02", "copula: student_t", "risk"),
        (
            "copula: student_t\n  degrees_of_freedom: 2",
            "pd: 0.02",
            "degrees_of_freedom: 2",
            "risk.degrees_of_freedom",
        ),
        (
            "recovery: {model: beta, value_mean: 0.4, value_dispersion: 0.6}",
            "pd: 0.02",
            "recovery:",
            "risk.recovery",
        ),
        ("default_pd: 1.5", "pd: 0.02", "default_pd: 1.5", "risk.default_pd"),
        ("recovery: {lag_months: -3}", "pd: 0.02", "lag_months: -3", "risk.recovery.lag_months"),
    ],
)
def test_bad_risk_inputs_are_located_errors(risk_line: str, loan_extra: str, marker: str, path: str) -> None:
    text = validation_text(risk_line, loan_extra)
    with pytest.raises(DealError) as info:
        parse_deal(text, file="deal.yaml")
    lines = text.splitlines()
    where = [n + 1 for n, line in enumerate(lines) if marker in line]
    assert len(where) == 1, marker
    issues = info.value.issues
    assert any(i.path == path for i in issues), [str(i) for i in issues]
    issue = next(i for i in issues if i.path == path)
    assert issue.file == "deal.yaml"
    # located on the offending line (a whole-section problem: on the section's key or first line)
    assert issue.line in (where[0], where[0] - 1) if path == "risk" else issue.line == where[0], str(issue)
    assert issue.column > 0
    assert str(issue).startswith(f"deal.yaml:{issue.line}:{issue.column}: {path}")


def test_a_valid_variant_of_the_validation_deal_runs() -> None:
    result = simulate(compile_text(validation_text("correlation: 0.2")), paths=200, seed=1, threads=1)
    assert result.paths == 200


def test_missing_pd_names_the_obligor() -> None:
    text = validation_text("correlation: 0.2", "industry: chips").replace(
        "      - {obligor: A,",
        "      - {obligor: Unrated-Co, balance: 2m, rate: 0.05, term_months: 12}\n      - {obligor: A,",
    )
    model = compile_text(text.replace("balance: 1m}", "balance: 3m}"))
    with pytest.raises(IpabsError) as info:
        simulate(model, paths=10, seed=1)
    assert not isinstance(info.value, DealError)
    message = str(info.value)
    assert re.search(r"\bUnrated-Co\b", message) and re.search(r"\bA\b", message), message
    # a default_pd fills the gap
    assert simulate(model, paths=10, seed=1, risk=risk(correlation=0.2, default_pd=0.01)).paths == 10


def test_unknown_grade_names_the_obligor_and_grade() -> None:
    model = compile_text(validation_text("correlation: 0.2", "grade: BB"))
    with pytest.raises(IpabsError, match=r"'A'.*'BB'"):
        simulate(model, paths=10, seed=1, risk=risk(correlation=0.2, pd_by_grade={"AA": 0.01}))
    assert simulate(model, paths=10, seed=1, risk=risk(correlation=0.2, pd_by_grade={"BB": 0.05})).paths == 10
