"""Breakeven default rates: the stress default curve, the solver, closed forms, the command."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

import ipabs
from ipabs.analytics.breakeven import breakeven
from ipabs.analytics.stress import (
    DEFAULT_STRESSES,
    Stress,
    StressCase,
    load_stresses,
    parse_stresses,
)
from ipabs.cli import EXIT_INVALID, EXIT_OK, main
from ipabs.deal.load import parse_deal
from ipabs.engine.compile import CompiledModel, compile_deal
from ipabs.engine.layout import C_DEFAULT
from ipabs.errors import DealError, IpabsError

ROOT = Path(__file__).resolve().parents[1]
CAOHEJING = ROOT / "scenarios" / "caohejing_ip_pledge.yaml"
LEASES = ROOT / "scenarios" / "ip_finance_lease.yaml"

# One 100m bullet loan (1 year, 5% from an index, ACT/365: 5m interest at maturity), notes
# without coupons paid sequentially, no fees. Cash at maturity is (1 - D) x 105m plus the
# recovery R x D x 100m, so a tranche survives while that covers it and the notes above it.
TINY = """\
deal:
  name: Tiny bullet pool
  closing_date: 2025-01-01
  first_payment_date: 2025-04-01
  payment_frequency: quarterly
  legal_final_date: 2026-04-01
indices:
  IDX: 5%
pools:
  - name: pool
    loans:
      - {obligor: Solo, balance: 100m, rate: {index: IDX}, maturity_date: 2026-01-01, amortisation: bullet}
scenarios:
  base:
    recovery: {rate: 0.5}
  full_recovery:
    recovery: {rate: 1.0}
tranches:
  - {name: senior, balance: 70m}
  - {name: mezzanine, balance: 20m}
  - {name: junior, balance: 10m}
waterfalls:
  normal:
    - pay_principal: senior
    - pay_principal: mezzanine
    - pay_residual: junior
