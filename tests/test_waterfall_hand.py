"""Small deals whose priority of payments is computed by hand, compared to the cent.

Every deal uses ACT/365 and dates on the first of a month, so that year fractions are simple:
annual deals run 2025-01-01 -> 2026-01-01 -> 2027-01-01 -> 2028-01-01 (365 days each, year
fraction exactly 1), the quarterly deal has quarters of 90, 91, 92 and 92 days. The expected
numbers are written out period by period in comments and recomputed by plain arithmetic; no
ipabs function is used to produce them.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import assert_cents, assert_conserved, col, collections_of, compile_text, run_text

from ipabs import api

ANNUAL_3Y = """
deal:
  name: {name}
  closing_date: 2025-01-01
  first_payment_date: 2026-01-01
  payment_frequency: annual
  legal_final_date: 2028-01-01
"""

ANNUAL_2Y = """
deal:
  name: {name}
  closing_date: 2025-01-01
  first_payment_date: 2026-01-01
  payment_frequency: annual
  legal_final_date: 2027-01-01
"""


def _deal(header: str, name: str, body: str) -> str:
    return header.format(name=name) + body


# --------------------------------------------------------------------------- 1. day counts


BULLET_DEAL = """
deal:
  name: bullet and fee
  closing_date: 2025-01-01
  first_payment_date: 2025-04-01
  payment_frequency: quarterly
  legal_final_date: 2026-01-01
pools:
  - name: park
    loans:
      - {obligor: A, balance: 6m, rate: 6%, term_months: 12, amortisation: bullet}
      - {obligor: B, balance: 4m, rate: 5%, term_months: 12}
tranches:
  - {name: senior, balance: 9m, coupon: 4%}
  - {name: sub, balance: 1m}
fees:
  - {name: trustee, annual_amount: 36500}
waterfalls:
  normal:
    - pay_fee: trustee
    - pay_interest: senior
    - pay_principal: senior
    - pay_residual: sub
"""


def test_bullet_loan_fixed_fee_act365_interest_arrears() -> None:
    res = run_text(BULLET_DEAL)
    days = [90, 91, 92, 92]  # 2025-01-01 -> 04-01 -> 07-01 -> 10-01 -> 2026-01-01

    # Loan A (bullet): principal and ALL interest at maturity: 6m x 6% x 365/365 = 360,000.
    # Loan B (interest only, quarterly): 4m x 5% x d/365 each quarter, 4m at maturity.
    b_interest = [4_000_000 * 0.05 * d / 365 for d in days]  # 49,315.07 / 49,863.01 / ...
    cash = [b_interest[0], b_interest[1], b_interest[2], b_interest[3] + 360_000 + 10_000_000]
    assert_cents(col(res, "pool.interest"), [*b_interest[:3], b_interest[3] + 360_000], "pool interest")

    # Fee: 36,500 a year accrues 100 a day: 9,000 / 9,100 / 9,200 / 9,200, always paid in full.
    fee = [36_500 * d / 365 for d in days]
    assert_cents(col(res, "trustee.due"), fee, "fee due")
    assert_cents(col(res, "trustee.paid"), fee, "fee paid")

    # Senior interest accrues 9m x 4% x d/365 = 88,767.12 / 89,753.42 / 90,739.73 / 90,739.73.
    accrual = [9_000_000 * 0.04 * d / 365 for d in days]
    # Periods 1-3: cash after the fee, b_interest - fee, is all the senior gets; the rest of its
    # interest is carried as arrears (without interest on interest).
    paid = [b_interest[t] - fee[t] for t in range(3)]  # 40,315.07 / 40,763.01 / 41,210.96
    arrears_1 = accrual[0] - paid[0]  # 48,452.05
    arrears_2 = arrears_1 + accrual[1] - paid[1]  # 97,442.47
    arrears_3 = arrears_2 + accrual[2] - paid[2]  # 146,971.23
    due = [accrual[0], accrual[1] + arrears_1, accrual[2] + arrears_2, accrual[3] + arrears_3]
    assert_cents(col(res, "senior.interest_due"), due, "senior interest due")
    # Period 4: 237,710.96 of interest due is paid in full.
    assert_cents(col(res, "senior.interest_paid"), [*paid, due[3]], "senior interest paid")
    assert_cents(col(res, "senior.interest_shortfall"), [arrears_1, arrears_2, arrears_3, 0.0], "arrears")
    assert_cents(col(res, "senior.principal_paid"), [0, 0, 0, 9_000_000], "senior principal")

    # Period 4: 10,410,410.96 - 9,200 - 237,710.96 - 9,000,000 = 1,163,500 to the sub:
    # 1,000,000 principal and 163,500 residual. Check: total cash 10.56m = 36,500 fees +
    # 360,000 senior interest + 9m + 1,163,500.
    left = cash[3] - fee[3] - due[3] - 9_000_000
    assert left == pytest.approx(1_163_500, abs=0.005)
    assert_cents(col(res, "sub.principal_paid"), [0, 0, 0, 1_000_000], "sub principal")
    assert_cents(col(res, "sub.residual_paid"), [0, 0, 0, left - 1_000_000], "sub residual")
    assert res.summary.loc["senior", "loss"] == pytest.approx(0.0, abs=0.005)
    assert_conserved(res, 1e7)


# --------------------------------------------------------------------------- 2. principal modes


def _two_class_deal(mode: str) -> str:
    return _deal(
        ANNUAL_2Y,
        f"{mode} principal",
        f"""
pools:
  - name: park
    loans:
      - {{obligor: A, balance: 10m, rate: 6%, term_months: 24, amortisation: equal_principal,
         payment_frequency: annual}}
tranches:
  - {{name: a, balance: 6m, coupon: 4%}}
  - {{name: b, balance: 3m, coupon: 5%}}
  - {{name: sub, balance: 1m}}
waterfalls:
  normal:
    - pay_interest: [a, b]
    - pay_principal: {{tranches: [a, b], mode: {mode}, limit: principal_collections}}
    - pay_residual: sub
