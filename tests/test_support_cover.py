"""Support that pays and gets paid back, principal guarantees at maturity or legal final, and
loss cover (risk-sharing pools, guarantee insurance): small deals computed by hand to the cent.

Every deal uses ACT/365 and dates on the first of a month, so that annual year fractions are
365/365 or, for the year through 29 February 2028, 366/365. Expected numbers are written out
period by period and recomputed by plain arithmetic; no ipabs function produces them.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from helpers import assert_cents, assert_conserved, col, compile_text, run_text
from test_montecarlo import assert_periods_equal

from ipabs import api
from ipabs.deal.load import parse_deal
from ipabs.errors import DealError, Issue
from ipabs.montecarlo import simulate

ANNUAL_4Y = """
deal:
  name: {name}
  closing_date: 2025-01-01
  first_payment_date: 2026-01-01
  payment_frequency: annual
  legal_final_date: 2029-01-01
"""

ANNUAL_3Y = """
deal:
  name: {name}
  closing_date: 2025-01-01
  first_payment_date: 2026-01-01
  payment_frequency: annual
  legal_final_date: 2028-01-01
"""

# --------------------------------------------------------------------------- 1. reimbursement

REIMBURSED_DEAL = (
    ANNUAL_4Y.format(name="reimbursed keepwell")
    + """obligors:
  - {name: Sponsor}
pools:
  - name: park
    loans:
      - {obligor: A, balance: 6m, rate: 5%, term_months: 48, payment_frequency: annual}
      - {obligor: B, balance: 4m, rate: 5%, term_months: 48, payment_frequency: annual}
      - {obligor: C, balance: 1m, rate: 0, maturity_date: 2028-01-01, payment_frequency: annual,
         amortisation: custom, schedule: [{date: 2028-01-01, principal: 1m}]}
scenarios:
  b_defaults:
    defaults: {obligors: {B: 2}}
    recovery: {rate: 0.5, lag_months: 24}
tranches:
  - {name: senior, balance: 5m}
  - {name: mezz, balance: 3m, coupon: 12%}
  - {name: equity, balance: 2m}
support:
  - {name: keepwell, kind: deficiency_payment, provider: Sponsor, reimbursement_rate: 10%}
waterfalls:
  normal:
    - pay_interest: senior
    - pay_interest: mezz
    - draw: {from: keepwell, covers: [mezz.interest]}
    - pay_principal: senior
    - REIMBURSE
    - pay_principal: mezz
    - pay_residual: equity
"""
)


def test_deficiency_payer_is_paid_back_with_interest_before_the_residual() -> None:
    res = run_text(REIMBURSED_DEAL.replace("REIMBURSE", "reimburse: keepwell"))
    leap = 366 / 365  # 2028-01-01 -> 2029-01-01
    # Collections. A: 6m x 5% = 300,000 a year (x 366/365 in year 4), 6m at maturity. B: 200,000
    # in year 1, defaults in period 2 (no interest), recovers 50% x 4m = 2m 24 months after the end
    # of period 2, on 2029-01-01 (period 4). C: 1m principal in period 3.
    cash = [500_000, 300_000, 1_300_000, 300_000 * leap + 6_000_000 + 2_000_000]
    assert_cents(col(res, "deal.collections"), cash, "collections")
    # Mezz interest 3m x 12% = 360,000 (x 366/365 in year 4), paid first (the senior pays none).
    mezz_int = [360_000, 360_000, 360_000, 360_000 * leap]
    assert_cents(col(res, "mezz.interest_paid"), mezz_int, "mezz interest")
    # P1: 140,000 left -> senior principal. P2: 300,000 < 360,000: keepwell pays 60,000.
    # P3: 1.3m - 360,000 = 940,000 -> senior; nothing reaches the reimbursement step, whose
    # interest 60,000 x 10% x 1 = 6,000 stays unpaid. P4: senior's last 3,920,000; then interest
    # 60,000 x 10% x 366/365 + 6,000 and the 60,000; then mezz principal, the rest to equity.
    draw = [0, 60_000, 0, 0]
    assert_cents(col(res, "keepwell.draw"), draw, "draws")
    assert_cents(col(res, "mezz.support_received"), draw, "mezz support received")
    assert_cents(col(res, "senior.principal_paid"), [140_000, 0, 940_000, 3_920_000], "senior principal")
    interest_p4 = 60_000 * 0.10 * leap + 6_000
    assert_cents(col(res, "keepwell.interest_paid"), [0, 0, 0, interest_p4], "reimbursement interest")
    assert_cents(col(res, "keepwell.principal_repaid"), [0, 0, 0, 60_000], "draws reimbursed")
    assert_cents(col(res, "keepwell.reimbursed"), [0, 0, 0, 60_000 + interest_p4], "reimbursed")
    assert_cents(col(res, "keepwell.unreimbursed"), [0, 60_000, 66_000, 0], "unreimbursed")
    assert_cents(col(res, "mezz.principal_paid"), [0, 0, 0, 3_000_000], "mezz principal")
    equity = cash[3] - mezz_int[3] - 3_920_000 - interest_p4 - 60_000 - 3_000_000
    assert_cents(col(res, "equity.principal_paid"), [0, 0, 0, equity], "equity")
    assert_conserved(res, 1e7)


def test_a_deficiency_payer_no_step_reimburses_is_owed_nothing() -> None:
    res = run_text(REIMBURSED_DEAL.replace("    - REIMBURSE\n", ""))
    leap = 366 / 365
    assert_cents(col(res, "keepwell.draw"), [0, 60_000, 0, 0], "draws")
    assert_cents(col(res, "keepwell.reimbursed"), [0, 0, 0, 0], "reimbursed")
    assert_cents(col(res, "keepwell.unreimbursed"), [0, 0, 0, 0], "unreimbursed")
    equity = 300_000 * leap + 8_000_000 - 360_000 * leap - 3_920_000 - 3_000_000
    assert_cents(col(res, "equity.principal_paid"), [0, 0, 0, equity], "equity keeps the excess")
    assert_conserved(res, 1e7)


def test_reimbursing_a_liquidity_facility_is_repay_liquidity() -> None:
    facility = "  - {name: keepwell, kind: liquidity_facility, provider: Sponsor, limit: 1m, rate: 10%}\n"
    text = REIMBURSED_DEAL.replace(
        "  - {name: keepwell, kind: deficiency_payment, provider: Sponsor, reimbursement_rate: 10%}\n",
        facility,
    )
    a = run_text(text.replace("REIMBURSE", "reimburse: keepwell"))
    b = run_text(text.replace("REIMBURSE", "repay_liquidity: keepwell"))
    for field in ("draw", "interest_paid", "principal_repaid", "reimbursed", "unreimbursed"):
        assert np.array_equal(col(a, f"keepwell.{field}"), col(b, f"keepwell.{field}")), field
    assert col(a, "keepwell.reimbursed")[3] > 60_000


# --------------------------------------------------------------------------- 2. principal guarantees

# A 6m senior with a target balance of 4m after period 1 and an expected maturity at the end of
# period 2; collections 1m, 1m, then 8m (or nothing when the borrower defaults in period 3).
GUARANTEED_PRINCIPAL = (
    ANNUAL_3Y.format(name="principal guarantee")
    + """obligors:
  - {name: Guarantor}
