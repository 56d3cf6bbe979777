"""Income and principal ledgers, the principal deficiency ledger, write-down loss allocation and
fees on collections: hand-computed waterfalls to the cent, the Monte Carlo against the
deterministic run, and located errors."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from helpers import assert_cents, assert_conserved, col, compile_text, run_text
from test_montecarlo import assert_periods_equal

from ipabs.deal.load import parse_deal
from ipabs.errors import DealError
from ipabs.montecarlo import simulate

# Annual periods: 2024 has 366 days, 2025 and 2026 have 365. Loans and notes count ACT/365.
Y1, Y2, Y3 = 366 / 365, 1.0, 1.0

PASS_THROUGH = """
deal:
  name: pass-through
  closing_date: 2024-01-01
  first_payment_date: 2025-01-01
  payment_frequency: annual
  legal_final_date: 2027-01-01
pools:
  - name: p
    loans:
      - {obligor: A, balance: 97, rate: 8%, term_months: 36, payment_frequency: annual}
      - {obligor: B, balance: 3, rate: 8%, term_months: 36, payment_frequency: annual}
scenarios:
  b_defaults:
    defaults: {obligors: {B: 1}}
    recovery: {rate: RATE, lag_months: 12}
tranches:
  - {name: note, balance: 100, coupon: 8%}
EXTRA
waterfalls:
  normal:
    - pay_interest: note
    - pay_principal: note
"""


def _pass_through(rate: float, extra: str) -> str:
    return PASS_THROUGH.replace("RATE", str(rate)).replace("EXTRA", extra)


def test_without_write_down_a_pass_through_loses_interest_on_principal_it_no_longer_has() -> None:
    r = run_text(_pass_through(0.0, ""))
    # 8% on 100 is due, 8% on 97 comes in: the note keeps accruing on the 3 the pool lost
    assert_cents(col(r, "note.interest_shortfall")[:2], [100 * 0.08 * Y1 - 97 * 0.08 * Y1, 0.4807], "arrears")
    assert r.summary.loc["note", "loss"] > 3.7


def test_write_down_at_default_turns_3_pct_of_defaults_into_a_3_pct_loss() -> None:
    r = run_text(_pass_through(0.0, "loss_allocation: {method: write_down}"))
    assert_cents(col(r, "note.write_down"), [3, 0, 0], "write-down")
    assert_cents(col(r, "note.written_down"), [3, 3, 3], "written down")
    # interest accrues on the written-down balance only, and the pool pays exactly that
    assert_cents(col(r, "note.interest_due"), [97 * 0.08 * Y1, 97 * 0.08, 97 * 0.08], "interest due")
    assert_cents(col(r, "note.interest_shortfall"), [0, 0, 0], "shortfall")
    assert_cents(col(r, "note.principal_paid"), [0, 0, 97], "principal")
    assert r.summary.loc["note", "principal_loss"] == pytest.approx(3.0, abs=1e-9)
    assert r.summary.loc["note", "loss"] == pytest.approx(3.0, abs=1e-9)
    assert_conserved(r, 100)


def test_write_down_at_liquidation_books_the_loss_when_the_recovery_arrives() -> None:
    r = run_text(_pass_through(0.4, "loss_allocation: {method: write_down, at: liquidation}"))
    # period 1: B defaults, no write-down yet: 8% on 100 is due, 8% on 97 is collected
    due1 = 100 * 0.08 * Y1
    short1 = due1 - 97 * 0.08 * Y1
    # period 2: 40% of 3 recovered; the other 60% (1.80) is written down before interest accrues
    bal2 = 100 - 1.8
    due2 = bal2 * 0.08 + short1
    cash2 = 97 * 0.08 + 1.2
    prin2 = cash2 - due2
    # period 3: interest on what is left, then 97 of principal
    bal3 = bal2 - prin2
    due3 = bal3 * 0.08
    prin3 = 97 * 0.08 + 97 - due3
    assert_cents(col(r, "pool.realised_loss"), [0, 1.8, 0], "realised loss")
    assert_cents(col(r, "note.write_down"), [0, 1.8, 0], "write-down")
    assert_cents(col(r, "note.interest_due"), [due1, due2, due3], "interest due")
    assert_cents(col(r, "note.principal_paid"), [0, prin2, prin3], "principal")
    assert r.summary.loc["note", "loss"] == pytest.approx(1.8 + bal3 - prin3, abs=1e-9)
    assert_conserved(r, 100)


LEDGERS = """
deal:
  name: ledgers
  closing_date: 2024-01-01
  first_payment_date: 2025-01-01
  payment_frequency: annual
  legal_final_date: 2027-01-01
