"""Re-projection from a report date (docs/surveillance.md#re-projection-from-a-state): a state
taken from a deterministic run after period K and run again reproduces periods K+1... of
that run; a state that differs from the run moves the cash flows as the contracts say."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ipabs.analytics.reproject import reproject
from ipabs.analytics.state import state_at, write_state
from ipabs.api import _model, run
from ipabs.cli import EXIT_INVALID, main
from ipabs.deal.load import load_deal
from ipabs.deal.state import deal_assets, load_state
from ipabs.engine.layout import (
    C_INTEREST,
    C_RECOVERY,
    C_SCHED_PRINCIPAL,
    TR_BALANCE_START,
    TR_INTEREST_DUE,
    work_layout,
)
from ipabs.engine.waterfall_numba_fns import allocate_work
from ipabs.errors import IpabsError

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "scenarios"
CAOHEJING = SCENARIOS / "caohejing_ip_pledge.yaml"
Q3 = SCENARIOS / "states" / "caohejing_2025q3.yaml"
TABLES = ("tranche", "fee", "account", "support", "trigger", "deal", "hedge")

# deals and scenarios whose states are loan by loan (named defaults or none), with features a
# continuation must carry: fee arrears after defaults, a cumulative default trigger,
# guarantees and their guarantor's default, loss cover, licences whose licensees default,
# leases, a seasoned pool, income shares
CASES = [
    ("caohejing_ip_pledge", "base"),
    ("caohejing_ip_pledge", "two_defaults"),
    ("caohejing_ip_pledge", "two_defaults_fire_sale"),
    ("nanshan_guaranteed_ip_pledge", "three_defaults_guarantor_pays"),
    ("nanshan_guaranteed_ip_pledge", "guarantor_fails"),
    ("patent_sublicence_gz", "two_smes_default"),
    ("patent_sublicence_gz", "guarantor_default"),
    ("ip_pledge_risk_sharing", "guarantor_fails"),
    ("ip_finance_lease", "base"),
    ("suzhou_seasoned_ip_pledge", "base"),
    ("hospital_income_share", "company_default"),
    ("royalty_dscr", "licensee_default"),
]


def _reprojected(deal, scenario: str, period: int, tmp_path: Path):  # type: ignore[no-untyped-def]
    path = tmp_path / f"state_{period}.yaml"
    write_state(state_at(deal, period, scenario), path)
    return reproject(deal, load_state(deal.deal, path), scenario)


@pytest.mark.parametrize(("name", "scenario"), CASES)
def test_a_run_from_its_own_state_continues_it(name: str, scenario: str, tmp_path: Path) -> None:
    deal = load_deal(SCENARIOS / f"{name}.yaml")
    model = _model(deal)
    whole = run(model, scenario)
    n = model.n_periods
    checked = 0
    for period in sorted({1, 2, n // 3, n // 2, (2 * n) // 3, n - 1}):
        if period < 1:
            continue
        try:
            part = _reprojected(model, scenario, period, tmp_path)
        except IpabsError as e:  # not loan by loan, after a call, or what a state cannot carry
            assert any(x in str(e) for x in ("fraction", "put", "averages", "call")), str(e)
            continue
        for table in TABLES:
            expected = getattr(whole.tables, table)[period:]
            got = getattr(part.tables, table)
            scale = max(1.0, float(model.cd.original_pool_balance))  # cents of a large deal: 1e-9
            np.testing.assert_allclose(
                got,
                expected,
                rtol=0,
                atol=1e-9 * scale,
                err_msg=f"{name}/{scenario} from period {period}: {table}",
            )
        assert list(part.periods["period"]) == list(range(period + 1, n + 1))
        checked += 1
    assert checked >= 2, "too few report dates checked"


def test_the_summary_is_measured_from_the_report_date(tmp_path: Path) -> None:
    deal = load_deal(CAOHEJING)
    part = _reprojected(_model(deal), "base", 2, tmp_path)
    whole = run(deal, "base")
    senior = part.summary.loc["senior"]
    start = float(whole.tables.tranche[2, 0, TR_BALANCE_START])
    assert senior["report_date_balance"] == pytest.approx(start)
    assert senior["original_balance"] == pytest.approx(95e6)
    # every note repays at par with its coupon: the yield from the report date at a price of
    # the balance then is the coupon's (quarterly compounding: 2.3% nominal)
    assert senior["yield"] == pytest.approx((1 + 0.023 / 4) ** 4 - 1, abs=2e-3)
    dates = whole.periods["payment_date"]
    paid = whole.tables.tranche[2:, 0, 4]
    years = np.array([(d - dates.iloc[1]).days / 365.0 for d in dates.iloc[2:]])
    assert senior["wal_years"] == pytest.approx(float((years * paid).sum() / paid.sum()))


def test_a_reported_state_moves_the_cash_as_its_balances_say() -> None:
    """The shipped 2025Q3 state (two defaults, a delinquent loan, balances of its own): the
    first period after the report date accrues the reported balances' interest, and each
    performing loan pays its schedule scaled to its reported balance."""
    deal = load_deal(CAOHEJING)
    model = _model(deal)
    state = load_state(deal, Q3)
    part = reproject(model, state, "two_defaults")
    t0 = state.period
    tr = part.tables.tranche[0]
    for k, name in enumerate(model.tranche_names):
        balance = state.spec.tranches[name].balance
        assert tr[k, TR_BALANCE_START] == pytest.approx(balance)
        rate = model.cd.tr_rate[k, t0]
        due = balance * rate * model.cd.year_frac[t0] + state.spec.tranches[name].interest_arrears
        assert tr[k, TR_INTEREST_DUE] == pytest.approx(due)
    # performing loans: the contract's interest and principal in proportion to the balance
    loans = {x.id: x for x in state.spec.loans}
    expected_interest = 0.0
    expected_principal = 0.0
    for a, asset in enumerate(deal_assets(deal)):
        loan = loans[asset.id]
        if loan.status in ("defaulted", "repaid"):
            continue
        ratio = loan.balance / model.sched_balance[a, t0 - 1]
        expected_interest += ratio * model.sched_interest[a, t0]
        expected_principal += ratio * model.sched_principal[a, t0]
    coll = part.collections.sum(axis=0)[0]
    assert coll[C_INTEREST] == pytest.approx(expected_interest)
    assert coll[C_SCHED_PRINCIPAL] == pytest.approx(expected_principal)


def test_defaulted_loans_recover_after_the_report_date() -> None:
    """A loan reported defaulted recovers its scenario's share of its pledged IP's appraisal
    (the state's revaluation when it gives one), capped at its reported balance."""
    deal = load_deal(CAOHEJING)
    model = _model(deal)
    state = load_state(deal, Q3)
    defaulted = [x for x in state.spec.loans if x.status == "defaulted"]
    assert defaulted, "the shipped 2025Q3 state has defaulted loans"
    part = reproject(model, state, "two_defaults")
    recovered = part.collections.sum(axis=0)[:, C_RECOVERY].sum()
    index = {a.id: i for i, a in enumerate(deal_assets(deal))}
    expected = 0.0
    for loan in defaulted:  # two_defaults: 25% of the appraisal, six months after the default
        appraisal = loan.appraised_value
        if appraisal is None:
            appraisal = model.assets.appraised_value[index[loan.id]]
        expected += min(0.25 * appraisal, loan.balance)
    assert recovered == pytest.approx(expected)


def test_work_layout_is_the_kernels() -> None:
    for path in sorted(SCENARIOS.glob("*.yaml")):
        model = _model(load_deal(path))
        work, _flags = allocate_work(model.cd)
        assert max(s.stop for s in work_layout(model.cd).values()) == work.shape[0], path.name


@pytest.mark.parametrize(
    ("deal", "period", "fragment"),
    [
        ("ip_3plusn_put", 13, "put date in period 12"),
        ("royalty_sales_covenant", 3, "averages its test over 4 periods"),
        ("pudong_revolving_ip_pledge", 1, "revolving"),
    ],
)
def test_what_a_state_cannot_carry_is_refused(deal: str, period: int, fragment: str, tmp_path: Path) -> None:
    loaded = load_deal(SCENARIOS / f"{deal}.yaml")
    model = _model(loaded)
    scenario = next(iter(model.spec.scenarios))
    try:
        state = state_at(model, period, scenario)
    except IpabsError as e:  # the run itself cannot be written loan by loan: nothing to test
        pytest.fail(f"the case needs a state the run can give: {e}")
    path = tmp_path / "s.yaml"
    write_state(state, path)
    with pytest.raises(IpabsError, match=fragment):
        reproject(model, load_state(loaded, path), scenario)


def test_run_from_a_state_on_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", str(CAOHEJING), "--state", str(Q3), "--scenario", "two_defaults", "--json"])
    assert code == 0
    out = capsys.readouterr().out
    assert '"report_date_balance": 93350000.0' in out


def test_run_from_a_bad_state_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for f in Q3.parent.glob("caohejing_2025q3*"):
        (tmp_path / f.name).write_bytes(f.read_bytes())
    bad = tmp_path / Q3.name
    bad.write_text(
        Q3.read_text(encoding="utf-8").replace("senior: {balance: 93350000", "senior: {balance: 193350000"),
        encoding="utf-8",
    )
    assert main(["run", str(CAOHEJING), "--state", str(bad)]) == EXIT_INVALID
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert f"{Q3.name}:12:" in err
    assert "tranches.senior" in err