pools:
  - name: park
    loans:
      - {obligor: A, balance: 10m, rate: 0, maturity_date: 2028-01-01, payment_frequency: annual,
         amortisation: custom, schedule: [{date: 2026-01-01, principal: 1m},
                                          {date: 2027-01-01, principal: 1m}]}
scenarios:
  base: {}
  default_p3:
    defaults: {obligors: {A: 3}}
tranches:
  - {name: senior, balance: 6m, amortisation_schedule: [4m], expected_maturity: 2027-01-01}
  - {name: sub, balance: 4m}
support:
  - {name: guarantee, kind: deficiency_payment, provider: Guarantor}
waterfalls:
  normal:
    - pay_principal: {tranches: [senior], limit: due}
    - draw: {from: guarantee, covers: [CLAIM]}
    - pay_principal: {tranches: [sub], limit: due}
    - pay_residual: sub
"""
)


def _guaranteed(claim: str, scenario: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    res = run_text(GUARANTEED_PRINCIPAL.replace("CLAIM", claim), scenario)
    assert_conserved(res, 1e7)
    return col(res, "guarantee.draw"), col(res, "senior.balance_end"), col(res, "sub.principal_paid")


def test_principal_guarantee_pays_each_period_s_principal_due() -> None:
    # P1: 2m due (6m -> 4m), 1m collected: 1m drawn. P2: expected maturity, 4m due, 1m
    # collected: 3m drawn. P3: 8m to the sub (4m principal, 4m residual).
    draw, senior, sub = _guaranteed("senior.principal", "base")
    assert_cents(draw, [1_000_000, 3_000_000, 0], "draws")
    assert_cents(senior, [4_000_000, 0, 0], "senior balance")
    assert_cents(sub, [0, 0, 4_000_000], "sub principal")


def test_principal_at_maturity_ignores_the_schedule_before_expected_maturity() -> None:
    # P1: nothing drawn (senior 5m). P2: expected maturity: 5m due, 1m collected, 4m drawn.
    draw, senior, _sub = _guaranteed("senior.principal_at_maturity", "base")
    assert_cents(draw, [0, 4_000_000, 0], "draws")
    assert_cents(senior, [5_000_000, 0, 0], "senior balance")
    # the borrower's default in period 3 does not matter: the senior was paid at maturity
    draw, senior, _sub = _guaranteed("senior.principal_at_maturity", "default_p3")
    assert_cents(draw, [0, 4_000_000, 0], "draws, default in period 3")


def test_principal_at_final_pays_only_at_legal_final() -> None:
    # base: 1m, 1m, then 8m repays the senior's last 4m at legal final: nothing drawn.
    draw, senior, sub = _guaranteed("senior.principal_at_final", "base")
    assert_cents(draw, [0, 0, 0], "draws")
    assert_cents(senior, [5_000_000, 4_000_000, 0], "senior balance")
    assert_cents(sub, [0, 0, 4_000_000], "sub principal")
    # the borrower defaults in period 3 (no recovery): the 4m unpaid at legal final is drawn
    draw, senior, sub = _guaranteed("senior.principal_at_final", "default_p3")
    assert_cents(draw, [0, 0, 4_000_000], "draws at legal final")
    assert_cents(senior, [5_000_000, 4_000_000, 0], "senior balance")
    assert_cents(sub, [0, 0, 0], "sub principal")


# --------------------------------------------------------------------------- located errors


def _issue(text: str) -> Issue:
    with pytest.raises(DealError) as info:
        parse_deal(text, "deal.yaml")
    issues = info.value.issues
    assert len(issues) == 1, "\n".join(map(str, issues))
    return issues[0]


def test_reimbursing_an_unknown_support_is_located(minimal_text: str) -> None:
    text = minimal_text.replace(
        "    - pay_residual: sub\n  accelerated",
        "    - reimburse: guarante\n    - pay_residual: sub\n  accelerated",
    )
    issue = _issue(text)
    assert (issue.line, issue.column) == (68, 18), str(issue)
    assert issue.path == "waterfalls.normal[5].reimburse"
    assert "unknown support 'guarante'" in issue.message
    assert issue.hint == "did you mean 'guarantee'?"


def test_a_misspelt_principal_claim_is_located_with_a_suggestion(minimal_text: str) -> None:
    text = minimal_text.replace("covers: [senior.interest]", "covers: [senior.principal_at_maturty]")
    issue = _issue(text)
    assert (issue.line, issue.column) == (65, 40), str(issue)
    assert "unknown claim 'senior.principal_at_maturty'" in issue.message
    assert issue.hint == "did you mean 'senior.principal_at_maturity'?"


def test_a_reimbursement_rate_out_of_range_is_located(minimal_text: str) -> None:
    text = minimal_text.replace(
        "    provider: StateGuarantor\n", "    provider: StateGuarantor\n    reimbursement_rate: 150%\n"
    )
    issue = _issue(text)
    assert issue.line == 54 and issue.path == "support[0].reimbursement_rate", str(issue)


# --------------------------------------------------------------------------- the documented examples

DOCS = Path(__file__).resolve().parents[1] / "docs" / "structures.md"


def _documented(section: str) -> str:
    """The YAML example under ``## section`` of docs/structures.md."""
    text = DOCS.read_text(encoding="utf-8")
    part = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```yaml\n(.*?)```", part, re.S)
    assert block is not None, f"no example under {section!r}"
    return block.group(1)