pools:
  - name: p
    loans:
      - {obligor: A, balance: 80, rate: 10%, term_months: 36, payment_frequency: annual}
      - {obligor: B, balance: 20, rate: 10%, term_months: 36, payment_frequency: annual}
scenarios:
  b_defaults:
    defaults: {obligors: {B: 1}}
    recovery: {rate: 0.5, lag_months: 12}
tranches:
  - {name: senior, balance: 90, coupon: 5%}
  - {name: sub, balance: 10}
fees:
  - {name: vat, period_amount: {share: 3.26%, of: interest_collections}}
  - {name: trustee, period_amount: 1}
ledgers:
  recoveries: income
  principal_deficiency_debits: [defaults]
TRIGGERS
waterfalls:
  normal:
    income:
      - pay_fee: [vat, trustee]
      - pay_interest: senior
      - to_principal: deficiency
      - pay_residual: sub
    principal:
      - pay_fee: [vat, trustee]
      - pay_interest: senior
      - pay_principal: [senior, sub]
      - pay_residual: sub
"""


def test_income_cures_the_deficiency_that_defaults_left_in_the_principal_ledger() -> None:
    r = run_text(LEDGERS.replace("TRIGGERS", ""))
    # period 1: B (20) defaults at the start; A pays 8.021918 of interest
    int1 = 80 * 0.10 * Y1
    vat1 = 0.0326 * int1
    sen1 = 90 * 0.05 * Y1
    cure1 = int1 - vat1 - 1 - sen1  # all income left goes to principal, and on to the senior
    pdl1 = 20 - cure1
    # period 2: 8 of interest plus 10 recovered, both income
    vat2 = 0.0326 * 8
    sen2 = (90 - cure1) * 0.05
    cure2 = 18 - vat2 - 1 - sen2
    pdl2 = pdl1 - cure2
    # period 3: 8 of interest, 80 of principal
    bal3 = 90 - cure1 - cure2
    sen3 = bal3 * 0.05
    cure3 = 8 - vat2 - 1 - sen3
    pdl3 = pdl2 - cure3
    sub3 = 80 + cure3 - bal3
    assert_cents(col(r, "vat.paid"), [vat1, vat2, vat2], "VAT on interest collections")
    assert_cents(col(r, "deal.income_collections"), [int1, 18, 8], "income")
    assert_cents(col(r, "deal.principal_collections"), [0, 0, 80], "principal")
    assert_cents(col(r, "deal.income_to_principal"), [cure1, cure2, cure3], "cures")
    assert_cents(col(r, "deal.principal_deficiency"), [pdl1, pdl2, pdl3], "ledger")
    assert_cents(col(r, "senior.principal_paid"), [cure1, cure2, bal3], "senior principal")
    assert_cents(col(r, "sub.principal_paid"), [0, 0, sub3], "sub principal")
    assert_cents(col(r, "sub.residual_paid"), [0, 0, 0], "sub residual")
    # what income could not cure is what the sub loses
    assert r.summary.loc["sub", "principal_loss"] == pytest.approx(pdl3, abs=1e-9)
    assert_conserved(r, 100)


def test_principal_that_pays_fees_and_interest_is_recorded_in_the_deficiency_ledger() -> None:
    text = (
        LEDGERS.replace("TRIGGERS", "")
        .replace(
            "rate: 10%, term_months: 36, payment_frequency: annual}",
            "rate: 2%, term_months: 36, payment_frequency: annual, amortisation: equal_principal}",
        )
        .replace("principal_deficiency_debits: [defaults]", "principal_deficiency_debits: []")
        .replace("{obligors: {B: 1}}", "{cdr: 0}")
    )
    r = run_text(text)
    third = 100 / 3
    # period 1: 2% interest does not cover the trustee and the senior: principal does (本金补足)
    int1 = 100 * 0.02 * Y1
    vat1 = 0.0326 * int1
    used1 = vat1 + 1 + 90 * 0.05 * Y1 - int1
    sen_p1 = third - used1
    # period 2
    int2 = (100 - third) * 0.02
    vat2 = 0.0326 * int2
    used2 = vat2 + 1 + (90 - sen_p1) * 0.05 - int2
    sen_p2 = third - used2
    # period 3: everything is due
    int3 = third * 0.02
    bal3 = 90 - sen_p1 - sen_p2
    used3 = 0.0326 * int3 + 1 + bal3 * 0.05 - int3
    sub3 = third - used3 - bal3
    assert_cents(col(r, "deal.principal_used_for_income"), [used1, used2, used3], "principal used")
    assert_cents(col(r, "deal.principal_deficiency"), np.cumsum([used1, used2, used3]), "ledger")
    assert_cents(col(r, "senior.principal_paid"), [sen_p1, sen_p2, bal3], "senior principal")
    assert_cents(col(r, "sub.principal_paid"), [0, 0, sub3], "sub principal")
    assert r.summary.loc["sub", "principal_loss"] == pytest.approx(used1 + used2 + used3, abs=1e-9)
    assert_conserved(r, 100)


def test_a_principal_deficiency_trigger_switches_to_a_combined_waterfall() -> None:
    trigger = """triggers:
  - name: pdl
    kind: principal_deficiency
    threshold: 15%
    curable: false
    effect: {waterfall: accelerated}"""
    text = (
        LEDGERS.replace("TRIGGERS", trigger)
        + """  accelerated:
    - pay_fee: [vat, trustee]
    - pay_interest: senior
    - pay_principal: [senior, sub]
    - pay_residual: sub