""",
    )


def test_pro_rata_principal() -> None:
    res = run_text(_two_class_deal("pro_rata"))
    # Loan: 5m principal a year; interest 10m x 6% = 600,000, then 5m x 6% = 300,000.
    # Period 1: cash 5.6m; interest a 6m x 4% = 240,000, b 3m x 5% = 150,000.
    # Principal collections 5m shared 6:3 -> a 3,333,333.33, b 1,666,666.67.
    # Residual 5.6m - 390,000 - 5m = 210,000 -> sub principal (sub left with 790,000).
    a1, b1 = 5_000_000 * 6 / 9, 5_000_000 * 3 / 9
    # Period 2 (legal final): cash 5.3m; interest a (6m - a1) x 4% = 106,666.67,
    # b (3m - b1) x 5% = 66,666.67; principal: the whole 4m left (2,666,666.67 + 1,333,333.33);
    # residual 5.3m - 173,333.33 - 4m = 1,126,666.67 -> sub 790,000 + 336,666.67.
    ia2, ib2 = (6e6 - a1) * 0.04, (3e6 - b1) * 0.05
    assert_cents(col(res, "a.interest_paid"), [240_000, ia2], "a interest")
    assert_cents(col(res, "b.interest_paid"), [150_000, ib2], "b interest")
    assert_cents(col(res, "a.principal_paid"), [a1, 6e6 - a1], "a principal")
    assert_cents(col(res, "b.principal_paid"), [b1, 3e6 - b1], "b principal")
    assert_cents(col(res, "sub.principal_paid"), [210_000, 790_000], "sub principal")
    assert_cents(col(res, "sub.residual_paid"), [0, 5.3e6 - ia2 - ib2 - 4e6 - 790_000], "sub residual")
    assert_conserved(res, 1e7)


def test_sequential_principal() -> None:
    res = run_text(_two_class_deal("sequential"))
    # Period 1: interest 240,000 + 150,000; all 5m of principal to a (left 1m); 210,000 to sub.
    # Period 2: interest a 1m x 4% = 40,000, b 3m x 5% = 150,000; principal a 1m then b 3m;
    # residual 5.3m - 190,000 - 4m = 1,110,000 -> sub 790,000 + 320,000.
    assert_cents(col(res, "a.interest_paid"), [240_000, 40_000], "a interest")
    assert_cents(col(res, "b.interest_paid"), [150_000, 150_000], "b interest")
    assert_cents(col(res, "a.principal_paid"), [5_000_000, 1_000_000], "a principal")
    assert_cents(col(res, "b.principal_paid"), [0, 3_000_000], "b principal")
    assert_cents(col(res, "sub.principal_paid"), [210_000, 790_000], "sub principal")
    assert_cents(col(res, "sub.residual_paid"), [0, 320_000], "sub residual")
    assert_conserved(res, 1e7)


# --------------------------------------------------------------------------- 3. fee bases


FEE_DEAL = _deal(
    ANNUAL_2Y,
    "fee bases",
    """
pools:
  - name: park
    loans:
      - {obligor: A, balance: 10m, rate: 6%, term_months: 24, amortisation: equal_principal,
         payment_frequency: annual}
tranches:
  - {name: senior, balance: 9m, coupon: 4%}
  - {name: sub, balance: 1m}
fees:
  - {name: servicer, rate: 1%}
  - {name: trustee, rate: 0.5%, base: pool_balance}
  - {name: admin, rate: 0.2%, base: notes_balance}
  - {name: agent, period_amount: 1000}
waterfalls:
  normal:
    - pay_fee: [servicer, trustee, admin, agent]
    - pay_interest: senior
    - pay_principal: {tranches: senior, limit: principal_collections}
    - pay_residual: sub
""",
)


def test_fee_rates_on_pool_and_note_balances() -> None:
    res = run_text(FEE_DEAL)
    # Period 1: pool 10m at the start, 5m at the end, notes 10m at the start.
    #   servicer 1% x 10m = 100,000; trustee 0.5% x 5m = 25,000; admin 0.2% x 10m = 20,000;
    #   agent 1,000. Cash 5.6m - 146,000 fees - 360,000 interest - 5m principal = 94,000 -> sub.
    # Period 2: pool 5m at the start, 0 at the end; notes 4m + 906,000 = 4,906,000.
    #   servicer 50,000; trustee 0; admin 9,812; agent 1,000. Interest 4m x 4% = 160,000;
    #   principal 4m; residual 5.3m - 60,812 - 160,000 - 4m = 1,079,188 -> sub 906,000 + 173,188.
    assert_cents(col(res, "servicer.paid"), [100_000, 50_000], "servicer")
    assert_cents(col(res, "trustee.paid"), [25_000, 0], "trustee")
    assert_cents(col(res, "admin.paid"), [20_000, 0.002 * 4_906_000], "admin")
    assert_cents(col(res, "agent.paid"), [1_000, 1_000], "agent")
    assert_cents(col(res, "senior.interest_paid"), [360_000, 160_000], "senior interest")
    assert_cents(col(res, "senior.principal_paid"), [5_000_000, 4_000_000], "senior principal")
    assert_cents(col(res, "sub.principal_paid"), [94_000, 906_000], "sub principal")
    assert_cents(col(res, "sub.residual_paid"), [0, 173_188], "sub residual")
    assert_conserved(res, 1e7)


# --------------------------------------------------------------------------- 4. reserve


RESERVE_DEAL = _deal(
    ANNUAL_3Y,
    "reserve",
    """
pools:
  - name: park
    loans:
      - {obligor: A, balance: 9m, rate: 6%, term_months: 36, amortisation: equal_principal,
         payment_frequency: annual}
tranches:
  - {name: senior, balance: 8m, coupon: 4%}
  - {name: sub, balance: 1m}
accounts:
  - {name: reserve, target: {share: 5%, of: balance(senior)}}
waterfalls:
  normal:
    - pay_interest: senior
    - fund_account: reserve
    - pay_principal: {tranches: senior, limit: principal_collections}
    - pay_residual: sub
