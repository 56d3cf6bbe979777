"""Numbers in text output: significant figures, estimates with their standard errors, and
every command's text using the same rules."""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import pytest

from ipabs.format import estimate, number, pct, pct_estimate, pct_given


@pytest.mark.parametrize(
    ("x", "digits", "expected"),
    [
        (0.0, 4, "0"),
        (-0.0, 4, "0"),
        (math.nan, 4, "n/a"),
        (12.5, 4, "12.50"),
        (0.066312, 4, "0.06631"),
        (1234.5678, 4, "1235"),
        (99.996, 4, "100.0"),  # rounding carries into the next figure
        (0.001, 3, "0.00100"),
        (0.00099996, 4, "0.001000"),  # rounds up to the threshold: fixed
        (2.8e-7, 2, "2.8e-7"),
        (-3.25e-9, 3, "-3.25e-9"),
    ],
)
def test_number_has_significant_figures(x: float, digits: int, expected: str) -> None:
    assert number(x, digits) == expected


def test_pct_never_hides_a_small_share() -> None:
    assert pct(2.8e-9) == "2.800e-7%"
    assert pct(0.0) == "0%"
    assert pct(0.035) == "3.500%"
    assert pct(math.nan) == "n/a"


@pytest.mark.parametrize(
    ("value", "se", "expected"),
    [
        # the se to two significant figures, the value to the same decimal place
        (0.0663, 0.004027, "0.0663 ± 0.0040"),
        (12.3456, 0.0987, "12.346 ± 0.099"),
        (12.3456, 0.09996, "12.35 ± 0.10"),  # the se rounds up to 0.10: one decimal fewer
        (1234.5, 123.4, "1230 ± 120"),
        (2.8e-7, 1.234e-8, "2.80e-7 ± 1.2e-8"),
        (-5.0e-6, 3.0e-7, "-5.00e-6 ± 3.0e-7"),
        # an estimate below the se's last figure keeps two figures of its own, never "0"
        (2.8e-7, 3.0e-5, "2.8e-7 ± 3.0e-5"),
        (0.00004, 0.0123, "4.0e-5 ± 0.012"),
        (0.0, 0.0, "0 ± 0"),
        (0.0, 0.0021, "0 ± 0.0021"),
        (0.25, 0.0, "0.2500 ± 0"),
        (math.nan, 0.1, "n/a"),
        (0.5, math.nan, "0.5000 ± n/a"),
    ],
)
def test_estimate_rounds_to_the_standard_error(value: float, se: float, expected: str) -> None:
    assert estimate(value, se) == expected


def test_pct_given_shows_an_assumption_as_written() -> None:
    assert [pct_given(x) for x in (0.3, 0.025, -0.02, 0.0, 1.0)] == ["30%", "2.5%", "-2%", "0%", "100%"]


def test_pct_estimate_is_in_percent() -> None:
    assert pct_estimate(0.000663, 0.00004027) == "0.0663% ± 0.0040%"
    # the reported case: an estimate of 2.8e-9 used to print as 0.0000% ± 0.0000%
    assert pct_estimate(2.8e-9, 3e-10) == "2.80e-7% ± 3.0e-8%"
    assert pct_estimate(0.012, 3e-7) == "1.200000% ± 3.0e-5%"


def _mc_result(el: float, el_se: float, pl: float, pl_se: float) -> Any:
    row = {
        "tranche": "senior",
        "original_balance": 1e8,
        "expected_loss": el,
        "expected_loss_se": el_se,
        "probability_of_loss": pl,
        "probability_of_loss_se": pl_se,
        "expected_wal_years": 2.5,
        "mean_yield": 0.035,
    }
    pool = {
        "expected_loss": 0.021,
        "expected_loss_se": 3e-7,
        "loss_q95": 0.05,
        "loss_q99": 0.08,
        "loss_q99.9": 0.1,
        "expected_shortfall_95": 0.06,
        "expected_shortfall_99": 0.09,
        "expected_shortfall_99.9": 0.11,
        "expected_defaults": 1.2,
    }
    return SimpleNamespace(
        tranche_summary=[row],
        pool_summary=pool,
        deal_name="d",
        paths=1000,
        seed=0,
        elapsed_seconds=0.1,
        sampling=None,
    )


def test_mc_text_shows_small_estimates_and_standard_errors() -> None:
    from ipabs.cli import _mc_text

    text = _mc_text(_mc_result(2.8e-9, 3e-10, 4.1e-8, 2.2e-9))
    assert "0.0000%" not in text and "0.000%" not in text
    assert "2.80e-7% ± 3.0e-8%" in text  # expected loss
    assert "4.10e-6% ± 2.2e-7%" in text  # probability of loss
    assert "2.100000% ± 3.0e-5%" in text  # the pool's expected loss, se 3e-7


def test_size_text_uses_one_number_format() -> None:
    from ipabs.commands.size import _text

    trial = SimpleNamespace(
        size=1e6, metric=0.000663, metric_se=0.00004027, limit=0.0011, horizon_years=2.0, meets=True
    )
    result = SimpleNamespace(
        by="tranche",
        tranche="senior",
        target_name=None,
        criterion="expected_loss",
        rating="A2",
        table="t",
        paths=100,
        seed=0,
        size=1e6,
        metric=0.000663,
        metric_se=0.00004027,
        limit=0.0011,
        horizon_years=2.0,
        subordination=0.1,
        balances={"senior": 1e6},
        trials=[trial],
        sampling="plain",
    )
    text = _text(result)
    assert "0.0663% ± 0.0040%" in text
    assert "0.004027%" not in text


def test_rate_text_shows_small_estimates() -> None:
    import pandas as pd

    from ipabs.commands.rate import _text

    t = SimpleNamespace(
        tranche="senior",
        expected_loss=2.8e-9,
        expected_loss_se=3e-10,
        el_rating="Aaa",
        el_rating_range=("Aaa", "Aaa"),
        probability_of_loss=4.1e-8,
        probability_of_loss_se=2.2e-9,
        pd_rating="Aaa",
        horizon_years=2.0,
        bdr=0.3,
        bdr_stress="front",
        bdr_multiple=5.0,
        bdr_rating_quantile="Aaa",
        bdr_rating_multiple="Aaa",
        note="",
    )
    tdr = pd.DataFrame(
        [
            {
                "tranche": "senior",
                "rating": "Aaa",
                "default_probability": 1e-5,
                "tdr_quantile": 0.2,
                "tdr_quantile_ci_low": 0.19,
                "tdr_quantile_ci_high": 0.21,
                "multiple": 5.0,
                "tdr_multiple": 0.25,
            }
        ]
    )
    report = SimpleNamespace(
        deal_name="d",
        table_name="t",
        paths=100,
        seed=0,
        sampling="plain",
        base_rate=0.05,
        base_basis="b",
        tranches=[t],
        tdr=tdr,
        notes=[],
        breakeven_applies=True,
        breakeven_reason="",
    )
    text = _text(report)
    assert "2.80e-7% ± 3.0e-8%" in text
    assert "4.10e-6% ± 2.2e-7%" in text
    assert "0.0000%" not in text and "0.000%" not in text
