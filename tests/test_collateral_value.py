"""The collateral value (`collateral_value`): the pledged IP of performing loans and the royalty
catalogues, at the start of each period. Hand-computed to the cent in scenarios, the Monte
Carlo against the deterministic run and against its own defaults path by path, a loan-to-value
trigger on it, located errors and the pure-Python twin."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import assert_cents, assert_conserved, col, collections_of, compile_text, run_text
from test_montecarlo import assert_periods_equal

from ipabs.deal.load import parse_deal
from ipabs.errors import DealError
from ipabs.montecarlo import run_path, simulate
from ipabs.risk.model import compile_risk

ROOT = Path(__file__).resolve().parents[1]

# Annual periods on 30/360. Two bullet loans: A (60, IP appraised at 90) for five years and
# B (40, IP appraised at 50) for three. The senior note (80) amortises to 75, 70, 65, 60, 0.
LOANS = """
deal:
  name: collateral value
  closing_date: 2025-01-01
  first_payment_date: 2026-01-01
  payment_frequency: annual
  legal_final_date: 2030-01-01
  day_count: 30/360
pools:
  - name: p
    loans:
      - {obligor: A, balance: 60, rate: 12%, term_months: 60, payment_frequency: annual,
         day_count: 30/360, pledged_ip: {appraised_value: 90}PD}
      - {obligor: B, balance: 40, rate: 12%, term_months: 36, payment_frequency: annual,
         day_count: 30/360, pledged_ip: {appraised_value: 50}PD}
scenarios:
  base: {}
  b_defaults:
    defaults: {obligors: {B: 2}}
  cdr:
    defaults: {cdr: 10%}
    prepayment: {cpr: 5%}
tranches:
  - {name: senior, balance: 80, coupon: 5%, amortisation_schedule: [75, 70, 65, 60, 0]}
  - {name: sub, balance: 20}
triggers:
  - {name: ltv, kind: loan_to_value, tranches: [senior], threshold: 80%,
     valuation: {share: 100%, of: collateral_value}, effect: {sequential: true}}
waterfalls:
  normal:
    - pay_interest: senior
    - pay_principal: {tranches: [senior], limit: due}
    - pay_residual: sub
RISK"""


def _loans(pd: str = "", risk: str = "") -> str:
    return LOANS.replace("PD", pd).replace("RISK", risk)


def test_a_named_default_takes_the_pledged_ip_out_from_the_next_period() -> None:
    model = compile_text(_loans())
    # base: both pledges until B matures after period 3; A's until period 5
    assert_cents(collections_of(model, "base")["collateral_value"], [140, 140, 140, 90, 90], "base")
    # B defaults in period 2: its IP still counts then (like its start balance), not after
    value = collections_of(model, "b_defaults")["collateral_value"]
    assert_cents(value, [140, 140, 90, 90, 90], "B defaults")
    r = run_text(_loans(), "b_defaults")
    assert_cents(col(r, "pool.collateral_value"), [140, 140, 90, 90, 90], "periods table")
    # the trigger reads it: the senior note at the start of each period over the value
    assert_cents(col(r, "ltv.value") * 1e4, col(r, "senior.balance_start") / value * 1e4, "ltv")
    assert_conserved(r, 100)


def test_fees_and_reserve_targets_read_the_collateral_value() -> None:
    text = _loans().replace(
        "triggers:",
        "fees:\n  - {name: valuer, rate: 1%, base: collateral_value}\n"
        "accounts:\n  - {name: reserve, target: {share: 2%, of: collateral_value}}\ntriggers:",
    )
    text = text.replace(
        "    - pay_interest: senior\n",
        "    - pay_fee: valuer\n    - pay_interest: senior\n    - fund_account: reserve\n",
    )
    r = run_text(text, "b_defaults")
    # 1% a year (30/360: every year fraction is 1) of 140, 140, 90, 90, 90
    assert_cents(col(r, "valuer.paid"), [1.4, 1.4, 0.9, 0.9, 0.9], "fee")
    assert_cents(col(r, "reserve.target")[:4], [2.8, 2.8, 1.8, 1.8], "target")  # zero at legal final
    assert_conserved(r, 100)


def test_a_cdr_scenario_values_each_pledge_at_its_performing_factor() -> None:
    # SIFMA on a bullet loan, annual periods: defaults MDR = 10% and prepayments SMM = 5% of
    # the start balance (nothing amortises before maturity), so the performing factor falls
    # by 15% a year: 1, 0.85, 0.7225, 0.614125, 0.52200625
    value = collections_of(compile_text(_loans()), "cdr")["collateral_value"]
    expected = [
        90 * 1 + 50 * 1,
        90 * 0.85 + 50 * 0.85,
        90 * 0.7225 + 50 * 0.7225,
        90 * 0.614125,  # B's scheduled balance is repaid at the end of period 3
        90 * 0.52200625,
    ]
    assert_cents(value, expected, "cdr")
    assert_cents(value, [140, 119, 101.15, 55.27125, 46.9805625], "by hand")


ROYALTY = """
deal:
  name: catalogue value
  closing_date: 2025-01-01
  first_payment_date: 2026-01-01
  payment_frequency: annual
  legal_final_date: 2030-01-01
  collateral_shortfall_reason: the catalogue is valued by appraisal