""",
)


def test_reserve_funded_to_target_excess_released_and_emptied_at_legal_final() -> None:
    res = run_text(RESERVE_DEAL)
    # Loan: 3m principal a year; interest 540,000 / 360,000 / 180,000.
    # Period 1: cash 3.54m; interest 8m x 4% = 320,000; reserve target 5% x 8m = 400,000 funded
    #   in full; principal min(2.82m left, 3m collected) = 2.82m -> senior 5.18m; nothing left.
    # Period 2: target 5% x 5.18m = 259,000: 141,000 released first -> 3.501m available;
    #   interest 5.18m x 4% = 207,200; principal 3m (the collections) -> senior 2.18m;
    #   293,800 -> sub principal (sub 706,200).
    # Period 3 (legal final): the whole 259,000 is released -> 3.439m; interest 87,200;
    #   principal 2.18m; 1,171,800 -> sub 706,200 principal + 465,600 residual.
    assert_cents(col(res, "reserve.deposit"), [400_000, 0, 0], "deposits")
    assert_cents(col(res, "reserve.withdrawal"), [0, 141_000, 259_000], "withdrawals")
    assert_cents(col(res, "reserve.balance_end"), [400_000, 259_000, 0], "reserve balance")
    assert_cents(col(res, "senior.interest_paid"), [320_000, 207_200, 87_200], "senior interest")
    assert_cents(col(res, "senior.principal_paid"), [2_820_000, 3_000_000, 2_180_000], "senior principal")
    assert_cents(col(res, "sub.principal_paid"), [0, 293_800, 706_200], "sub principal")
    assert_cents(col(res, "sub.residual_paid"), [0, 0, 465_600], "sub residual")
    assert_conserved(res, 1e7)


RESERVE_DRAW_DEAL = _deal(
    ANNUAL_3Y,
    "reserve draw",
    """
indices:
  IDX: [{from: 2020-01-01, rate: 3%}, {from: 2026-01-01, rate: 6%}]
pools:
  - name: park
    loans:
      - {obligor: A, balance: 10m, rate: {index: IDX}, term_months: 36, payment_frequency: annual}
tranches:
  - {name: senior, balance: 9m, coupon: 4%}
  - {name: sub, balance: 1m}
accounts:
  - {name: reserve, initial: 100k, target: 100k}
waterfalls:
  normal:
    - pay_interest: senior
    - draw: {from: reserve, covers: senior.interest}
    - fund_account: reserve
    - pay_principal: {tranches: senior, limit: principal_collections}
    - pay_residual: sub
""",
)


def test_reserve_drawn_for_interest_shortfall_then_refunded() -> None:
    res = run_text(RESERVE_DRAW_DEAL)
    # Loan interest resets at the start of each year: 3% then 6% -> 300,000 / 600,000 / 600,000.
    # Period 1: senior interest 360,000; cash 300,000; the reserve pays the 60,000 shortfall
    #   (100,000 -> 40,000); nothing left to refund it.
    # Period 2: interest 360,000 from 600,000; refund 60,000 to the 100,000 target; 180,000 -> sub.
    # Period 3 (legal final): reserve released (100,000); cash 10.6m + 0.1m; interest 360,000;
    #   principal 9m; 1.34m -> sub 820,000 principal + 520,000 residual.
    assert_cents(col(res, "pool.interest"), [300_000, 600_000, 600_000], "loan interest")
    assert_cents(col(res, "reserve.withdrawal"), [60_000, 0, 100_000], "withdrawals")
    assert_cents(col(res, "reserve.deposit"), [0, 60_000, 0], "deposits")
    assert_cents(col(res, "reserve.balance_end"), [40_000, 100_000, 0], "reserve")
    assert_cents(col(res, "senior.interest_paid"), [360_000] * 3, "senior interest")
    # support_received counts what draws paid, reserve draws included (docs/outputs.md).
    assert_cents(col(res, "senior.support_received"), [60_000, 0, 0], "paid by the draw")
    assert_cents(col(res, "sub.principal_paid"), [0, 180_000, 820_000], "sub principal")
    assert_cents(col(res, "sub.residual_paid"), [0, 0, 520_000], "sub residual")
    assert_conserved(res, 1e7)


# --------------------------------------------------------------------------- 5. deficiency payment


DPU_DEAL = _deal(
    ANNUAL_3Y,
    "deficiency payment",
    """
obligors:
  - {name: StateCo}
pools:
  - name: park
    loans:
      - {obligor: A, balance: 10m, rate: 2%, term_months: 36, payment_frequency: annual}
scenarios:
  base: {}
  provider_default: {defaults: {obligors: {StateCo: 2}}}
tranches:
  - {name: senior, balance: 9m, coupon: 4%}
  - {name: sub, balance: 1m}
support:
  - {name: dpu, kind: deficiency_payment, provider: StateCo, cap_per_period: 100k, cap_total: 150k}
waterfalls:
  normal:
    - pay_interest: senior
    - draw: {from: dpu, covers: [senior.interest]}
    - pay_principal: {tranches: senior, limit: principal_collections}
    - pay_residual: sub
""",
)


def test_deficiency_payment_caps_per_period_and_total() -> None:
    res = run_text(DPU_DEAL, "base")
    # Loan interest 200,000 a year; senior interest 9m x 4% = 360,000 a year.
    # Period 1: 200,000 paid from cash; shortfall 160,000; the provider pays its per-period
    #   cap 100,000; arrears 60,000.
    # Period 2: due 360,000 + 60,000 = 420,000; 200,000 from cash; the provider has 50,000 left
    #   under its 150,000 total cap; arrears 170,000.
    # Period 3: due 530,000, paid from 10.2m; principal 9m; 670,000 -> sub (loss 330,000).
    assert_cents(col(res, "dpu.draw"), [100_000, 50_000, 0], "draws")
    assert_cents(col(res, "dpu.cumulative_draw"), [100_000, 150_000, 150_000], "cumulative")
    assert_cents(col(res, "senior.interest_due"), [360_000, 420_000, 530_000], "due")
    assert_cents(col(res, "senior.interest_paid"), [300_000, 250_000, 530_000], "paid")
    assert_cents(col(res, "senior.support_received"), [100_000, 50_000, 0], "support received")
    assert_cents(col(res, "senior.principal_paid"), [0, 0, 9_000_000], "senior principal")
    assert_cents(col(res, "sub.principal_paid"), [0, 0, 670_000], "sub principal")
    assert res.summary.loc["senior", "loss"] == pytest.approx(0.0, abs=0.005)
    assert res.summary.loc["sub", "principal_loss"] == pytest.approx(330_000, abs=0.005)
    assert_conserved(res, 1e7)


def test_defaulted_provider_pays_nothing_more() -> None:
    res = run_text(DPU_DEAL, "provider_default")
    # StateCo defaults in period 2: it paid 100,000 in period 1 and nothing after.
    # Period 2: arrears 60,000 + 160,000 = 220,000. Period 3: due 580,000; 10.2m - 580,000 - 9m
    # = 620,000 -> sub.
    assert_cents(col(res, "dpu.draw"), [100_000, 0, 0], "draws")
    assert_cents(col(res, "senior.interest_due"), [360_000, 420_000, 580_000], "due")
    assert_cents(col(res, "senior.interest_paid"), [300_000, 200_000, 580_000], "paid")
    assert_cents(col(res, "sub.principal_paid"), [0, 0, 620_000], "sub principal")
    assert_conserved(res, 1e7)


# --------------------------------------------------------------------------- 6. default, guarantee


def _guarantee_deal(lag: int) -> str:
    return _deal(
        ANNUAL_3Y,
        "named default",
        f"""
