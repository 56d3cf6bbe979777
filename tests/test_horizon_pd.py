"""Horizon PDs: a cumulative default probability stated to the legal final date or to a date
(``cumulative_pd``) holds exactly at that date, whatever the number of days, while an annual
``pd`` runs on an ACT/365 clock."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import compile_text
from scipy.stats import norm

from ipabs.deal.load import parse_deal
from ipabs.errors import DealError
from ipabs.montecarlo import simulate
from ipabs.risk.model import compile_risk
from ipabs.risk.montecarlo_numba_fns import P_DEFAULTS

N_OBLIGORS = 50


def leap_year_deal(credit: str, obligors: str = "") -> str:
    """Bullet loans over 2024 (366 days: closing 2024-01-01, legal final 2025-01-01), quarterly."""
    loans = "\n".join(
        f"      - {{obligor: B{i}, balance: 1m, rate: 0, term_months: 12, amortisation: bullet, "
        f"payment_frequency: quarterly{', ' + credit if credit else ''}}}"
        for i in range(N_OBLIGORS)
    )
    return f"""deal:
  name: leap year
  closing_date: 2024-01-01
  first_payment_date: 2024-04-01
  payment_frequency: quarterly
  legal_final_date: 2025-01-01
{obligors}pools:
  - name: pool
    loans:
{loans}
tranches:
  - {{name: notes, balance: 45m}}
waterfalls:
  normal:
    - pay_principal: notes
risk:
  correlation: 0.0
  recovery: {{rate: 0.4}}
"""


def cumulative_by_period(text: str) -> np.ndarray:
    """Cumulative PD of the first obligor at each payment date, read back from the compiled
    latent-variable thresholds."""
    ra = compile_risk(compile_text(text))
    return norm.cdf(ra.g_threshold[ra.ob_group[0]])


def test_cumulative_pd_to_legal_final_is_exact_in_the_thresholds() -> None:
    cum = cumulative_by_period(leap_year_deal("cumulative_pd: {pd: 5%, by: legal_final}"))
    assert cum[-1] == pytest.approx(0.05, rel=1e-12)
    # constant hazard per day: by 2024-07-01 (182 of 366 days), 1 - 0.95^(182/366)
    assert cum[1] == pytest.approx(1.0 - 0.95 ** (182 / 366), rel=1e-12)
    # `by` defaults to the legal final date
    assert cumulative_by_period(leap_year_deal("cumulative_pd: {pd: 5%}"))[-1] == pytest.approx(
        0.05, rel=1e-12
    )


def test_annual_pd_runs_on_an_act_365_clock() -> None:
    # "5%" annual over 366 days: 1 - 0.95^(366/365) = 5.0133%, which cumulative_pd avoids
    cum = cumulative_by_period(leap_year_deal("pd: 5%"))
    assert cum[-1] == pytest.approx(1.0 - 0.95 ** (366 / 365), rel=1e-12)
    assert round(100 * cum[-1], 4) == 5.0133


def test_cumulative_pd_to_a_date() -> None:
    cum = cumulative_by_period(leap_year_deal("cumulative_pd: {pd: 2%, by: 2024-07-01}"))
    assert cum[1] == pytest.approx(0.02, rel=1e-12)
    assert cum[-1] == pytest.approx(1.0 - 0.98 ** (366 / 182), rel=1e-12)
    # on the obligor instead of its asset
    obligors = "obligors:\n" + "".join(
        f"  - {{name: B{i}, cumulative_pd: {{pd: 2%, by: 2024-07-01}}}}\n" for i in range(N_OBLIGORS)
    )
    cum_ob = cumulative_by_period(leap_year_deal("", obligors))
    np.testing.assert_allclose(cum_ob, cum, rtol=1e-15)


def test_monte_carlo_default_frequency_by_legal_final() -> None:
    deal = parse_deal(leap_year_deal("cumulative_pd: {pd: 5%, by: legal_final}"))
    paths = 4000
    result = simulate(deal, paths=paths, seed=11, threads=1, progress=False)
    share = result.pool_outcomes[:, P_DEFAULTS] / N_OBLIGORS  # obligors independent (correlation 0)
    se = np.sqrt(0.05 * 0.95 / (paths * N_OBLIGORS))
    assert abs(share.mean() - 0.05) < 4 * se, (share.mean(), se)


@pytest.mark.parametrize(
    ("credit", "field"),
    [
        ("pd: 5%, cumulative_pd: {pd: 5%}", "cumulative_pd"),
        ("pd_curve: [0.05], cumulative_pd: {pd: 5%}", "cumulative_pd"),
    ],
)
def test_two_kinds_of_pd_are_a_located_error(credit: str, field: str) -> None:
    text = leap_year_deal(credit)
    with pytest.raises(DealError) as info:
        parse_deal(text, file="deal.yaml")
    issue = info.value.issues[0]
    assert issue.path.endswith(field), str(issue)
    assert text.splitlines()[issue.line - 1][issue.column - 1 :].startswith(("cumulative_pd", "{pd: 5%}")), (
        str(issue)
    )
    assert "give one of pd (annual), pd_curve or cumulative_pd" in issue.message


def test_horizon_before_closing_and_mixed_forms_are_located_errors() -> None:
    with pytest.raises(DealError) as info:
        parse_deal(leap_year_deal("cumulative_pd: {pd: 5%, by: 2023-12-31}"), file="deal.yaml")
    issue = info.value.issues[0]
    assert issue.path == "pools[0].loans[0].cumulative_pd.by" and issue.line > 0
    assert "must be after the closing date" in issue.message
    # the obligor section says `pd`, its asset `cumulative_pd`: which one applies is ambiguous
    obligors = "obligors:\n  - {name: B0, pd: 5%}\n"
    loan = (
        "{obligor: B0, balance: 1m, rate: 0, term_months: 12, amortisation: bullet, "
        "payment_frequency: quarterly"
    )
    text = leap_year_deal("", obligors).replace(loan + "}", loan + ", cumulative_pd: {pd: 5%}}", 1)
    assert "cumulative_pd" in text
    with pytest.raises(DealError) as info:
        parse_deal(text, file="deal.yaml")
    assert any("conflicting" in i.message and i.path == "pools[0].loans[0]" for i in info.value.issues)
