"""Early warning (docs/monitor.md): trigger probabilities against scipy quadrature of the
factor's posterior, risk contributions that add up to the expected loss, concentration, and the
command line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import integrate, stats

from ipabs.analytics.monitor import monitor
from ipabs.analytics.reproject import started_model
from ipabs.api import _model
from ipabs.cli import main
from ipabs.deal.load import parse_deal
from ipabs.deal.state import load_state
from ipabs.risk.model import compile_risk

ROOT = Path(__file__).resolve().parents[1]
CAOHEJING = ROOT / "scenarios" / "caohejing_ip_pledge.yaml"
Q3 = ROOT / "scenarios" / "states" / "caohejing_2025q3.yaml"

# 30 identical bullet loans (annual PD 6%, one factor of correlation 0.2), quarterly; the
# trigger fires at the first default (cumulative default rate above a hair)
DEAL = """\
deal:
  name: monitor test pool
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
  - {{name: A, balance: 24m, coupon: 0.03}}
  - {{name: B, balance: 6m}}
triggers:
  - name: first_default
    kind: cumulative_default_rate
    threshold: 0.000001
    curable: false
    effect: {{sequential: true}}
waterfalls:
  normal:
    - pay_interest: A
    - pay_principal: {{tranches: [A, B], mode: sequential}}
    - pay_residual: B
risk:
  correlation: 0.2
  default_pd: {pd}
  recovery: {{model: constant, rate: 0.2, lag_months: 3}}