obligors:
  - {{name: GuarCo}}
pools:
  - name: park
    loans:
      - {{obligor: A, balance: 6m, rate: 5%, term_months: 36, payment_frequency: annual}}
      - {{obligor: B, balance: 4m, rate: 5%, term_months: 36, payment_frequency: annual,
         guarantee: {{guarantor: GuarCo, share: 50%}}}}
scenarios:
  base:
    defaults: {{obligors: {{B: 2}}}}
    recovery: {{rate: 40%, lag_months: {lag}}}
  guarantor_down:
    defaults: {{obligors: {{B: 2, GuarCo: 1}}}}
    recovery: {{rate: 40%, lag_months: {lag}}}
tranches:
  - {{name: senior, balance: 8m, coupon: 3%}}
  - {{name: sub, balance: 2m}}
waterfalls:
  normal:
    - pay_interest: senior
    - pay_principal: {{tranches: senior, limit: principal_collections}}
    - pay_residual: sub
""",
    )


def test_named_default_guarantee_share_and_lagged_recovery() -> None:
    model = compile_text(_guarantee_deal(12))
    c = collections_of(model, "base")
    # B (4m) defaults at the start of period 2: no interest from it in periods 2-3.
    # The guarantor pays 50% x 4m = 2m with no lag (period 2); recovery 40% x the uncovered
    # 2m = 800,000 arrives 12 months after the end of period 2 = 2028-01-01 (period 3).
    assert_cents(c["interest"], [500_000, 300_000, 300_000], "interest")
    assert_cents(c["defaults"], [0, 4_000_000, 0], "defaults")
    assert_cents(c["guarantee"], [0, 2_000_000, 0], "guarantee")
    assert_cents(c["recovery"], [0, 0, 800_000], "recovery")
    assert_cents(c["loss"], [0, 1_200_000, 0], "loss")
    assert_cents(c["balance_end"], [10_000_000, 6_000_000, 0], "performing balance")

    res = api.run(model, "base")
    # Period 1: 500,000; interest 8m x 3% = 240,000; no principal collected; 260,000 -> sub.
    # Period 2: 300,000 + 2m guarantee; interest 240,000; principal 2m -> senior 6m; 60,000 -> sub.
    # Period 3: 300,000 + 6m + 800,000; interest 180,000; principal 6m (collections 6.8m);
    #   920,000 -> sub principal; sub ends 2m - 260,000 - 60,000 - 920,000 = 760,000 short.
    assert_cents(col(res, "senior.interest_paid"), [240_000, 240_000, 180_000], "senior interest")
    assert_cents(col(res, "senior.principal_paid"), [0, 2_000_000, 6_000_000], "senior principal")
    assert_cents(col(res, "sub.principal_paid"), [260_000, 60_000, 920_000], "sub principal")
    assert res.summary.loc["sub", "principal_loss"] == pytest.approx(760_000, abs=0.005)
    assert_conserved(res, 1e7)


def test_defaulted_guarantor_pays_no_claim_and_late_recovery_is_lost() -> None:
    # The guarantor defaults in period 1, before B: no guarantee; recovery 40% x 4m = 1.6m.
    c = collections_of(compile_text(_guarantee_deal(12)), "guarantor_down")
    assert_cents(c["guarantee"], [0, 0, 0], "guarantee")
    assert_cents(c["recovery"], [0, 0, 1_600_000], "recovery")
    assert_cents(c["loss"], [0, 2_400_000, 0], "loss")
    # A 13-month lag lands on 2028-02-01, after legal final: the recovery is lost.
    c = collections_of(compile_text(_guarantee_deal(13)), "base")
    assert_cents(c["guarantee"], [0, 2_000_000, 0], "guarantee")
    assert_cents(c["recovery"], [0, 0, 0], "recovery")
    assert_cents(c["loss"], [0, 2_000_000, 0], "loss")


# --------------------------------------------------------------------------- 7. deferred interest


DEFER_DEAL = _deal(
    ANNUAL_3Y,
    "deferred interest",
    """
pools:
  - name: park
    loans:
      - {obligor: A, balance: 6m, rate: 5%, term_months: 36, amortisation: bullet}
      - {obligor: B, balance: 4m, rate: 5%, term_months: 36, payment_frequency: annual}
tranches:
  - {name: senior, balance: 6m, coupon: 3%}
  - {name: mezz, balance: 3m, coupon: 6%, defer_interest: true}
  - {name: sub, balance: 1m}
waterfalls:
  normal:
    - pay_interest: senior
    - pay_interest: mezz
    - pay_principal: {tranches: [senior, mezz], limit: principal_collections}
    - pay_residual: sub
""",
)


def test_deferred_interest_carried_without_compounding_and_paid_later() -> None:
    res = run_text(DEFER_DEAL)
    # Cash: 200,000 a year from B; A pays 6m + 6m x 5% x 1095/365 = 900,000 at maturity.
    # Period 1: senior 180,000; mezz accrues 180,000, gets 20,000 -> arrears 160,000.
    # Period 2: mezz due 180,000 + 160,000 = 340,000, gets 20,000 -> arrears 320,000.
    # Period 3: cash 11.1m; senior 180,000; mezz 500,000 (no interest on the arrears);
    #   principal 6m + 3m from the 10m collected; 1.42m -> sub 1m + 420,000.
    assert_cents(col(res, "mezz.interest_due"), [180_000, 340_000, 500_000], "mezz due")
    assert_cents(col(res, "mezz.interest_paid"), [20_000, 20_000, 500_000], "mezz paid")
    assert_cents(col(res, "mezz.interest_shortfall"), [160_000, 320_000, 0], "mezz arrears")
    assert_cents(col(res, "senior.interest_paid"), [180_000] * 3, "senior interest")
    assert_cents(col(res, "mezz.principal_paid"), [0, 0, 3_000_000], "mezz principal")
    assert_cents(col(res, "sub.principal_paid"), [0, 0, 1_000_000], "sub principal")
    assert_cents(col(res, "sub.residual_paid"), [0, 0, 420_000], "sub residual")
    assert res.summary.loc["mezz", "loss"] == pytest.approx(0.0, abs=0.005)
    assert_conserved(res, 1e7)


# --------------------------------------------------------------------------- 8. triggers


CDR_TRIGGER_DEAL = _deal(
    ANNUAL_3Y,
    "cumulative default trigger",
    """
