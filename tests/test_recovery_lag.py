"""Recovery lag: one default for the deterministic scenarios and the Monte Carlo, and a located
validation warning when recoveries fall after the legal final date (where they are lost)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ipabs.cli import EXIT_OK, main
from ipabs.deal.assumptions import RecoveryAssumption
from ipabs.deal.load import parse_deal
from ipabs.deal.risk import RecoveryModel
from ipabs.montecarlo import simulate
from ipabs.risk.montecarlo_numba_fns import P_DEFAULT_RATE, P_LOSS_RATE

RECOVERY = 0.4


def one_year_deal(scenario_recovery: str = "{rate: 0.4}", risk_recovery: str = "{rate: 0.4}") -> str:
    """Twenty 1-year bullet loans, one annual period ending on the legal final date."""
    loans = "\n".join(
        f"      - {{obligor: B{i}, balance: 1m, rate: 0, term_months: 12, amortisation: bullet, "
        "payment_frequency: annual}"
        for i in range(20)
    )
    return f"""deal:
  name: one year
  closing_date: 2025-01-01
  first_payment_date: 2026-01-01
  payment_frequency: annual
  legal_final_date: 2026-01-01
pools:
  - name: pool
    loans:
{loans}
scenarios:
  base:
    defaults: {{cdr: 0.05}}
    recovery: {scenario_recovery}
tranches:
  - {{name: notes, balance: 18m}}
waterfalls:
  normal:
    - pay_principal: notes
risk:
  correlation: 0.2
  default_pd: 0.05
  recovery: {risk_recovery}
"""


def test_scenario_and_monte_carlo_share_one_default_lag() -> None:
    assert RecoveryModel().lag_months == RecoveryAssumption().lag_months == 0


def test_monte_carlo_recovers_in_a_one_year_deal_when_the_lag_is_left_out() -> None:
    # left out, the lag no longer pushes every recovery past the legal final date: each path
    # loses (1 - recovery) of what defaulted, so the pool's expected loss is PD x (1 - R), 3%,
    # not the 5% of losing every recovery
    deal = parse_deal(one_year_deal())
    assert deal.warnings == ()
    result = simulate(deal, paths=2000, seed=3, threads=1, progress=False)
    pool = result.pool_outcomes
    assert pool[:, P_DEFAULT_RATE].max() > 0.0
    np.testing.assert_allclose(pool[:, P_LOSS_RATE], (1 - RECOVERY) * pool[:, P_DEFAULT_RATE], rtol=1e-12)
    mean, se = pool[:, P_DEFAULT_RATE].mean(), pool[:, P_DEFAULT_RATE].std() / np.sqrt(len(pool))
    assert abs(mean - 0.05) < 4 * se


def test_lost_recoveries_are_a_located_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = one_year_deal("{rate: 0.4, lag_months: 6}", "{rate: 0.4, lag_months: 12}")
    deal = parse_deal(text, file="deal.yaml")
    paths = [w.path for w in deal.warnings]
    assert paths == ["scenarios.base.recovery.lag_months", "risk.recovery.lag_months"]
    lines = text.splitlines()
    for w in deal.warnings:
        assert lines[w.line - 1][w.column - 1 :].startswith(("6", "12")), str(w)
        assert "after the legal final date 2026-01-01 and are lost" in w.message
        assert "20 of 20 assets" in w.message

    file = tmp_path / "deal.yaml"
    file.write_text(text, encoding="utf-8")
    assert main(["validate", str(file)]) == EXIT_OK
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and all(e.startswith(f"warning: {file}:") for e in err)
    assert (
        f"{file}:{deal.warnings[0].line}:{deal.warnings[0].column}: scenarios.base.recovery.lag_months"
        in err[0]
    )
    assert "Traceback" not in "\n".join(err)

    assert main(["run", str(file)]) == EXIT_OK
    err = capsys.readouterr().err
    assert "scenarios.base.recovery.lag_months" in err and "risk.recovery" not in err

    assert main(["mc", str(file), "--paths", "200", "--threads", "1", "--json"]) == EXIT_OK
    out = capsys.readouterr()
    assert "risk.recovery.lag_months" in out.err and "scenarios.base" not in out.err
    assert out.out.lstrip().startswith("{")  # the JSON document stays clean

    # a separate risk file is checked in its own place
    risk = tmp_path / "risk.yaml"
    risk.write_text(
        "risk:\n  default_pd: 0.05\n  recovery:\n    rate: 0.4\n    lag_months: 3\n", encoding="utf-8"
    )
    assert (
        main(["mc", str(file), "--risk", str(risk), "--paths", "200", "--threads", "1", "--json"]) == EXIT_OK
    )
    err = capsys.readouterr().err
    assert f"warning: {risk}:5:17: risk.recovery.lag_months" in err and f"{file}:" not in err


def test_no_warning_when_every_recovery_arrives() -> None:
    # the lag is zero, the recovery rate is zero, or the legal final date leaves room
    assert parse_deal(one_year_deal("{rate: 0.4, lag_months: 0}")).warnings == ()
    assert (
        parse_deal(one_year_deal("{rate: 0.0, lag_months: 6}", "{rate: 0.0, lag_months: 6}")).warnings == ()
    )
    roomy = one_year_deal("{rate: 0.4, lag_months: 12}", "{rate: 0.4, lag_months: 12}").replace(
        "legal_final_date: 2026-01-01", "legal_final_date: 2027-01-01"
    )
    assert parse_deal(roomy).warnings == ()


def test_loan_tape_maturities_count(tmp_path: Path) -> None:
    # tape rows: a maturity date 2026-06-30, a term of 18 months (2026-07-15) and a maturity
    # 2026-12-31; quarterly periods to legal final 2027-01-15. With a 6-month lag, only the
    # last loan's final period (ending on legal final) recovers too late.
    data = Path(__file__).parent / "data" / "tape_basic.csv"
    text = f"""deal: {{name: T, closing_date: 2025-01-15, first_payment_date: 2025-04-15,
       payment_frequency: quarterly, legal_final_date: 2027-01-15}}
indices: {{LPR1Y: 3.1%}}
obligors: [{{name: Gamma-Guarantee}}]
pools:
  - name: p0
    tape: {{path: {data.as_posix()}}}
scenarios:
  base: {{recovery: {{rate: 0.4, lag_months: 6}}}}
tranches: [{{name: senior, balance: 1000}}]
waterfalls: {{normal: [{{pay_interest: senior}}, {{pay_principal: senior}}]}}
"""
    (warning,) = parse_deal(text, file="deal.yaml", base_dir=tmp_path).warnings
    assert warning.path == "scenarios.base.recovery.lag_months"
    assert "1 of 3 assets" in warning.message and "2026-12-31" in warning.message
    assert "periods ending after 2026-07-15" in warning.message