"""
N_LOANS = 30


def _deal(tmp_path: Path, pd: float = 0.06, defaulted: dict[int, str] | None = None, breached: bool = False):  # type: ignore[no-untyped-def]
    loans = "\n".join(
        f"      - {{obligor: L{i:02d}, balance: 1m, rate: 0.06, term_months: 36, amortisation: bullet}}"
        for i in range(N_LOANS)
    )
    deal = parse_deal(DEAL.format(loans=loans, pd=pd), str(tmp_path / "pool.yaml"))
    defaulted = defaulted or {}
    rows = []
    for i in range(N_LOANS):
        if i in defaulted:
            rows.append(f"  - {{id: L{i:02d}, balance: 1m, status: defaulted, default_date: {defaulted[i]}}}")
        else:
            rows.append(f"  - {{id: L{i:02d}, balance: 1m, status: current}}")
    trig = "true" if breached else "false"
    state = (
        "report_date: 2025-10-15\ntranches:\n  A: {balance: 24m}\n  B: {balance: 6m}\n"
        f"triggers:\n  first_default: {{breached: {trig}}}\nloans:\n" + "\n".join(rows) + "\n"
    )
    (tmp_path / "state.yaml").write_text(state, encoding="utf-8")
    return deal, load_state(deal, tmp_path / "state.yaml")


def test_trigger_probabilities_match_the_posterior_by_quadrature(tmp_path: Path) -> None:
    # every loan survived three quarters; the trigger fires at the first later default:
    # P(fired by period H) = 1 - E[(1 - q_H(Z))^N | survived] with q_H the conditional PD from
    # the report date to H, the expectation over the factor's posterior given the survival
    deal, state = _deal(tmp_path)
    paths = 6_000
    report = monitor(deal, state, paths=paths, seed=3, threads=2)
    (trigger,) = report.triggers
    assert not trigger.in_effect_now
    ra = compile_risk(started_model(_model(deal), state))
    floor = float(ra.g_floor[0])  # the report period's threshold
    rho = np.sqrt(0.2)
    s = np.sqrt(1.0 - 0.2)

    def p(c: float, z: float) -> float:
        return float(stats.norm.cdf((c - rho * z) / s))

    def survive_all(c: float, z: float) -> float:
        return (1.0 - p(c, z)) ** N_LOANS

    norm = integrate.quad(lambda z: stats.norm.pdf(z) * survive_all(floor, z), -10, 10, limit=200)[0]
    t0 = state.period
    assert t0 == 3
    for months, quarters in ((3, 1), (6, 2), (12, 4)):
        c = float(ra.g_threshold[0, t0 - 1 + quarters])
        # survivors of the report date none of whom defaults by then: all latent above c
        none = integrate.quad(lambda z, c=c: stats.norm.pdf(z) * survive_all(c, z), -10, 10, limit=200)[0]
        expected = 1.0 - none / norm
        got, se = trigger.probability[months], trigger.probability_se[months]
        assert se > 0.0
        assert abs(got - expected) < 4.0 * se, (months, got, expected, se)
    assert trigger.probability[3] < trigger.probability[6] < trigger.probability[12]


def test_contributions_add_up_to_the_expected_loss(tmp_path: Path) -> None:
    deal, state = _deal(tmp_path, pd=0.2, defaulted={4: "2025-07-15"}, breached=True)
    report = monitor(deal, state, paths=4_000, seed=1, threads=2, watch=N_LOANS)
    a = next(t for t in report.tranches if t.tranche == "A")
    total = sum(o.contribution for o in report.watch_list) + report.unallocated
    assert a.expected_loss_now > 0.0
    assert total == pytest.approx(a.expected_loss_now, rel=1e-10)
    # the loan defaulted before the report date loses on every path: it leads the list
    assert report.watch_list[0].obligor == "L04"
    assert report.watch_list[0].status == "defaulted"
    assert all(0.0 <= o.share_of_expected_loss <= 1.0 for o in report.watch_list)
    # a trigger in effect that cannot cure fires with certainty
    (trigger,) = report.triggers
    assert trigger.in_effect_now
    assert all(trigger.probability[h] == pytest.approx(1.0, abs=1e-12) for h in (3, 6, 12))


def test_one_obligor_that_can_default_carries_the_whole_expected_loss(tmp_path: Path) -> None:
    # one 12m loan at a 50% PD among 18 loans that cannot default (an obligor PD of 0)
    loans = "\n".join(
        f"      - {{obligor: L{i:02d}, balance: {'12m' if i == 0 else '1m'}, rate: 0.06, term_months: 36, "
        f"amortisation: bullet, pd: {0.5 if i == 0 else 0.0}}}"
        for i in range(19)
    )
    deal = parse_deal(DEAL.format(loans=loans, pd=0.06), str(tmp_path / "pool.yaml"))
    rows = "\n".join(
        f"  - {{id: L{i:02d}, balance: {'12m' if i == 0 else '1m'}, status: current}}" for i in range(19)
    )
    (tmp_path / "state.yaml").write_text(
        "report_date: 2025-10-15\ntranches:\n  A: {balance: 24m}\n  B: {balance: 6m}\n"
        f"triggers:\n  first_default: {{breached: false}}\nloans:\n{rows}\n",
        encoding="utf-8",
    )
    state = load_state(deal, tmp_path / "state.yaml")
    report = monitor(deal, state, paths=3_000, seed=2, threads=2, tranche="B")
    b = next(t for t in report.tranches if t.tranche == "B")
    assert b.expected_loss_now > 0.0
    assert [o.obligor for o in report.watch_list] == ["L00"]
    assert report.watch_list[0].contribution == pytest.approx(b.expected_loss_now, rel=1e-10)
    assert report.watch_list[0].share_of_expected_loss == pytest.approx(1.0, rel=1e-10)
    assert report.unallocated == 0.0
    c = report.concentration
    shares = np.array([12.0] + [1.0] * 18) / 30.0
    assert c.herfindahl == pytest.approx(float((shares**2).sum()), rel=1e-12)
    assert c.effective_obligors == pytest.approx(1.0 / float((shares**2).sum()), rel=1e-12)
    assert c.largest[0]["obligor"] == "L00"


def test_monitor_on_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["monitor", str(CAOHEJING), "--state", str(Q3), "--paths", "2000", "--json", "--quiet"])
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["report_date"] == "2025-09-27"
    assert [t["tranche"] for t in doc["tranches"]] == ["senior", "sub"]
    senior = doc["tranches"][0]
    assert senior["expected_loss_now"] > senior["expected_loss_closing"]
    assert senior["drift_notches"] > 0
    trig = {t["trigger"]: t for t in doc["triggers"]}
    assert trig["cumulative_default_3pct"]["in_effect_now"]
    watch = doc["watch_list"]
    assert watch["tranche"] == "senior"
    assert watch["obligors"], "the defaulted loans contribute to the senior's expected loss"
    statuses = {o["obligor"]: o["status"] for o in watch["obligors"]}
    assert "defaulted" in statuses.values()
    assert doc["concentration"]["obligors"] == 7
    code = main(["monitor", str(CAOHEJING), "--state", str(Q3), "--paths", "1000", "--quiet"])
    assert code == 0
    text = capsys.readouterr().out
    assert "watch list" in text and "Herfindahl" in text and "12 months" in text


def test_monitor_refuses_an_unknown_tranche(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["monitor", str(CAOHEJING), "--state", str(Q3), "--tranche", "mezz", "--quiet"])
    assert code == 2
    assert "no such tranche" in capsys.readouterr().err


TWIN_SCRIPT = """
import sys, warnings, numpy as np, numba
assert numba.config.DISABLE_JIT
# the generator relies on 64-bit wrap-around, which NumPy's scalars warn about (as in test_twin)
warnings.filterwarnings("ignore", message="overflow encountered in scalar", category=RuntimeWarning)
from ipabs.analytics import monitor as M
from ipabs.analytics.reproject import started_model
from ipabs.api import _model
from ipabs.deal.load import load_deal
from ipabs.deal.state import load_state
from ipabs.montecarlo import simulate
deal = load_deal(sys.argv[1])
state = load_state(deal, sys.argv[2])
model = started_model(_model(deal), state)
run = simulate(model, paths=24, seed=7, threads=1)
horizon_last, _ = M._horizon_periods(deal, state, (3, 6, 12))
s = M._second_pass(model, run, 0, horizon_last, 1)
np.savez(sys.argv[3], ob_sum=s.ob_sum, fire_sum=s.fire_sum, totals=s.totals)
"""


def test_monitor_kernel_matches_its_python_twin(tmp_path: Path) -> None:
    # the compiled second pass must draw the run's own paths, as the pure-Python twin does
    import os
    import subprocess
    import sys

    from ipabs.analytics import monitor as M
    from ipabs.deal.load import load_deal
    from ipabs.montecarlo import simulate

    target = tmp_path / "twin.npz"
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1", "PYTHONWARNINGS": "error"}
    args = [sys.executable, "-c", TWIN_SCRIPT, str(CAOHEJING), str(Q3), str(target)]
    subprocess.run(args, check=True, env=env, cwd=ROOT)
    twin = np.load(target)
    deal = load_deal(CAOHEJING)
    state = load_state(deal, Q3)
    model = started_model(_model(deal), state)
    run = simulate(model, paths=24, seed=7, threads=1)
    horizon_last, _ = M._horizon_periods(deal, state, (3, 6, 12))
    s = M._second_pass(model, run, 0, horizon_last, 1)
    assert twin["ob_sum"].sum() > 0.0
    np.testing.assert_allclose(s.ob_sum, twin["ob_sum"], rtol=1e-12, atol=1e-6)
    np.testing.assert_allclose(s.fire_sum, twin["fire_sum"], rtol=1e-12)
    np.testing.assert_allclose(s.totals, twin["totals"], rtol=1e-12, atol=1e-6)