pools:
  - name: park
    loans:
      - {obligor: A, balance: 8m, rate: 6%, term_months: 36, payment_frequency: annual}
      - {obligor: B, balance: 2m, rate: 6%, term_months: 36, payment_frequency: annual}
scenarios:
  base:
    defaults: {obligors: {B: 2}}
    recovery: {rate: 50%, lag_months: 0}
tranches:
  - {name: senior, balance: 8m, coupon: 4%}
  - {name: sub, balance: 2m}
triggers:
  - {name: cdr, kind: cumulative_default_rate, threshold: 10%, effect: {waterfall: accelerated}}
waterfalls:
  normal:
    - pay_interest: senior
    - pay_principal: {tranches: senior, limit: principal_collections}
    - pay_residual: sub
  accelerated:
    - pay_interest: senior
    - pay_principal: senior
    - pay_residual: sub
""",
)


def test_cumulative_default_trigger_switches_to_accelerated_waterfall() -> None:
    res = run_text(CDR_TRIGGER_DEAL)
    # Period 1: cash 600,000; interest 320,000; 280,000 -> sub (normal waterfall).
    # Period 2: B's 2m defaults: 2m / 10m = 20% > 10% -> accelerated; the whole senior balance
    #   is due. Cash: A's 480,000 + recovery 50% x 2m = 1m (no lag); interest 320,000; all the
    #   1.16m left goes to senior principal (senior 6.84m); nothing to the sub.
    # Period 3: cash 8.48m; interest 6.84m x 4% = 273,600; principal 6.84m; 1,366,400 -> sub
    #   principal; the sub ends 2m - 280,000 - 1,366,400 = 353,600 short.
    assert list(res.periods["deal.waterfall"]) == ["normal", "accelerated", "accelerated"]
    assert_cents(col(res, "cdr.value"), [0.0, 0.2, 0.2], "trigger value")
    assert_cents(col(res, "cdr.active"), [0, 1, 1], "active")
    assert_cents(col(res, "senior.principal_due"), [0, 8_000_000, 6_840_000], "principal due")
    assert_cents(col(res, "senior.interest_paid"), [320_000, 320_000, 273_600], "senior interest")
    assert_cents(col(res, "senior.principal_paid"), [0, 1_160_000, 6_840_000], "senior principal")
    assert_cents(col(res, "sub.principal_paid"), [280_000, 0, 1_366_400], "sub principal")
    assert res.summary.loc["sub", "principal_loss"] == pytest.approx(353_600, abs=0.005)
    assert_conserved(res, 1e7)


def _dscr_deal(threshold: str) -> str:
    return _deal(
        ANNUAL_3Y,
        "dscr trap",
        f"""
indices:
  IDX: [{{from: 2020-01-01, rate: 5%}}, {{from: 2026-01-01, rate: 8%}}]
pools:
  - name: park
    loans:
      - {{obligor: A, balance: 10m, rate: {{index: IDX}}, term_months: 36, payment_frequency: annual}}
tranches:
  - {{name: senior, balance: 8m, coupon: 4.5%}}
  - {{name: sub, balance: 2m}}
accounts:
  - {{name: trap, kind: trap}}
triggers:
  - {{name: dscr, kind: dscr, tranches: [senior], threshold: {threshold}, effect: {{trap: 50%}}}}
waterfalls:
  normal:
    - pay_interest: senior
    - trap_cash: trap
    - pay_principal: {{tranches: senior, limit: principal_collections}}
    - pay_residual: sub
""",
    )


def test_dscr_trigger_traps_half_the_excess_and_releases_it_when_cured() -> None:
    # The threshold is 0 at legal final so that only the trapping and the cure are tested here.
    res = run_text(_dscr_deal("[1.4, 1.4, 0.0]"))
    # Loan interest: 5% then 8% -> 500,000 / 800,000 / 800,000; senior interest 360,000.
    # Period 1: DSCR 500,000 / 360,000 = 1.3889 < 1.4 -> trap 50% of the 140,000 left = 70,000;
    #   70,000 -> sub.
    # Period 2: DSCR 800,000 / 360,000 = 2.2222: cured, the 70,000 is released -> 870,000;
    #   interest 360,000; 510,000 -> sub (sub 2m - 580,000 = 1.42m).
    # Period 3: cash 10.8m; interest 360,000; principal 8m; 2.44m -> sub 1.42m + 1.02m residual.
    assert_cents(col(res, "dscr.value")[:2], [500_000 / 360_000, 800_000 / 360_000], "DSCR")
    assert_cents(col(res, "dscr.active"), [1, 0, 0], "active")
    assert_cents(col(res, "trap.deposit"), [70_000, 0, 0], "trapped")
    assert_cents(col(res, "trap.withdrawal"), [0, 70_000, 0], "released")
    assert_cents(col(res, "trap.balance_end"), [70_000, 0, 0], "trap balance")
    assert_cents(col(res, "sub.principal_paid"), [70_000, 510_000, 1_420_000], "sub principal")
    assert_cents(col(res, "sub.residual_paid"), [0, 0, 1_020_000], "sub residual")
    assert_cents(col(res, "senior.principal_paid"), [0, 0, 8_000_000], "senior principal")
    assert_conserved(res, 1e7)


def test_no_cash_is_trapped_at_legal_final() -> None:
    # Same deal, threshold 1.4 throughout. At legal final the DSCR counts the whole senior
    # balance as debt service: 10.8m / (360,000 + 8m) = 1.2919 < 1.4, so the trap is active.
    # Accounts are emptied at legal final (convention 4) and cash cannot be kept after the
    # deal ends: the senior must still get its 8m and the sub the 2.44m left.
    res = run_text(_dscr_deal("1.4"))
    assert_cents(col(res, "senior.principal_paid"), [0, 0, 8_000_000], "senior principal")
    assert_cents(col(res, "trap.balance_end")[-1:], [0.0], "trap balance after legal final")
    assert res.summary.loc["senior", "loss"] == pytest.approx(0.0, abs=0.005)
    assert_cents(col(res, "sub.residual_paid"), [0, 0, 1_020_000], "sub residual")


# --------------------------------------------------------------------------- 9. clean-up call


def _call_deal(price: str) -> str:
    return _deal(
        ANNUAL_3Y,
        "clean-up call",
        f"""