def test_support_example_of_the_docs_runs_and_pays_the_sponsor_back() -> None:
    model = compile_text(_documented("Support that pays and gets paid back"))
    res = api.run(model, "b_defaults")
    assert_conserved(res, 1e7)
    draws = col(res, "keepwell.draw")
    assert draws[0] == 0.0 and draws[1] > 0.0
    assert col(res, "keepwell.unreimbursed")[-1] == 0.0
    assert col(res, "keepwell.reimbursed")[-1] > draws.sum()
    assert col(res, "wrap.draw")[:2].sum() == 0.0 and col(res, "wrap.draw")[2] > 0.0
    assert col(res, "wrap.unreimbursed").max() == 0.0


# --------------------------------------------------------------------------- Monte Carlo: zero PD


def test_zero_pd_paths_equal_the_deterministic_run_with_reimbursement_and_maturity_guarantee() -> None:
    """A 20% mezzanine coupon the pool cannot pay: the keepwell pays every period and is paid
    back from the principal of loan C; the wrap pays the senior at its expected maturity."""
    text = _documented("Support that pays and gets paid back").replace("coupon: 12%", "coupon: 20%")
    text = text.replace("scenarios:\n", "scenarios:\n  base: {recovery: {rate: 0.5, lag_months: 24}}\n")
    text = text.replace(
        "      - {obligor: B,",
        "      - {obligor: C, balance: 1m, rate: 0, term_months: 36, payment_frequency: annual,"
        " amortisation: bullet}\n      - {obligor: B,",
    )
    text += "risk:\n  default_pd: 0\n  recovery: {model: constant, rate: 0.5, lag_months: 24}\n"
    model = compile_text(text)
    det = api.run(model, "base")
    assert col(det, "keepwell.draw")[0] > 0.0 and col(det, "keepwell.reimbursed").sum() > 0.0
    assert col(det, "wrap.draw")[2] > 0.0
    result = simulate(model, paths=16, seed=3, threads=2, keep=[0, 15])
    for i, kept in result.kept.items():
        assert_periods_equal(kept.periods, det.periods, f"path {i}")
    assert np.all(result.tranche_outcomes == result.tranche_outcomes[:1])