"""
    )
    r = run_text(text)
    # the ledger is tested after the period's defaults: 20 of 100 > 15%
    assert col(r, "pdl.value")[0] == pytest.approx(0.2)
    assert list(r.periods["deal.waterfall"]) == ["accelerated"] * 3
    # one pot: all cash pays the senior, principal is due in full
    int1 = 80 * 0.10 * Y1
    paid1 = int1 - 0.0326 * int1 - 1 - 90 * 0.05 * Y1
    assert_cents(col(r, "senior.principal_paid")[:1], [paid1], "senior principal")
    assert_cents(col(r, "deal.income_to_principal"), [0, 0, 0], "no ledger transfers")
    assert_conserved(r, 100)


def test_recoveries_split_between_the_ledgers_by_the_deals_rule() -> None:
    text = LEDGERS.replace("TRIGGERS", "").replace("recoveries: income", "recoveries: {principal: 60%}")
    r = run_text(text)
    assert_cents(col(r, "pool.recovery"), [0, 10, 0], "recovery")
    assert_cents(col(r, "deal.income_collections"), [80 * 0.10 * Y1, 8 + 4, 8], "income")
    assert_cents(col(r, "deal.principal_collections"), [0, 6, 80], "principal")
    assert_conserved(r, 100)


QUARTERLY_CAP = """
deal:
  name: capped
  closing_date: 2024-01-01
  first_payment_date: 2024-04-01
  payment_frequency: quarterly
  legal_final_date: 2025-10-01
pools:
  - name: p
    loans:
      - {obligor: A, balance: 100, rate: 10%, term_months: 21, payment_frequency: quarterly}
tranches:
  - {name: senior, balance: 90, coupon: 4%}
  - {name: sub, balance: 10}
fees:
  - {name: servicer, period_amount: 1, cap_per_year: 3}
waterfalls:
  normal:
    - pay_fee: servicer
    - pay_interest: senior
    - JUNIOR
    - pay_principal: [senior, sub]
    - pay_residual: sub
"""


def test_an_annual_fee_cap_moves_the_excess_below_the_notes() -> None:
    r = run_text(QUARTERLY_CAP.replace("JUNIOR", "pay_fee_above_cap: servicer"))
    # deal years end on 2025-01-01 and 2026-01-01: three quarters fill the cap of 3, the
    # fourth is owed junior; the second year has three quarters and stays under it
    assert_cents(col(r, "servicer.due"), [1, 1, 1, 0, 1, 1, 1], "senior fee due")
    assert_cents(col(r, "servicer.paid"), [1, 1, 1, 0, 1, 1, 1], "senior fee paid")
    assert_cents(col(r, "servicer.above_cap_paid"), [0, 0, 0, 1, 0, 0, 0], "junior fee paid")
    assert_cents(col(r, "servicer.above_cap_unpaid"), [0] * 7, "junior fee owed")
    assert_conserved(r, 100)


def test_without_a_junior_step_the_fee_above_its_cap_stays_owed() -> None:
    r = run_text(QUARTERLY_CAP.replace("    - JUNIOR\n", ""))
    assert_cents(col(r, "servicer.above_cap_unpaid"), [0, 0, 0, 1, 1, 1, 1], "junior fee owed")
    assert col(r, "sub.residual_paid").sum() > 0  # the sub takes the cash the fee was not paid
    assert_conserved(r, 100)


# ------------------------------------------------------------------------- the Monte Carlo

MC_DEAL = """
deal:
  name: mc ledgers
  closing_date: 2024-01-01
  first_payment_date: 2024-07-01
  payment_frequency: semi-annual
  legal_final_date: 2027-01-01
pools:
  - name: p
    loans:
LOANS
tranches:
  - {name: note, balance: 990, coupon: 6%}
  - {name: sub, balance: 10}
loss_allocation: {method: write_down, order: [note]}
risk:
  factors: {global: 0.4}
  recovery: {model: constant, rate: 0}