pools:
  - name: park
    loans:
      - {{obligor: A, balance: 6m, rate: 5%, term_months: 12, payment_frequency: annual}}
      - {{obligor: B, balance: 2m, rate: 5%, term_months: 24, payment_frequency: annual}}
      - {{obligor: C, balance: 2m, rate: 5%, term_months: 36, payment_frequency: annual}}
tranches:
  - {{name: senior, balance: 9m, coupon: 3%}}
  - {{name: sub, balance: 1m}}
clean_up_call: {{threshold: 20%, price: {price}}}
waterfalls:
  normal:
    - pay_interest: senior
    - pay_principal: senior
    - pay_residual: sub
""",
    )


@pytest.mark.parametrize("price", [1.0, 0.98])
def test_clean_up_call(price: float) -> None:
    res = run_text(_call_deal(str(price)))
    # Period 1: cash 500,000 interest + A's 6m; pool 4m = 40% of 10m: no call. Interest
    #   9m x 3% = 270,000; principal 6.23m -> senior 2.77m.
    # Period 2: cash 200,000 + B's 2m; pool 2m = 20% -> called at price x 2m. Interest
    #   2.77m x 3% = 83,100; principal 2.77m; the rest -> sub (1m principal, then residual).
    # Period 3: nothing is collected: C was sold.
    proceeds = price * 2_000_000
    left = 2_200_000 + proceeds - 83_100 - 2_770_000
    assert_cents(col(res, "deal.call_proceeds"), [0, proceeds, 0], "call proceeds")
    assert_cents(col(res, "deal.called"), [0, 1, 1], "called")
    assert_cents(col(res, "deal.pool_balance"), [4_000_000, 0, 0], "pool balance")
    assert_cents(col(res, "deal.collections"), [6_500_000, 2_200_000, 0], "collections")
    assert_cents(col(res, "senior.interest_paid"), [270_000, 83_100, 0], "senior interest")
    assert_cents(col(res, "senior.principal_paid"), [6_230_000, 2_770_000, 0], "senior principal")
    assert_cents(col(res, "sub.principal_paid"), [0, 1_000_000, 0], "sub principal")
    assert_cents(col(res, "sub.residual_paid"), [0, left - 1_000_000, 0], "sub residual")
    assert_conserved(res, 1e7)


# --------------------------------------------------------------------------- 10. liquidity


LIQUIDITY_DEAL = _deal(
    ANNUAL_3Y,
    "liquidity facility",
    """
indices:
  IDX: [{from: 2020-01-01, rate: 2%}, {from: 2026-01-01, rate: 8%}]
obligors:
  - {name: Bank}
pools:
  - name: park
    loans:
      - {obligor: A, balance: 10m, rate: {index: IDX}, term_months: 36, payment_frequency: annual}
tranches:
  - {name: senior, balance: 8m, coupon: 4%}
  - {name: sub, balance: 2m}
support:
  - {name: lf, kind: liquidity_facility, provider: Bank, limit: 100k, rate: 10%}
waterfalls:
  normal:
    - repay_liquidity: lf
    - pay_interest: senior
    - draw: {from: lf, covers: senior.interest}
    - pay_principal: {tranches: senior, limit: principal_collections}
    - pay_residual: sub
""",
)


def test_liquidity_facility_draw_limit_and_repayment_with_interest() -> None:
    res = run_text(LIQUIDITY_DEAL)
    # Loan interest 2% then 8%: 200,000 / 800,000 / 800,000; senior interest 320,000.
    # Period 1: nothing to repay; 200,000 from cash; shortfall 120,000 but the limit is 100,000
    #   -> senior gets 300,000, arrears 20,000; facility outstanding 100,000.
    # Period 2: repay first: interest 100,000 x 10% x 365/365 = 10,000 and principal 100,000
    #   -> 690,000 left; senior 320,000 + 20,000; 350,000 -> sub.
    # Period 3: senior 320,000; principal 8m; 2.48m -> sub 1.65m + 830,000.
    assert_cents(col(res, "lf.draw"), [100_000, 0, 0], "draw")
    assert_cents(col(res, "lf.interest_paid"), [0, 10_000, 0], "liquidity interest")
    assert_cents(col(res, "lf.principal_repaid"), [0, 100_000, 0], "liquidity principal")
    assert_cents(col(res, "lf.outstanding"), [100_000, 0, 0], "outstanding")
    assert_cents(col(res, "senior.interest_paid"), [300_000, 340_000, 320_000], "senior interest")
    assert_cents(col(res, "senior.support_received"), [100_000, 0, 0], "support received")
    assert_cents(col(res, "sub.principal_paid"), [0, 350_000, 1_650_000], "sub principal")
    assert_cents(col(res, "sub.residual_paid"), [0, 0, 830_000], "sub residual")
    assert_conserved(res, 1e7)


# --------------------------------------------------------------------------- 11. principal limits


def _target_deal(down_to: str) -> str:
    return _deal(
        ANNUAL_2Y,
        "principal targets",
        f"""
pools:
  - name: park
    loans:
      - {{obligor: A, balance: 10m, rate: 5%, term_months: 24, amortisation: equal_principal,
         payment_frequency: annual}}
tranches:
  - {{name: a, balance: 7m, coupon: 4%}}
  - {{name: b, balance: 2m, coupon: 5%}}
  - {{name: sub, balance: 1m}}
waterfalls:
  normal:
    - pay_interest: a
    - pay_interest: b
    - pay_principal: {{tranches: a, limit: principal_collections, down_to: {down_to}}}
    - pay_principal: {{tranches: b, limit: principal_collections}}
    - pay_residual: sub