pools:
  - name: r
    royalties:
      - {obligor: L, kind: running, rate: 10%, sales: {initial: 1000, growth: 3%},
         payment_frequency: annual, patent_expiry: 2029-01-01, valuation: [400, 380, 360]PD}
scenarios:
  base: {}
  shock:
    royalty: {haircut: 10%, shocks: [{from: 2027-01-01, level: -30%, growth: 5%}]}
  levels:
    royalty: {level_vector: [1, 0.5]}
  licensee_default:
    defaults: {obligors: {L: 3}}
tranches:
  - {name: senior, balance: 300, coupon: 5%, amortisation_schedule: [250, 200, 150, 100, 0]}
  - {name: equity, balance: 100}
triggers:
  - {name: ltv, kind: loan_to_value, tranches: [senior], threshold: 100%,
     valuation: {share: 100%, of: collateral_value}, effect: {sequential: true}}
waterfalls:
  normal:
    - pay_interest: senior
    - pay_principal: {tranches: [senior], limit: due}
    - pay_residual: equity
RISK"""


def _royalty(pd: str = "", risk: str = "") -> str:
    return ROYALTY.replace("PD", pd).replace("RISK", risk)


def test_a_catalogue_follows_the_scenarios_sales_path() -> None:
    model = compile_text(_royalty())
    # valuation by payment date, the last repeating; nothing from the patent's expiry on
    assert_cents(collections_of(model, "base")["collateral_value"], [400, 380, 360, 360, 0], "base")
    # the shock cuts the base 30% on the start of period 3, then it grows 5% instead of the
    # stream's own 3%: x 0.7, then x 0.7 x 1.05 / 1.03 a year later; the haircut takes 10%
    shock = collections_of(model, "shock")["collateral_value"]
    assert_cents(shock, [360, 342, 226.8, 360 * 0.9 * 0.7 * 1.05 / 1.03, 0], "shock")
    assert_cents(shock, [360, 342, 226.8, 231.20388, 0], "shock by hand")
    # a level vector by period: period 2 on at half the projection
    assert_cents(collections_of(model, "levels")["collateral_value"], [400, 190, 180, 180, 0], "levels")
    # the licensee defaults in period 3: its catalogue is worth nothing from then on
    value = collections_of(model, "licensee_default")["collateral_value"]
    assert_cents(value, [400, 380, 0, 0, 0], "licensee default")
    r = run_text(_royalty(), "licensee_default")
    # breached once the catalogue is worth nothing (the patent expires before period 5)
    assert list(r.periods["ltv.breached"] > 0) == [False, False, True, True, True]


def test_zero_pd_monte_carlo_paths_equal_the_deterministic_run() -> None:
    risk = "risk:\n  factors: {global: 0.3}\n"
    for text in (_loans(", pd: 0", risk), _royalty(", pd: 0", risk)):
        model = compile_text(text)
        det = run_text(text, "base")
        assert det.periods["pool.collateral_value"].iloc[0] > 0
        res = simulate(model, paths=3, seed=5, keep=[0, 2])
        for i, kept in res.kept.items():
            assert_periods_equal(kept.periods, det.periods, f"path {i}")


def _value_from_defaults(defaults: np.ndarray) -> np.ndarray:
    """A path's collateral value from its defaulted balances: A (60) pledges 90 until its
    default period, B (40) pledges 50 until its default period or its maturity (period 3)."""
    alive = {"A": 5, "B": 3}  # last period in which each pledge counts
    for t, d in enumerate(defaults):
        if d > 0:
            for name, balance in (("A", 60.0), ("B", 40.0)):
                if math.isclose(d, balance) or math.isclose(d, 100.0):
                    alive[name] = min(alive[name], t + 1)
    periods = np.arange(1, 6)
    return 90.0 * (periods <= alive["A"]) + 50.0 * (periods <= alive["B"])


def test_monte_carlo_paths_lose_a_defaulters_pledge_from_the_next_period() -> None:
    text = _loans(", pd: 25%", "risk:\n  factors: {global: 0.3}\n  prepayment: {cpr: 0}\n")
    model = compile_text(text)
    arrays = compile_risk(model)
    n = 300
    values = np.empty((n, 5))
    seen_default = seen_clean = False
    for i in range(n):
        r = run_path(model, arrays, seed=3, path=i)
        value = col(r, "pool.collateral_value")
        defaults = col(r, "pool.defaults")
        assert_cents(value, _value_from_defaults(defaults), f"path {i}")
        values[i] = value
        if defaults.sum() == 0:
            seen_clean = True
            assert_cents(value, [140, 140, 140, 90, 90], f"path {i} without defaults")
            assert not (r.periods["ltv.breached"] > 0).any()
        elif defaults[0] > 0 and defaults[0] != 40:  # A defaults in period 1
            seen_default = True
            assert (value[1:] < [140, 140, 90, 90]).all()
            # senior 75 over at most 50 of value: the loan-to-value trigger breaches
            assert (r.periods["ltv.breached"].iloc[1:3] > 0).all()
    assert seen_default and seen_clean
    # every path starts with both pledges; later, the mean is each appraisal times the chance
    # that the obligor has not defaulted before the period: 0.75^(years to its start, ACT/365)
    assert np.all(values[:, 0] == 140.0)
    grid = model.collection_grid
    survive = 0.75 ** ((grid[:-1] - grid[0]) / 365.0)
    expected = 90.0 * survive + 50.0 * survive * (np.arange(1, 6) <= 3)
    se = values.std(axis=0, ddof=1) / math.sqrt(n)
    assert np.all(np.abs(values.mean(axis=0) - expected) <= 4.0 * se + 1e-9), (values.mean(axis=0), expected)


def test_monte_carlo_catalogue_value_averages_to_the_expected_value() -> None:
    # sales volatility 30%, no defaults or invalidation: the value is the valuation times the
    # Brownian factor of the last accrual slot ended, mean one; the first period has none
    text = _royalty(", pd: 0", "risk:\n  royalty: {volatility: 30%}\n")
    model = compile_text(text)
    arrays = compile_risk(model)
    n = 400
    runs = [run_path(model, arrays, seed=8, path=i) for i in range(n)]
    values = np.array([col(r, "pool.collateral_value") for r in runs])
    assert np.all(values[:, 0] == 400.0)
    assert np.all(values[:, 4] == 0.0)
    assert values[:, 1].std() > 50.0  # the path moves it
    se = values[:, 1:4].std(axis=0, ddof=1) / math.sqrt(n)
    assert np.all(np.abs(values[:, 1:4].mean(axis=0) - [380, 360, 360]) <= 4.0 * se)
    # the slot ending on the payment date: its royalty is the path's factor times the base
    r = run_path(model, arrays, seed=8, path=7)
    royalty = col(r, "pool.royalty")
    value = col(r, "pool.collateral_value")
    base = 100.0 * 1.03**0.5  # the first year's royalty on the expected base (mid-year)
    np.testing.assert_allclose(value[1] / 380.0, royalty[0] / base, rtol=1e-9)


@pytest.mark.parametrize(
    ("valuation", "message"),
    [
        ("-5", "must not be negative, got -5"),
        ("[400, -1]", "valuation[1]: must not be negative"),
        ("[400, 300, 200, 100, 50, 10]", "the deal has 5 payment dates"),
        ("[]", "give at least one value"),
    ],
)
def test_bad_stream_valuations_are_located_errors(valuation: str, message: str) -> None:
    text = _royalty().replace("valuation: [400, 380, 360]", f"valuation: {valuation}")
    with pytest.raises(DealError) as err:
        parse_deal(text, "deal.yaml")
    shown = str(err.value)
    assert message in shown, shown
    assert "deal.yaml:13:" in shown and "valuation" in shown, shown


TWIN_SCRIPT = """
import sys, warnings, numpy as np, numba
assert numba.config.DISABLE_JIT
warnings.filterwarnings("ignore", message="overflow encountered in scalar", category=RuntimeWarning)
sys.path.insert(0, "tests")
from helpers import compile_text
from test_collateral_value import twin_runs
np.savez(sys.argv[1], **twin_runs())
"""


def twin_runs() -> dict[str, np.ndarray]:
    """Collections and trigger tables of the test deals, in scenarios and on Monte Carlo paths."""
    from ipabs import api

    out = {}
    risk = "risk:\n  factors: {global: 0.3}\n  royalty: {volatility: 30%, invalidation_hazard: 20%}\n"
    for key, text in (("loans", _loans(", pd: 25%", risk)), ("royalty", _royalty(", pd: 10%", risk))):
        model = compile_text(text)
        for name in model.spec.scenarios:
            r = api.run(model, name)
            out[f"{key}/{name}/collections"] = r.collections
            out[f"{key}/{name}/trigger"] = r.tables.trigger
        arrays = compile_risk(model)
        for i in range(3):
            r = run_path(model, arrays, seed=1, path=i)
            out[f"{key}/path{i}/collections"] = r.collections
            out[f"{key}/path{i}/trigger"] = r.tables.trigger
    return out


def test_python_twin_agrees(tmp_path: Path) -> None:
    target = tmp_path / "twin.npz"
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1", "PYTHONWARNINGS": "error"}
    subprocess.run([sys.executable, "-c", TWIN_SCRIPT, str(target)], check=True, env=env, cwd=ROOT)
    twin = np.load(target)
    compiled = twin_runs()
    assert set(compiled) == set(twin.files)
    for key, arr in compiled.items():
        np.testing.assert_allclose(arr, twin[key], rtol=1e-12, atol=1e-7, err_msg=key)


REVOLVING = """
deal:
  name: revolving collateral
  closing_date: 2024-01-01
  first_payment_date: 2025-01-01
  payment_frequency: annual
  legal_final_date: 2027-01-01
