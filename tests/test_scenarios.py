"""The example deals in ``scenarios/``: every scenario of every file loads, runs and keeps the
waterfall invariants, and each stress does what its name says.

Runs reuse the numba cache, and each (file, scenario) runs once per session.
"""

from __future__ import annotations

import datetime as dt
import functools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy.optimize import brentq

from ipabs.api import run
from ipabs.dates import add_months
from ipabs.deal.load import load_deal
from ipabs.deal.schema import MONTHS_PER_PERIOD
from ipabs.engine import layout as L
from ipabs.engine.compile import CompiledModel, compile_deal
from ipabs.results import RunResult, conservation_residual

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
FILES = sorted(SCENARIOS.glob("*.yaml"))
TOL = 1e-6


def _scenario_names(path: Path) -> list[str]:
    """Scenario names read straight from the YAML (collection must not need the engine)."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return list((data.get("scenarios") or {"base": {}}).keys())


CASES = [pytest.param(f.name, s, id=f"{f.stem}-{s}") for f in FILES for s in _scenario_names(f)]


@functools.cache
def model(file: str) -> CompiledModel:
    return compile_deal(load_deal(SCENARIOS / file))


@functools.cache
def result(file: str, scenario: str) -> RunResult:
    return run(model(file), scenario)


def period_of(r: RunResult, name: str, column: str) -> np.ndarray:
    return r.periods[f"{name}.{column}"].to_numpy()


def test_the_five_deals_are_there() -> None:
    names = {f.stem for f in FILES}
    assert {
        "caohejing_ip_pledge",
        "patent_sublicence_gz",
        "ip_finance_lease",
        "royalty_dscr",
        "hospital_income_share",
    } <= names
    for f in FILES:
        assert 2 <= len(_scenario_names(f)) <= 4, f.name
        assert _scenario_names(f)[0] == "base", f.name


def irr(cash: np.ndarray, years: np.ndarray, price: float) -> float:
    """Annual effective rate at which ``cash`` received at ``years`` is worth ``price``."""
    return brentq(lambda y: cash @ (1.0 + y) ** -years - price, -0.99, 1.0, xtol=1e-14)


# --------------------------------------------------------------------------- invariants


@pytest.mark.parametrize(("file", "scenario"), CASES)
def test_invariants(file: str, scenario: str) -> None:
    r = result(file, scenario)
    t = r.tables

    residual = conservation_residual(t)
    assert np.abs(residual).max() < TOL, f"cash not conserved: {residual}"

    for name, arr in (
        ("tranche", t.tranche),
        ("fee", t.fee),
        ("account", t.account),
        ("support", t.support),
        ("deal", t.deal),
        ("collections", r.collections),
    ):
        if arr.size:
            assert arr.min() >= -TOL, f"negative value in the {name} table: {arr.min()}"

    tr = t.tranche
    assert (tr[:, :, L.TR_INTEREST_PAID] <= tr[:, :, L.TR_INTEREST_DUE] + TOL).all()
    assert (tr[:, :, L.TR_PRINCIPAL_PAID] <= tr[:, :, L.TR_BALANCE_START] + TOL).all()
    np.testing.assert_allclose(
        tr[:, :, L.TR_BALANCE_END], tr[:, :, L.TR_BALANCE_START] - tr[:, :, L.TR_PRINCIPAL_PAID], atol=TOL
    )
    # each period starts where the previous one ended
    np.testing.assert_allclose(tr[1:, :, L.TR_BALANCE_START], tr[:-1, :, L.TR_BALANCE_END], atol=TOL)
    fee = t.fee
    assert (fee[:, :, L.FEE_PAID] <= fee[:, :, L.FEE_DUE] + TOL).all()
    acc = t.account
    np.testing.assert_allclose(
        acc[:, :, L.ACC_END],
        acc[:, :, L.ACC_START] + acc[:, :, L.ACC_DEPOSIT] - acc[:, :, L.ACC_WITHDRAWAL],
        atol=TOL,
    )
    # nothing is left over at the end: the deal pays out every yuan it collects
    assert t.deal[-1, L.D_CARRY_OUT] < TOL
    if acc.size:
        assert (acc[-1, :, L.ACC_END] < TOL).all()

    senior = r.summary.iloc[0]
    assert np.isfinite(senior["yield"])
    assert 0.0 <= senior["loss"] <= senior["original_balance"] + TOL


@pytest.mark.parametrize("file", [f.name for f in FILES])
def test_base_case_repays_the_senior_by_expected_maturity(file: str) -> None:
    m = model(file)
    r = result(file, "base")
    spec = m.spec
    senior = spec.tranches[0]
    row = r.summary.loc[senior.name]
    assert row["loss"] == pytest.approx(0.0, abs=TOL)
    assert row["principal_paid"] == pytest.approx(senior.balance)
    expected = senior.expected_maturity or spec.deal.legal_final_date
    assert row["final_payment_date"] <= expected
    # WAL and yield from the dated cash of the period table, by the definitions
    # (ACT/365 years from closing; annual effective rate at which the cash is worth par)
    dates = pd.to_datetime(r.periods["payment_date"]).dt.date
    years = np.array([(d - spec.deal.closing_date).days / 365.0 for d in dates])
    principal = period_of(r, senior.name, "principal_paid")
    cash = principal + period_of(r, senior.name, "interest_paid") + period_of(r, senior.name, "residual_paid")
    assert row["wal_years"] == pytest.approx(principal @ years / principal.sum(), rel=1e-12)
    assert row["yield"] == pytest.approx(irr(cash, years, senior.balance), abs=1e-9)
    # a note repaid at par yields about its coupon as an effective annual rate (exactly, were
    # the periods of equal length)
    f = 12 // MONTHS_PER_PERIOD[spec.deal.payment_frequency]
    assert row["yield"] == pytest.approx((1 + row["coupon"] / f) ** f - 1, abs=5e-4)
    # no tranche loses anything in the base case
    assert (r.summary["loss"] < TOL).all()
    assert (r.triggers["periods_active"] == 0).all()


# --------------------------------------------------------------------------- per deal


def test_caohejing_stresses() -> None:
    f = "caohejing_ip_pledge.yaml"
    cdr = result(f, "cdr_stress")
    trig = cdr.triggers.set_index("trigger")
    assert trig.loc["cumulative_default_3pct", "periods_active"] > 0
    assert "accelerated" in set(cdr.periods["deal.waterfall"])
    assert cdr.summary.loc["sub", "loss"] > 0

    two = result(f, "two_defaults")
    assert two.summary.loc["senior", "loss"] == pytest.approx(0.0, abs=TOL)
    assert two.summary.loc["sub", "loss"] > 0
    assert period_of(two, "pool", "recovery").sum() > 0
    # recovery arrives after the lag, not in the default period
    defaults = period_of(two, "pool", "defaults")
    recovery = period_of(two, "pool", "recovery")
    assert np.nonzero(recovery)[0][0] > np.nonzero(defaults)[0][0]

    fire = result(f, "two_defaults_fire_sale")
    assert fire.summary.loc["senior", "loss"] > 0
    assert fire.summary.loc["sub", "loss"] == pytest.approx(5e6)
    assert recovery.sum() > period_of(fire, "pool", "recovery").sum()


def test_patent_sublicence_deficiency_payment() -> None:
    f = "patent_sublicence_gz.yaml"
    base = result(f, "base")
    assert period_of(base, "gdd_deficiency", "draw").sum() == 0

    two = result(f, "two_smes_default")
    draws = period_of(two, "gdd_deficiency", "draw")
    assert draws.sum() > 0
    assert two.summary.loc["senior", "loss"] == pytest.approx(0.0, abs=TOL)
    assert two.summary.loc["sub", "loss"] > 0

    gone = result(f, "guarantor_default")
    draws = period_of(gone, "gdd_deficiency", "draw")
    assert draws[9:].sum() == 0  # the provider defaults in period 10 and pays nothing after
    assert gone.summary.loc["senior", "loss"] > 0

    cdr = result(f, "cdr_stress")
    assert cdr.summary.loc["senior", "loss"] == pytest.approx(0.0, abs=TOL)
    assert period_of(cdr, "gdd_deficiency", "draw").sum() > 0


def test_finance_lease_triggers_and_call() -> None:
    f = "ip_finance_lease.yaml"
    base = result(f, "base")
    called = period_of(base, "deal", "called")
    assert called.max() == 1.0
    first_call = int(np.argmax(called))
    # the call is exercised at 10% of the original pool
    pool_before = period_of(base, "pool", "balance_end")[first_call]
    assert pool_before <= 0.10 * 733e6
    assert period_of(base, "deal", "call_proceeds").sum() == pytest.approx(pool_before)
    # pro rata while the pool performs: the sub amortises alongside the senior
    assert period_of(base, "sub", "principal_paid")[0] > 0

    cdr = result(f, "cdr_stress")
    trig = cdr.triggers.set_index("trigger")
    seq, acc = trig.loc["cdr_sequential"], trig.loc["cdr_acceleration"]
    assert seq["first_active_period"] < acc["first_active_period"]
    k = int(seq["first_active_period"]) - 1
    assert period_of(cdr, "deal", "sequential")[k] == 1.0
    assert period_of(cdr, "sub", "principal_paid")[k] == 0.0  # sequential: nothing to the sub
    assert "accelerated" in set(cdr.periods["deal.waterfall"])
    assert cdr.summary.loc["senior", "loss"] == pytest.approx(0.0, abs=TOL)

    fast = result(f, "early_buyouts")
    assert int(np.argmax(period_of(fast, "deal", "called"))) < first_call


def test_royalty_dscr_senior_follows_its_schedule_in_the_base_case() -> None:
    # The senior (570m, 4%, ACT/365) is paid 17.8125m on each of the 32 quarterly dates from
    # 2025-09-30 (closing 2025-06-30) and its interest in full: WAL and yield from the term
    # sheet alone.
    close = dt.date(2025, 6, 30)
    dates = [add_months(dt.date(2025, 9, 30), 3 * k) for k in range(32)]
    years = np.array([(d - close).days / 365.0 for d in dates])
    days = np.diff([0, *[(d - close).days for d in dates]])
    balance = 570e6 - 17.8125e6 * np.arange(32)  # at the start of each quarter
    cash = 17.8125e6 + balance * 0.04 * days / 365.0
    row = result("royalty_dscr.yaml", "base").summary.loc["senior"]
    assert row["wal_years"] == pytest.approx(17.8125e6 * years.sum() / 570e6, rel=1e-12)
    assert row["yield"] == pytest.approx(irr(cash, years, 570e6), abs=1e-9)
    assert row["interest_paid"] == pytest.approx((balance * 0.04 * days / 365.0).sum(), abs=0.01)
    assert row["final_payment_date"] == dates[-1]


def test_royalty_dscr_trap_and_rapid_amortisation() -> None:
    f = "royalty_dscr.yaml"
    base = result(f, "base")
    assert (period_of(base, "deal", "trap_share") == 0).all()
    assert set(base.periods["deal.waterfall"]) == {"normal"}

    decline = result(f, "sales_decline")
    trig = decline.triggers.set_index("trigger")
    assert trig.loc["dscr_trap_50", "periods_active"] > 0
    assert trig.loc["dscr_trap_100", "periods_active"] > 0
    assert trig.loc["rapid_amortisation", "periods_active"] == 0
    assert period_of(decline, "dscr_trap", "deposit").sum() > 0
    assert period_of(decline, "deal", "trap_share").max() == 1.0
    assert (decline.summary["loss"] < TOL).all()
    assert decline.summary.loc["equity", "yield"] < base.summary.loc["equity", "yield"]

    destock = result(f, "licensee_destocking")
    waterfall = destock.periods["deal.waterfall"].to_numpy()
    ra = destock.triggers.set_index("trigger").loc["rapid_amortisation"]
    k = int(ra["first_active_period"]) - 1
    assert k >= 2  # three consecutive breaches are needed
    assert (waterfall[:k] == "normal").all()
    assert (waterfall[k:] == "rapid_amortisation").all()  # not curable
    assert destock.summary.loc["senior", "loss"] == pytest.approx(0.0, abs=TOL)
    assert destock.summary.loc["equity", "yield"] < decline.summary.loc["equity", "yield"]

    default = result(f, "licensee_default")
    assert default.summary.loc["senior", "loss"] > 0
    assert default.summary.loc["equity", "loss"] > 0
    assert period_of(default, "mezzanine_guarantee", "draw").sum() > 0


def test_hospital_liquidity_and_deficiency() -> None:
    f = "hospital_income_share.yaml"
    base = result(f, "base")
    draws = period_of(base, "liquidity_line", "draw")
    repaid = period_of(base, "liquidity_line", "principal_repaid")
    assert draws.sum() > 0
    assert repaid.sum() == pytest.approx(draws.sum())
    assert period_of(base, "liquidity_line", "interest_paid").sum() > 0
    assert period_of(base, "liquidity_line", "outstanding")[-1] == pytest.approx(0.0, abs=TOL)
    assert period_of(base, "district_deficiency", "draw").sum() == 0
    # income is paid once a year: the December dates collect nothing
    assert (period_of(base, "deal", "collections")[0:10:2] == 0).all()

    decline = result(f, "income_decline")
    assert period_of(decline, "district_deficiency", "draw").sum() > 0
    assert decline.summary.loc["senior", "loss"] == pytest.approx(0.0, abs=TOL)

    company = result(f, "company_default")
    assert period_of(company, "district_deficiency", "draw").sum() > 0
    assert company.summary.loc["senior", "loss"] == pytest.approx(0.0, abs=TOL)

    gone = result(f, "guarantor_default")
    assert period_of(gone, "district_deficiency", "draw")[5:].sum() == 0
    assert gone.summary.loc["senior", "loss"] > 0


def test_3plusn_put_supporter_and_redemption() -> None:
    f = "ip_3plusn_put.yaml"
    put = 11  # 2028-06-30, the 12th quarterly date
    base = result(f, "base")
    senior_after = period_of(base, "senior", "balance_end")[put]
    # every holder puts and the supporter, whose limit is the whole senior, buys it all
    assert period_of(base, "senior", "put_exercised")[put] == pytest.approx(senior_after)
    assert period_of(base, "parent_support", "put_bought")[put] == pytest.approx(senior_after)
    assert period_of(base, "senior", "put_unfunded").sum() == 0
    assert (base.periods["deal.waterfall"] == "normal").all()
    # the coupon resets from 3.30% to 3.60% for the periods after the put date
    assert model(f).cd.tr_rate[0, put] == pytest.approx(0.033)
    assert model(f).cd.tr_rate[0, put + 1] == pytest.approx(0.036)

    partial = result(f, "partial_put")
    assert period_of(partial, "senior", "put_exercised")[put] == pytest.approx(0.4 * senior_after)

    failed = result(f, "supporter_default")
    assert period_of(failed, "senior", "put_unfunded")[put] == pytest.approx(senior_after)
    assert (failed.periods["deal.waterfall"].iloc[put + 1 :] == "accelerated").all()
    assert (failed.periods["deal.waterfall"].iloc[: put + 1] == "normal").all()
    assert failed.summary.loc["senior", "loss"] == pytest.approx(0.0, abs=TOL)

    redeemed = result(f, "redeemed_at_put")
    assert period_of(redeemed, "deal", "call_kind")[put] == 2
    assert period_of(redeemed, "senior", "balance_end")[put] == pytest.approx(0.0, abs=TOL)
    assert period_of(redeemed, "senior", "put_exercised").sum() == pytest.approx(0.0, abs=TOL)