waterfalls:
  normal:
    - pay_interest: note
    - pay_principal: note
    - pay_residual: sub
"""


def _mc_deal(pd: float) -> str:
    loans = "\n".join(
        f"      - {{obligor: L{i}, balance: 100, rate: 6%, term_months: 36, "
        f"payment_frequency: semi-annual, pd: {pd}}}"
        for i in range(10)
    )
    return MC_DEAL.replace("LOANS", loans)


def test_on_every_path_a_written_down_pass_through_loses_exactly_the_defaulted_balance() -> None:
    model = compile_text(_mc_deal(0.08))
    res = simulate(model, paths=2000, seed=11)
    losses = res.tranche_outcomes[:, 0, 0]  # principal loss of the note on each path
    defaults = res.pool_outcomes[:, 0] * 1000  # default rate x original pool
    assert np.any(defaults > 0)
    # interest accrues only on what the pool still has, so only the written-down part is lost
    np.testing.assert_allclose(losses, np.minimum(defaults, 990), atol=1e-6)


def test_zero_pd_monte_carlo_paths_equal_the_deterministic_run_with_ledgers() -> None:
    text = LEDGERS.replace("TRIGGERS", "").replace(
        "waterfalls:", "loss_allocation: {method: write_down}\nrisk:\n  factors: {global: 0.3}\nwaterfalls:"
    )
    text = text.replace("{obligor: A, balance: 80,", "{obligor: A, pd: 0, balance: 80,").replace(
        "{obligor: B, balance: 20,", "{obligor: B, pd: 0, balance: 20,"
    )
    text = text.replace("defaults: {obligors: {B: 1}}", "defaults: {cdr: 0}")
    model = compile_text(text)
    det = run_text(text)
    res = simulate(model, paths=5, seed=3, keep=[0, 4])
    for i, kept in res.kept.items():
        assert_periods_equal(kept.periods, det.periods, f"path {i}")
    for k, name in enumerate(model.tranche_names):
        np.testing.assert_allclose(res.tranche_outcomes[:, k, 2], det.summary.loc[name, "loss"], atol=1e-9)


# ------------------------------------------------------------------------- located errors


@pytest.mark.parametrize(
    ("change", "where", "message"),
    [
        (("      - to_principal: deficiency\n", ""), None, None),
        (
            ("    principal:\n", "    principal:\n      - to_principal: all\n"),
            "waterfalls.normal.principal[0].to_principal",
            "belongs in an `income` list",
        ),
        (
            (
                "      - pay_residual: sub\n    principal:",
                "      - pay_fee_above_cap: trustee\n    principal:",
            ),
            "waterfalls.normal.income[3].pay_fee_above_cap",
            "fee 'trustee' has no `cap_per_year`",
        ),
        (
            ("ledgers:", "loss_allocation: {method: write_down, order: [sub, senoir]}\nledgers:"),
            "loss_allocation.order[1]",
            "unknown tranche 'senoir'",
        ),
        (
            ("recoveries: income", "recoveries: {principal: 120%}"),
            "ledgers.recoveries",
            "",
        ),
    ],
)
def test_ledger_mistakes_are_located(change: tuple[str, str], where: str | None, message: str | None) -> None:
    text = LEDGERS.replace("TRIGGERS", "").replace(*change)
    if where is None:  # the unchanged form is valid
        parse_deal(text)
        return
    with pytest.raises(DealError) as err:
        parse_deal(text)
    issues = err.value.issues
    assert any(i.path.startswith(where) and message in i.message for i in issues), [str(i) for i in issues]
    assert all(i.line > 0 for i in issues)


# ------------------------------------------------------------------------- the docs' examples


def _doc_deals(section: str) -> list[str]:
    text = (Path(__file__).resolve().parents[1] / "docs" / "structures.md").read_text(encoding="utf-8")
    body = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```yaml\n(.*?)```", body, flags=re.S)


def test_the_ledger_example_of_the_docs_runs() -> None:
    (deal,) = _doc_deals("Income and principal ledgers")
    r = run_text(deal)
    assert col(r, "deal.principal_deficiency")[0] > 0
    assert col(r, "deal.income_to_principal").sum() > 0
    assert col(r, "trustee.above_cap_paid").sum() > 0
    assert (r.periods["deal.waterfall"] == "normal").all()
    assert_conserved(r, 1e8)


def test_the_write_down_example_of_the_docs_loses_three_percent() -> None:
    (deal,) = _doc_deals("Loss allocation by write-down")
    r = run_text(deal)
    assert r.summary.loc["note", "loss_pct"] == pytest.approx(0.03, abs=1e-12)
    assert_conserved(r, 1e8)