""",
    )


def test_pay_principal_down_to_a_scheduled_target() -> None:
    res = run_text(_target_deal("{schedule: [3.5m, 0]}"))
    # Loan: 5m principal a year; interest 500,000 then 250,000.
    # Period 1: cash 5.5m; interest a 280,000, b 100,000; a is paid 7m - 3.5m = 3.5m of the 5m
    #   principal collected; b gets the other 1.5m (b left 500,000); 120,000 -> sub.
    # Period 2: cash 5.25m; interest a 140,000, b 25,000; target 0: a 3.5m; b 500,000 (from the
    #   1.5m of collections left); 1,085,000 -> sub 880,000 + 205,000.
    assert_cents(col(res, "a.principal_paid"), [3_500_000, 3_500_000], "a principal")
    assert_cents(col(res, "b.principal_paid"), [1_500_000, 500_000], "b principal")
    assert_cents(col(res, "b.interest_paid"), [100_000, 25_000], "b interest")
    assert_cents(col(res, "sub.principal_paid"), [120_000, 880_000], "sub principal")
    assert_cents(col(res, "sub.residual_paid"), [0, 205_000], "sub residual")
    assert_conserved(res, 1e7)


def test_pay_principal_down_to_a_share_of_the_pool() -> None:
    res = run_text(_target_deal("{share: 50%, of: pool_balance}"))
    # Period 1: pool 5m at the end -> target 2.5m: a is paid 4.5m; b the 500,000 of collections
    #   left (b 1.5m); cash 5.5m - 380,000 - 5m = 120,000 -> sub.
    # Period 2: target 0: interest a 2.5m x 4% = 100,000, b 1.5m x 5% = 75,000; a 2.5m; b 1.5m;
    #   5.25m - 175,000 - 4m = 1,075,000 -> sub 880,000 + 195,000.
    assert_cents(col(res, "a.principal_paid"), [4_500_000, 2_500_000], "a principal")
    assert_cents(col(res, "b.principal_paid"), [500_000, 1_500_000], "b principal")
    assert_cents(col(res, "a.interest_paid"), [280_000, 100_000], "a interest")
    assert_cents(col(res, "sub.residual_paid"), [0, 195_000], "sub residual")
    assert_conserved(res, 1e7)


AMORTISATION_SCHEDULE_DEAL = _deal(
    ANNUAL_2Y,
    "limit due",
    """
pools:
  - name: park
    loans:
      - {obligor: A, balance: 10m, rate: 5%, term_months: 24, amortisation: equal_principal,
         payment_frequency: annual}
tranches:
  - {name: a, balance: 7m, coupon: 4%, amortisation_schedule: [4m]}
  - {name: sub, balance: 3m}
waterfalls:
  normal:
    - pay_interest: a
    - pay_principal: {tranches: a, limit: due}
    - pay_residual: sub
""",
)


def test_pay_principal_limited_to_the_amount_due() -> None:
    res = run_text(AMORTISATION_SCHEDULE_DEAL)
    # Period 1: cash 5.5m; interest 280,000; due 7m - 4m = 3m -> a 4m; 2.22m -> sub (780,000 left).
    # Period 2 (legal final): cash 5.25m; interest 160,000; the whole 4m due; 1.09m -> sub
    #   780,000 + 310,000.
    assert_cents(col(res, "a.principal_due"), [3_000_000, 4_000_000], "a due")
    assert_cents(col(res, "a.principal_paid"), [3_000_000, 4_000_000], "a principal")
    assert_cents(col(res, "a.interest_paid"), [280_000, 160_000], "a interest")
    assert_cents(col(res, "sub.principal_paid"), [2_220_000, 780_000], "sub principal")
    assert_cents(col(res, "sub.residual_paid"), [0, 310_000], "sub residual")
    assert_conserved(res, 1e7)


def test_liquidity_interest_accrues_only_while_drawn_wherever_the_repay_step_sits() -> None:
    # Same deal with the repayment step after the draw. The 100,000 is drawn on 2026-01-01 (end
    # of period 1), so it is outstanding for one year, 2026-01-01 -> 2027-01-01: interest
    # 100,000 x 10% x 365/365 = 10,000, paid in period 2 with the principal. Nothing accrues in
    # period 1, when the facility was not drawn. Everything else is as in the test above.
    text = LIQUIDITY_DEAL.replace(
        "    - repay_liquidity: lf\n    - pay_interest: senior\n"
        "    - draw: {from: lf, covers: senior.interest}\n",
        "    - pay_interest: senior\n    - draw: {from: lf, covers: senior.interest}\n"
        "    - repay_liquidity: lf\n",
    )
    assert text != LIQUIDITY_DEAL
    res = run_text(text)
    assert_cents(col(res, "lf.draw"), [100_000, 0, 0], "draw")
    assert_cents(col(res, "lf.principal_repaid"), [0, 100_000, 0], "liquidity principal")
    assert_cents(col(res, "lf.interest_paid"), [0, 10_000, 0], "liquidity interest")
    assert_cents(col(res, "sub.principal_paid"), [0, 350_000, 1_650_000], "sub principal")
    assert_cents(col(res, "sub.residual_paid"), [0, 0, 830_000], "sub residual")
    assert_conserved(res, 1e7)


# --------------------------------------------------------------------------- 12. trigger values

SWITCH_DEAL = """
deal:
  name: dscr switch
  closing_date: 2025-01-01
  first_payment_date: 2026-01-01
  payment_frequency: annual
  legal_final_date: 2029-01-01
pools:
  - name: park
    loans:
      - {obligor: A, balance: 6m, rate: 6%, term_months: 48, amortisation: interest_only_then_bullet,
         payment_frequency: annual}
      - {obligor: B, balance: 4m, rate: 6%, term_months: 48, amortisation: equal_principal,
         payment_frequency: annual}
tranches:
  - {name: senior, balance: 8m, coupon: 4%, amortisation_schedule: [8m, 6m, 6m]}
  - {name: sub, balance: 2m}
fees:
  - {name: trustee, annual_amount: 50k}
  - {name: adviser, annual_amount: 10k, rank: junior}
triggers:
  - {name: dscr, kind: dscr, tranches: [senior], threshold: 1.0, curable: false,
     effect: {waterfall: accelerated}}
  - {name: oc, kind: overcollateralisation, tranches: [senior], threshold: 1.0,
     effect: {sequential: true}}
waterfalls:
  normal:
    - pay_fee: trustee
    - pay_interest: senior
    - pay_principal: {tranches: senior, limit: due}
    - pay_fee: adviser
    - pay_residual: sub
  accelerated:
    - pay_fee: [trustee, adviser]
    - pay_interest: senior
    - pay_principal: senior
    - pay_residual: sub
