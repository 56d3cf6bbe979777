"""Roll and cure rates from a history of reports (docs/surveillance.md#roll-rates-from-a-history-of-reports):
the maximum-likelihood fit recovers the rates of a chain simulated independently, with
standard errors that cover them; thin histories are flagged; the command line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ipabs.analytics.rollrates import RATES, fit_roll_rates, months_between
from ipabs.cli import main

ROOT = Path(__file__).resolve().parents[1]
CAOHEJING = ROOT / "scenarios" / "caohejing_ip_pledge.yaml"
Q2 = ROOT / "scenarios" / "states" / "caohejing_2025q2.yaml"
Q3 = ROOT / "scenarios" / "states" / "caohejing_2025q3.yaml"

TRUE = {
    "roll_0": 0.02,
    "sudden_default": 0.003,
    "roll_1": 0.30,
    "cure_0": 0.35,
    "roll_2": 0.45,
    "cure_1": 0.20,
    "roll_3": 0.60,
    "cure_2": 0.10,
}


def _simulated_history(seed: int, loans: int = 3_000, quarters: int = 8) -> list[tuple[int, np.ndarray]]:
    """Loans moving month by month on the chain (numpy's generator), seen every three months."""
    p = np.zeros((5, 5))
    p[0, 1], p[0, 4] = TRUE["roll_0"], TRUE["sudden_default"]
    for k in (1, 2, 3):
        p[k, k + 1 if k < 3 else 4] = TRUE[f"roll_{k}"]
        p[k, 0] = TRUE[f"cure_{k - 1}"]
    for k in range(4):
        p[k, k] = 1.0 - p[k].sum()
    p[4, 4] = 1.0
    rng = np.random.default_rng(seed)
    state = np.zeros(loans, dtype=np.int64)
    pairs = []
    for _ in range(quarters):
        before = state.copy()
        for _ in range(3):
            u = rng.random(loans)
            state = (u[:, None] > np.cumsum(p[state], axis=1)).sum(axis=1)
        counts = np.zeros((5, 5))
        np.add.at(counts, (before[before < 4], state[before < 4]), 1.0)
        pairs.append((3, counts))
    return pairs


@pytest.mark.parametrize("seed", [2, 3])
def test_the_fit_recovers_a_simulated_chain(seed: int) -> None:
    est = fit_roll_rates(_simulated_history(seed))
    for name in RATES:
        assert not est.flags[name], (name, est.flags[name])
        z = (est.rates[name] - TRUE[name]) / est.se[name]
        assert abs(z) < 4.0, (name, est.rates[name], TRUE[name], est.se[name])
    assert est.roll_rates == [est.rates[f"roll_{k}"] for k in range(4)]
    assert "roll_rates: [" in est.risk_yaml() and "cure_rates: [" in est.risk_yaml()


def test_an_unseen_move_is_flagged_not_trusted() -> None:
    pairs = _simulated_history(5, loans=400, quarters=2)
    for _, counts in pairs:
        counts[0, 4] = 0.0  # no sudden default in these reports
    est = fit_roll_rates(pairs)
    assert est.rates["sudden_default"] < 1e-4
    assert "no such move" in est.flags["sudden_default"]
    assert np.isnan(est.se["sudden_default"])
    assert est.warnings


def test_months_between_reports() -> None:
    import datetime as dt

    assert months_between(dt.date(2025, 6, 27), dt.date(2025, 9, 27)) == 3
    assert months_between(dt.date(2025, 1, 31), dt.date(2025, 2, 28)) == 1
    assert months_between(dt.date(2025, 1, 15), dt.date(2026, 1, 14)) == 12


def test_roll_rates_on_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["roll-rates", str(CAOHEJING), "--states", str(Q2), str(Q3), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["months_between_reports"] == [3]
    # nine loans current in 2025Q2: six still current, one 31-60 days behind, two defaulted
    assert doc["moves"]["counts"][0] == [6, 0, 1, 0, 2]
    assert [r["rate"] for r in doc["rates"]] == list(RATES)
    assert all(r["flag"] for r in doc["rates"]), "two reports of nine loans pin nothing down"
    assert doc["warnings"]
    assert main(["roll-rates", str(CAOHEJING), "--states", str(Q2), str(Q3)]) == 0
    out = capsys.readouterr().out
    assert "delinquency:" in out and "cannot be taken as printed" in out


def test_roll_rates_need_reports_in_order(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["roll-rates", str(CAOHEJING), "--states", str(Q3)]) == 2
    assert "at least two reports" in capsys.readouterr().err
    assert main(["roll-rates", str(CAOHEJING), "--states", str(Q3), str(Q2)]) == 2
    assert "date order" in capsys.readouterr().err
