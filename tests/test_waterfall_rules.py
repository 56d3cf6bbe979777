"""Waterfall rules that hinge on a flag: deferrable interest, and principal limits that lapse
when everything is due."""

from __future__ import annotations

import pytest
from helpers import assert_cents, assert_conserved, col, run_text

ANNUAL = """
deal: {{name: rules, closing_date: 2025-01-01, first_payment_date: 2026-01-01,
       payment_frequency: annual, legal_final_date: {final}}}
"""


@pytest.mark.parametrize("defer", [True, False])
def test_interest_shortfall_trigger_ignores_deferrable_tranches(defer: bool) -> None:
    # Pool: 10m at 2% interest-only for 3 years: 200,000 of interest a year.
    # a: 5m at 1% -> 50,000 due, paid. b: 5m at 5% -> 250,000 due, 150,000 paid: 100,000 unpaid.
    # On the next date the trigger sees b's arrears only if b may not defer.
    text = (
        ANNUAL.format(final="2028-01-01")
        + f"""
pools:
  - name: p
    loans: [{{obligor: X, balance: 10m, rate: 2%, term_months: 36, payment_frequency: annual}}]
tranches:
  - {{name: a, balance: 5m, coupon: 1%}}
  - {{name: b, balance: 5m, coupon: 5%, defer_interest: {str(defer).lower()}}}
triggers:
  - {{name: eod, kind: interest_shortfall, tranches: [a, b], curable: false,
     effect: {{waterfall: default}}}}
waterfalls:
  normal:
    - pay_interest: a
    - pay_interest: b
    - pay_principal: [a, b]
  default:
    - pay_interest: [a, b]
    - pay_principal: [a, b]
"""
    )
    res = run_text(text)
    assert_cents(col(res, "b.interest_paid")[:1], [150_000], "b interest in period 1")
    assert_cents(col(res, "b.interest_shortfall")[:1], [100_000], "b arrears after period 1")
    active = col(res, "eod.active")
    if defer:
        assert active.tolist() == [0.0, 0.0, 0.0]
        assert set(res.periods["deal.waterfall"]) == {"normal"}
    else:
        assert active.tolist() == [0.0, 1.0, 1.0]
        assert list(res.periods["deal.waterfall"]) == ["normal", "default", "default"]
    assert_conserved(res, 1e7)


@pytest.mark.parametrize("limit", ["principal_collections", "available"])
def test_principal_limits_and_targets_lapse_at_legal_final(limit: str) -> None:
    # One 1-year bullet loan of 10m at 0%: the whole 10m arrives on the legal final date.
    # The step would pay the senior only down to 50% of its 9m, but at legal final everything is
    # due: the senior gets 9m, the sub the last 1m. Otherwise the senior would lose 4.5m while
    # the sub took a residual.
    text = (
        ANNUAL.format(final="2026-01-01")
        + f"""
pools:
  - name: p
    loans: [{{obligor: X, balance: 10m, rate: 0%, term_months: 12, amortisation: bullet}}]
tranches:
  - {{name: senior, balance: 9m}}
  - {{name: sub, balance: 1m}}
waterfalls:
  normal:
    - pay_principal:
        {{tranches: senior, limit: {limit}, down_to: {{share: 50%, of: original_balance(senior)}}}}
    - pay_residual: sub
"""
    )
    res = run_text(text)
    assert_cents(col(res, "senior.principal_paid"), [9_000_000], "senior principal")
    assert_cents(col(res, "sub.principal_paid"), [1_000_000], "sub principal")
    assert res.summary.loc["senior", "loss"] == pytest.approx(0.0, abs=0.005)


def test_down_to_target_holds_before_legal_final() -> None:
    # Same loan maturing after one year, notes final after two: in period 1 the senior is paid
    # only down to its 4.5m target, the sub's step takes 1m, and 4.5m waits for the next date.
    text = (
        ANNUAL.format(final="2027-01-01")
        + """
pools:
  - name: p
    loans: [{obligor: X, balance: 10m, rate: 0%, term_months: 12, amortisation: bullet}]
tranches:
  - {name: senior, balance: 9m}
  - {name: sub, balance: 1m}
waterfalls:
  normal:
    - pay_principal: {tranches: senior, down_to: {share: 50%, of: original_balance(senior)}}
    - pay_principal: sub
"""
    )
    res = run_text(text)
    # period 1: 10m arrives; senior 9m -> 4.5m (4.5m paid); sub 1m paid; 4.5m carried
    # period 2 (legal final): the carried 4.5m repays the senior
    assert_cents(col(res, "senior.principal_paid"), [4_500_000, 4_500_000], "senior principal")
    assert_cents(col(res, "sub.principal_paid"), [1_000_000, 0], "sub principal")
    assert_cents(col(res, "deal.cash_carried_forward"), [4_500_000, 0], "cash carried")