"""


def test_dscr_and_oc_values_before_and_after_a_waterfall_switch() -> None:
    res = run_text(SWITCH_DEAL)
    leap = 366 / 365  # period 4 runs 2028-01-01 -> 2029-01-01
    # Pool: A pays 360,000 interest a year and 6m at maturity; B 1m principal a year and 6% on
    # 4m / 3m / 2m / 1m. Pool balance at the start of each period: 10m, 9m, 8m, 7m.
    cash = [
        360_000 + 240_000 + 1_000_000,
        360_000 + 180_000 + 1_000_000,
        360_000 + 120_000 + 1_000_000,
        6_000_000 * 0.06 * leap + 6_000_000 + 1_000_000 * 0.06 * leap + 1_000_000,
    ]
    assert_cents(col(res, "deal.collections"), cash, "collections")
    # Only the senior fee (50,000 a year) comes off the cash in the DSCR; the junior adviser's
    # 10,000 does not.
    net = [cash[0] - 50_000, cash[1] - 50_000, cash[2] - 50_000, cash[3] - 50_000 * leap]
    # Period 1: interest 320,000, nothing scheduled: DSCR 1,550,000 / 320,000 = 4.84375.
    #   Normal waterfall: 50,000 fee, 320,000 interest, no principal due, 10,000 adviser,
    #   1,220,000 -> sub.
    # Period 2: interest 320,000, schedule 6m -> 2m due: 1,490,000 / 2,320,000 = 0.642 < 1
    #   switches the waterfall, which makes the whole 8m due; the DSCR divides by what is due:
    #   1,490,000 / 8,320,000 = 0.17909. Accelerated: 60,000 fees, 320,000 interest,
    #   1,160,000 principal (senior 6.84m).
    # Period 3: interest 6.84m x 4% = 273,600; still switched: 1,430,000 / 7,113,600 = 0.20103
    #   (on the schedule alone, 1,430,000 / 1,113,600 = 1.284 would look healthy).
    #   Principal 1,480,000 - 60,000 - 273,600 = 1,146,400 (senior 5,693,600).
    # Period 4 (legal final): interest 5,693,600 x 4% x 366/365 on the whole balance.
    senior_interest = [320_000, 320_000, 273_600, 5_693_600 * 0.04 * leap]
    senior_start = [8_000_000, 8_000_000, 6_840_000, 5_693_600]
    principal_due = [0, 8_000_000, 6_840_000, 5_693_600]
    dscr = [net[t] / (senior_interest[t] + principal_due[t]) for t in range(4)]
    assert_cents(col(res, "senior.interest_due"), senior_interest, "senior interest due")
    assert_cents(col(res, "senior.principal_due"), principal_due, "senior principal due")
    assert_cents(col(res, "senior.principal_paid"), [0, 1_160_000, 1_146_400, 5_693_600], "principal")
    np.testing.assert_allclose(col(res, "dscr.value"), dscr, rtol=1e-12)
    assert dscr[1] == pytest.approx(0.17909, abs=1e-5) and dscr[2] == pytest.approx(0.20103, abs=1e-5)
    assert_cents(col(res, "dscr.active"), [0, 1, 1, 1], "dscr active")
    assert list(res.periods["deal.waterfall"]) == ["normal", "accelerated", "accelerated", "accelerated"]
    # OC: pool balance at the START of the period over the senior balance at the start:
    # 10m / 8m, 9m / 8m, 8m / 6.84m, 7m / 5,693,600 (the end balances would give 9m / 8m,
    # 8m / 8m, 7m / 6.84m and 0).
    oc = [10e6 / 8e6, 9e6 / 8e6, 8e6 / 6.84e6, 7e6 / 5_693_600]
    np.testing.assert_allclose(col(res, "oc.value"), oc, rtol=1e-12)
    assert [senior_start[t] for t in range(4)] == pytest.approx(col(res, "senior.balance_start").tolist())
    # The DSCR's debt service is the tranche table's interest and principal due, every period.
    service = col(res, "senior.interest_due") + col(res, "senior.principal_due")
    np.testing.assert_allclose(col(res, "dscr.value") * service, net, rtol=1e-12)
    left = cash[3] - 50_000 * leap - 10_000 * leap - senior_interest[3] - 5_693_600
    assert_cents(col(res, "sub.principal_paid"), [1_220_000, 0, 0, 780_000], "sub principal")
    assert_cents(col(res, "sub.residual_paid"), [0, 0, 0, left - 780_000], "sub residual")
    assert_conserved(res, 1e7)


def test_liquidity_repaid_interest_first_when_cash_is_short() -> None:
    # The loan's rate falls to 0.6% after the first year: 200,000 / 60,000 / 60,000 of interest.
    # Period 1: senior interest 320,000: 200,000 from cash, 100,000 drawn (the limit), arrears
    #   20,000; facility outstanding 100,000.
    # Period 2: the repayment step has 60,000: interest first, 100,000 x 10% = 10,000, then
    #   50,000 of principal (outstanding 50,000). Nothing is left for the senior's 340,000: the
    #   facility's room, 100,000 - 50,000, is drawn again; senior arrears 290,000.
    # Period 3 (legal final): cash 10.06m; the facility gets 10,000 interest (on the 100,000
    #   outstanding since period 2) and 100,000; senior 610,000 interest and 8m; the sub
    #   1,340,000.
    text = LIQUIDITY_DEAL.replace("rate: 8%}]", "rate: 0.6%}]")
    assert text != LIQUIDITY_DEAL
    res = run_text(text)
    assert_cents(col(res, "pool.interest"), [200_000, 60_000, 60_000], "pool interest")
    assert_cents(col(res, "lf.draw"), [100_000, 50_000, 0], "draw")
    assert_cents(col(res, "lf.interest_paid"), [0, 10_000, 10_000], "liquidity interest")
    assert_cents(col(res, "lf.principal_repaid"), [0, 50_000, 100_000], "liquidity principal")
    assert_cents(col(res, "lf.outstanding"), [100_000, 100_000, 0], "outstanding")
    assert_cents(col(res, "senior.interest_paid"), [300_000, 50_000, 610_000], "senior interest")
    assert_cents(col(res, "senior.support_received"), [100_000, 50_000, 0], "support received")
    assert_cents(col(res, "senior.principal_paid"), [0, 0, 8_000_000], "senior principal")
    assert_cents(col(res, "sub.principal_paid"), [0, 0, 1_340_000], "sub principal")
    assert_conserved(res, 1e7)
