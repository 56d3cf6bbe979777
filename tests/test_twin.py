"""The compiled kernels and their pure-Python twin (NUMBA_DISABLE_JIT=1) agree."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import ipabs
from ipabs.api import run

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = sorted((ROOT / "scenarios").glob("*.yaml"))

TWIN_SCRIPT = """
import sys, numpy as np, numba
assert numba.config.DISABLE_JIT
import ipabs
from ipabs.api import run
deal = ipabs.load_deal(sys.argv[1])
out = {}
for name in deal.spec.scenarios:
    r = run(deal, name)
    for field, arr in r.tables._asdict().items():
        out[f"{name}/{field}"] = arr
    out[f"{name}/collections"] = r.collections
np.savez(sys.argv[2], **out)
"""


@pytest.mark.slow
@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_python_twin_matches_compiled(path: Path, tmp_path: Path) -> None:
    target = tmp_path / "twin.npz"
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1", "PYTHONWARNINGS": "error"}
    subprocess.run([sys.executable, "-c", TWIN_SCRIPT, str(path), str(target)], check=True, env=env, cwd=ROOT)
    twin = np.load(target)
    deal = ipabs.load_deal(path)
    for name in deal.spec.scenarios:
        r = run(deal, name)
        arrays = {**r.tables._asdict(), "collections": r.collections}
        for field, arr in arrays.items():
            # the same arithmetic in the same order: equal to rounding noise
            np.testing.assert_allclose(
                arr, twin[f"{name}/{field}"], rtol=1e-12, atol=1e-7, err_msg=f"{name}/{field}"
            )


def test_scenarios_are_shipped() -> None:
    assert len(SCENARIOS) >= 5, "the project ships at least five scenario deals"


MC_TWIN_SCRIPT = """
import sys, warnings, numpy as np, numba
assert numba.config.DISABLE_JIT
# xoshiro256** and SplitMix64 rely on 64-bit wrap-around; NumPy's scalar arithmetic wraps too
# but warns about it, which is the intended behaviour here
warnings.filterwarnings("ignore", message="overflow encountered in scalar", category=RuntimeWarning)
from ipabs.montecarlo import simulate
sys.path.insert(0, "tests")
from test_twin import twin_sampling
r = simulate(sys.argv[1], paths=int(sys.argv[3]), seed=11, sampling=twin_sampling(sys.argv[1], sys.argv[4]))
np.savez(sys.argv[2], tranche=r.tranche_outcomes, pool=r.pool_outcomes)
"""


def twin_sampling(deal: str, kind: str) -> object:
    """Plain sampling, or importance sampling with every device on: a factor shift, a count
    twist, per-group tilts and the defensive mixture."""
    from ipabs.analytics.importance import Sampling
    from ipabs.api import _model
    from ipabs.risk.model import compile_risk

    arrays = compile_risk(_model(deal))
    if kind == "plain":
        return Sampling("plain", np.zeros(arrays.n_factors))
    n_groups = arrays.g_threshold.shape[0]
    return Sampling(
        "importance",
        np.full(arrays.n_factors, -0.7),
        twist=2.0,
        alpha=0.2,
        tilt=np.linspace(0.0, 1.5, n_groups),
    )


MC_DEAL = """
deal: {name: twin, closing_date: 2025-01-15, first_payment_date: 2025-04-15,
       payment_frequency: quarterly, legal_final_date: 2027-01-15}
obligors: [{name: Group, pd: 0.02, region: park}]
pools:
  - name: p
    loans:
      - {obligor: A, balance: 6m, rate: 6%, term_months: 12, pd: 0.2, industry: bio, region: park,
         pledged_ip: {appraised_value: 20m}, guarantee: {guarantor: Group, share: 0.5}}
      - {obligor: B, balance: 4m, rate: 6.5%, term_months: 12, amortisation: annuity, pd: 0.3,
         industry: ai, region: park}
      - {obligor: C, balance: 5m, rate: 6.5%, term_months: 18, pd: 0.25, industry: ai, region: park,
         pledged_ip: {appraised_value: 10m}}
    royalties:
      - {obligor: D, kind: running, rate: 5%, sales: {initial: 10m, growth: 3%}, minimum: 100000,
         pd: 0.1, valuation: 1m}
tranches:
  - {name: senior, balance: 12m, coupon: 3.5%}
  - {name: sub, balance: 3m}
accounts: [{name: reserve, initial: 200000, target: 200000}]
support: [{name: dpu, kind: deficiency_payment, provider: Group, cap_total: 2m}]
risk:
  copula: student_t
  degrees_of_freedom: 6
  factors: {global: 0.4, industry: 0.3, region: 0.2}
  recovery: {model: beta, value_mean: 0.3, value_dispersion: 0.2, systematic_loading: 0.4, lag_months: 6}
  royalty: {volatility: 0.3, systematic_loading: 0.4, invalidation_hazard: 0.1, invalidation_cut: 0.5}
  delinquency: {roll_rates: [5%, 40%, 50%, 50%], cure_rates: [30%, 20%, 10%]}
servicer_advances: {servicer: Group, principal: true}
revolving:
  periods: 3
  templates:
    - {name: new, share: 100%, loan_size: 1m, rate: 6%, term_months: 6, pd: 0.25, industry: ai,
       region: park, appraisal_ratio: 2}
ledgers: {recoveries: {principal: 80%}, principal_deficiency_debits: [defaults]}
loss_allocation: {method: write_down, at: liquidation}
waterfalls:
  normal:
    income:
      - pay_interest: senior
      - draw: {from: reserve, covers: senior.interest}
      - to_principal: all
    principal:
      - pay_interest: senior
      - draw: {from: dpu, covers: [senior.interest, senior.principal]}
      - buy_assets: all
      - pay_principal: senior
      - pay_residual: sub
"""


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["plain", "importance"])
def test_monte_carlo_python_twin_matches_compiled(tmp_path: Path, kind: str) -> None:
    from ipabs.montecarlo import simulate

    deal = tmp_path / "twin.yaml"
    deal.write_text(MC_DEAL, encoding="utf-8")
    target = tmp_path / "twin.npz"
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1"}
    subprocess.run(
        [sys.executable, "-c", MC_TWIN_SCRIPT, str(deal), str(target), "60", kind],
        check=True,
        env=env,
        cwd=ROOT,
    )
    twin = np.load(target)
    compiled = simulate(deal, paths=60, seed=11, sampling=twin_sampling(str(deal), kind))
    if kind == "importance":
        assert len(set(compiled.weights.round(12))) > 10, "the twin check needs weighted paths"
    assert compiled.pool_outcomes[:, 2].sum() > 0, "the twin check needs paths with defaults"
    np.testing.assert_allclose(compiled.tranche_outcomes, twin["tranche"], rtol=1e-12, atol=1e-7)
    np.testing.assert_allclose(compiled.pool_outcomes, twin["pool"], rtol=1e-12, atol=1e-9)