"""
ABOVE = {"senior": 0.0, "mezzanine": 70e6, "junior": 90e6}
SIZE = {"senior": 70e6, "mezzanine": 20e6, "junior": 10e6}


def closed_form(tranche: str, recovery: float, interest: float = 5e6) -> float:
    """Largest D with (1 - D)(100m + interest) + recovery x D x 100m >= notes through tranche."""
    need = ABOVE[tranche] + SIZE[tranche]
    return (100e6 + interest - need) / (100e6 + interest - recovery * 100e6)


@pytest.fixture(scope="module")
def tiny() -> CompiledModel:
    return compile_deal(parse_deal(TINY, "tiny.yaml"))


@pytest.fixture(scope="module")
def caohejing() -> CompiledModel:
    return compile_deal(ipabs.load_deal(CAOHEJING))


@pytest.fixture(scope="module")
def leases() -> CompiledModel:
    return compile_deal(ipabs.load_deal(LEASES))


def _row(result: object, stress: str) -> dict:
    table = result.table.set_index("stress")  # type: ignore[attr-defined]
    return table.loc[stress].to_dict()


# --------------------------------------------------------------------------- closed forms


@pytest.mark.parametrize("tranche", ["senior", "mezzanine", "junior"])
def test_closed_form_bdr(tiny: CompiledModel, tranche: str) -> None:
    stresses = [
        Stress(name="base_recovery"),
        Stress(name="no_recovery", timing="front", recovery_haircut=1.0),
        Stress(name="half_haircut", timing="back", recovery_haircut=0.5),
        Stress(name="rates_up", rate_shock=0.02, recovery_haircut=1.0),
        Stress(name="late", timing=[0, 0, 0, 1], per="period", recovery_haircut=1.0),
    ]
    res = breakeven(tiny, tranche, stresses)
    expected = {
        "base_recovery": closed_form(tranche, 0.5),
        "no_recovery": closed_form(tranche, 0.0),
        "half_haircut": closed_form(tranche, 0.25),
        "rates_up": closed_form(tranche, 0.0, interest=7e6),
        "late": closed_form(tranche, 0.0),
    }
    for name, want in expected.items():
        row = _row(res, name)
        assert row["bdr"] == pytest.approx(want, rel=2e-6), name
        assert row["bdr"] <= want * (1 + 1e-9), name  # the BDR is the surviving end
        assert row["max_default_rate"] == pytest.approx(1.0)
        assert not row["survives_max"] and not row["loses_at_zero"]


def test_recovery_lag_beyond_legal_final(tiny: CompiledModel) -> None:
    # 6 months later, recoveries of the last quarter's defaults fall after legal final:
    # a quarter of the recoveries is lost under even timing
    res = breakeven(tiny, "junior", [Stress(name="slow", recovery_lag_months=6)])
    assert _row(res, "slow")["bdr"] == pytest.approx(5e6 / (105e6 - 0.5 * 0.75 * 100e6), rel=2e-6)


def test_flags_survives_max_and_loses_at_zero(tiny: CompiledModel) -> None:
    res = breakeven(tiny, "senior", [Stress(name="even")], scenario="full_recovery")
    row = _row(res, "even")
    assert row["survives_max"] and row["bdr"] == pytest.approx(row["max_default_rate"])
    assert np.isnan(row["loss_above"])
    big = TINY.replace("{name: junior, balance: 10m}", "{name: junior, balance: 20m}").replace(
        "  legal_final_date: 2026-04-01",
        "  legal_final_date: 2026-04-01\n  collateral_shortfall_reason: test",
    )
    res = breakeven(compile_deal(parse_deal(big, "big.yaml")), "junior", [Stress(name="even")])
    row = _row(res, "even")
    assert row["loses_at_zero"] and row["bdr"] == 0.0 and row["loss_at_bdr"] > 0.0


# --------------------------------------------------------------------------- the default curve


@pytest.mark.parametrize("stress", (*DEFAULT_STRESSES[:3], Stress(name="years", timing=[3, 2, 1])))
def test_realised_default_rate_equals_target(leases: CompiledModel, stress: Stress) -> None:
    case = StressCase.build(leases, stress)
    b0 = leases.cd.original_pool_balance
    assert 0.0 < case.max_rate <= 1.0
    assert case.weights.sum() == pytest.approx(1.0)
    for rate in (1e-4, 0.1, 0.5 * case.max_rate, case.max_rate):
        defaults = case.collections(rate)[:, :, C_DEFAULT]
        assert defaults.sum() / b0 == pytest.approx(rate, rel=1e-9)
        # the defaulted amount follows the timing profile
        np.testing.assert_allclose(defaults.sum(axis=0), rate * b0 * case.weights, rtol=1e-9, atol=1e-6)
    assert case.mdr(case.max_rate).max() == pytest.approx(1.0)
    with pytest.raises(IpabsError, match="largest feasible"):
        case.mdr(case.max_rate * 1.01)


@pytest.mark.parametrize("stress", (*DEFAULT_STRESSES[:3], Stress(name="years", timing=[3, 2, 1])))
def test_realised_default_rate_equals_target_with_prepayments(leases: CompiledModel, stress: Stress) -> None:
    # 15% CPR: prepayments are the SMM of the start balance less its expected amortisation
    # (SIFMA), so defaults and prepayments do not compound; the stress still defaults exactly
    # `rate`, and its largest feasible rate is where some period needs an MDR of 1
    case = StressCase.build(leases, stress, "early_buyouts")
    assert case.inputs.smm.max() > 0.0
    b0 = leases.cd.original_pool_balance
    assert 0.0 < case.max_rate < 1.0 / case.coef.sum()
    for rate in (1e-4, 0.1, 0.5 * case.max_rate, case.max_rate):
        defaults = case.collections(rate)[:, :, C_DEFAULT]
        assert defaults.sum() / b0 == pytest.approx(rate, rel=1e-9)
        np.testing.assert_allclose(defaults.sum(axis=0), rate * b0 * case.weights, rtol=1e-9, atol=1e-6)
    assert case.mdr(case.max_rate).max() == pytest.approx(1.0, rel=1e-9)
    with pytest.raises(IpabsError, match="largest feasible"):
        case.mdr(case.max_rate * 1.01)


def test_timing_profiles(leases: CompiledModel) -> None:
    front = StressCase.build(leases, Stress(name="f", timing="front")).weights
    back = StressCase.build(leases, Stress(name="b", timing="back")).weights
    life = StressCase.build(leases, Stress(name="l", horizon="life")).weights
    on = np.nonzero(front)[0]
    assert np.all(np.diff(front[on]) < 0) and np.all(np.diff(back[on]) > 0)
    assert np.count_nonzero(life) > len(on)  # the WAL horizon is shorter than the pool's life
    months = StressCase.build(leases, Stress(name="m", horizon=12)).weights
    assert np.count_nonzero(months) == 4  # quarterly: the periods starting in the first year


def test_weights_where_the_pool_has_run_off(tiny: CompiledModel) -> None:
    with pytest.raises(IpabsError, match="year 2"):
        StressCase.build(tiny, Stress(name="late", timing=[0, 1]))
    with pytest.raises(IpabsError, match="period 5"):
        StressCase.build(tiny, Stress(name="late", timing=[0, 0, 0, 0, 1], per="period"))


# --------------------------------------------------------------------------- the solver on shipped deals


def test_loss_zero_at_bdr_and_positive_just_above(caohejing: CompiledModel) -> None:
    for tranche in ("senior", "sub"):
        k = caohejing.tranche_names.index(tranche)
        res = breakeven(caohejing, tranche)
        assert res.table["runs"].max() < 60
        for stress in DEFAULT_STRESSES:
            row = _row(res, stress.name)
            case = StressCase.build(caohejing, stress, recovery=res.recovery)
            at = case.losses(row["bdr"])[k]
            above = case.losses(row["bdr"] * (1 + 1e-5))[k]
            assert at <= res.loss_tolerance and row["loss_at_bdr"] == pytest.approx(at)
            assert above > res.loss_tolerance
            assert row["default_rate_above"] <= row["bdr"] * (1 + 1e-6) + 1e-15
            assert row["loss_above"] > res.loss_tolerance


def test_bdr_monotone_across_tranches(caohejing: CompiledModel, tiny: CompiledModel) -> None:
    for model, names in ((caohejing, ["senior", "sub"]), (tiny, ["senior", "mezzanine", "junior"])):
        bdrs = np.array([breakeven(model, n).table["bdr"].to_numpy() for n in names])
        assert np.all(np.diff(bdrs, axis=0) <= 0.0)
        assert np.all(np.diff(bdrs, axis=0).sum(axis=1) < 0.0)


def test_haircut_lowers_bdr(caohejing: CompiledModel) -> None:
    res = breakeven(caohejing, "sub", scenario="two_defaults", recovery="scenario")  # 25% of appraisal
    for timing in ("even", "front", "back"):
        assert _row(res, f"{timing}_haircut")["bdr"] < 0.6 * _row(res, timing)["bdr"]
    assert res.minimum["stress"].endswith("_haircut")
    assert not any("no recoveries" in n for n in res.notes)


def test_front_loaded_defaults_cost_excess_spread(caohejing: CompiledModel) -> None:
    # interest-paying loans, excess spread turbo-paid to the senior: early defaults stop
    # interest sooner, so front timing breaks even lower than back timing
    for tranche in ("senior", "sub"):
        res = breakeven(caohejing, tranche, DEFAULT_STRESSES[:3])
        assert _row(res, "front")["bdr"] < _row(res, "even")["bdr"] < _row(res, "back")["bdr"]


def test_base_case_and_multiple(caohejing: CompiledModel) -> None:
    res = breakeven(caohejing, "senior", DEFAULT_STRESSES[:1])
    # nine 1-year bullet loans without prepayment: the balance-weighted 1-year PDs
    loans = caohejing.spec.pools[0].loans
    want = sum(x.balance * x.pd for x in loans) / sum(x.balance for x in loans)
    assert res.base_rate == pytest.approx(want, rel=1e-9)
    assert "risk section" in res.base_basis
    row = _row(res, "even")
    assert row["multiple"] == pytest.approx(row["bdr"] / want)
    no_risk = compile_deal(
        parse_deal(TINY.replace("recovery: {rate: 0.5}", "defaults: {cdr: 0.1}"), "t.yaml")
    )
    res = breakeven(no_risk, "senior", DEFAULT_STRESSES[:1])
    assert res.base_rate == pytest.approx(0.1, rel=1e-9)  # four quarters of a 10% annual CDR
    assert "realised" in res.base_basis


def test_errors(caohejing: CompiledModel) -> None:
    with pytest.raises(IpabsError, match="known tranches: senior, sub"):
        breakeven(caohejing, "mezz")
    with pytest.raises(IpabsError, match="no scenario"):
        breakeven(caohejing, "senior", scenario="nope")
    with pytest.raises(IpabsError, match="original pool balance 0"):
        breakeven(ROOT / "scenarios" / "royalty_dscr.yaml", "senior")


# --------------------------------------------------------------------------- stress files


def test_stress_files_parse() -> None:
    shipped = sorted((ROOT / "scenarios" / "stresses").glob("*.yaml"))
    assert shipped
    for f in shipped:
        assert load_stresses(f)
    doc = (ROOT / "docs" / "breakeven.md").read_text(encoding="utf-8")
    block = re.search(r"```yaml\n(stresses:.*?)```", doc, re.S)
    assert block is not None
    stresses = parse_stresses(block.group(1), "breakeven.md")
    assert len({s.name for s in stresses}) == len(stresses)


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        ("stresses:\n  - name: a\n    recovery_hiarcut: 0.5\n", ":3:5:", "did you mean 'recovery_haircut'"),
        ("stresses:\n  - name: a\n    recovery_haircut: 1.5\n", ":3:23:", "between 0 and 1"),
        ("stresses:\n  - name: a\n    timing: sideways\n", ":3:13:", "timing"),
        ("stresses:\n  - name: a\n    timing: [0, 0]\n", ":3:13:", "positive weight"),
        ("stresses:\n  - name: a\n    timing: [1, 2]\n    horizon: life\n", ":4:14:", "horizon"),
        ("stresses:\n  - name: a\n  - name: a\n", ":3:11:", "duplicate stress name 'a'"),
        ("stress:\n  - name: a\n", ":1:1:", "key `stresses`"),
        ("stresses:\n  - name: a\n    recovery_lag_months: -1\n", ":3:26:", "recovery_lag_months"),
    ],
)
def test_bad_stress_files_are_located(text: str, where: str, message: str) -> None:
    with pytest.raises(DealError) as info:
        parse_stresses(text, "s.yaml")
    shown = str(info.value)
    assert f"s.yaml{where}" in shown, shown
    assert message in shown, shown


# --------------------------------------------------------------------------- the command


def test_cli_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["breakeven", str(CAOHEJING), "--tranche", "senior"]) == EXIT_OK
    out = capsys.readouterr().out
    for stress in DEFAULT_STRESSES:
        assert stress.name in out
    assert "BDR" in out and "multiple" in out and "minimum BDR" in out and "base case" in out
    assert "no index curves" in out


def test_cli_json_and_stress_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "s.yaml"
    f.write_text("stresses:\n  - {name: quick, timing: front, recovery_haircut: 40%}\n", encoding="utf-8")
    code = main(
        [
            "breakeven",
            str(CAOHEJING),
            "--tranche",
            "sub",
            "--stresses",
            str(f),
            "--scenario",
            "two_defaults",
            "--json",
        ]
    )
    assert code == EXIT_OK
    doc = json.loads(capsys.readouterr().out)
    assert doc["tranche"] == "sub" and doc["scenario"] == "two_defaults"
    assert [s["stress"] for s in doc["stresses"]] == ["quick"]
    row = doc["stresses"][0]
    assert 0.0 < row["bdr"] < row["max_default_rate"] and row["loss_above"] > 0.0
    assert doc["minimum"]["bdr"] == row["bdr"] and doc["base_case"]["default_rate"] > 0.0


def test_cli_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["breakeven", str(CAOHEJING), "--tranche", "senoir"]) == EXIT_INVALID
    assert "known tranches: senior, sub" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("stresses:\n  - name: x\n    rate_shok: 1%\n", encoding="utf-8")
    assert main(["breakeven", str(CAOHEJING), "--tranche", "senior", "--stresses", str(bad)]) == EXIT_INVALID
    err = capsys.readouterr().err
    assert f"{bad}:3:5:" in err and "rate_shock" in err and "Traceback" not in err
    assert main(["breakeven", str(CAOHEJING), "--tranche", "senior", "--scenario", "x"]) == EXIT_INVALID
    assert "known scenarios" in capsys.readouterr().err


# --------------------------------------------------------------------------- whose recoveries


def _tiny_with_risk(recovery: str, appraisal: bool = False) -> CompiledModel:
    text = TINY + f"risk:\n  correlation: 0.1\n  default_pd: 0.05\n  recovery: {recovery}\n"
    if appraisal:
        text = text.replace(
            "amortisation: bullet}", "amortisation: bullet, pledged_ip: {appraised_value: 100m}}"
        )
    return compile_deal(parse_deal(text, "tiny_risk.yaml"))


@pytest.mark.parametrize("tranche", ["senior", "mezzanine", "junior"])
def test_stresses_use_the_risk_sections_recoveries_by_default(tranche: str) -> None:
    # the base-case default rate comes from the risk section, so by default the stresses take
    # its recoveries too (30%, not the base scenario's 50%): the multiple compares like with like
    model = _tiny_with_risk("{model: constant, rate: 0.3, lag_months: 0}")
    stresses = [Stress(name="even"), Stress(name="cut", timing="front", recovery_haircut=0.5)]
    res = breakeven(model, tranche, stresses)
    assert res.recovery == "risk"
    assert _row(res, "even")["bdr"] == pytest.approx(closed_form(tranche, 0.3), rel=2e-6)
    assert _row(res, "cut")["bdr"] == pytest.approx(closed_form(tranche, 0.15), rel=2e-6)
    assert _row(res, "even")["multiple"] == pytest.approx(_row(res, "even")["bdr"] / res.base_rate)
    assert "risk section" in res.recovery_basis and "30%" in res.recovery_basis
    scenario = breakeven(model, tranche, stresses, recovery="scenario")
    assert scenario.recovery == "scenario"
    assert _row(scenario, "even")["bdr"] == pytest.approx(closed_form(tranche, 0.5), rel=2e-6)
    assert any("base-case default rate comes from the risk section" in n for n in scenario.notes)


def test_risk_recovery_on_appraised_ip_uses_the_mean_value_factor() -> None:
    # lognormal value factor of mean 0.40 less a disposal cost of 0.05 of the appraisal: a full
    # default of the 100m loan appraised at 100m recovers 35m, as a 35% recovery rate would
    model = _tiny_with_risk(
        "{model: lognormal, value_mean: 0.4, value_dispersion: 0.5, disposal_cost: 0.05, lag_months: 0}",
        appraisal=True,
    )
    res = breakeven(model, "mezzanine", [Stress(name="even")])
    assert _row(res, "even")["bdr"] == pytest.approx(closed_form("mezzanine", 0.35), rel=2e-6)


def test_deal_without_risk_section_keeps_the_scenarios_recoveries(tiny: CompiledModel) -> None:
    res = breakeven(tiny, "senior", [Stress(name="even")])
    assert res.recovery == "scenario" and "scenario 'base'" in res.recovery_basis
    with pytest.raises(IpabsError, match="no `risk` section"):
        breakeven(tiny, "senior", [Stress(name="even")], recovery="risk")


def test_cli_says_which_recoveries(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    deal = tmp_path / "tiny_risk.yaml"
    deal.write_text(
        TINY + "risk:\n  default_pd: 0.05\n  recovery: {model: constant, rate: 0.3, lag_months: 0}\n"
    )
    assert main(["breakeven", str(deal), "--tranche", "senior"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "recoveries: risk section" in out
    assert (
        main(["breakeven", str(deal), "--tranche", "senior", "--recovery", "scenario", "--json"]) == EXIT_OK
    )
    doc = json.loads(capsys.readouterr().out)
    assert doc["recovery"]["source"] == "scenario"
    assert doc["stresses"][0]["bdr"] == pytest.approx(closed_form("senior", 0.5), rel=2e-6)