pools:
  - name: p
    loans:
      - {obligor: A, balance: 100, rate: 10%, term_months: 12, payment_frequency: annual, pd: 0,
         pledged_ip: {appraised_value: 50}}
scenarios:
  base:
    defaults: {cdr: 0}
    recovery: {rate: 0}
revolving:
  periods: 1
  templates:
    - {name: one_year, share: 100%, loan_size: 10, rate: 8%, term_months: 12,
       payment_frequency: annual, pd: 0, appraisal_ratio: 2}
tranches:
  - {name: senior, balance: 90, coupon: 5%}
  - {name: sub, balance: 10}
triggers:
  - {name: ltv, kind: loan_to_value, threshold: 5, valuation: {share: 100%, of: collateral_value},
     effect: {sequential: true}}
risk:
  factors: {global: 0.3}
  recovery: {model: constant, rate: 0}
waterfalls:
  normal:
    - pay_interest: senior
    - buy_assets: all
    - pay_principal: [senior, sub]
    - pay_residual: sub
"""


def test_loans_bought_while_revolving_count_their_pledged_ip() -> None:
    model = compile_text(REVOLVING)
    det = run_text(REVOLVING)
    bought = col(det, "deal.purchased")[0]
    assert bought > 90.0  # the first period's collections buy one-year loans
    # the pool's own column: A's pledge until it matures after period 1
    assert_cents(col(det, "pool.collateral_value"), [50, 0, 0], "pool column")
    # the quantity adds the loans bought: 2 x their par while they perform (period 2)
    notes = col(det, "senior.balance_start") + col(det, "sub.balance_start")
    assert_cents(col(det, "ltv.value")[:2] * 1e6, [notes[0] / 50 * 1e6, notes[1] / (2 * bought) * 1e6], "ltv")
    assert np.isinf(col(det, "ltv.value")[2]) or notes[2] == 0.0
    res = simulate(model, paths=2, seed=4, keep=[0, 1])  # no defaults: every path is the base
    for i, kept in res.kept.items():
        assert_periods_equal(kept.periods, det.periods, f"path {i}")


def test_the_documented_collateral_value_example_runs_as_described() -> None:
    text = (ROOT / "docs" / "covenants.md").read_text(encoding="utf-8")
    [example] = [b for b in re.findall(r"```yaml\n(.*?)```", text, re.S) if "of: collateral_value" in b]
    base = run_text(example, "base")
    assert_cents(col(base, "pool.collateral_value"), [550, 510, 470, 430, 390], "base")
    assert_cents(col(base, "senior.balance_start"), [300, 260, 220, 180, 140], "senior")
    assert not (base.periods["ltv.breached"] > 0).any()
    default = run_text(example, "licensee_default")
    assert_cents(col(default, "pool.collateral_value"), [550, 510, 150, 150, 150], "default")
    assert list(default.periods["ltv.breached"] > 0) == [False, False, True, True, True]
    res = simulate(compile_text(example), paths=200, seed=1, keep=[0, 1, 2])
    values = [col(k, "pool.collateral_value") for k in res.kept.values()]
    assert all(v[0] == 550.0 for v in values)  # nothing has moved at closing
    assert len({round(v[1], 6) for v in values}) == 3  # the catalogue moves with each path's sales


def test_a_matured_loan_counts_nothing_whatever_the_rounding_of_its_schedule() -> None:
    # the seasoned deal's amortising loans end with a scheduled balance of a few 1e-10 (the
    # rounding of their instalments): repaid, not a pledge still in force
    from ipabs.api import _model

    model = _model(ROOT / "scenarios" / "suzhou_seasoned_ip_pledge.yaml")
    assert not model.royalties.valuation_path or not any(model.royalties.valuation_path)
    appraisal = np.nan_to_num(model.assets.appraised_value)
    start = model.collection_grid[:-1]
    # a loan maturing on or before the first day of a period is repaid by then
    bound = (appraisal[:, None] * (model.assets.maturity_day[:, None] > start[None, :])).sum(axis=0)
    for name in model.spec.scenarios:
        value = collections_of(model, name)["collateral_value"]
        assert np.all(value <= bound + 1e-6), (name, value, bound)
